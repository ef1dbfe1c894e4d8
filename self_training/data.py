"""Training data for the student: images with their pseudo-masks, the least trusted dropped, the
rest weighted by the pipeline's own confidence. No ground-truth mask is ever opened.

Images and pseudo-masks are decoded once and kept in memory at ``cache_size`` (stretched square),
so an epoch costs augmentation and the network only. The augmentations move the mask with the
image (``torchvision.transforms.v2``); targets are (H, W, 2) uint8 stacks of (pseudo-mask 0/1,
pixel weight x 255), where weight 0 marks pixels moved in from outside the image (counted fully,
as background).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from tqdm import tqdm

from common.errors import DataError
from common.io import read_json, read_uncertainty
from data.isic import read_image, read_mask
from models.student import NORM_MEAN, NORM_STD

ZOOM_OUT_P = 0.3  # share of training images zoomed out onto black
ZOOM_OUT_SIDE = (1.0, 2.0)  # zoom-out: canvas side / image side


def train_augmentation(size: int) -> v2.Compose:
    """Zoom-out onto black and rotations shrink the lesion and add dark borders, as a full
    dermoscope frame's edge shows it; then crops, flips and colour jitter."""
    return v2.Compose(
        [
            v2.RandomApply(
                [v2.RandomZoomOut(fill={tv_tensors.Image: 0, tv_tensors.Mask: 0}, side_range=ZOOM_OUT_SIDE)],
                p=ZOOM_OUT_P,
            ),
            v2.RandomResizedCrop(size, scale=(0.4, 1.0), ratio=(0.75, 1.333), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
            v2.RandomApply([v2.RandomRotation(180)], p=0.5),
            v2.ColorJitter(brightness=0.25, contrast=0.25, saturation=0.2, hue=0.03),
        ]
    )


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


@dataclass
class PseudoLabel:
    """One pseudo-labelled image: where its image and pseudo-mask are, and its confidence record."""

    image_id: str
    image_path: Path
    mask_path: Path
    uncertainty_path: Path | None
    confidence: dict
    unknown_path: Path | None = None  # 255 where the target is not known (synthetic pairs): no loss there


def collect_pseudo_labels(pseudo_dirs: list[str | Path], image_paths: dict[str, Path]) -> list[PseudoLabel]:
    """Every image with a pseudo-mask in the pseudo-labelling runs ``pseudo_dirs`` (a later run's
    mask replaces an earlier one's). ``image_paths``: id -> image file."""
    found: dict[str, PseudoLabel] = {}
    for folder in map(Path, pseudo_dirs):
        if not (folder / "records").is_dir():
            raise DataError(f"no pseudo-labelling run in {folder} (no records/ folder)")
        for record_path in sorted((folder / "records").glob("*.json")):
            image_id = record_path.stem
            record = read_json(record_path)
            mask_path = folder / "masks" / f"{image_id}.png"
            if "error" in record or not mask_path.is_file() or image_id not in image_paths:
                continue
            unc = folder / "uncertainty" / f"{image_id}.png"
            unknown = folder / "unknown" / f"{image_id}.png"
            found[image_id] = PseudoLabel(
                image_id,
                image_paths[image_id],
                mask_path,
                unc if unc.is_file() else None,
                record.get("confidence", {}),
                unknown if unknown.is_file() else None,
            )
    return [found[k] for k in sorted(found)]


def keep_most_trusted(
    labels: list[PseudoLabel], keep_fraction: float, key: str = "selection_score"
) -> list[PseudoLabel]:
    """The ``keep_fraction`` of ``labels`` with the highest confidence ``key`` (ties by id)."""
    if keep_fraction >= 1:
        return list(labels)
    ranked = sorted(labels, key=lambda p: (-float(p.confidence.get(key, 0.0)), p.image_id))
    return sorted(ranked[: max(1, round(keep_fraction * len(labels)))], key=lambda p: p.image_id)


def pixel_weight(label: PseudoLabel, hw: tuple[int, int], uncertainty_weight: float) -> np.ndarray:
    """(H, W) float loss weight of a pseudo-mask's pixels from its uncertainty map (normalised std
    in [0, 1]): ``1 - uncertainty_weight x std``; no uncertainty map: every pixel weighs 1. Pixels
    of the label's unknown map (if any) weigh 0."""
    weight = np.ones(hw)
    if label.uncertainty_path is not None and uncertainty_weight > 0:
        unc = np.clip(read_uncertainty(label.uncertainty_path) * 2.0, 0, 1)
        weight = 1.0 - uncertainty_weight * unc
    if label.unknown_path is not None:
        weight = weight * (read_mask(label.unknown_path) == 0)
    return weight


class PseudoMaskDataset(Dataset):
    """(image (3, S, S) normalised, target (1, S, S) in {0, 1}, weight (1, S, S)) per item.

    ``weight`` = 1 - ``uncertainty_weight`` x normalised pixel std among the candidates: pixels the
    candidates disagreed on count less. Training only: the augmentations of
    :func:`train_augmentation`, after a dark vignette on a share
    ``vignette_p`` of the images. The images are not colour-corrected: a student's colour
    constancy is given at averaging (``self_training.average_students``)."""

    def __init__(
        self,
        labels: list[PseudoLabel],
        size: int,
        train: bool,
        cache_size: int = 320,
        uncertainty_weight: float = 0.5,
        vignette_p: float = 0.3,
        seed: int = 0,
    ) -> None:
        self.labels = labels
        self.vignette_p = vignette_p if train else 0.0
        self.transform = train_augmentation(size) if train else eval_augmentation(size)
        self.rng = np.random.default_rng(seed)
        self.images, self.targets = [], []
        for label in tqdm(labels, desc="load pseudo-masks", unit="img", leave=False):
            image = cv2.resize(read_image(label.image_path), (cache_size, cache_size), interpolation=cv2.INTER_AREA)
            mask = read_mask(label.mask_path).astype(np.uint8)
            weight = pixel_weight(label, mask.shape, uncertainty_weight)
            stack = np.stack([mask, np.maximum(np.round(weight * 255), 1)]).astype(np.uint8).transpose(1, 2, 0)
            self.images.append(image)
            self.targets.append(cv2.resize(stack, (cache_size, cache_size), interpolation=cv2.INTER_NEAREST))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image, target = self.images[index], self.targets[index]
        if self.vignette_p and self.rng.random() < self.vignette_p:
            image = add_vignette(image, self.rng)
        img = tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1))
        target = tv_tensors.Mask(torch.from_numpy(target).permute(2, 0, 1))
        img, target = self.transform(img, target)
        x = (img.float() / 255.0 - NORM_MEAN) / NORM_STD
        mask = (target[:1] > 0).float()
        # Pixels moved in from outside the image (zoom-out, rotation) have weight 0 in the stack:
        # they are background in the mask and count fully, like the dark border of a full frame.
        weight = torch.where(target[1:] > 0, target[1:].float() / 255.0, torch.ones_like(mask))
        return x, mask, weight
