"""A run's overlay figures, drawn off the segmentation path: which images get one (the first
``n_overlays``, and flagged ones), the process that draws them (:class:`OverlayWriter`) and the
drawing a script passes it (:func:`save_overlay`: matplotlib, imported in the drawing process)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np

from cam_sam.pipeline import MASK_SOURCES, ImageOutput
from classification.tasks import LABEL_NAMES

log = logging.getLogger("cam_sam.segment")

OverlayFn = Callable[[Path, list[str], np.ndarray, "np.ndarray | None", ImageOutput, dict], None]
"""``overlay(run_dir, names, image, truth, output, record)`` draws one image's figure once and
writes it as ``overlays/<name>.png`` for each of ``names`` (the image's id, ``FLAGGED_PREFIX`` + id, or both)."""
FLAGGED_PREFIX = "0_flagged_"  # overlays of flagged images: named to sort before the others
LABEL_COLOURS = {1: (230, 50, 50), 2: (255, 200, 0), 3: (60, 200, 90)}  # label overlay colours (RGB; not blue:
# ISIC images carry blue stickers)


class OverlayWriter:
    """Draws the overlay figures (matplotlib: about 0.2 s each for a 1024 px image) in one worker
    process, off the segmentation path; :meth:`close` waits for them. The image's overlay when it
    is among the first ``n_overlays``, and a copy named ``0_flagged_<id>`` (listed first) while
    fewer than ``n_overlays`` flagged images have one; an image with both names is drawn once. A
    figure that fails is logged; the run goes on (the records, not the figures, are what a run
    resumes from)."""

    def __init__(self, overlay: OverlayFn | None, run_dir: Path, n_overlays: int) -> None:
        self.overlay, self.run_dir, self.n_overlays = overlay, run_dir, n_overlays
        self.n_flagged = len(list((run_dir / "overlays").glob(f"{FLAGGED_PREFIX}*.png")))
        self.pool = ProcessPoolExecutor(1, mp_context=get_context("spawn")) if overlay and n_overlays > 0 else None
        self.pending: list = []

    def draw(self, image_id: str, among_first: bool, sample, output: ImageOutput, record: dict) -> None:
        if self.pool is None:
            return
        names = [image_id] if among_first else []
        if output.trust is not None and output.trust.flagged and self.n_flagged < self.n_overlays:
            self.n_flagged += 1
            names.append(FLAGGED_PREFIX + image_id)
        if names:  # drawn once, written under each name, at the size segmented
            self.pending.append(
                self.pool.submit(
                    self.overlay, self.run_dir, names, sample.image, truth_as_segmented(sample), output, record
                )
            )

    def close(self) -> None:
        if self.pool is None:
            return
        for future in self.pending:
            try:
                future.result()
            except Exception as exc:  # a figure must not fail the run
                log.error("an overlay figure failed: %s: %s", type(exc).__name__, exc)
        self.pool.shutdown()


def truth_as_segmented(sample) -> np.ndarray | None:
    """The sample's ground truth at the size its image was segmented at (nearest-neighbour: the
    figure's outline), for an image read reduced (:func:`data.isic.open_image`)."""
    truth, hw = sample.mask, sample.image.shape[:2]
    if truth is None or truth.shape == hw:
        return truth
    return cv2.resize(truth.astype(np.uint8), (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST) > 0


def save_overlay(run_dir: Path, names: list[str], image, truth, output: ImageOutput, record) -> None:
    """The :data:`OverlayFn` of ``cam_sam.segment``: draw one image's overlay figure once and write
    it as ``overlays/<name>.png`` for each of ``names`` (its id and, when flagged, ``FLAGGED_PREFIX``
    + id: the same figure, titled flagged); a multiclass run's label map beside it."""
    import shutil

    from common.io import save_figure, write_atomically
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
    title = f"{image_id}{'  (flagged for review)' if flagged else ''}  source={method}" + (
        f"  IoU={iou:.3f}" if iou is not None else ""
    )
    cams = [o.cam for o in output.sources.values() if o.cam is not None]
    heatmap = out.cam.heatmap if out.cam is not None else (cams[0].heatmap if cams else None)
    # a mask source's candidate boxes are its masks' own, not prompts: the figure draws no prompt
    boxes = cand.boxes if cand is not None and method not in MASK_SOURCES else None
    fig = overlay_figure(image, heatmap, boxes, points, labels, output.final_mask, truth, output.uncertainty, title)
    folder = run_dir / "overlays"
    save_figure(fig, folder / f"{names[0]}.png", dpi=OVERLAY_DPI, png_compression=OVERLAY_PNG_COMPRESSION)
    suffixes = [".png"]
    if "class" in record:
        save_label_overlay(run_dir, names[0], image, truth, record)
        suffixes.append("_labels.png")
    for name in names[1:]:
        for suffix in suffixes:
            write_atomically(
                folder / f"{name}{suffix}", lambda tmp, src=folder / f"{names[0]}{suffix}": shutil.copyfile(src, tmp)
            )


def save_label_overlay(run_dir: Path, image_id: str, image, truth, record) -> None:
    """``overlays/<id>_labels.png``: the label map (multiclass runs) over the image."""
    from PIL import Image

    from common.io import save_figure
    from visualisations.overlay import labels_figure

    lesion = record["class"]
    stem = image_id.removeprefix(FLAGGED_PREFIX)
    title = f"{stem}: {lesion['name'].replace('_', ' ')} ({lesion['probability']:.2f})"
    if "multiclass" in record:
        title += f", truth {LABEL_NAMES[record['multiclass']['true']].replace('_', ' ')}"
    labels = np.asarray(Image.open(run_dir / "labels" / f"{stem}.png"))
    legend = {LABEL_NAMES[label].replace("_", " "): colour for label, colour in LABEL_COLOURS.items()}
    save_figure(
        labels_figure(colour_labels(image, labels), legend, truth, title),
        run_dir / "overlays" / f"{image_id}_labels.png",
    )


def colour_labels(image: np.ndarray, labels: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """(H, W, 3) uint8: ``image`` with each label's pixels tinted by :data:`LABEL_COLOURS`."""
    out = image.astype(np.float32)
    for label, colour in LABEL_COLOURS.items():
        where = labels == label
        out[where] = (1 - alpha) * out[where] + alpha * np.asarray(colour, np.float32)
    return out.clip(0, 255).astype(np.uint8)
