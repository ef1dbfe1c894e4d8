"""Baseline prompts on generated images; honest baselines must not depend on the ground truth."""

import numpy as np
import pytest

from cam_sam.studies.baselines import BASELINES, GT_BASELINES, baseline_prompts, centroid_point, main, otsu_grey_region
from common.errors import SettingsError
from common.geometry import mask_to_box
from data.synthetic import make_synthetic_sample, write_synthetic_isic
from explainers.cams import CamResult


def _cams(hw):
    heat = np.zeros(hw, np.float32)
    heat[50:100, 100:200] = 1.0
    return {"randomcam": CamResult("randomcam", heat, False, "class_0")}


def test_prompt_geometry():
    sample = make_synthetic_sample(2)
    h, w = sample.mask.shape
    cams = _cams((h, w))
    box = mask_to_box(sample.mask)
    assert (baseline_prompts("gt_box", sample.image, sample.mask, cams)["boxes"][0] == box).all()
    padded = baseline_prompts("gt_box_pad5", sample.image, sample.mask, cams)["boxes"][0]
    assert padded[0] < box[0] and padded[2] > box[2] and padded[1] < box[1] and padded[3] > box[3]
    point = baseline_prompts("gt_centroid_point", sample.image, sample.mask, cams)["points"][0, 0]
    assert sample.mask[int(point[1]), int(point[0])]
    assert baseline_prompts("whole_image_box", sample.image, None, cams)["boxes"].tolist() == [[0, 0, w - 1, h - 1]]
    assert np.allclose(
        baseline_prompts("centred_box_80", sample.image, None, cams)["boxes"][0], [0.1 * w, 0.1 * h, 0.9 * w, 0.9 * h]
    )
    rand = baseline_prompts("randomcam_box", sample.image, None, cams)["boxes"][0]
    assert rand[0] < 100 and rand[2] > 199  # 10 % padding around the CAM's blob
    otsu = baseline_prompts("otsu_grey_box", sample.image, None, cams)["boxes"][0]
    inter = np.clip(np.minimum(otsu[2:], box[2:]) - np.maximum(otsu[:2], box[:2]), 0, None).prod()
    assert inter / ((box[2] - box[0]) * (box[3] - box[1])) > 0.8  # the Otsu box covers the dark lesion


def test_centroid_point_of_a_crescent_is_inside():
    yy, xx = np.mgrid[0:100, 0:100]
    crescent = ((xx - 50) ** 2 + (yy - 50) ** 2 < 40**2) & ~((xx - 65) ** 2 + (yy - 50) ** 2 < 35**2)
    x, y = centroid_point(crescent)[0]
    assert crescent[int(y), int(x)]


def test_honest_baselines_ignore_the_ground_truth():
    sample = make_synthetic_sample(4)
    other = np.zeros_like(sample.mask)
    other[:10, :10] = True
    cams = _cams(sample.mask.shape)
    for name in BASELINES:
        if name in GT_BASELINES or name == "otsu_grey_mask":
            continue
        a = baseline_prompts(name, sample.image, sample.mask, cams)
        b = baseline_prompts(name, sample.image, other, cams)
        assert all(np.array_equal(a[k], b[k]) for k in a), name
    assert not np.array_equal(
        baseline_prompts("gt_box", sample.image, other, cams)["boxes"],
        baseline_prompts("gt_box", sample.image, sample.mask, cams)["boxes"],
    )
    assert otsu_grey_region(sample.image).shape == sample.mask.shape


def test_baselines_script_on_generated_images(tmp_path):
    root = write_synthetic_isic(tmp_path / "data", n_images=2, split="val")
    metrics = main(["--set", f"data_root={root}", "--set", f"out_dir={tmp_path / 'run'}", "--set", "backend=torch"])
    assert list(metrics["summary"]) == list(BASELINES)
    assert metrics["summary"]["gt_box"]["iou"] > 0.8  # a tight box on the synthetic lesion
    first = next(iter(metrics["per_image"].values()))
    assert first["gt_box"]["uses_ground_truth"] and not first["whole_image_box"]["uses_ground_truth"]
    with pytest.raises(SettingsError, match="unknown baselines"):
        main(["--set", f"data_root={root}", "--set", f"out_dir={tmp_path / 'x'}", "--set", 'baselines=["magic"]'])
