"""Augmentations of the student's training images: the geometric and colour ones move the mask
with the image (``torchvision.transforms.v2``); a dark vignette makes a 512-px training crop look
more like a full dermoscope frame.

Images are (H, W, 3) uint8 RGB; targets are (H, W, 2) uint8 stacks of (pseudo-mask 0/1, pixel
weight x 255), where weight 0 marks pixels moved in from outside the image (counted fully, as
background).
"""
from __future__ import annotations

import numpy as np
from torchvision import tv_tensors
from torchvision.transforms import v2

ZOOM_OUT_P = 0.3               # share of training images zoomed out onto black
ZOOM_OUT_SIDE = (1.0, 2.0)     # zoom-out: canvas side / image side


def train_augmentation(size: int) -> v2.Compose:
    """Zoom-out onto black and rotations shrink the lesion and add dark borders, as a full
    dermoscope frame's edge shows it; then crops, flips and colour jitter."""
    return v2.Compose([
        v2.RandomApply([v2.RandomZoomOut(fill={tv_tensors.Image: 0, tv_tensors.Mask: 0}, side_range=ZOOM_OUT_SIDE)],
                       p=ZOOM_OUT_P),
        v2.RandomResizedCrop(size, scale=(0.4, 1.0), ratio=(0.75, 1.333), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomVerticalFlip(),
        v2.RandomApply([v2.RandomRotation(180)], p=0.5),
        v2.ColorJitter(brightness=0.25, contrast=0.25, saturation=0.2, hue=0.03),
    ])


def eval_augmentation(size: int) -> v2.Compose:
    return v2.Compose([v2.Resize((size, size), antialias=True)])


def add_vignette(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Darken outside a random circle, like the dermoscope's field-of-view edge. (H, W, 3) uint8."""
    h, w = image.shape[:2]
    radius = rng.uniform(0.45, 0.75) * np.hypot(h, w)
    cy, cx = h / 2 + rng.uniform(-0.1, 0.1) * h, w / 2 + rng.uniform(-0.1, 0.1) * w
    yy, xx = np.mgrid[0:h, 0:w]
    dist = np.hypot(yy - cy, xx - cx)
    edge = 0.05 * np.hypot(h, w)
    keep = np.clip((radius - dist) / edge, 0.0, 1.0)[..., None]
    return (image * keep).astype(np.uint8)
