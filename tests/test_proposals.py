"""Colour lesion proposals on generated images: each step pinned by the artefact it handles."""

import cv2
import numpy as np

from cam_sam.proposals import (
    ColourProposalConfig,
    artefact_mask,
    centrality,
    colour_proposals,
    field_of_view,
    pick_component,
)
from common.geometry import mask_to_box
from data.synthetic import make_synthetic_sample
from tests.conftest import ellipse_mask


def _box_iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _skin_with_lesion(hw=(240, 320), center=(160, 120), axes=(40, 30)):
    image = np.zeros(hw + (3,), np.uint8)
    image[:] = (225, 175, 155)
    lesion = ellipse_mask(hw, center, axes)
    image[lesion] = (120, 75, 55)
    return image, lesion


def test_field_of_view_drops_dark_corners_only():
    image, lesion = _skin_with_lesion()
    image[:30, :30] = 5
    fov = field_of_view(image)
    assert not fov[:30, :30].any() and fov[lesion].all() and fov[120, 300]


def test_artefact_mask_flags_stickers_not_lesions():

    image, lesion = _skin_with_lesion()
    image[10:40, 250:300] = (40, 90, 220)  # a blue sticker
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    art = artefact_mask(lab)
    assert art[20:30, 260:290].all() and not art[lesion].any()


def test_pick_component_prefers_central_over_larger_peripheral():
    region = np.zeros((100, 100), bool)
    region[45:55, 45:55] = True  # 100 px at the centre
    region[0:20, 0:15] = True  # 300 px in a corner
    prior = centrality((100, 100), 0.25)
    chosen = pick_component(region, prior, min_area=0.002)
    assert chosen[50, 50] and not chosen[5, 5]


def test_proposals_box_the_synthetic_lesion():
    for seed in range(3):
        sample = make_synthetic_sample(seed)
        boxes = colour_proposals(sample.image)
        assert boxes.shape[1] == 4 and 1 <= len(boxes) <= 3
        truth = mask_to_box(sample.mask)
        assert max(_box_iou(b, truth) for b in boxes) > 0.6


def test_proposals_ignore_a_sticker_and_a_shaded_side():
    image, lesion = _skin_with_lesion()
    image[0:60, 0:60] = (40, 200, 80)  # a green sticker in the corner
    shade = np.linspace(1.0, 0.55, 320)[None, :, None]  # the right side in shadow
    image = (image * shade).astype(np.uint8)
    boxes = colour_proposals(image, ColourProposalConfig(padding=0.0))
    truth = mask_to_box(lesion)
    best = max(boxes, key=lambda b: _box_iou(b, truth))
    assert _box_iou(best, truth) > 0.7
    assert best[0] > 60 or best[1] > 60  # the sticker is not in the box


def test_a_flat_image_gives_no_proposal():
    assert colour_proposals(np.full((64, 64, 3), 180, np.uint8)).shape == (0, 4)


def test_pick_component_and_field_of_view_equal_scipys_on_random_masks():
    """OpenCV's opening and labelling give the component and field of view that scipy.ndimage's
    binary_opening and label (the default cross structure, the outside as background) would."""
    from scipy import ndimage

    from cam_sam.proposals import centrality, field_of_view, pick_component
    from common.geometry import fill_holes

    def by_scipy(region, prior, min_area):
        labels, count = ndimage.label(ndimage.binary_opening(region, iterations=1))
        if count == 0:
            return None
        index = np.arange(1, count + 1)
        area = np.asarray(ndimage.sum(np.ones_like(prior), labels, index))
        mean_prior = np.asarray(ndimage.mean(prior, labels, index))
        score = np.where(area >= min_area * region.size, mean_prior * np.sqrt(area), -1.0)
        return None if score.max() < 0 else fill_holes(labels == index[int(np.argmax(score))])

    rng = np.random.default_rng(3)
    for _ in range(150):
        h, w = (int(v) for v in rng.integers(8, 90, 2))
        region = ndimage.binary_closing(rng.random((h, w)) < rng.uniform(0.2, 0.7))
        prior = centrality((h, w), 0.25)
        got, expected = pick_component(region, prior, 0.002), by_scipy(region, prior, 0.002)
        assert (got is None) == (expected is None) and (got is None or np.array_equal(got, expected))
        image = (rng.random((h, w, 3)) * 255 * (rng.random((h, w, 1)) < 0.7)).astype(np.uint8)
        labels, _ = ndimage.label(image.mean(axis=2) < max(25.0, 0.3 * float(np.median(image.mean(axis=2)))))
        border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        assert np.array_equal(field_of_view(image), ~np.isin(labels, border[border > 0]))


def test_grow_equals_scipys_binary_dilation_on_random_masks():
    """The artefact mask's growth through OpenCV is scipy.ndimage's binary_dilation (cross
    structure, the outside as background), pixel for pixel; 0 pixels leave the mask as it is."""
    from scipy import ndimage

    from cam_sam.proposals import grow

    rng = np.random.default_rng(5)
    for _ in range(100):
        h, w = (int(v) for v in rng.integers(1, 70, 2))
        mask = rng.random((h, w)) < rng.uniform(0.01, 0.3)
        pixels = int(rng.integers(1, 5))
        assert np.array_equal(grow(mask, pixels), ndimage.binary_dilation(mask, iterations=pixels))
    assert np.array_equal(grow(mask, 0), mask)
