"""Pseudo-masks for self-training: a teacher pipeline over the training images, no mask file opened.

    python -m self_training.pseudo_label --set out_dir=results/pseudo_r4_crops   # colour AND student_r3and
    python -m self_training.pseudo_label --set preset=zero_shot ...        # round 1: colour proposals only
    python -m self_training.pseudo_label --set preset=arbiter ...          # the arbiter as teacher
    ... --set image_dir=../shared/data/ISIC2017_full_frames/images --set holdout_every=0 \
        --set out_dir=results/pseudo_r4_frames                          # the same teacher on whole frames

Writes, per training image (every ``holdout_every``-th crop is left out, an unseen evaluation
set), ``masks/<id>.png`` (the delivered mask, 0/255), ``uncertainty/<id>.png`` (per-pixel std of
the masks that competed for it, x510, uint8) and ``records/<id>.json`` (its label-free confidence,
see :func:`self_training.pseudo_label_scores.mask_confidence`, with the confidence of :mod:`cam_sam.trust` as
``trust``). Images are visited in a seeded random order, so an interrupted run is a uniform
sample; rerunning with the same ``out_dir`` resumes.
"""

from __future__ import annotations

import logging
from typing import Any

from cam_sam.settings import DATA_CONFIG, PIPELINE_CONFIG, PRESETS
from common.cli import run_main
from common.config import config_from_argv
from common.defaults import RESULTS_ROOT
from data.holdout import HOLDOUT_EVERY
from self_training.labelling import Labelling, pseudo_label

# The teacher: colour AND a shipped AND-round student. Rounds 3-AND to 4 (the default student's
# training frames) were labelled with the round 2-AND student, student_r2and.pt, which its model card
# rebuilds (model_checkpoints/README.md; pass it as student_checkpoint to relabel exactly as they were).
# fmt: off
TEACHER: dict[str, Any] = {"methods": [], "proposals": ["colour", "student"], "final_sources": ["colour", "student"],
                           "final_rule": "vote", "student_checkpoint": "model_checkpoints/student_r3and.pt"}

CONFIG: dict[str, Any] = {
    "preset": None,                    # a named group of settings of cam_sam.settings.PRESETS ("zero_shot")
    "dataset": DATA_CONFIG["dataset"],
    "data_root": DATA_CONFIG["data_root"],
    "derm7pt_image": DATA_CONFIG["derm7pt_image"],
    "split": "train",
    "image_dir": None,                 # a folder of unlabelled images instead of ISIC
    "holdout_every": HOLDOUT_EVERY,    # every k-th training id stays out (0: use all)
    "held_out_only": False,            # label ONLY those held-out ids instead (a development set that
                                       # training never sees, e.g. the source of synthetic dev pairs)
    "limit": None,                     # at most N images (in the seeded order, after "start")
    "start": 0,                        # skip the first N of the seeded order: extends an earlier run in
                                       # another out_dir (its "limit" here); training reads both folders
    "synthetic_if_missing": False,
    "n_synthetic": 4,
    "results_root": RESULTS_ROOT,
    "out_dir": None,                   # None: results/pseudo_<time>; a path: resume there
    **PIPELINE_CONFIG,
    # the teacher: colour proposals -> LiteMedSAM AND a student (pixels both call lesion), the best
    # teacher of every round since 2-AND (docs/experiments/st-04 to st-08); not the default pipeline, whose
    # student alone would label its own training data
    **TEACHER,
}
# fmt: on


def main(argv: list[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0], presets=PRESETS)
    return pseudo_label(Labelling.from_config(cfg))


if __name__ == "__main__":
    run_main(main)
