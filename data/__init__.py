"""Datasets: ISIC 2017 (official unzip layout or nested split folders), ISIC 2016 / 2018, PH2 and
HAM10000 in their official layouts, plain image folders, and synthetic dermoscopy-like images that
the project generates itself."""
from data.catalogue import DATASETS, open_dataset
from data.isic import DataError, ImageFolderDataset, ISICDataset, Sample, check_image_content, read_image, read_mask
from data.layouts import LayoutDataset
from data.synthetic import make_synthetic_sample, write_synthetic_isic

__all__ = ["DATASETS", "DataError", "ISICDataset", "ImageFolderDataset", "LayoutDataset", "Sample",
           "check_image_content", "open_dataset", "read_image", "read_mask", "make_synthetic_sample",
           "write_synthetic_isic"]
