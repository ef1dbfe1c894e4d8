"""A run's overlay figures, drawn off the segmentation path: which images get one (the first
``n_overlays``, and flagged ones) and the process that draws them. The drawing itself is the
script's ``overlay`` callable (``cam_sam.segment.save_overlay``: matplotlib)."""
from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from cam_sam.pipeline import ImageOutput

log = logging.getLogger("cam_sam.segment")

OverlayFn = Callable[[Path, list[str], np.ndarray, "np.ndarray | None", ImageOutput, dict], None]
"""``overlay(run_dir, names, image, truth, output, record)`` draws one image's figure once and
writes it as ``overlays/<name>.png`` for each of ``names`` (the image's id, ``FLAGGED_PREFIX`` + id, or both)."""
FLAGGED_PREFIX = "0_flagged_"   # overlays of flagged images: named to sort before the others


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
        if names:   # drawn once, written under each name, at the size segmented
            self.pending.append(self.pool.submit(self.overlay, self.run_dir, names, sample.image,
                                                 truth_as_segmented(sample), output, record))

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
