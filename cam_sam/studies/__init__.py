"""Studies over dataset runs: the ablation, the trust study, the baselines and the speed benchmark.
Each is a script (``python -m cam_sam.studies.<name>``) that writes tables and figures."""
