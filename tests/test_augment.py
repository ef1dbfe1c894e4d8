"""The student's training augmentations move the pseudo-mask with the image and mark the new
pixels (zoom-out, rotation) as background counted fully."""

import numpy as np
import torch

from data.isic import ISICDataset
from data.synthetic import write_synthetic_isic
from self_training.data import PseudoMaskDataset, add_vignette, collect_pseudo_labels
from tests.test_self_training import SMALL, _fake_pseudo_run


def test_vignette_darkens_towards_the_edge_and_leaves_the_centre():
    image = np.full((200, 200, 3), (200, 160, 140), np.uint8)
    outs = [add_vignette(image, np.random.default_rng(seed)) for seed in range(5)]
    assert all((out <= image).all() and np.array_equal(out[90:110, 90:110], image[90:110, 90:110]) for out in outs)
    assert any(out[0, 0].max() == 0 for out in outs)  # some reach black in a corner


def test_dataset_with_training_augmentations(tmp_path):
    root = write_synthetic_isic(tmp_path / "data", n_images=3, split="train")
    pseudo = _fake_pseudo_run(root, "train", tmp_path / "pseudo")
    ds = ISICDataset(root, "train", read_masks=False)
    labels = collect_pseudo_labels([pseudo], dict(zip(ds.ids, ds.image_paths)))
    data = PseudoMaskDataset(labels, SMALL, train=True, cache_size=SMALL, vignette_p=1.0)
    torch.manual_seed(0)
    for i in range(12):
        x, mask, weight = data[i % len(data)]
        assert x.shape == (3, SMALL, SMALL) and mask.shape == weight.shape == (1, SMALL, SMALL)
        assert set(torch.unique(mask).tolist()) <= {0.0, 1.0}
        assert 0 < weight.min() and weight.max() <= 1  # pixels moved in count fully, never 0
