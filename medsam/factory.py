"""``create_segmenter(name, checkpoint)``: the one way scripts build a segmenter."""

from __future__ import annotations

from pathlib import Path

import torch

from common.errors import SettingsError
from medsam.base import PromptableSegmenter

SEGMENTERS = ("litemedsam", "medsam", "sam_vit_b", "sam_vit_l", "sam_vit_h")


def create_segmenter(
    name: str = "litemedsam",
    checkpoint: str | Path | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
) -> PromptableSegmenter:
    """``litemedsam`` needs no checkpoint (its weights install with pip); ``medsam`` and
    ``sam_vit_{b,l,h}`` need the user's file."""
    if name == "litemedsam":
        from medsam.lite import LiteMedSAMSegmenter

        return LiteMedSAMSegmenter(checkpoint, device, batch_size)
    if name not in SEGMENTERS:
        raise SettingsError(f"unknown segmenter {name!r}; available: {', '.join(SEGMENTERS)}")
    if checkpoint is None:
        raise SettingsError(f"segmenter {name!r} needs a checkpoint file (see model_checkpoints/README.md)")
    from medsam.sam import MedSAMSegmenter, SAMSegmenter

    if name == "medsam":
        return MedSAMSegmenter(checkpoint, device, batch_size)
    return SAMSegmenter(name.removeprefix("sam_"), checkpoint, device, batch_size)
