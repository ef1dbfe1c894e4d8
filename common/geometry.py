"""Masks, boxes and regions. Pure functions.

Coordinate frame everywhere: image pixels, ``x`` to the right (column), ``y`` down (row); boxes
are ``(x0, y0, x1, y1)`` float arrays with inclusive pixel extents. Masks are (H, W) bool arrays
and maps (H, W) float arrays in the same frame.
"""

from __future__ import annotations

import cv2
import numpy as np


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a boolean (H, W) mask (empty stays empty); of equal
    largest ones, the one met first in raster order (as ``scipy.ndimage.label`` numbers them).
    OpenCV's labelling, several times faster than scipy's on a full-resolution mask."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 2:  # background and at most one component
        return mask.astype(bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    largest = np.flatnonzero(areas == areas.max()) + 1
    if len(largest) > 1:  # a tie: the first in raster order
        flat = labels.ravel()
        largest = [min(largest, key=lambda label: int(np.argmax(flat == label)))]
    return labels == int(largest[0])


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """A boolean (H, W) mask with its holes filled: every background pixel not 4-connected to the
    image border becomes foreground. The same result as ``scipy.ndimage.binary_fill_holes`` with
    its default structure, by one OpenCV flood fill from the border instead of dilations repeated
    to convergence (about 20 times faster on a 1024 px mask)."""
    padded = np.pad(mask.astype(np.uint8), 1)
    cv2.floodFill(padded, None, (0, 0), 1, flags=4)  # the background that reaches the border
    return (padded[1:-1, 1:-1] == 0) | mask.astype(bool)


def mask_to_box(mask: np.ndarray) -> np.ndarray | None:
    """Tight (x0, y0, x1, y1) box of a boolean mask, or None when it is empty. (From the rows and
    columns that hold a pixel: about 10 times faster than listing the pixels on a full frame.)"""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(cols) == 0:
        return None
    return np.array([cols[0], rows[0], cols[-1], rows[-1]], dtype=np.float32)


def clip_box(box: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Clip (..., 4) boxes to the image and keep x0 <= x1, y0 <= y1."""
    h, w = hw
    box = np.asarray(box, dtype=np.float32).copy()
    box[..., [0, 2]] = np.clip(box[..., [0, 2]], 0, w - 1)
    box[..., [1, 3]] = np.clip(box[..., [1, 3]], 0, h - 1)
    x0, x1 = np.minimum(box[..., 0], box[..., 2]), np.maximum(box[..., 0], box[..., 2])
    y0, y1 = np.minimum(box[..., 1], box[..., 3]), np.maximum(box[..., 1], box[..., 3])
    return np.stack([x0, y0, x1, y1], axis=-1)


def pad_box(box: np.ndarray, padding: float, hw: tuple[int, int]) -> np.ndarray:
    """Grow a box by ``padding`` x its own width (height) on the left and right (top and bottom),
    then clip it to the image."""
    x0, y0, x1, y1 = np.asarray(box, dtype=np.float32)
    dx, dy = padding * (x1 - x0 + 1), padding * (y1 - y0 + 1)
    return clip_box(np.array([x0 - dx, y0 - dy, x1 + dx, y1 + dy]), hw)


def peak_region(cam: np.ndarray, threshold: float, keep_largest: bool = True) -> np.ndarray:
    """Boolean region of an (H, W) map where ``cam >= threshold * cam.max()`` (its largest
    component by default); empty for a map whose peak is <= 0."""
    peak = float(cam.max())
    if peak <= 0:
        return np.zeros(cam.shape, bool)
    region = cam >= threshold * peak
    return largest_component(region) if keep_largest else region


def pairwise_iou(masks: np.ndarray) -> np.ndarray:
    """(K, K) IoU of every pair of K boolean (K, H, W) masks; two empty masks count as equal (1)."""
    k = len(masks)
    flat = np.asarray(masks).reshape(k, -1).astype(np.float32)
    inter = flat @ flat.T
    area = flat.sum(axis=1)
    union = area[:, None] + area[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0).astype(np.float32)
