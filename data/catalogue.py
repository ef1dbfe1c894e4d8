"""Every dataset by name: ``open_dataset(root, split, dataset=...)`` is the one way scripts open
data (the ``dataset`` config key)."""

from __future__ import annotations

from pathlib import Path

from common.errors import SettingsError
from data.isic import ImageFolderDataset, ISICDataset
from data.layouts import LAYOUTS, LayoutDataset

DATASETS = ("isic2017", *LAYOUTS)

Dataset = ISICDataset | ImageFolderDataset | LayoutDataset


def open_dataset(
    data_root: str | Path,
    split: str = "val",
    image_dir: str | None = None,
    mask_dir: str | None = None,
    read_masks: bool = True,
    dataset: str = "isic2017",
    derm7pt_image: str = "derm",
    max_side: int | None = None,
) -> Dataset:
    """``image_dir`` given: a plain folder of the user's images; else ``dataset`` at ``data_root``:
    ``isic2017`` (:class:`ISICDataset`) or a layout of :mod:`data.layouts` (``isic2016``,
    ``isic2018``, ``ph2``, ``ham10000``, ``derm7pt``: its ``derm7pt_image``, "derm" or "clinic").
    ``read_masks=False``: the dataset never opens a mask file; ``max_side``: images of at least
    twice that longer side are read reduced (:func:`data.isic.working_shape`)."""
    if image_dir:
        return ImageFolderDataset(image_dir, mask_dir, read_masks, max_side)
    if dataset == "isic2017":
        return ISICDataset(data_root, split, read_masks=read_masks, max_side=max_side)
    if dataset not in LAYOUTS:
        raise SettingsError(f"unknown dataset {dataset!r}; available: {', '.join(DATASETS)}")
    options = {"image": derm7pt_image} if dataset == "derm7pt" else None
    return LayoutDataset(dataset, data_root, split, read_masks, options, max_side)
