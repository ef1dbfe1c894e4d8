"""Reading checkpoints safely: ``torch.load`` with ``weights_only=True`` everywhere, so a checkpoint
file from someone else cannot run code on the user's machine when it is loaded. The project's own
checkpoints hold tensors and plain values only (numbers, strings, lists, dicts)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import TYPE_CHECKING

from common.errors import CheckpointError  # re-exported: ``from common.checkpoints import CheckpointError``
from common.io import write_atomically

if TYPE_CHECKING:
    import torch

# torch is imported where a file is read or written: a script's process that loads no network
# should not pay for torch.


def save_atomically(payload: dict, path: str | Path) -> None:
    """``torch.save`` of ``payload`` (tensors and plain values only, so :func:`safe_load` reads it)
    to a temporary file beside ``path``, moved onto it in one step: an interrupted save never
    leaves a truncated checkpoint where the last good one was."""
    import torch

    write_atomically(path, lambda tmp: torch.save(payload, tmp))


def safe_load(path: str | Path, kind: str = "checkpoint", hint: str = "") -> object:
    """The content of a ``torch.save`` file, on the CPU, tensors and plain values only. A missing
    file (with ``hint`` appended), one that needs pickled objects, or a truncated one raises
    :class:`CheckpointError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{kind} not found: {path}{hint}")
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refusing to load {kind} {path}: it holds pickled Python objects, not only "
            f"tensors and plain values (loading it could run code)"
        ) from exc
    except Exception as exc:  # a truncated or foreign file
        raise CheckpointError(f"cannot read {kind} {path}: {type(exc).__name__}: {exc}") from exc


def read_state_dict(path: str | Path, kind: str = "checkpoint", hint: str = "") -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict, the whole payload as metadata) of a checkpoint: a plain state dict (metadata
    empty) or one under ``model`` or ``state_dict``."""
    payload = safe_load(path, kind, hint)
    for key in ("model", "state_dict"):
        if isinstance(payload, dict) and isinstance(payload.get(key), dict):
            return payload[key], payload
    if isinstance(payload, dict):
        return payload, {}
    raise CheckpointError(f"{kind} {path} holds a {type(payload).__name__}, not a state dict")
