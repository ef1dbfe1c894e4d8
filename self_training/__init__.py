"""How the student is made: pseudo-masks from a teacher pipeline (``pseudo_label``), synthetic pairs
whose mask is known by construction (``make_synthetic``), training on them (``train_student``),
weight averaging (``average_students``), and shipping a trained student with the trust it carries
(``ship``); each script's library module beside it. No ground-truth mask is read for training."""
