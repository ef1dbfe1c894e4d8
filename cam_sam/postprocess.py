"""Mask post-processing: morphological opening / closing, largest component, holes filled."""
from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

from common.geometry import largest_component


def postprocess_mask(mask: np.ndarray, open_frac: float = 0.0, close_frac: float = 0.0,
                     keep_largest: bool = True, fill_holes: bool = True) -> np.ndarray:
    """Clean a boolean (H, W) mask. Kernel sizes are fractions of the image's shorter side, so the
    result does not depend on the resolution; 0 disables that step."""
    out = mask.astype(np.uint8)
    short = min(mask.shape)
    for frac, op in ((open_frac, cv2.MORPH_OPEN), (close_frac, cv2.MORPH_CLOSE)):
        size = int(round(frac * short)) | 1
        if frac > 0 and size > 1:
            out = cv2.morphologyEx(out, op, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    result = out.astype(bool)
    if keep_largest:
        result = largest_component(result)
    if fill_holes:
        result = ndimage.binary_fill_holes(result)
    return result
