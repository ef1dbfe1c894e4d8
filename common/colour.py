"""Colour constancy: an image's colour cast removed before a network sees it.

Dermoscopes light the skin differently (white LEDs, halogen, polarised or not), so one lesion
appears in several colour casts across a dataset. Shades of Gray (Finlayson and Trezzi, 2004)
estimates the illuminant as the Minkowski p-norm of each channel and scales the channels so that
the estimate is grey; with p = 6 it is the usual choice for dermoscopy (Barata et al., 2015, and
many ISIC challenge entries). The estimate is taken on an area-reduced copy
(``ESTIMATE_SIZE``), so that an image and its reduced copy (the network's input) get the same
gains.
"""

from __future__ import annotations

import cv2
import numpy as np

from common.errors import SettingsError

COLOUR_CONSTANCY_METHODS = ("shades_of_gray",)
SHADES_OF_GRAY_POWER = 6.0  # the Minkowski norm's p: 1 is grey world, infinity is max-RGB
ESTIMATE_SIZE = 256  # the gains are estimated on a copy area-reduced to this side


def shades_of_gray_gains(image: np.ndarray, power: float = SHADES_OF_GRAY_POWER) -> np.ndarray:
    """(3,) float32 per-channel gains of an (H, W, 3) uint8 RGB image: each channel's p-norm (on a
    copy area-reduced to at most ``ESTIMATE_SIZE`` a side) scaled to their mean. Multiplying the
    image by them makes its estimated illuminant grey and keeps its mean brightness."""
    h, w = image.shape[:2]
    scale = ESTIMATE_SIZE / max(h, w)
    small = (
        cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        if scale < 1
        else image
    )
    x = small.reshape(-1, 3).astype(np.float64) / 255.0
    norm = np.power(np.mean(np.power(x, power), axis=0), 1.0 / power)
    return (norm.mean() / np.maximum(norm, 1e-6)).astype(np.float32)


def colour_gains(image: np.ndarray, method: str | None, strength: float = 1.0) -> np.ndarray | None:
    """The gains of ``method`` (one of :data:`COLOUR_CONSTANCY_METHODS`) for ``image``, raised to
    ``strength`` (1: the full correction; 0.5: half of it, on a log scale); None for no colour
    constancy. A partial correction keeps some of a frame's cast: where a lesion's redness fills
    the frame, the full one takes it for the illuminant and removes it (docs/experiments/st-32, st-33)."""
    if method is None:
        return None
    if method not in COLOUR_CONSTANCY_METHODS:
        raise SettingsError(f"unknown colour constancy {method!r}; available: {COLOUR_CONSTANCY_METHODS} or None")
    gains = shades_of_gray_gains(image)
    return gains if strength == 1.0 else np.power(gains, strength).astype(np.float32)
