"""Torch datasets of ISIC images with image-level labels, and the train / eval transforms.

Eval preprocessing is :func:`models.registry.resize_and_normalise`, the same function the CAM
stage uses; training adds dermoscopy-appropriate augmentation before it.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2

from data.holdout import holdout_ids
from data.isic import ISICDataset
from models.registry import resize_and_normalise


def label_of(labels: dict[str, float], task: str) -> int:
    if task == "melanoma":
        return int(labels.get("melanoma", 0.0) >= 0.5)
    if labels.get("melanoma", 0.0) >= 0.5:
        return 1
    return 2 if labels.get("seborrheic_keratosis", 0.0) >= 0.5 else 0


class RandomRot90:
    """Rotation by a random multiple of 90 degrees (dermoscopy has no canonical orientation)."""

    def __call__(self, image: Image.Image) -> Image.Image:
        k = random.randrange(4)
        return image.rotate(90 * k, expand=True) if k else image


def train_transform(data_config: dict) -> Callable[[Image.Image], torch.Tensor]:
    """Random resized crop (scale 0.6-1, aspect kept roughly), flips, 90-degree rotations, mild
    colour jitter, then the eval resize and normalisation."""
    size = data_config["input_size"][1:]
    augment = v2.Compose(
        [
            v2.RandomResizedCrop(size, scale=(0.6, 1.0), ratio=(0.8, 1.25)),
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
            RandomRot90(),
            v2.ColorJitter(0.1, 0.1, 0.1, 0.02),
        ]
    )
    return lambda image: resize_and_normalise(augment(image), data_config)


def eval_transform(data_config: dict) -> Callable[[Image.Image], torch.Tensor]:
    return lambda image: resize_and_normalise(image, data_config)


class LabelledImages(Dataset):
    """(tensor (3, S, S), label) pairs of one ISIC split; masks are never read."""

    def __init__(
        self,
        root: str,
        split: str,
        task: str,
        transform: Callable,
        every: int = 1,
        limit: int | None = None,
        holdout_every: int = 0,
    ) -> None:
        """``every``/``limit``: a subset for quick runs; ``holdout_every`` > 0 leaves out
        :func:`data.holdout.holdout_ids` of the whole split (18: the unseen ``train_every18`` crops)."""
        self.isic = ISICDataset(root, split, require_masks=False)
        self.transform = transform
        self.task = task
        held = set(holdout_ids(self.isic.ids, holdout_every))
        kept = [i for i, image_id in enumerate(self.isic.ids) if image_id not in held]
        chosen = kept[::every][: limit or None]
        self.paths = [self.isic.image_paths[i] for i in chosen]
        self.ids = [self.isic.ids[i] for i in chosen]
        self.targets = np.array([label_of(self.isic.labels.get(i, {}), task) for i in self.ids])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from data.isic import read_image

        image = Image.fromarray(read_image(self.paths[index]))
        return self.transform(image), int(self.targets[index])
