"""CAM -> prompts. Pure functions.

Coordinate frame everywhere: original image pixels, ``x`` to the right (column), ``y`` down (row);
boxes are ``(x0, y0, x1, y1)`` float arrays with inclusive pixel extents; points are (N, 2) xy.
Maps are (H, W) arrays in that same frame.
"""

from __future__ import annotations

import numpy as np

from common.geometry import clip_box, mask_to_box, pad_box, peak_region


def cam_to_box(
    cam: np.ndarray, threshold: float = 0.5, padding: float = 0.1, keep_largest: bool = True
) -> np.ndarray | None:
    """The box of the CAM region (threshold relative to the CAM's peak, largest component),
    padded by ``padding`` of its size and clipped. None for a flat (all-zero) CAM."""
    box = mask_to_box(peak_region(cam, threshold, keep_largest))
    return None if box is None else pad_box(box, padding, cam.shape)


def sample_points(cam: np.ndarray, n: int, power: float, rng: np.random.Generator) -> np.ndarray:
    """(n, 2) xy points drawn without replacement with probability proportional to ``cam**power``
    (the paper's sampling; a high power concentrates the draws on the CAM's peak)."""
    weights = np.clip(cam, 0, None).astype(np.float64).ravel() ** power
    if weights.sum() <= 0 or not np.isfinite(weights.sum()):
        weights = np.ones_like(weights)
    prob = weights / weights.sum()
    n = min(n, int(np.count_nonzero(prob)))
    idx = rng.choice(prob.size, size=n, replace=False, p=prob)
    ys, xs = np.unravel_index(idx, cam.shape)
    return np.stack([xs, ys], axis=1).astype(np.float32)


def perturb_boxes(box: np.ndarray, n: int, scale: float, rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
    """(n, 4) copies of ``box`` whose edges each move by N(0, ``scale`` x the box's side) px,
    clipped to the image. ``scale`` is a fraction of the box (e.g. 0.05), not pixels."""
    x0, y0, x1, y1 = np.asarray(box, dtype=np.float32)
    side = np.array([x1 - x0 + 1, y1 - y0 + 1, x1 - x0 + 1, y1 - y0 + 1], np.float32)
    noise = rng.normal(0.0, 1.0, (n, 4)).astype(np.float32) * scale * side
    return clip_box(np.asarray(box, np.float32)[None] + noise, hw)


def perturb_points(
    points: np.ndarray, n: int, scale: float, box: np.ndarray, rng: np.random.Generator, hw: tuple[int, int]
) -> np.ndarray:
    """(n, N, 2) copies of (N, 2) ``points``, each moved by N(0, ``scale`` x the box's side) px and
    clipped to the image."""
    x0, y0, x1, y1 = np.asarray(box, dtype=np.float32)
    side = np.array([x1 - x0 + 1, y1 - y0 + 1], np.float32)
    moved = points[None].astype(np.float32) + rng.normal(0, 1, (n,) + points.shape).astype(np.float32) * scale * side
    moved[..., 0] = np.clip(moved[..., 0], 0, hw[1] - 1)
    moved[..., 1] = np.clip(moved[..., 1], 0, hw[0] - 1)
    return moved
