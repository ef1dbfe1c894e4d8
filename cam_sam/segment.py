"""Skin-lesion segmentation without pixel labels: a self-trained student, or CAMs and colour cues prompting a segmenter.

Run from the repository root::

    python -m cam_sam.segment                           # the embedded defaults: the self-trained student
    python -m cam_sam.segment --set split=train --set limit=50
    python -m cam_sam.segment --set image_dir=my_photos  # your own images, no masks needed
    python -m cam_sam.segment --set preset=arbiter      # teacher (colour -> LiteMedSAM), student, its box
    python -m cam_sam.segment --set preset=zero_shot    # colour proposals -> LiteMedSAM, nothing trained
    python -m cam_sam.segment --set preset=paper        # the paper's CAM protocol (three CAM methods)

Edit CONFIG below or override any key with ``--set key=value``. Each run writes into its own
folder under ``results/``; pass ``--set out_dir=results/NAME`` to resume an interrupted run.
No ground truth is used to produce a mask; ``oracle_*`` rows in metrics.json are upper bounds
that chose masks with the ground truth, and are labelled so.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from cam_sam.runs.dataset import print_summary, segment_dataset
from cam_sam.runs.overlays import save_overlay
from cam_sam.settings import PRESETS, SEGMENT_CONFIG, resolve_run
from common.cli import run_main
from common.config import config_from_argv

# Every key and its documentation: cam_sam.settings.SEGMENT_CONFIG (data, outputs, evaluation)
# and cam_sam.settings.PIPELINE_CONFIG (classifier, CAMs, segmenter, prompts, colour proposals,
# student, selection, post-processing). Change a default here, or per run with --set key=value.
CONFIG: dict[str, Any] = {
    **SEGMENT_CONFIG,
}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0], presets=PRESETS)
    metrics = segment_dataset(resolve_run(cfg), overlay=save_overlay)
    print_summary(metrics, Path(metrics["run_dir"]), metrics["synthetic"])
    return metrics


if __name__ == "__main__":
    run_main(main)
