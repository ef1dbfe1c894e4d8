"""The images a run segments, from its typed :class:`cam_sam.settings.DataSettings`: the dataset,
or generated stand-ins when the user gave none. Loads no network (a run's parent process, which
only plans the run and starts its workers, imports this and not :mod:`cam_sam.runs.build`)."""

from __future__ import annotations

import logging
from pathlib import Path

from cam_sam.settings import DataSettings
from data.catalogue import Dataset, open_dataset
from data.isic import DataError
from data.synthetic import write_synthetic_isic

log = logging.getLogger(__name__)


def open_data(data: DataSettings, read_masks: bool = True) -> tuple[Dataset, bool]:
    """(the dataset to segment, whether it is synthetic): generated synthetic images only when the
    user gave no data at all (the default ISIC 2017 root, missing on this machine) and
    ``synthetic_if_missing``; a data root or dataset the user gave that is not there ends the run
    with one line naming it. ``read_masks=False``: no mask file is ever opened."""
    root = Path(data.data_root)
    if not data.image_dir and not root.is_dir() and (data.given_by_user or not data.synthetic_if_missing):
        raise DataError(
            f"no {data.dataset} data: the folder {root} does not exist (data_root); "
            "point data_root at the dataset's unzipped download, or set image_dir"
        )
    if data.image_dir or root.is_dir():
        return open_dataset(
            data.data_root,
            data.split,
            data.image_dir,
            data.mask_dir,
            read_masks,
            data.dataset,
            data.derm7pt_image,
            data.max_side,
        ), False
    synthetic_root = Path(data.results_root) / "synthetic_isic2017"
    log.warning(
        "no ISIC data at %s: segmenting %d SYNTHETIC images written to %s instead. "
        "Point data_root at your ISIC 2017 download for real results.",
        data.data_root,
        data.n_synthetic,
        synthetic_root,
    )
    write_synthetic_isic(synthetic_root, data.n_synthetic, data.split, seed=data.seed)
    return open_dataset(synthetic_root, data.split, read_masks=read_masks), True
