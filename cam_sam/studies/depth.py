"""How a student's out-of-depth check (:mod:`cam_sam.depth`) calls the development sets, generated
lesions and photographs that are not dermoscopy.

    python -m cam_sam.studies.depth                     # the default's student, its shipped statistics
    python -m cam_sam.studies.depth --set student_checkpoint=results/student_x/student.pt

The statistics are the ones the student's trust sidecar names (``python -m self_training.ship``
fits them on the student's training images only, through the same forward
pass, flips included, that segments an image). ``report.json`` (in ``out_dir``) gives the share
called out of depth per set and each photograph's distance; the ground truth is never opened.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from cam_sam.depth import GREY_CHROMA, DepthCheck, mean_chroma
from cam_sam.runs.student_trust import features_of, load_student_trust, trust_path
from cam_sam.settings import DATA_CONFIG, OUTPUT_CONFIG, PIPELINE_CONFIG
from common.cli import run_main
from common.config import config_from_argv
from common.errors import CheckpointError
from common.io import resolve_run_dir, write_json
from data.catalogue import open_dataset
from data.holdout import HOLDOUT_EVERY, holdout_ids
from data.isic import read_image
from data.synthetic import make_synthetic_sample
from models.student import StudentSegmenter

# fmt: off
CONFIG: dict[str, Any] = {
    "student_checkpoint": PIPELINE_CONFIG["student_checkpoint"],
    "data_root": DATA_CONFIG["data_root"],   # val and train_every18 are read from here
    "n_generated": 20,               # generated lesions in the report (they must stay in depth)
    "photographs": ["astronaut", "coffee", "chelsea", "rocket", "camera", "horse", "coins", "moon", "brick",
                    "grass", "gravel", "page", "text", "hubble_deep_field", "immunohistochemistry",
                    "retina", "colorwheel"],     # a fundus photograph and a colour wheel: colour images that are
                                                 # not skin (the retina is a known miss, docs/results.md)
    "results_root": OUTPUT_CONFIG["results_root"],
    "out_dir": None,
    "device": "cpu",
}
# fmt: on

log = logging.getLogger("cam_sam.studies.depth")


def share_out(check: DepthCheck, features: np.ndarray, chroma: np.ndarray) -> dict[str, float]:
    """How a set is called, as the pipeline calls each image (distance, or greyscale)."""
    distances = np.array([check.distance(f) for f in features])
    out = (distances > check.threshold) | (chroma < GREY_CHROMA)
    return {"n": len(out), "share_out": float(out.mean()), "max_distance": float(distances.max())}


def photographs(names: list[str]) -> dict[str, np.ndarray]:
    """scikit-image's bundled photographs (RGB uint8); one that needs a download is skipped."""
    from skimage import color, data

    found = {}
    for name in names:
        try:
            image = getattr(data, name)()
        except Exception as exc:  # not bundled with this scikit-image (a download): skip it
            log.info("photograph %s unavailable: %s", name, exc)
            continue
        image = color.gray2rgb(image) if image.ndim == 2 else image[..., :3]
        found[name] = np.ascontiguousarray(image.astype(np.uint8))
    return found


def main(argv: list[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0])
    checkpoint = Path(cfg["student_checkpoint"])
    trust = load_student_trust(checkpoint) if checkpoint.is_file() else None
    check = trust.depth_check() if trust is not None else None
    if check is None:
        raise CheckpointError(
            f"{trust_path(checkpoint)} names no depth statistics of {checkpoint}: "
            "ship the student first (python -m self_training.ship)"
        )
    run_dir = resolve_run_dir(cfg["results_root"], cfg["out_dir"], "depth")
    student = StudentSegmenter.from_checkpoint(checkpoint, cfg["device"], tta=True)
    report: dict[str, Any] = {"threshold": check.threshold, "fitted_on": trust.depth_fitted_on, "sets": {}}
    crops = open_dataset(cfg["data_root"], "train", None, read_masks=False)
    held = set(holdout_ids(crops.ids, HOLDOUT_EVERY))
    evaluation = {
        "val": open_dataset(cfg["data_root"], "val", None, read_masks=False).image_paths,
        "train_every18": [p for i, p in zip(crops.ids, crops.image_paths) if i in held],
    }
    for name, paths in evaluation.items():
        loaders = tqdm([lambda p=p: read_image(p) for p in paths], desc=name, unit="img", leave=False)
        report["sets"][name] = share_out(check, *features_of(student, loaders))
    generated = [make_synthetic_sample(5000 + i).image for i in range(cfg["n_generated"])]
    report["sets"]["generated"] = share_out(check, *features_of(student, [lambda im=im: im for im in generated]))
    photos = photographs(cfg["photographs"])
    report["photographs"] = {}
    for name, image in photos.items():
        features = student.predict_with_features(image)[2]
        report["photographs"][name] = {
            "distance": check.distance(features),
            "chroma": mean_chroma(image),
            "out_of_depth": check.is_out(features, image),
        }
    write_json(run_dir / "report.json", {**report, "config": cfg})
    log.info(
        "threshold %.1f; out of depth: %s; photographs caught %d of %d",
        check.threshold,
        {k: f"{v['share_out']:.1%}" for k, v in report["sets"].items()},
        sum(v["out_of_depth"] for v in report["photographs"].values()),
        len(photos),
    )
    return report


if __name__ == "__main__":
    run_main(main)
