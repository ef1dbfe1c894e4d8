"""Choosing the torch device."""

from __future__ import annotations

import os
import sys

# Device files that a GPU driver torch can use creates on Linux: NVIDIA's, AMD ROCm's, and WSL's
# GPU bridge. With none of them torch cannot see a GPU, so "auto" is "cpu" without importing torch
# (about 2 s on a 2-core CPU, which a process that only plans a run or draws figures never needs).
GPU_DRIVER_PATHS = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/kfd", "/dev/dxg")


def gpu_driver_absent() -> bool:
    """True when this is Linux and no GPU driver's device file exists (torch then sees no GPU)."""
    return sys.platform.startswith("linux") and not any(os.path.exists(p) for p in GPU_DRIVER_PATHS)


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; any other name unchanged."""
    if name != "auto":
        return name
    if "torch" not in sys.modules and gpu_driver_absent():
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
