"""Fit the out-of-depth check of a student (:mod:`cam_sam.depth`) on its training images, and report
how it calls the evaluation sets, generated lesions and photographs that are not dermoscopy.

    python -m cam_sam.depth_stats                       # the default's student -> model_checkpoints/student_soup3h_sog.depth.npz
    python -m cam_sam.depth_stats --set student_checkpoint=results/student_x/student.pt

The statistics come from training images only (the ISIC 2017 training crops without the held-out
``train_every18`` ones, and the whole frames), through the same forward pass (flips included)
that segments an image. They are written beside the checkpoint, where the pipeline finds them.
``report.json`` (in ``out_dir``) gives the share called out of depth per set; the ground truth is
never opened.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from cam_sam.settings import DATA_CONFIG, PIPELINE_CONFIG
from cam_sam.runs.build import depth_path
from cam_sam.depth import GREY_CHROMA, THRESHOLD_QUANTILE, fit_depth, mean_chroma
from common.cli import run_main
from common.config import config_from_argv
from common.defaults import RESULTS_ROOT
from common.errors import CheckpointError
from common.io import resolve_run_dir, write_json
from data.catalogue import open_dataset
from data.holdout import HOLDOUT_EVERY, holdout_ids
from data.isic import DataError, list_images, read_image
from data.synthetic import make_synthetic_sample
from models.student import StudentSegmenter

CONFIG: dict[str, Any] = {
    "student_checkpoint": PIPELINE_CONFIG["student_checkpoint"],
    "data_root": DATA_CONFIG["data_root"],
    "frames_dir": "../shared/data/ISIC2017_full_frames/images",
    "per_set": 800,                  # training images per set (an even spread), enough for 320 dimensions
    "quantile": THRESHOLD_QUANTILE,
    "seed": 0,
    "n_generated": 20,               # generated lesions in the report (they must stay in depth)
    "photographs": ["astronaut", "coffee", "chelsea", "rocket", "camera", "horse", "coins", "moon", "brick",
                    "grass", "gravel", "page", "text", "hubble_deep_field", "immunohistochemistry",
                    "retina", "colorwheel"],     # a fundus photograph and a colour wheel: colour images that are
                                                 # not skin (the retina is a known miss, docs/trust.md)
    "results_root": RESULTS_ROOT,
    "out_dir": None,
    "device": "cpu",
}

log = logging.getLogger("cam_sam.depth_stats")


def spread(items: list, n: int) -> list:
    """At most ``n`` of ``items``, evenly spread."""
    if len(items) <= n:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def features_of(student: StudentSegmenter, images, desc: str) -> tuple[np.ndarray, np.ndarray]:
    """((N, C) pooled deepest features, (N,) mean chroma), one row per image (unreadable files
    skipped, logged)."""
    rows, chroma = [], []
    for load in tqdm(images, desc=desc, unit="img", leave=False):
        try:
            image = load()
            rows.append(student.predict_with_features(image)[2])
            chroma.append(mean_chroma(image))
        except DataError as exc:
            log.warning("skipped: %s", exc)
    return np.array(rows), np.array(chroma)


def share_out(check, features: np.ndarray, chroma: np.ndarray) -> dict[str, float]:
    """How a set is called, as the pipeline calls each image (distance, or greyscale)."""
    distances = np.array([check.distance(f) for f in features])
    out = (distances > check.threshold) | (chroma < GREY_CHROMA)
    return {"n": len(out), "share_out": float(out.mean()), "max_distance": float(distances.max())}


def training_loaders(cfg: dict[str, Any]) -> list:
    crops = open_dataset(cfg["data_root"], "train", None, read_masks=False)
    held = set(holdout_ids(crops.ids, HOLDOUT_EVERY))
    paths = [p for i, p in zip(crops.ids, crops.image_paths) if i not in held]
    loaders = [lambda p=p: read_image(p) for p in spread(paths, cfg["per_set"])]
    frames = Path(cfg["frames_dir"])
    if frames.is_dir():
        loaders += [lambda p=p: read_image(p) for p in spread(list_images(frames), cfg["per_set"])]
    return loaders


def photographs(names: list[str]) -> dict[str, np.ndarray]:
    """scikit-image's bundled photographs (RGB uint8); one that needs a download is skipped."""
    from skimage import color, data

    found = {}
    for name in names:
        try:
            image = getattr(data, name)()
        except Exception as exc:   # not bundled with this scikit-image (a download): skip it
            log.info("photograph %s unavailable: %s", name, exc)
            continue
        image = color.gray2rgb(image) if image.ndim == 2 else image[..., :3]
        found[name] = np.ascontiguousarray(image.astype(np.uint8))
    return found


def main(argv: list[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0])
    checkpoint = Path(cfg["student_checkpoint"])
    if not checkpoint.is_file():
        raise CheckpointError(f"student checkpoint not found: {checkpoint}")
    run_dir = resolve_run_dir(cfg["results_root"], cfg["out_dir"], "depth")
    student = StudentSegmenter.from_checkpoint(checkpoint, cfg["device"], tta=True)
    train, _ = features_of(student, training_loaders(cfg), "training images")
    check = fit_depth(train, cfg["quantile"], cfg["seed"])
    check.save(depth_path(checkpoint))
    report: dict[str, Any] = {"n_training": len(train), "threshold": check.threshold, "sets": {}}
    crops = open_dataset(cfg["data_root"], "train", None, read_masks=False)
    held = set(holdout_ids(crops.ids, HOLDOUT_EVERY))
    evaluation = {"val": open_dataset(cfg["data_root"], "val", None, read_masks=False).image_paths,
                  "train_every18": [p for i, p in zip(crops.ids, crops.image_paths) if i in held]}
    for name, paths in evaluation.items():
        report["sets"][name] = share_out(check, *features_of(student, [lambda p=p: read_image(p) for p in paths], name))
    generated = [make_synthetic_sample(5000 + i).image for i in range(cfg["n_generated"])]
    report["sets"]["generated"] = share_out(check, *features_of(student, [lambda im=im: im for im in generated],
                                                                "generated"))
    photos = photographs(cfg["photographs"])
    report["photographs"] = {}
    for name, image in photos.items():
        features = student.predict_with_features(image)[2]
        report["photographs"][name] = {"distance": check.distance(features), "chroma": mean_chroma(image),
                                       "out_of_depth": check.is_out(features, image)}
    write_json(run_dir / "report.json", {**report, "config": cfg})
    log.info("threshold %.1f from %d training images -> %s; out of depth: %s; photographs caught %d of %d",
             check.threshold, len(train), depth_path(checkpoint),
             {k: f"{v['share_out']:.1%}" for k, v in report["sets"].items()},
             sum(v["out_of_depth"] for v in report["photographs"].values()), len(photos))
    return report


if __name__ == "__main__":
    run_main(main)
