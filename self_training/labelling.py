"""Pseudo-masks for self-training, the library of ``self_training.pseudo_label``: the teacher
pipeline over the training images in a seeded order (the held-out ids left out), each image's
mask, its candidates' spread and its label-free confidence written to a resumable run folder. No
mask file is ever opened."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from cam_sam.pipeline import PipelineConfig
from cam_sam.runs.build import build_pipeline
from cam_sam.runs.inputs import open_data
from cam_sam.runs.work import write_image_outputs
from cam_sam.settings import PIPELINE_RESUMABLE, DataSettings, ModelSettings, resolve_pipeline
from common.devices import resolve_device
from common.errors import SettingsError
from common.io import resolve_run_dir
from common.runs import ResumableRun
from data.holdout import HOLDOUT_EVERY, holdout_ids
from self_training.pseudo_label_scores import mask_confidence

log = logging.getLogger("self_training.pseudo_label")


def self_training_ids(ids: list[str], every: int = HOLDOUT_EVERY, seed: int = 0) -> list[str]:
    """The ids self-training may use (all but :func:`holdout_ids`), in a seeded random order so that
    a partly finished pseudo-labelling run is a uniform sample of the training set."""
    held = set(holdout_ids(ids, every))
    usable = [i for i in ids if i not in held]
    order = np.random.default_rng(seed).permutation(len(usable))
    return [usable[i] for i in order]


@dataclass(frozen=True)
class Labelling:
    """One pseudo-labelling run: the images (``data``), the teacher (``models``, ``pipeline``),
    and the ``self_training.pseudo_label`` CONFIG keys of the other fields' names (documented
    there); ``config`` is the CONFIG as given, recorded in the run folder."""

    data: DataSettings
    models: ModelSettings
    pipeline: PipelineConfig
    holdout_every: int
    held_out_only: bool
    start: int
    limit: int | None
    seed: int
    results_root: str
    out_dir: str | None
    config: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Labelling:
        if cfg["held_out_only"] and not cfg["holdout_every"]:
            raise SettingsError("held_out_only needs holdout_every > 0 (which ids are held out)")
        return cls(
            DataSettings.from_config(cfg),
            *resolve_pipeline(cfg),
            cfg["holdout_every"],
            cfg["held_out_only"],
            cfg["start"],
            cfg["limit"],
            cfg["seed"],
            cfg["results_root"],
            cfg["out_dir"],
            dict(cfg),
        )

    def ids(self, all_ids: list[str]) -> list[str]:
        """The ids to label: the held-out ones (``held_out_only``: a development set that training
        never sees) or all the others in a seeded order; from ``start``, at most ``limit``."""
        if self.held_out_only:
            chosen = holdout_ids(all_ids, self.holdout_every)
        else:
            chosen = self_training_ids(all_ids, self.holdout_every, self.seed)
        return chosen[self.start :][: self.limit or None]


def pseudo_label(s: Labelling) -> dict[str, Any]:
    """Label the images of ``s`` into its run folder (resumed when it exists): ``masks/<id>.png``,
    ``uncertainty/<id>.png`` (the candidates' std, :func:`common.io.encode_uncertainty`) and
    ``records/<id>.json`` with the confidence. Returns the folder and the counts."""
    dataset, _ = open_data(s.data, read_masks=False)  # never a mask: the pseudo-masks stay label-free
    device = resolve_device(s.models.device)
    torch.manual_seed(s.seed)
    run_dir = resolve_run_dir(s.results_root, s.out_dir, "pseudo")
    run = ResumableRun(run_dir, s.config, PIPELINE_RESUMABLE | {"limit"})
    log.info("run folder: %s", run_dir)
    pipeline = build_pipeline(s.models, s.pipeline, device)
    ids = s.ids(dataset.ids)
    positions = {image_id: i for i, image_id in enumerate(dataset.ids)}

    def work(_: int, image_id: str) -> dict[str, Any]:
        output = pipeline.segment(dataset[positions[image_id]].image, image_id=image_id)
        # the mask and the candidates' spread (the student's pixel weights, self_training.data), as
        # segment writes them
        record = write_image_outputs(run_dir, image_id, output, save_uncertainty=output.final_mask is not None)
        if output.final_mask is None:
            return record
        confidence = mask_confidence(output)
        if output.trust is not None:  # the label-free trust of cam_sam.trust (confidence_key "trust")
            confidence["trust"] = output.trust.confidence
        return {**record, "confidence": confidence}

    run.process(ids, work, desc="pseudo-label")
    done = [i for i in ids if run.is_done(i)]
    failed = sum("error" in run.load(i) for i in done)
    log.info("%d pseudo-masks in %s (%d failed)", len(done) - failed, run_dir / "masks", failed)
    return {"run_dir": str(run_dir), "n_done": len(done), "n_failed": failed}
