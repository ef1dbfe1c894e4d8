"""Datasets: ISIC 2017 (official unzip layout or nested split folders), ISIC 2016 / 2018, PH2,
HAM10000 and Derm7pt in their official layouts (``open_dataset`` by name), a folder of the user's
own images, the held-back training crops, and synthetic dermoscopy-like images that the project
generates itself. A file that cannot be read raises :class:`DataError` naming it."""

from data.catalogue import DATASETS, open_dataset
from data.isic import DataError, ImageFolderDataset, ISICDataset, Sample, check_image_content, read_image, read_mask
from data.layouts import LayoutDataset
from data.synthetic import make_synthetic_sample, write_synthetic_isic

__all__ = [
    "DATASETS",
    "DataError",
    "ISICDataset",
    "ImageFolderDataset",
    "LayoutDataset",
    "Sample",
    "check_image_content",
    "open_dataset",
    "read_image",
    "read_mask",
    "make_synthetic_sample",
    "write_synthetic_isic",
]
