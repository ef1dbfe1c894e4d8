"""Mask post-processing: morphological opening / closing, largest component, holes filled."""
from __future__ import annotations

import cv2
import numpy as np
from common.geometry import fill_holes as fill_mask_holes, largest_component


COMPONENT_RULES = ("largest", "central")
CENTRAL_MIN_SHARE = 0.1    # "central": components under this share of the largest one's area are specks, never kept


def central_component(mask: np.ndarray, min_share: float = CENTRAL_MIN_SHARE) -> np.ndarray:
    """The component of a (H, W) bool mask nearest the image centre (by its nearest pixel; ties:
    the larger), among those of at least ``min_share`` of the largest one's area. ISIC annotates the
    lesion the photograph is centred on, which is not always the largest of two."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask.astype(bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    h, w = mask.shape
    yy, xx = np.nonzero(labels)
    dist = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2)
    nearest = np.full(n, np.inf)
    np.minimum.at(nearest, labels[yy, xx], dist)
    eligible = [k for k in range(1, n) if areas[k - 1] >= min_share * areas.max()]
    best = min(eligible, key=lambda k: (nearest[k], -areas[k - 1]))
    return labels == best


def postprocess_mask(mask: np.ndarray, open_frac: float = 0.0, close_frac: float = 0.0,
                     keep_largest: bool = True, fill_holes: bool = True, component_rule: str = "largest") -> np.ndarray:
    """Clean a boolean (H, W) mask. Kernel sizes are fractions of the image's shorter side, so the
    result does not depend on the resolution; 0 disables that step. ``keep_largest`` keeps one
    component, chosen by ``component_rule``: "largest", or "central" (:func:`central_component`)."""
    if component_rule not in COMPONENT_RULES:
        raise ValueError(f"component_rule must be one of {COMPONENT_RULES}, not {component_rule!r}")
    out = mask.astype(np.uint8)
    short = min(mask.shape)
    for frac, op in ((open_frac, cv2.MORPH_OPEN), (close_frac, cv2.MORPH_CLOSE)):
        size = int(round(frac * short)) | 1
        if frac > 0 and size > 1:
            out = cv2.morphologyEx(out, op, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    result = out.astype(bool)
    if keep_largest:
        result = largest_component(result) if component_rule == "largest" else central_component(result)
    if fill_holes:
        result = fill_mask_holes(result)
    return result
