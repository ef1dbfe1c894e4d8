"""The student's loss: pixel-weighted binary cross-entropy plus soft Dice, both on logits."""
from __future__ import annotations

import torch
import torch.nn.functional as F

DICE_WEIGHT = 1.0   # weight of the soft-Dice term beside BCE
DICE_EPS = 1.0      # smoothing of the soft Dice (pixels)


def weighted_bce_dice(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``BCE(weighted) + DICE_WEIGHT * (1 - soft Dice(weighted))``.
    ``logits``, ``target``, ``weight``: (B, 1, H, W); target in {0, 1}; weight >= 0."""
    bce = F.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction="sum") / weight.sum().clamp_min(1)
    prob = torch.sigmoid(logits)
    dims = (1, 2, 3)
    inter = (weight * prob * target).sum(dims)
    total = (weight * (prob + target)).sum(dims)
    dice = (2 * inter + DICE_EPS) / (total + DICE_EPS)
    return bce + DICE_WEIGHT * (1 - dice).mean()
