import numpy as np

from cam_sam.prompts import cam_to_box, perturb_boxes, perturb_points, sample_points
from common.geometry import clip_box, largest_component, mask_to_box, pad_box, peak_region


def test_mask_to_box_is_inclusive_xyxy():
    mask = np.zeros((20, 30), bool)
    mask[4:10, 7:25] = True  # rows 4..9 (y), cols 7..24 (x)
    assert mask_to_box(mask).tolist() == [7, 4, 24, 9]
    assert mask_to_box(np.zeros((5, 5), bool)) is None
    rng = np.random.default_rng(0)
    for _ in range(200):  # scattered pixels: the box of the pixels themselves
        mask = rng.random(tuple(rng.integers(1, 40, 2))) < rng.uniform(0.001, 0.05)
        ys, xs = np.nonzero(mask)
        expected = None if len(xs) == 0 else [xs.min(), ys.min(), xs.max(), ys.max()]
        box = mask_to_box(mask)
        assert (box is None and expected is None) or box.tolist() == expected


def test_pad_box_is_a_fraction_of_the_box_and_clipped():
    box = np.array([10, 20, 29, 59], np.float32)  # 20 wide, 40 high
    assert pad_box(box, 0.1, (100, 100)).tolist() == [8, 16, 31, 63]
    assert pad_box(box, 1.0, (50, 40)).tolist() == [0, 0, 39, 49]


def test_cam_box_uses_threshold_and_largest_component():
    cam = np.zeros((50, 60), np.float32)
    cam[10:20, 10:30] = 1.0  # large blob
    cam[40:43, 50:53] = 0.9  # small blob above threshold, not the largest
    box = cam_to_box(cam, threshold=0.5, padding=0.0)
    assert box.tolist() == [10, 10, 29, 19]
    region = peak_region(cam, 0.5, keep_largest=False)
    assert region.sum() == 200 + 9
    assert cam_to_box(np.zeros((5, 5), np.float32)) is None


def test_largest_component_8_connected():
    mask = np.zeros((5, 5), bool)
    mask[0, 0] = mask[1, 1] = mask[2, 2] = True  # diagonal chain: one 8-connected component
    mask[4, 4] = mask[4, 3] = False
    mask[0, 4] = True
    assert largest_component(mask).sum() == 3


def test_sampled_points_follow_the_cam_and_are_seeded():
    cam = np.zeros((40, 40), np.float32)
    cam[5:10, 30:35] = 1.0
    cam[30:35, 5:10] = 0.5
    pts = sample_points(cam, 10, power=30, rng=np.random.default_rng(0))
    assert pts.shape == (10, 2)
    # 0.5**30 is negligible: every draw lands in the high blob (x 30..34, y 5..9)
    assert ((pts[:, 0] >= 30) & (pts[:, 0] <= 34) & (pts[:, 1] >= 5) & (pts[:, 1] <= 9)).all()
    again = sample_points(cam, 10, power=30, rng=np.random.default_rng(0))
    assert (pts == again).all()


def test_perturbations_scale_with_the_box():
    rng = np.random.default_rng(0)
    small = perturb_boxes(np.array([100, 100, 109, 109]), 500, 0.05, rng, (1000, 1000))
    large = perturb_boxes(np.array([100, 100, 599, 599]), 500, 0.05, rng, (1000, 1000))
    s_small = np.std(small - [100, 100, 109, 109])
    s_large = np.std(large - [100, 100, 599, 599])
    assert 0.3 < s_small < 0.7  # 5 % of 10 px = 0.5 px
    assert 20 < s_large < 30  # 5 % of 500 px = 25 px
    clipped = perturb_boxes(np.array([0, 0, 49, 49]), 50, 0.5, rng, (50, 50))
    assert clipped.min() >= 0 and clipped.max() <= 49
    assert (clipped[:, 0] <= clipped[:, 2]).all() and (clipped[:, 1] <= clipped[:, 3]).all()
    pts = perturb_points(np.array([[10.0, 10.0]]), 4, 0.1, np.array([0, 0, 99, 99]), rng, (50, 50))
    assert pts.shape == (4, 1, 2) and pts.max() <= 49


def test_clip_box_orders_corners():
    assert clip_box(np.array([30, 40, 10, 5]), (100, 100)).tolist() == [10, 5, 30, 40]
