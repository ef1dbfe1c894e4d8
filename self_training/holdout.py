"""Which training images self-training may use. Every ``HOLDOUT_EVERY``-th training crop (in the
sorted id order, the 99 images of ISIC 2017 ``every=18`` runs) is kept OUT of pseudo-labelling and
training, so that it stays an unseen second evaluation set."""
from __future__ import annotations

import numpy as np

HOLDOUT_EVERY = 18   # the `train_every18` evaluation subset used by every earlier result


def holdout_ids(ids: list[str], every: int = HOLDOUT_EVERY) -> list[str]:
    """The held-back evaluation ids: ``ids[::every]`` (``ids`` in the dataset's sorted order)."""
    return list(ids[::every]) if every else []


def self_training_ids(ids: list[str], every: int = HOLDOUT_EVERY, seed: int = 0) -> list[str]:
    """The ids self-training may use (all but :func:`holdout_ids`), in a seeded random order so that
    a partly finished pseudo-labelling run is a uniform sample of the training set."""
    held = set(holdout_ids(ids, every))
    usable = [i for i in ids if i not in held]
    order = np.random.default_rng(seed).permutation(len(usable))
    return [usable[i] for i in order]
