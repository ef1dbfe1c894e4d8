"""The montage of synthetic pairs (``self_training.make_synthetic``): each image with its target,
the pasted mask, outlined, so that the pairs are looked at before anything trains on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from common.io import save_figure

COLUMNS = 6


def montage_figure(
    images: list[np.ndarray], masks: list[np.ndarray], titles: list[str], path: str | Path, dpi: int = 150
) -> Path:
    """Write a grid of ``images`` ((H, W, 3) uint8) with ``masks`` ((H, W) bool) outlined in
    yellow and a small title each, at ``dpi``; returns ``path``."""
    rows = max(1, -(-len(images) // COLUMNS))
    fig = Figure(figsize=(2.6 * COLUMNS, 2.8 * rows))
    for k, (image, mask, title) in enumerate(zip(images, masks, titles)):
        ax = fig.add_subplot(rows, COLUMNS, k + 1)
        ax.imshow(image)
        if mask.any():
            ax.contour(mask, levels=[0.5], colors="yellow", linewidths=0.8)
        ax.set_title(title, fontsize=6)
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, path, dpi)
    return Path(path)
