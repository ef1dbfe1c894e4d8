"""SAM ViT-B/L/H and MedSAM ViT-B through ``segment-anything``, with a user checkpoint.

``segment_anything.build_sam`` calls ``torch.load`` without ``map_location``, so the network is
built empty and the checkpoint is loaded here on CPU (GPU-saved checkpoints work on CPU).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from common.checkpoints import CheckpointError
from medsam.base import PromptableSegmenter, ResizeFrame, min_max_scale, to_padded_tensor
from medsam.checkpoints import load_state_dict


def build_sam(model_type: str, checkpoint: str | Path | None) -> torch.nn.Module:
    """A segment-anything ``Sam``; ``checkpoint=None`` leaves it randomly initialised (tests)."""
    from segment_anything import sam_model_registry

    if model_type not in ("vit_b", "vit_l", "vit_h"):
        raise ValueError(f"model_type must be vit_b, vit_l or vit_h, got {model_type!r}")
    model = sam_model_registry[model_type](checkpoint=None)
    if checkpoint is not None:
        state = load_state_dict(checkpoint)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{checkpoint} does not fit SAM {model_type}: {str(exc)[:400]}") from exc
    return model


class SAMSegmenter(PromptableSegmenter):
    """Segment Anything, preprocessed as ``SamPredictor`` does: ``ResizeLongestSide(1024)``, then
    the model's pixel mean/std normalisation and zero padding (``Sam.preprocess``)."""

    name = "sam"

    def __init__(
        self,
        model_type: str = "vit_b",
        checkpoint: str | Path | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 64,
    ) -> None:
        from segment_anything.utils.transforms import ResizeLongestSide

        model = build_sam(model_type, checkpoint)
        self.name = f"sam_{model_type}"
        self.input_size = model.image_encoder.img_size
        self.resizer = ResizeLongestSide(self.input_size)
        super().__init__(model, device, batch_size)

    def preprocess(self, image: np.ndarray) -> tuple[torch.Tensor, ResizeFrame]:
        # ResizeLongestSide rounds the scaled sides as ResizeFrame.longest_side (frame_of) does
        resized = self.resizer.apply_image(image)
        frame = ResizeFrame(tuple(image.shape[:2]), tuple(resized.shape[:2]), self.input_size)
        tensor = torch.as_tensor(resized).permute(2, 0, 1).contiguous()[None].float().to(self.device)
        return self.model.preprocess(tensor), frame


class MedSAMSegmenter(PromptableSegmenter):
    """MedSAM ViT-B, preprocessed as its authors do: resize to 1024x1024 (aspect not kept, bicubic),
    per-image min-max to [0, 1], no mean/std."""

    name = "medsam"
    input_size = 1024
    RESIZE = "stretch"

    def __init__(
        self, checkpoint: str | Path | None = None, device: str | torch.device = "cpu", batch_size: int = 64
    ) -> None:
        super().__init__(build_sam("vit_b", checkpoint), device, batch_size)

    def preprocess(self, image: np.ndarray) -> tuple[torch.Tensor, ResizeFrame]:
        frame = self.frame_of(image)
        resized = cv2.resize(image, (self.input_size, self.input_size), interpolation=cv2.INTER_CUBIC)
        return to_padded_tensor(min_max_scale(resized), self.input_size), frame
