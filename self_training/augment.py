"""Augmentations of the student's training images: the geometric and colour ones move the mask
with the image (``torchvision.transforms.v2``); the numpy ones make a 512-px training crop look
more like a full dermoscope frame (small lesion in a field of skin, glare, dark edge).

Images are (H, W, 3) uint8 RGB; targets are (H, W, 2) uint8 stacks of (pseudo-mask 0/1, pixel
weight x 255), where weight 0 marks pixels moved in from outside the image (counted fully, as
background).
"""
from __future__ import annotations

import cv2
import numpy as np
from torchvision import tv_tensors
from torchvision.transforms import v2

ZOOM_OUT_P = 0.3               # share of training images zoomed out (onto black or onto skin)
ZOOM_OUT_SIDE = (1.0, 2.0)     # zoom-out: canvas side / image side
GLARE_RADIUS = (0.06, 0.14)    # glare spot radius, share of the image diagonal
SKIN_SHADING_STD = 5.0         # grey levels of the synthetic skin's smooth brightness variation
SKIN_GRAIN_STD = 3.0           # grey levels of its pixel grain
BORDER_SHARE = 0.1             # the image's outer band whose background colour the skin takes


def train_augmentation(size: int, black_zoom_out: bool = True) -> v2.Compose:
    """Zoom-out onto black (``black_zoom_out``) and rotations shrink the lesion and add dark
    borders, as a full dermoscope frame's edge shows it; then crops, flips and colour jitter."""
    zoom = [v2.RandomApply([v2.RandomZoomOut(fill={tv_tensors.Image: 0, tv_tensors.Mask: 0}, side_range=ZOOM_OUT_SIDE)],
                           p=ZOOM_OUT_P)] if black_zoom_out else []
    return v2.Compose([
        *zoom,
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


def add_glare(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One or two soft white spots near the left and right edges, like a dermoscope's lamps
    reflected at the frame's side. (H, W, 3) uint8; the target is unchanged (glare is not lesion)."""
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    out = image.astype(np.float32)
    for side in rng.permutation([0, 1])[: rng.integers(1, 3)]:
        radius = rng.uniform(*GLARE_RADIUS) * np.hypot(h, w)
        cx = (rng.uniform(-0.05, 0.08) if side == 0 else rng.uniform(0.92, 1.05)) * w
        cy = rng.uniform(0.3, 0.7) * h
        alpha = np.exp(-((yy - cy) ** 2 + ((xx - cx) * rng.uniform(1.0, 2.0)) ** 2) / (2 * radius ** 2))[..., None]
        out = out * (1 - alpha) + rng.uniform(235, 255) * alpha
    return np.clip(out, 0, 255).astype(np.uint8)


def zoom_out_on_skin(image: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Shrink the image into a canvas of synthetic skin (the median colour of the pseudo-background
    in its outer band, with smooth shading and grain), feathered at the seam, and scale back to
    the input's size: a smaller lesion in a wider field, as in a full frame. Canvas pixels are
    background with weight 0 (counted fully). Returns (image, target) of the input's shapes."""
    h, w = image.shape[:2]
    side = rng.uniform(*ZOOM_OUT_SIDE)
    big_h, big_w = int(round(h * side)), int(round(w * side))
    band = np.ones((h, w), bool)
    band[int(BORDER_SHARE * h):h - int(BORDER_SHARE * h), int(BORDER_SHARE * w):w - int(BORDER_SHARE * w)] = False
    skin = band & (target[..., 0] == 0)
    colour = np.median(image[skin] if skin.any() else image.reshape(-1, 3), axis=0).astype(np.float32)
    shading = cv2.resize(rng.normal(0.0, SKIN_SHADING_STD, (6, 6)).astype(np.float32), (big_w, big_h),
                         interpolation=cv2.INTER_CUBIC)
    grain = rng.normal(0.0, SKIN_GRAIN_STD, (big_h, big_w)).astype(np.float32)
    canvas = np.clip(colour[None, None] + (shading + grain)[..., None], 0, 255)
    top, left = rng.integers(0, big_h - h + 1), rng.integers(0, big_w - w + 1)
    feather = max(1, int(0.04 * min(h, w)))
    ramp = np.minimum(np.arange(h)[:, None], np.arange(h)[::-1][:, None]).clip(max=feather) / feather
    alpha = np.minimum(ramp, (np.minimum(np.arange(w), np.arange(w)[::-1]).clip(max=feather) / feather)[None])[..., None]
    region = canvas[top:top + h, left:left + w]
    canvas[top:top + h, left:left + w] = alpha * image + (1 - alpha) * region
    big_target = np.zeros((big_h, big_w, target.shape[2]), np.uint8)
    big_target[top:top + h, left:left + w] = target
    return (cv2.resize(canvas.astype(np.uint8), (w, h), interpolation=cv2.INTER_AREA),
            cv2.resize(big_target, (w, h), interpolation=cv2.INTER_NEAREST))
