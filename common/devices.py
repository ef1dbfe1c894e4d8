"""Choosing the torch device."""
from __future__ import annotations

import torch


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; any other name unchanged."""
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name
