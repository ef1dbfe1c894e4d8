import numpy as np
import pytest

from cam_sam.postprocess import postprocess_mask
from common.metrics import mask_metrics, paired_difference, summarise


def test_metrics_against_hand_computed_values():
    truth = np.zeros((4, 4), bool)
    truth[0:2, 0:2] = True  # 4 px
    pred = np.zeros((4, 4), bool)
    pred[0:2, 0:3] = True  # 6 px: tp 4, fp 2, fn 0
    m = mask_metrics(pred, truth)
    assert m["iou"] == pytest.approx(4 / 6)
    assert m["dice"] == pytest.approx(8 / 10)
    assert m["precision"] == pytest.approx(4 / 6)
    assert m["recall"] == pytest.approx(1.0)
    assert m["f1"] == pytest.approx(2 * (4 / 6) / (4 / 6 + 1))


def test_failure_scores_zero_and_empty_conventions():
    truth = np.ones((3, 3), bool)
    assert mask_metrics(None, truth)["iou"] == 0.0
    assert mask_metrics(np.zeros((3, 3), bool), truth)["dice"] == 0.0
    assert mask_metrics(np.zeros((3, 3), bool), np.zeros((3, 3), bool))["iou"] == 1.0
    with pytest.raises(ValueError, match="differ in size"):
        mask_metrics(np.zeros((2, 2), bool), truth)


def test_summary_counts_failures_in_the_mean():
    per_image = {
        "a": {"m": {"iou": 0.8, "dice": 0.9, "precision": 1, "recall": 0.8, "f1": 0.9}},
        "b": {"m": {"iou": 0.0, "dice": 0.0, "precision": 0, "recall": 0, "f1": 0, "failed": True}},
    }
    s = summarise(per_image, ["m"])["m"]
    assert s["iou"] == pytest.approx(0.4) and s["n_images"] == 2 and s["n_failed"] == 1
    assert s["share_iou_ge_0.65"] == pytest.approx(0.5) and s["iou_median"] == pytest.approx(0.4)


def test_postprocess_keeps_largest_and_fills_holes():
    mask = np.zeros((40, 40), bool)
    mask[5:25, 5:25] = True
    mask[10:12, 10:12] = False  # a hole
    mask[35:37, 35:37] = True  # a speck
    out = postprocess_mask(mask)
    assert out[10, 10] and not out[35, 35] and out.sum() == 400
    opened = postprocess_mask(mask, open_frac=0.2, keep_largest=False, fill_holes=False)
    assert not opened[35, 35]  # an 8 px kernel removes the 2 px speck


def test_paired_difference_keeps_the_pairing():
    rng = np.random.default_rng(0)
    reference = {f"i{k}": float(v) for k, v in enumerate(rng.uniform(0, 1, 60))}
    shifted = {k: v + 0.01 + float(rng.normal(0, 0.002)) for k, v in reference.items()}
    d = paired_difference(shifted, reference)
    # images vary by ~0.3 but the per-image gain is 0.01 +- 0.002: paired, the interval excludes 0
    assert d["n"] == 60 and d["low"] > 0.005 and d["high"] < 0.015 and d["low"] < d["diff"] < d["high"]
    noise = {k: v + float(rng.normal(0, 0.1)) for k, v in reference.items()}
    d = paired_difference(noise, reference)
    assert d["low"] < 0 < d["high"]
    same = paired_difference({"a": 0.5, "b": 0.75, "extra": 1.0}, {"a": 0.25, "b": 0.5})
    assert same["n"] == 2 and same["diff"] == same["low"] == same["high"] == 0.25


def test_failure_kinds_on_hand_made_masks():
    """A field outlined around a small lesion is an over-segmentation, the centre of a large lesion
    an under-segmentation, a mask beside the lesion or a failed image "other"; successes are none."""
    from common.metrics import failure_counts, failure_kind

    truth = np.zeros((100, 100), bool)
    truth[40:60, 40:60] = True  # 400 px
    field = np.zeros_like(truth)
    field[10:90, 10:90] = True  # 16 x the lesion, covering all of it
    assert failure_kind(mask_metrics(field, truth)) == "over"
    big = np.zeros_like(truth)
    big[10:90, 10:90] = True
    centre = np.zeros_like(truth)
    centre[45:55, 45:55] = True  # 1/64 of the lesion, all inside it
    assert failure_kind(mask_metrics(centre, big)) == "under"
    beside = np.zeros_like(truth)
    beside[0:20, 0:20] = True
    assert failure_kind(mask_metrics(beside, truth)) == "other"
    assert failure_kind({**mask_metrics(None, truth), "failed": True}) == "other"
    assert failure_kind(mask_metrics(truth, truth)) is None
    # 1.8 x the area but covering only half of the lesion: a miss, not the field around it
    shifted = np.zeros_like(truth)
    shifted[50:77, 50:77] = True
    assert failure_kind(mask_metrics(shifted, truth)) == "other"
    rows = [mask_metrics(m, t) for m, t in ((field, truth), (centre, big), (beside, truth), (truth, truth))]
    assert failure_counts(rows) == {"over": 1, "under": 1, "other": 1}


def test_summary_counts_failure_kinds():
    from common.metrics import summarise

    truth = np.zeros((10, 10), bool)
    truth[4:6, 4:6] = True
    per_image = {
        "a": {"final": mask_metrics(np.ones((10, 10), bool), truth)},
        "b": {"final": mask_metrics(truth, truth)},
    }
    assert summarise(per_image, ["final"])["final"]["failure_kinds"] == {"over": 1, "under": 0, "other": 0}


def test_postprocess_on_the_mask_box_equals_the_whole_frame():
    """postprocess_mask works on the mask's bounding box; the result is the whole frame's: the
    largest component (ties: first in raster order) and every hole filled, for masks that touch
    the border, hold holes that reach the box's edge, split into equal parts."""
    from common.geometry import fill_holes, largest_component

    rng = np.random.default_rng(0)
    masks = []
    for _ in range(60):
        h, w = rng.integers(20, 90, 2)
        mask = rng.random((h, w)) < rng.uniform(0.05, 0.7)
        if rng.random() < 0.5:  # blobs with holes rather than noise
            mask = np.zeros((h, w), bool)
            for _ in range(rng.integers(1, 4)):
                cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(3, 15)
                yy, xx = np.ogrid[:h, :w]
                ring = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & ((yy - cy) ** 2 + (xx - cx) ** 2 >= (r // 3) ** 2)
                mask |= ring
        masks.append(mask)
    tie = np.zeros((30, 40), bool)
    tie[5:10, 30:35] = tie[20:25, 2:7] = True  # two equal squares: the upper one wins
    masks += [tie, np.zeros((10, 10), bool), np.ones((10, 10), bool)]
    for mask in masks:
        for keep, fill in ((True, True), (True, False), (False, True)):
            expected = largest_component(mask) if keep else mask
            expected = fill_holes(expected) if fill else expected
            assert np.array_equal(postprocess_mask(mask, keep_largest=keep, fill_holes=fill), expected)
