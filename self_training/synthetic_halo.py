"""The halo of synthetic pairs (``paste.halo_share``, self_training/synthetic_pairs.py) on
generated lesions, for the docs: ``python -m self_training.synthetic_halo`` writes
``visualisations/screenshots/synthetic_halo.png``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data.synthetic import make_synthetic_sample
from self_training.synthetic_pairs import Background, PasteConfig, make_donor, make_pair, remove_lesion
from visualisations.synthetic import montage_figure

SCREENSHOT_DPI = 80  # the committed figure (about 1250 px wide) is read on a page, not zoomed into


def halo_examples(path: str | Path, n: int = 6, seed: int = 0) -> Path:
    """A montage of pairs built from generated lesions only (no dataset image): the top row
    without a halo, the bottom row the same draws with one (reddish on the left, the lesion's rim
    colour on the right), the target outlined. ``python -m self_training.synthetic_halo``."""
    images, masks, titles = [], [], []
    for halo_share in (0.0, 1.0):
        for k in range(n):
            red = k < n // 2
            config = PasteConfig(
                area_bins=((0.04, 0.12),), strength_bins=((0.8, 1.0),), halo_share=halo_share, halo_red_share=float(red)
            )
            side = (config.size, config.size)
            frame, lesion = (
                make_synthetic_sample(seed + 2 * k, size=side),
                make_synthetic_sample(seed + 2 * k + 1, size=side),
            )
            clean = remove_lesion(frame.image, frame.mask, np.random.default_rng([seed, k]), config)
            image, target, _ = make_pair(
                Background("bg", clean, np.ones(side, bool)),
                [make_donor("donor", lesion.image, lesion.mask)],
                np.random.default_rng([seed, k, 1]),
                config,
                "single",
            )
            images.append(image)
            masks.append(target)
            titles.append("no halo" if halo_share == 0 else "reddish halo" if red else "rim-colour halo")
    return montage_figure(images, masks, titles, path, dpi=SCREENSHOT_DPI)


if __name__ == "__main__":
    print(halo_examples("visualisations/screenshots/synthetic_halo.png"))
