"""Self-training: pseudo-masks from the zero-shot pipeline -> a student segmenter whose encoder is a
classifier backbone -> relabelling with the student as a prompt source -> a better student."""
