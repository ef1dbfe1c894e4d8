"""The student's full-frame augmentations move the pseudo-mask with the image and mark the new
pixels as background counted fully."""
import numpy as np
import pytest
import torch

from self_training.augment import ZOOM_OUT_SIDE, add_glare, zoom_out_on_skin
from self_training.data import PseudoMaskDataset, collect_pseudo_labels
from data.isic import ISICDataset
from data.synthetic import write_synthetic_isic
from tests.test_self_training import SMALL, _fake_pseudo_run


def _square_lesion(size=200):
    image = np.zeros((size, size, 3), np.uint8)
    image[...] = (200, 160, 140)                       # skin
    image[70:130, 70:130] = (60, 40, 30)               # lesion
    target = np.zeros((size, size, 2), np.uint8)
    target[70:130, 70:130, 0] = 1
    target[..., 1] = 255
    return image, target


def test_zoom_out_on_skin_shrinks_the_lesion_into_a_field_of_skin():
    image, target = _square_lesion()
    for seed in range(5):
        out, moved = zoom_out_on_skin(image, target, np.random.default_rng(seed))
        assert out.shape == image.shape and moved.shape == target.shape
        share = moved[..., 0].sum() / target[..., 0].sum()
        assert 1 / ZOOM_OUT_SIDE[1] ** 2 - 0.05 <= share <= 1.0
        lesion, new = moved[..., 0] == 1, moved[..., 1] == 0
        assert out[lesion].mean() < 80                              # the mask still covers the dark lesion
        assert not (lesion & new).any()                             # new pixels are background
        if new.any():                                               # ... and look like the skin
            assert np.abs(out[new].astype(float).mean(0) - (200, 160, 140)).max() < 20


def test_glare_brightens_a_side_and_leaves_the_centre():
    image, _ = _square_lesion()
    out = add_glare(image, np.random.default_rng(0))
    sides = np.concatenate([out[:, :20], out[:, -20:]], axis=1)
    assert sides.max() > 230 and np.array_equal(out[90:110, 90:110], image[90:110, 90:110])


def test_dataset_with_full_frame_augmentations(tmp_path):
    root = write_synthetic_isic(tmp_path / "data", n_images=3, split="train")
    pseudo = _fake_pseudo_run(root, "train", tmp_path / "pseudo")
    ds = ISICDataset(root, "train", read_masks=False)
    labels = collect_pseudo_labels([pseudo], dict(zip(ds.ids, ds.image_paths)))
    data = PseudoMaskDataset(labels, SMALL, train=True, cache_size=SMALL, zoom_fill="skin", glare_p=1.0)
    x, mask, weight = data[0]
    assert x.shape == (3, SMALL, SMALL) and mask.shape == weight.shape == (1, SMALL, SMALL)
    assert set(torch.unique(mask).tolist()) <= {0.0, 1.0} and 0 < weight.min() and weight.max() <= 1
    with pytest.raises(ValueError, match="zoom_fill"):
        PseudoMaskDataset(labels, SMALL, train=True, cache_size=SMALL, zoom_fill="grey")
