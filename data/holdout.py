"""The held-back evaluation crops. Every ``HOLDOUT_EVERY``-th ISIC 2017 training crop (in the sorted
id order: the 99 images of every ``train_every18`` result) is kept OUT of everything the project
trains (pseudo-labelling, the students, and classifiers trained with ``holdout_every``), so that it
stays an unseen second evaluation set."""

from __future__ import annotations

HOLDOUT_EVERY = 18  # the `train_every18` evaluation subset used by every earlier result


def holdout_ids(ids: list[str], every: int = HOLDOUT_EVERY) -> list[str]:
    """The held-back evaluation ids: ``ids[::every]`` (``ids`` in the dataset's sorted order; 0: none)."""
    return list(ids[::every]) if every else []
