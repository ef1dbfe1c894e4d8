"""Reading segmenter checkpoints: on CPU whatever device saved them, with clear errors."""
from __future__ import annotations

from pathlib import Path

import torch


class SegmenterCheckpointError(RuntimeError):
    """A segmenter checkpoint that is missing or unreadable."""


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from ``path`` (plain, or under ``model``/``state_dict``), mapped to CPU."""
    path = Path(path)
    if not path.is_file():
        raise SegmenterCheckpointError(
            f"segmenter checkpoint not found: {path}. SAM and MedSAM weights are downloaded by the "
            "user; see model_checkpoints/README.md")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SegmenterCheckpointError(f"cannot read segmenter checkpoint {path}: {exc}") from exc
    for key in ("model", "state_dict"):
        if isinstance(payload, dict) and isinstance(payload.get(key), dict):
            payload = payload[key]
    if not isinstance(payload, dict):
        raise SegmenterCheckpointError(f"{path} holds a {type(payload).__name__}, not a state dict")
    return payload
