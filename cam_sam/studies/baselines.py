"""Baselines for CAM prompting, scored exactly like :mod:`cam_sam.segment` (same metrics.json).

Ground-truth-derived upper bounds are named ``gt_*`` and flagged in ``metrics.json``
(``"uses_ground_truth"``): they read the mask to build the prompt and are NOT zero-shot results.

* ``gt_box``, ``gt_box_pad5``: the tight ground-truth box, and padded by 5 %;
* ``gt_centroid_point``: one positive point at the mask's centroid (nearest lesion pixel);
* ``whole_image_box``, ``centred_box_80``: prompt-free controls;
* ``otsu_grey_mask``: Otsu on grey level inside the field of view (dark vignette removed), largest
  component, no segmenter; ``otsu_grey_box``: its box + 5 % into the segmenter;
* ``randomcam_box``: the box of a RandomCAM (grad-cam's random-weight control), thresholded at 0.5
  with 10 % padding, into the segmenter.

    python -m cam_sam.studies.baselines --set split=val
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from skimage.filters import threshold_otsu

from cam_sam.postprocess import postprocess_mask
from cam_sam.prompts import cam_to_box
from cam_sam.proposals import DEFAULT_COLOUR, field_of_view
from cam_sam.runs.build import build_explainer, build_segmenter
from cam_sam.runs.dataset import print_summary
from cam_sam.settings import PIPELINE_RESUMABLE, SEGMENT_CONFIG, ModelSettings
from common.cli import run_main
from common.config import config_from_argv
from common.devices import resolve_device
from common.errors import SettingsError
from common.geometry import clip_box, largest_component, mask_to_box, pad_box
from common.io import resolve_run_dir
from common.metrics import mask_metrics
from common.runs import ResumableRun
from data.catalogue import open_dataset
from data.isic import check_image_content, subset_ids

GT_BASELINES = ("gt_box", "gt_box_pad5", "gt_centroid_point")
BASELINES = GT_BASELINES + ("whole_image_box", "centred_box_80", "otsu_grey_mask", "otsu_grey_box", "randomcam_box")

# fmt: off
CONFIG: dict[str, Any] = {
    # the keys of cam_sam.settings.SEGMENT_CONFIG these baselines read: data, outputs, and the
    # classifier and segmenter as cam_sam.runs.build builds them (backend, embedding cache)
    **{k: SEGMENT_CONFIG[k] for k in ("dataset", "data_root", "split", "every", "limit", "results_root", "out_dir",
                                      "classifier", "classifier_checkpoint", "target_class", "binary_target",
                                      "cam_batch_size", "ensemble_methods", "segmenter", "segmenter_checkpoint",
                                      "decode_batch_size", "backend", "export_dir", "embedding_cache", "device",
                                      "seed")},
    "baselines": list(BASELINES),
    "postprocess": {"keep_largest": True, "fill_holes": True},   # fields of cam_sam.pipeline.PostprocessConfig
}
# fmt: on


def otsu_grey_region(image: np.ndarray) -> np.ndarray:
    """Dark-lesion region by Otsu on grey level inside the field of view, largest component."""
    grey = image.mean(axis=2)
    fov = field_of_view(image)
    if fov.sum() < DEFAULT_COLOUR.min_valid_pixels:
        fov = np.ones_like(fov)
    return largest_component((grey < threshold_otsu(grey[fov])) & fov)


def centroid_point(mask: np.ndarray) -> np.ndarray:
    """(1, 2) xy: the lesion pixel nearest the mask's centroid (inside even for a crescent)."""
    ys, xs = np.nonzero(mask)
    cy, cx = ys.mean(), xs.mean()
    k = int(np.argmin((ys - cy) ** 2 + (xs - cx) ** 2))
    return np.array([[xs[k], ys[k]]], np.float32)


def baseline_prompts(name: str, image: np.ndarray, truth: np.ndarray | None, cams) -> dict[str, np.ndarray] | None:
    """The prompt of baseline ``name`` as predict() keyword arguments; None if it has none."""
    h, w = image.shape[:2]
    if name in GT_BASELINES:
        box = mask_to_box(truth) if truth is not None else None
        if box is None:
            return None
        if name == "gt_box":
            return {"boxes": box[None]}
        if name == "gt_box_pad5":
            return {"boxes": pad_box(box, 0.05, (h, w))[None]}
        return {"points": centroid_point(truth)[None], "point_labels": np.ones((1, 1), np.int64)}
    if name == "whole_image_box":
        return {"boxes": np.array([[0, 0, w - 1, h - 1]], np.float32)}
    if name == "centred_box_80":
        return {"boxes": clip_box(np.array([[0.1 * w, 0.1 * h, 0.9 * w, 0.9 * h]]), (h, w))}
    if name == "otsu_grey_box":
        box = mask_to_box(otsu_grey_region(image))
        return None if box is None else {"boxes": pad_box(box, 0.05, (h, w))[None]}
    if name == "randomcam_box":
        box = cam_to_box(cams["randomcam"].heatmap, 0.5, 0.1)
        return None if box is None else {"boxes": box[None]}
    raise ValueError(f"unknown baseline {name!r}; available: {', '.join(BASELINES)}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0])
    unknown = [b for b in cfg["baselines"] if b not in BASELINES]
    if unknown:
        raise SettingsError(f"unknown baselines {unknown}; available: {', '.join(BASELINES)}")
    dataset = open_dataset(cfg["data_root"], cfg["split"], dataset=cfg["dataset"])
    device = resolve_device(cfg["device"])
    np.random.seed(cfg["seed"])  # RandomCAM draws from numpy's global generator
    run_dir = resolve_run_dir(cfg["results_root"], cfg["out_dir"], f"baselines_{cfg['segmenter']}")
    run = ResumableRun(run_dir, cfg, PIPELINE_RESUMABLE | {"limit"})
    models = ModelSettings.from_config(cfg)  # the keys it has not: PIPELINE_CONFIG's defaults
    explainer = build_explainer(models, device) if "randomcam_box" in cfg["baselines"] else None
    segmenter = build_segmenter(models, device)
    post = dict(cfg["postprocess"])
    ids, positions = subset_ids(dataset, cfg["every"], cfg["limit"])

    def work(order: int, image_id: str) -> dict[str, Any]:
        sample = dataset[positions[image_id]]
        check_image_content(sample.image, image_id)
        cams = explainer.explain(sample.image, ["randomcam"]) if explainer else {}
        segmenter.set_image(sample.image)
        metrics: dict[str, dict] = {}
        for name in cfg["baselines"]:
            if name == "otsu_grey_mask":
                mask = postprocess_mask(otsu_grey_region(sample.image), **post)
            else:
                prompt = baseline_prompts(name, sample.image, sample.mask, cams)
                mask = None if prompt is None else postprocess_mask(segmenter.predict(**prompt).masks[0], **post)
            metrics[name] = {
                **mask_metrics(mask, sample.mask),
                "failed": mask is None,
                "uses_ground_truth": name in GT_BASELINES,
            }
        return {"metrics": metrics}

    run.process(ids, work, desc="baselines")
    metrics = run.write_metrics(ids, list(cfg["baselines"]))
    print_summary(metrics, run_dir, synthetic=False)
    print("gt_* rows build their prompt FROM the ground truth: upper bounds, not zero-shot results.")
    return metrics


if __name__ == "__main__":
    run_main(main)
