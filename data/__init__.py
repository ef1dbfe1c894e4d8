"""Datasets: ISIC 2017 (official unzip layout or nested split folders), plain image folders, and
synthetic dermoscopy-like images that the project generates itself."""
from data.isic import (DataError, ImageFolderDataset, ISICDataset, Sample, check_image_content,
                       open_dataset, read_image, read_mask)
from data.synthetic import make_synthetic_sample, write_synthetic_isic

__all__ = ["DataError", "ISICDataset", "ImageFolderDataset", "Sample", "check_image_content",
           "open_dataset", "read_image", "read_mask", "make_synthetic_sample", "write_synthetic_isic"]
