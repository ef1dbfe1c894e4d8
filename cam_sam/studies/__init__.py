"""Studies over dataset runs: the ablation, the baselines, the confidence's terms and calibration, the
depth statistics, the trust figures, the speed benchmark and the archive-sized run.
Each is a script (``python -m cam_sam.studies.<name>``) that writes tables and figures."""
