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

from cam_sam.settings import PRESETS, SEGMENT_CONFIG, resolve_run
from cam_sam.runs.dataset import print_summary, segment_dataset
from cam_sam.runs.overlays import FLAGGED_PREFIX
from cam_sam.pipeline import MASK_SOURCES, ImageOutput
from common.cli import run_main
from common.config import config_from_argv
from common.io import save_figure

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


def save_overlay(run_dir: Path, names: list[str], image, truth, output: ImageOutput, record) -> None:
    """Draw one image's overlay figure once and write it as ``overlays/<name>.png`` for each of
    ``names`` (its id and, when flagged, ``FLAGGED_PREFIX`` + id: the same figure, titled flagged)."""
    import shutil

    from common.io import write_atomically
    from visualisations.overlay import OVERLAY_DPI, OVERLAY_PNG_COMPRESSION, overlay_figure

    method = output.final_source or next(iter(output.sources))
    # a mask made from the sources (a vote) or a fallback for an empty student: drawn with no source's prompts
    out = output.sources.get(method) or next(iter(output.sources.values()))
    cand = out.candidates
    points = labels = None
    if cand is not None and cand.points is not None:
        points, labels = cand.points[0], cand.point_labels[0]
    iou = record.get("metrics", {}).get("final", {}).get("iou")
    image_id = names[0].removeprefix(FLAGGED_PREFIX)
    flagged = any(name.startswith(FLAGGED_PREFIX) for name in names)
    title = (f"{image_id}{'  (flagged for review)' if flagged else ''}  source={method}"
             + (f"  IoU={iou:.3f}" if iou is not None else ""))
    cams = [o.cam for o in output.sources.values() if o.cam is not None]
    heatmap = out.cam.heatmap if out.cam is not None else (cams[0].heatmap if cams else None)
    # a mask source's candidate boxes are its masks' own, not prompts: the figure draws no prompt
    boxes = cand.boxes if cand is not None and method not in MASK_SOURCES else None
    fig = overlay_figure(image, heatmap, boxes, points, labels,
                         output.final_mask, truth, output.uncertainty, title)
    folder = run_dir / "overlays"
    save_figure(fig, folder / f"{names[0]}.png", dpi=OVERLAY_DPI, png_compression=OVERLAY_PNG_COMPRESSION)
    suffixes = [".png"]
    if "class" in record:
        save_label_overlay(run_dir, names[0], image, truth, record)
        suffixes.append("_labels.png")
    for name in names[1:]:
        for suffix in suffixes:
            write_atomically(folder / f"{name}{suffix}",
                             lambda tmp, src=folder / f"{names[0]}{suffix}": shutil.copyfile(src, tmp))


def save_label_overlay(run_dir: Path, image_id: str, image, truth, record) -> None:
    """``overlays/<id>_labels.png``: the label map (multiclass runs) over the image."""
    import numpy as np
    from PIL import Image

    from cam_sam.multiclass import LABEL_COLOURS, LABEL_NAMES, colour_labels
    from visualisations.overlay import labels_figure

    lesion = record["class"]
    stem = image_id.removeprefix(FLAGGED_PREFIX)
    title = f"{stem}: {lesion['name'].replace('_', ' ')} ({lesion['probability']:.2f})"
    if "multiclass" in record:
        title += f", truth {LABEL_NAMES[record['multiclass']['true']].replace('_', ' ')}"
    labels = np.asarray(Image.open(run_dir / "labels" / f"{stem}.png"))
    legend = {LABEL_NAMES[label].replace("_", " "): colour for label, colour in LABEL_COLOURS.items()}
    save_figure(labels_figure(colour_labels(image, labels), legend, truth, title),
                run_dir / "overlays" / f"{image_id}_labels.png")


if __name__ == "__main__":
    run_main(main)
