"""Which training images self-training may use: all but :func:`data.holdout.holdout_ids` (every
``HOLDOUT_EVERY``-th training crop, the unseen ``train_every18`` evaluation set)."""
from __future__ import annotations

import numpy as np

from data.holdout import HOLDOUT_EVERY, holdout_ids

__all__ = ["HOLDOUT_EVERY", "holdout_ids", "self_training_ids"]


def self_training_ids(ids: list[str], every: int = HOLDOUT_EVERY, seed: int = 0) -> list[str]:
    """The ids self-training may use (all but :func:`holdout_ids`), in a seeded random order so that
    a partly finished pseudo-labelling run is a uniform sample of the training set."""
    held = set(holdout_ids(ids, every))
    usable = [i for i in ids if i not in held]
    order = np.random.default_rng(seed).permutation(len(usable))
    return [usable[i] for i in order]
