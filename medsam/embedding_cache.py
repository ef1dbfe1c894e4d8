"""A disk cache of image embeddings: the segmenter's one expensive step is paid once per image and
model, then every later run (relabelling rounds, ablation variants, evaluation) decodes against the
stored embedding in milliseconds.

Keys are the SHA-1 of the image's pixels and shape plus the model's tag, so an edited image or
another model never reuses a stale entry. Entries are float32 ``.npy`` files written atomically
(a few MB each: LiteMedSAM's is 256 x 64 x 64); an unreadable entry is recomputed.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from common.io import write_npy

log = logging.getLogger(__name__)


def image_key(image: np.ndarray, model_tag: str) -> str:
    """Content key of an (H, W, 3) uint8 image for the model ``model_tag``."""
    digest = hashlib.sha1(np.ascontiguousarray(image).tobytes())
    digest.update(f"{image.shape}|{model_tag}".encode())
    return digest.hexdigest()


class EmbeddingCache:
    """``get(key)`` -> the stored embedding tensor or None; ``put(key, tensor)`` stores it."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npy"

    def get(self, key: str) -> torch.Tensor | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return torch.from_numpy(np.load(path))
        except (OSError, ValueError) as exc:
            log.warning("embedding cache entry %s unreadable (%s): recomputing", path, exc)
            return None

    def put(self, key: str, embedding: torch.Tensor) -> None:
        write_npy(self.path(key), embedding.detach().float().cpu().numpy())
