"""Pseudo-masks for self-training: the zero-shot pipeline over the training images, no mask file opened.

    python -m self_training.pseudo_label --set out_dir=results/pseudo_r4_crops   # colour AND student_r3and
    python -m self_training.pseudo_label --set preset=zero_shot ...        # round 1: colour proposals only
    python -m self_training.pseudo_label --set preset=arbiter ...          # the arbiter as teacher
    ... --set image_dir=../shared/data/ISIC2017_full_frames/images --set holdout_every=0 \
        --set out_dir=results/pseudo_r4_frames                          # the same teacher on whole frames

Writes, per training image (every ``holdout_every``-th crop is left out, an unseen evaluation
set), ``masks/<id>.png`` (the delivered mask, 0/255), ``uncertainty/<id>.png`` (per-pixel std of
the masks that competed for it, x510, uint8) and ``records/<id>.json`` (its label-free confidence,
see :func:`cam_sam.pseudo_label_scores.mask_confidence`, with the confidence of :mod:`cam_sam.trust` as
``trust``). Images are visited in a seeded random order, so an interrupted run is a uniform
sample; rerunning with the same ``out_dir`` resumes.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from cam_sam.settings import DATA_CONFIG, PIPELINE_CONFIG, PIPELINE_RESUMABLE, PRESETS, DataSettings, resolve_pipeline
from cam_sam.runs.build import build_pipeline
from cam_sam.runs.inputs import open_data
from cam_sam.runs.work import write_image_outputs
from cam_sam.pseudo_label_scores import mask_confidence
from common.cli import run_main
from common.config import config_from_argv
from common.devices import resolve_device
from common.io import resolve_run_dir, write_png
from common.runs import ResumableRun
from self_training.data import UNCERTAINTY_SCALE
from self_training.holdout import HOLDOUT_EVERY, holdout_ids, self_training_ids

# The teacher: colour AND a shipped AND-round student. Rounds 3-AND to 4 (the default student's
# training frames) were labelled with the round 2-AND student, student_r2and.pt, which its model card
# rebuilds (model_checkpoints/README.md; pass it as student_checkpoint to relabel exactly as they were).
TEACHER: dict[str, Any] = {"methods": [], "proposals": ["colour", "student"], "final_sources": ["colour", "student"],
                           "final_rule": "vote", "student_checkpoint": "model_checkpoints/student_r3and.pt"}

CONFIG: dict[str, Any] = {
    "preset": None,                    # a named group of settings of cam_sam.settings.PRESETS ("zero_shot")
    "dataset": DATA_CONFIG["dataset"],
    "data_root": DATA_CONFIG["data_root"],
    "derm7pt_image": DATA_CONFIG["derm7pt_image"],
    "split": "train",
    "image_dir": None,                 # a folder of unlabelled images instead of ISIC
    "mask_dir": None,                  # never read: kept for open_data's signature
    "holdout_every": HOLDOUT_EVERY,    # every k-th training id stays out (0: use all)
    "held_out_only": False,            # label ONLY those held-out ids instead (a development set that
                                       # training never sees, e.g. the source of synthetic dev pairs)
    "limit": None,                     # at most N images (in the seeded order, after "start")
    "start": 0,                        # skip the first N of the seeded order: extends an earlier run in
                                       # another out_dir (its "limit" here); training reads both folders
    "synthetic_if_missing": False,
    "n_synthetic": 4,
    "results_root": "results",
    "out_dir": None,                   # None: results/pseudo_<time>; a path: resume there
    **PIPELINE_CONFIG,
    # the teacher: colour proposals -> LiteMedSAM AND a student (pixels both call lesion), the best
    # teacher of every round since 2-AND (docs/self_training.md); not the default pipeline, whose
    # student alone would label its own training data
    **TEACHER,
}

log = logging.getLogger("self_training.pseudo_label")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0], presets=PRESETS)
    dataset, _ = open_data(DataSettings.from_config(cfg), read_masks=False)       # never a mask: the pseudo-masks stay label-free
    device = resolve_device(cfg["device"])
    torch.manual_seed(cfg["seed"])
    run_dir = resolve_run_dir(cfg["results_root"], cfg["out_dir"], "pseudo")
    run = ResumableRun(run_dir, cfg, PIPELINE_RESUMABLE | {"limit"})
    log.info("run folder: %s", run_dir)
    pipeline = build_pipeline(*resolve_pipeline(cfg), device)
    if cfg["held_out_only"]:
        if not cfg["holdout_every"]:
            raise SystemExit("held_out_only needs holdout_every > 0 (which ids are held out)")
        ids = holdout_ids(dataset.ids, cfg["holdout_every"])[cfg["start"]:][: cfg["limit"] or None]
    else:
        ids = self_training_ids(dataset.ids, cfg["holdout_every"], cfg["seed"])[cfg["start"]:][: cfg["limit"] or None]
    positions = {image_id: i for i, image_id in enumerate(dataset.ids)}

    def work(_: int, image_id: str) -> dict[str, Any]:
        sample = dataset[positions[image_id]]
        output = pipeline.segment(sample.image, image_id=image_id)
        record = write_image_outputs(run_dir, image_id, output, save_uncertainty=False)   # the mask, as segment writes it
        if output.final_mask is None:
            return record
        # the candidates' spread as an 8-bit PNG: the student's pixel weights (self_training.data)
        spread = np.clip(output.uncertainty * UNCERTAINTY_SCALE, 0, 255).astype(np.uint8)
        write_png(run_dir / "uncertainty" / f"{image_id}.png", spread)
        confidence = mask_confidence(output)
        if output.trust is not None:   # the label-free trust of cam_sam.trust (confidence_key "trust")
            confidence["trust"] = output.trust.confidence
        return {**record, "confidence": confidence}

    run.process(ids, work, desc="pseudo-label")
    done = [i for i in ids if run.is_done(i)]
    failed = sum("error" in run.load(i) for i in done)
    log.info("%d pseudo-masks in %s (%d failed)", len(done) - failed, run_dir / "masks", failed)
    return {"run_dir": str(run_dir), "n_done": len(done), "n_failed": failed}


if __name__ == "__main__":
    run_main(main)
