"""Inputs as users have them: photos with an EXIF orientation, masks in every common binary
encoding, masks that are not binary refused by name, and large photos read reduced."""

import numpy as np
import pytest
from PIL import Image

from data import DataError, ImageFolderDataset, read_image, read_mask
from data.isic import open_image, working_shape

H, W = 24, 36


def _lesion() -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[6:18, 10:28] = True
    return mask


def _photo(h: int = H, w: int = W) -> np.ndarray:
    """A left-to-right ramp with a dark square near the top left corner: any turn is visible."""
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None]
    image[..., 1] = 120
    image[2 : h // 3, 2 : w // 4] = 10
    return image


def test_an_exif_orientation_is_applied_as_a_viewer_does(tmp_path):
    pixels = _photo()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    Image.fromarray(pixels).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    shown = np.asarray(Image.open(tmp_path / "phone.jpg").transpose(Image.Transpose.ROTATE_270))
    image = read_image(tmp_path / "phone.jpg")
    assert image.shape == (W, H, 3)  # turned: as the viewer shows it
    assert np.abs(image.astype(int) - shown.astype(int)).max() <= 1
    # a mask drawn on the shown photo fits it
    mask = np.zeros((W, H), np.uint8)
    mask[5:10, 3:8] = 255
    Image.fromarray(mask).save(tmp_path / "phone_segmentation.png")
    folder = ImageFolderDataset(tmp_path, tmp_path)
    sample = folder[folder.ids.index("phone")]
    assert sample.image.shape[:2] == sample.mask.shape == (W, H)


def _save(path, array, mode=None, **kwargs):
    Image.fromarray(array, mode).save(path, **kwargs) if mode else Image.fromarray(array).save(path, **kwargs)
    return path


@pytest.mark.parametrize(
    "encoding",
    [
        "0/255",
        "0/1",
        "0/200",
        "bool",
        "16-bit 0/65535",
        "16-bit 0/1",
        "float 0/1",
        "palette",
        "palette with transparency",
        "red on black",
        "white on transparent",
        "grey with alpha",
        "rgb white",
        "jpeg",
        "resampled edges",
    ],
)
def test_every_common_binary_encoding_reads_as_the_same_mask(tmp_path, encoding):
    lesion = _lesion()
    path = tmp_path / "m.png"
    if encoding in ("0/255", "0/1", "0/200"):
        _save(path, lesion.astype(np.uint8) * int(encoding.split("/")[1]))
    elif encoding == "bool":
        Image.fromarray(lesion).save(path)
        assert Image.open(path).mode == "1"
    elif encoding.startswith("16-bit"):
        _save(path, lesion.astype(np.uint16) * int(encoding.split("/")[1]))
        assert Image.open(path).mode.startswith("I;16")
    elif encoding == "float 0/1":
        path = _save(tmp_path / "m.tif", lesion.astype(np.float32))
        assert Image.open(path).mode == "F"
    elif encoding.startswith("palette"):
        img = Image.fromarray(lesion.astype(np.uint8), "P")
        img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)  # index 1 is red: L would call it dark
        img.save(path, **({"transparency": 0} if "transparency" in encoding else {}))
    elif encoding == "red on black":
        rgb = np.zeros((H, W, 3), np.uint8)
        rgb[lesion] = (200, 0, 0)
        _save(path, rgb)
    elif encoding == "white on transparent":
        rgba = np.full((H, W, 4), 255, np.uint8)
        rgba[..., 3] = lesion * 255
        _save(path, rgba)
    elif encoding == "grey with alpha":
        la = np.stack([lesion.astype(np.uint8) * 255, np.full((H, W), 255, np.uint8)], -1)
        _save(path, la, "LA")
    elif encoding == "rgb white":
        _save(path, np.repeat(lesion.astype(np.uint8)[..., None] * 255, 3, -1))
    elif encoding == "jpeg":
        path = _save(tmp_path / "m.jpg", lesion.astype(np.uint8) * 255, quality=75)
        assert len(np.unique(np.asarray(Image.open(path)))) > 2
    elif encoding == "resampled edges":
        big = np.kron(lesion.astype(np.uint8) * 255, np.ones((4, 4), np.uint8))
        _save(path, np.asarray(Image.fromarray(big).resize((W, H), Image.BILINEAR)))
    mask = read_mask(path)
    assert mask.dtype == bool and mask.shape == (H, W)
    assert (mask != lesion).sum() <= (4 if encoding in ("jpeg", "resampled edges") else 0)


def test_a_constant_mask_is_all_lesion_or_none(tmp_path):
    assert not read_mask(_save(tmp_path / "empty.png", np.zeros((H, W), np.uint8))).any()
    assert read_mask(_save(tmp_path / "full.png", np.full((H, W), 255, np.uint8))).all()


@pytest.mark.parametrize(
    "what, match",
    [
        ("label map", "not binary: 3 values"),
        ("no background", "include no 0"),
        ("two colours", "several colours"),
        ("probability map", "not binary"),
    ],
)
def test_a_mask_that_is_not_binary_is_refused_by_name(tmp_path, what, match):
    path = tmp_path / f"{what.replace(' ', '_')}_segmentation.png"
    if what == "label map":
        labels = np.zeros((H, W), np.uint8)
        labels[:, W // 3 :] = 1
        labels[:, 2 * W // 3 :] = 2
        _save(path, labels)
    elif what == "no background":
        _save(path, np.where(_lesion(), 2, 1).astype(np.uint8))
    elif what == "two colours":
        rgb = np.zeros((H, W, 3), np.uint8)
        rgb[:, :10] = (255, 0, 0)
        rgb[:, 20:] = (0, 255, 0)
        _save(path, rgb)
    else:
        _save(path, np.tile(np.linspace(0, 255, W).astype(np.uint8), (H, 1)))
    with pytest.raises(DataError, match=match) as raised:
        read_mask(path)
    assert path.name in str(raised.value)


def test_a_user_folder_with_0_1_masks_scores_its_lesion(tmp_path):
    """The silent failure the reader prevents: a 0/1 mask read as 'nothing above 127' (IoU 0)."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    _save(images / "a.jpg", _photo())
    _save(masks / "a.png", _lesion().astype(np.uint8))
    assert (ImageFolderDataset(images, masks)[0].mask == _lesion()).all()


def test_a_large_jpeg_is_read_reduced_to_the_working_size(tmp_path):
    big = np.asarray(Image.fromarray(_photo()).resize((1200, 800), Image.BICUBIC))
    _save(tmp_path / "big.jpg", big, quality=90)
    whole, hw = open_image(tmp_path / "big.jpg")
    assert whole.shape == (800, 1200, 3) and hw == (800, 1200)
    small, hw = open_image(tmp_path / "big.jpg", max_side=300)
    assert small.shape == (200, 300, 3) and hw == (800, 1200)
    reference = np.asarray(Image.fromarray(whole).resize((300, 200), Image.BOX)).astype(int)
    assert np.abs(small.astype(int) - reference).mean() < 3
    # an image no larger than max_side is read whole, bit for bit
    assert (open_image(tmp_path / "big.jpg", max_side=1200)[0] == whole).all()
    assert working_shape((800, 1200), 300) == (200, 300) and working_shape((800, 1200), None) == (800, 1200)
    # reduced by a power of two, as a JPEG decoder does: the longer side lands in [max_side, 2 max_side)
    assert working_shape((4000, 6000), 1024) == (1000, 1500) and working_shape((2000, 2047), 1024) == (2000, 2047)
    assert working_shape((3, 4001), 1000) == (1, 1001)


def test_a_reduced_sample_keeps_its_mask_at_the_image_size(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 8  # turned: the viewer shows 400 x 600
    Image.fromarray(_photo(400, 600)).save(images / "a.jpg", exif=exif)
    _save(masks / "a_segmentation.png", np.zeros((600, 400), np.uint8))
    sample = ImageFolderDataset(images, masks, max_side=150)[0]
    assert sample.image.shape == (150, 100, 3) and sample.original_hw == (600, 400) == sample.hw
    assert sample.mask.shape == (600, 400)
    plain = ImageFolderDataset(images, masks)[0]
    assert plain.original_hw is None and plain.hw == (600, 400)
