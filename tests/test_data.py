import logging

import numpy as np
import pytest
from PIL import Image

from data import DataError, ImageFolderDataset, ISICDataset, check_image_content, read_image, write_synthetic_isic
from tests.conftest import SHARED_ISIC, requires_isic


def _write_pair(image_dir, mask_dir, image_id, hw=(30, 40), value=200):
    image_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    img = np.full(hw + (3,), 90, np.uint8)
    img[5:15, 10:20] = 30
    Image.fromarray(img).save(image_dir / f"{image_id}.jpg")
    mask = np.zeros(hw, np.uint8)
    mask[5:15, 10:20] = value  # not 255: the loader binarises at > 127
    Image.fromarray(mask).save(mask_dir / f"{image_id}_segmentation.png")


def test_official_layout(tmp_path):
    _write_pair(
        tmp_path / "ISIC-2017_Validation_Data", tmp_path / "ISIC-2017_Validation_Part1_GroundTruth", "ISIC_0000002"
    )
    _write_pair(
        tmp_path / "ISIC-2017_Validation_Data", tmp_path / "ISIC-2017_Validation_Part1_GroundTruth", "ISIC_0000001"
    )
    # superpixel files of the official zips are ignored
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(
        tmp_path / "ISIC-2017_Validation_Data" / "ISIC_0000001_superpixels.png"
    )
    (tmp_path / "ISIC-2017_Validation_Part3_GroundTruth.csv").write_text(
        "image_id,melanoma,seborrheic_keratosis\r\nISIC_0000001,1.0,0.0\r\nISIC_0000002,0.0,1.0\r\n"
    )
    ds = ISICDataset(tmp_path, "val")
    assert ds.ids == ["ISIC_0000001", "ISIC_0000002"]
    s = ds[0]
    assert s.image.shape == (30, 40, 3) and s.image.dtype == np.uint8
    assert s.mask.dtype == bool and s.mask.sum() == 100 and s.mask[5:15, 10:20].all()
    assert s.labels == {"melanoma": 1.0, "seborrheic_keratosis": 0.0}
    assert ds[1].labels["seborrheic_keratosis"] == 1.0


def test_nested_layout(tmp_path):
    _write_pair(tmp_path / "train" / "images", tmp_path / "train" / "masks", "ISIC_0000005")
    ds = ISICDataset(tmp_path, "train")
    assert ds.ids == ["ISIC_0000005"] and ds[0].mask.sum() == 100
    with pytest.raises(DataError, match="no 'test' split"):
        ISICDataset(tmp_path, "test")


def test_missing_mask_names_the_file(tmp_path):
    _write_pair(tmp_path / "val", tmp_path / "val", "ISIC_0000007")
    (tmp_path / "val" / "ISIC_0000007_segmentation.png").unlink()
    with pytest.raises(DataError, match="ISIC_0000007_segmentation.png"):
        ISICDataset(tmp_path, "val")[0]


def test_mask_of_another_size_names_the_file(tmp_path):
    _write_pair(tmp_path / "val", tmp_path / "val", "ISIC_0000008")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "val" / "ISIC_0000008_segmentation.png")
    with pytest.raises(DataError, match=r"ISIC_0000008_segmentation.png is 10x10"):
        ISICDataset(tmp_path, "val")[0]


def test_corrupt_image_names_the_file(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataError, match="broken.jpg"):
        read_image(path)


def test_grayscale_image_becomes_rgb_with_a_warning(tmp_path, caplog):
    path = tmp_path / "gray.png"
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(path)
    with caplog.at_level(logging.WARNING):
        img = read_image(path)
    assert img.shape == (8, 8, 3) and (img[..., 0] == img[..., 2]).all()
    assert "gray.png" in caplog.text


def test_constant_image_is_rejected():
    with pytest.raises(DataError, match="constant"):
        check_image_content(np.full((32, 32, 3), 7, np.uint8), "flat.png")
    check_image_content(np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3))


def test_image_folder_masks_optional(tmp_path):
    _write_pair(tmp_path / "imgs", tmp_path / "masks", "photo")
    (tmp_path / "masks" / "photo_segmentation.png").rename(tmp_path / "masks" / "photo.png")
    assert ImageFolderDataset(tmp_path / "imgs")[0].mask is None
    assert ImageFolderDataset(tmp_path / "imgs", tmp_path / "masks")[0].mask.sum() == 100


def test_synthetic_writer_roundtrips(tmp_path):
    write_synthetic_isic(tmp_path, n_images=2, split="val")
    ds = ISICDataset(tmp_path, "val")
    assert len(ds) == 2
    s = ds[1]
    assert s.mask.any() and not s.mask.all() and s.image.shape[:2] == s.mask.shape


@requires_isic()
def test_real_isic_validation_layout():
    ds = ISICDataset(SHARED_ISIC, "val")
    assert len(ds) == 120
    s = ds[0]
    assert s.mask.shape == s.image.shape[:2] and s.mask.any()
    assert set(s.labels) == {"melanoma", "seborrheic_keratosis"}


def test_a_16_bit_png_is_scaled_to_8_bits(tmp_path):
    from PIL import Image

    from data.isic import read_image

    ramp = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "scan16.png")
    assert Image.open(tmp_path / "scan16.png").mode.startswith("I;16")
    image = read_image(tmp_path / "scan16.png")
    assert image.dtype == np.uint8 and image.min() == 0 and image.max() == 255
    assert abs(float(image.mean()) - 127.5) < 2  # a ramp, not a constant white image
