"""Reading segmenter checkpoints: on CPU whatever device saved them, ``weights_only``, with clear errors."""

from __future__ import annotations

from pathlib import Path

import torch

from common.checkpoints import read_state_dict

DOWNLOAD_HINT = ". SAM and MedSAM weights are downloaded by the user; see model_checkpoints/README.md"


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from ``path`` (plain, or under ``model``/``state_dict``), mapped to CPU; a
    missing, unreadable or unsafe file raises :class:`common.checkpoints.CheckpointError`."""
    return read_state_dict(path, "segmenter checkpoint", DOWNLOAD_HINT)[0]
