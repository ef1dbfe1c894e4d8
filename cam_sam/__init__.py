"""CAM -> prompts -> promptable segmenter: the zero-shot segmentation pipeline."""
