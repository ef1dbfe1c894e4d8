"""Synthetic dermoscopy-like images: skin background, an irregular brown lesion, dark vignette
corners and a few hairs. They let the pipeline and the tests run on a machine without ISIC data;
every output made from them is labelled synthetic. They are NOT a benchmark."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from data.isic import Sample


def _smooth_noise(rng: np.random.Generator, hw: tuple[int, int], scale: int) -> np.ndarray:
    h, w = hw
    small = rng.standard_normal((max(2, h // scale), max(2, w // scale))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _lesion_mask(rng: np.random.Generator, hw: tuple[int, int]) -> np.ndarray:
    h, w = hw
    cy = h * rng.uniform(0.4, 0.6)
    cx = w * rng.uniform(0.4, 0.6)
    ry = h * rng.uniform(0.16, 0.28)
    rx = w * rng.uniform(0.16, 0.28)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = np.arctan2((yy - cy) / ry, (xx - cx) / rx)
    radius = np.hypot((yy - cy) / ry, (xx - cx) / rx)
    boundary = np.ones_like(theta)
    for k in range(2, 6):  # a few low harmonics make the outline irregular
        boundary += rng.uniform(0.02, 0.08) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return radius < boundary


def make_synthetic_sample(seed: int, size: tuple[int, int] = (240, 320), image_id: str | None = None) -> Sample:
    """One synthetic dermoscopy-like image (H, W, 3) uint8 with its lesion mask (H, W) bool."""
    rng = np.random.default_rng(seed)
    h, w = size
    skin = np.array([222, 170, 150], dtype=np.float32) + rng.uniform(-15, 15, 3)
    image = np.ones((h, w, 3), np.float32) * skin
    image += 8 * _smooth_noise(rng, size, 24)[..., None]
    mask = _lesion_mask(rng, size)
    soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 2.0)[..., None]
    lesion = np.array([115, 70, 50], dtype=np.float32) + rng.uniform(-20, 20, 3)
    texture = lesion + 18 * _smooth_noise(rng, size, 8)[..., None]
    image = image * (1 - soft) + texture * soft
    # Dark vignette: dermoscopes often leave black corners outside a circular field of view.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot((yy - h / 2) / (h / 2), (xx - w / 2) / (w / 2))
    image *= np.clip(1.0 - 3.0 * np.clip(r - 1.05, 0, None), 0.05, 1.0)[..., None]
    for _ in range(rng.integers(1, 4)):  # hairs
        pts = np.cumsum(rng.normal(0, 12, (6, 2)), axis=0) + [rng.uniform(0, w), rng.uniform(0, h)]
        cv2.polylines(image, [pts.astype(np.int32)], False, (40, 30, 25), 1, cv2.LINE_AA)
    image += rng.normal(0, 3, image.shape)
    out = np.clip(image, 0, 255).astype(np.uint8)
    return Sample(image_id or f"SYN_{seed:07d}", out, mask, {"melanoma": 0.0, "seborrheic_keratosis": 0.0})


def write_synthetic_isic(
    root: str | Path, n_images: int = 4, split: str = "val", seed: int = 0, size: tuple[int, int] = (240, 320)
) -> Path:
    """Write ``n_images`` synthetic samples in the official ISIC 2017 layout under ``root``
    (images, ``_segmentation.png`` masks, Part 3 label CSV) and return ``root``. Idempotent."""
    from common.io import write_png
    from data.isic import OFFICIAL_SPLITS

    root = Path(root)
    tag = OFFICIAL_SPLITS[split]
    image_dir = root / f"ISIC-2017_{tag}_Data"
    mask_dir = root / f"ISIC-2017_{tag}_Part1_GroundTruth"
    rows = []
    for i in range(n_images):
        sample = make_synthetic_sample(seed + i, size, image_id=f"ISIC_{9000000 + seed + i:07d}")
        write_png(image_dir / f"{sample.image_id}.png", sample.image)
        write_png(mask_dir / f"{sample.image_id}_segmentation.png", sample.mask.astype(np.uint8) * 255)
        rows.append((sample.image_id, 0.0, 0.0))
    with open(root / f"ISIC-2017_{tag}_Part3_GroundTruth.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "melanoma", "seborrheic_keratosis"])
        writer.writerows(rows)
    (root / "README.txt").write_text(
        "SYNTHETIC dermoscopy-like images made by data/synthetic.py. Not ISIC data; not a benchmark.\n"
    )
    return root
