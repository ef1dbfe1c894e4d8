"""Shipping a trained student, the library of ``self_training.ship``: the trust it carries.

A student's confidence has its own scale, so its review thresholds, its expected-IoU maps and its
out-of-depth statistics are fitted for it and shipped beside it, in its trust sidecar
(:class:`cam_sam.calibration.StudentTrust`):

* the **out-of-depth statistics** (:func:`cam_sam.depth.fit_depth`) on the student's training
  images (:func:`training_images`), written as ``<stem>.depth.npz``;
* per student preset (``student``, the default, ``fast``, ``realtime``), the student is run over
  the development sets (masks known, never trained on) by :func:`cam_sam.runs.dataset.segment_dataset`
  (resumable runs under ``out_dir``), and on their images pooled the **expected-IoU map** (an isotonic
  fit) and the **review threshold** are fitted (:meth:`cam_sam.calibration.Verdicts.fit`): the
  confidence at which the map reaches the lowest expected IoU that flags at least
  ``min_failures_flagged`` of the pooled failures, rounded up to two decimals;
* the sidecar ``<stem>.trust.json`` and a model-card stub ``<stem>.md`` (its figures on each set).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from cam_sam.calibration import PRESET_VARIANTS, Verdicts
from cam_sam.depth import fit_depth
from cam_sam.runs.dataset import confidence_and_iou, segment_dataset
from cam_sam.runs.student_trust import StudentTrust, features_of, save_depth_check, trust_path
from cam_sam.settings import PRESETS, SEGMENT_CONFIG, resolve_run
from common.config import merge
from common.defaults import RESULTS_ROOT
from common.errors import CheckpointError, DataError, SettingsError
from common.io import write_text
from common.metrics import FAIL_IOU, auroc_fail
from data.catalogue import open_dataset
from data.holdout import HOLDOUT_EVERY, holdout_ids
from data.isic import list_images, read_image
from models.student import StudentSegmenter, read_student

log = logging.getLogger("self_training.ship")

# The development sets of ISIC 2017 (each a name and DATA_CONFIG keys): its validation split and
# every 18th training crop (no training step sees them).
DEVELOPMENT_SETS = [{"name": "val", "split": "val"}, {"name": "train_every18", "split": "train", "every": 18}]
MIN_DEPTH_IMAGES = 10  # fewer training images than this: no statistics worth shipping
FRAMES_DIR = "../shared/data/ISIC2017_full_frames/images"  # the whole frames the default's student trained on
PER_SET = 800  # training images per set (an even spread): enough for 320 feature dimensions


@dataclass(frozen=True)
class Shipping:
    """What ``self_training.ship`` fits for one student (its CONFIG keys, documented there);
    ``config`` is the CONFIG as given."""

    checkpoint: str
    sets: list[dict]
    presets: list[str]
    min_failures_flagged: float
    depth_data_root: str | None
    depth_image_dirs: list[str]
    per_set: int
    quantile: float
    seed: int
    out_dir: str
    device: str
    student_backend: str
    workers: int | str
    config: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Shipping:
        if not cfg["checkpoint"]:
            raise SettingsError(
                "checkpoint: name the student to ship, e.g. --set checkpoint=results/my_student/student.pt"
            )
        unknown = [p for p in cfg["presets"] if p not in PRESET_VARIANTS]
        if unknown or not cfg["presets"]:
            raise SettingsError(f"presets {cfg['presets']}: each one of {list(PRESET_VARIANTS)}")
        names = [s.get("name") for s in cfg["sets"]]
        if not names or None in names or len(set(names)) != len(names):
            raise SettingsError(f"sets: give each development set a unique 'name' (got {names})")
        out_dir = cfg["out_dir"] or str(Path(RESULTS_ROOT) / f"ship_{Path(cfg['checkpoint']).stem}")
        return cls(
            str(cfg["checkpoint"]),
            [dict(s) for s in cfg["sets"]],
            list(cfg["presets"]),
            float(cfg["min_failures_flagged"]),
            cfg["depth_data_root"],
            list(cfg["depth_image_dirs"]),
            int(cfg["per_set"]),
            float(cfg["quantile"]),
            int(cfg["seed"]),
            out_dir,
            cfg["device"],
            cfg["student_backend"],
            cfg["workers"],
            dict(cfg),
        )


def spread(items: list, n: int) -> list:
    """At most ``n`` of ``items``, evenly spread."""
    if len(items) <= n:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def training_images(data_root: str | None, image_dirs: list[str], per_set: int = PER_SET) -> list:
    """Loaders of a student's training images: up to ``per_set`` of the ISIC training crops under
    ``data_root`` without the held-out ``train_every18`` ones, and up to ``per_set`` of each folder
    of ``image_dirs`` that exists (evenly spread)."""
    loaders = []
    if data_root:
        crops = open_dataset(data_root, "train", None, read_masks=False)
        held = set(holdout_ids(crops.ids, HOLDOUT_EVERY))
        paths = [p for i, p in zip(crops.ids, crops.image_paths) if i not in held]
        loaders += [lambda p=p: read_image(p) for p in spread(paths, per_set)]
    for folder in image_dirs:
        if Path(folder).is_dir():
            loaders += [lambda p=p: read_image(p) for p in spread(list_images(Path(folder)), per_set)]
    return loaders


def depth_statistics(s: Shipping) -> tuple[str, str]:
    """Fit the out-of-depth statistics on the student's training images and write them beside it:
    (their file name, what they were fitted on)."""
    loaders = training_images(s.depth_data_root, s.depth_image_dirs, s.per_set)
    if len(loaders) < MIN_DEPTH_IMAGES:
        raise DataError(
            f"the depth statistics need the student's training images: {len(loaders)} found under "
            f"depth_data_root={s.depth_data_root} and depth_image_dirs={s.depth_image_dirs}"
        )
    student = StudentSegmenter.from_checkpoint(s.checkpoint, "cpu", tta=True)
    features, _ = features_of(student, tqdm(loaders, desc="training images", unit="img", leave=False))
    check = fit_depth(features, s.quantile, s.seed)
    path = Path(s.checkpoint).with_name(Path(s.checkpoint).stem + ".depth.npz")
    save_depth_check(check, path)
    where = " and ".join(
        ([f"the training crops of {s.depth_data_root} (train_every18 left out)"] if s.depth_data_root else [])
        + [str(d) for d in s.depth_image_dirs if Path(d).is_dir()]
    )
    fitted_on = (
        f"{len(features)} training images ({where}; at most {s.per_set} of each, evenly spread); threshold "
        f"{check.threshold:.2f}: the {s.quantile:g} quantile of held-out training images' distances"
    )
    return path.name, fitted_on


def development_run(s: Shipping, preset: str, dev_set: dict) -> pd.DataFrame:
    """The student as ``preset`` over one development set (resumable in ``out_dir/preset/name``):
    (id, confidence, iou, flagged) of every image."""
    overrides = {
        **PRESETS[preset],
        **{k: v for k, v in dev_set.items() if k != "name"},
        "student_checkpoint": s.checkpoint,
        "student_backend": s.student_backend,
        "device": s.device,
        "workers": s.workers,
        "out_dir": str(Path(s.out_dir) / preset / dev_set["name"]),
        "n_overlays": 0,
        "oracle": False,
        "synthetic_if_missing": False,
    }
    frame = confidence_and_iou(segment_dataset(resolve_run(merge(SEGMENT_CONFIG, overrides))))
    if frame.empty:
        raise DataError(f"development set {dev_set['name']!r} gave no scored image: a development set needs masks")
    return frame


def set_figures(frame: pd.DataFrame, threshold: float) -> dict[str, Any]:
    """A preset's figures on one set at its review threshold."""
    failed = frame["iou"] < FAIL_IOU
    flagged = frame["confidence"] < threshold
    ids = frame["id"].tolist()
    return {
        "n": len(frame),
        "iou": float(frame["iou"].mean()),
        "failures": int(failed.sum()),
        "auroc_fail": auroc_fail(dict(zip(ids, frame["confidence"])), dict(zip(ids, frame["iou"]))),
        "flagged": int(flagged.sum()),
        "failures_flagged": int((flagged & failed).sum()),
    }


def ship_student(s: Shipping) -> dict[str, Any]:
    """Fit the student's trust and write ``<stem>.depth.npz``, ``<stem>.trust.json`` (replacing
    any earlier one) and ``<stem>.md`` beside its checkpoint. Returns what was fitted."""
    checkpoint = Path(s.checkpoint)
    if not checkpoint.is_file():
        raise CheckpointError(f"student checkpoint not found: {checkpoint}")
    read_student(checkpoint)  # a student checkpoint, readable, before any long run
    depth_file, depth_fitted_on = depth_statistics(s)
    verdicts, report = {}, {"checkpoint": str(checkpoint), "presets": {}}
    for preset in s.presets:
        frames = {dev["name"]: development_run(s, preset, dev) for dev in s.sets}
        pooled = pd.concat(list(frames.values()), ignore_index=True)
        fitted = Verdicts.fit(pooled["confidence"], pooled["iou"], list(frames), s.min_failures_flagged)
        verdicts[preset], level = fitted
        threshold = verdicts[preset].review_threshold
        report["presets"][preset] = {
            "review_threshold": threshold,
            "expected_iou_level": level,
            "sets": {name: set_figures(frame, threshold) for name, frame in frames.items()},
        }
    data = {dev["name"]: ", ".join(f"{k}={v}" for k, v in dev.items() if k != "name") or "defaults" for dev in s.sets}
    trust = StudentTrust(verdicts, depth_file, depth_fitted_on, data)
    trust.save(trust_path(checkpoint), checkpoint.name)
    card = checkpoint.with_name(checkpoint.stem + ".md")
    write_text(card, model_card(checkpoint, trust, report, s))
    log.info("wrote %s, %s and %s", trust_path(checkpoint), checkpoint.with_name(depth_file), card)
    return {**report, "sidecar": str(trust_path(checkpoint)), "card": str(card), "depth": depth_fitted_on}


def model_card(checkpoint: Path, trust: StudentTrust, report: dict[str, Any], s: Shipping) -> str:
    """A model-card stub: what is known from the checkpoint and the fits; the rest to fill in."""
    config, _ = read_student(checkpoint)
    lines = [
        f"# {checkpoint.stem}",
        "",
        "*(What this student is, how it was trained: the training command; its licence.)*",
        "",
        f"- **File:** `{checkpoint.name}` ({checkpoint.stat().st_size / 1e6:.1f} MB), a U-Net on "
        f"`{config.backbone}` at {config.input_size} px.",
        f"- **Trust:** `{trust_path(checkpoint).name}`, written on {date.today().isoformat()} by "
        f"`python -m self_training.ship --set checkpoint={s.checkpoint}`.",
        f"- **Out of depth:** `{trust.depth}`, fitted on {trust.depth_fitted_on}.",
        "",
        "| preset | set | images | mean IoU | failures (IoU < 0.5) | AUROC | flagged | failures flagged |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for preset, fitted in report["presets"].items():
        for name, f in fitted["sets"].items():
            auroc = "" if f["auroc_fail"] is None or math.isnan(f["auroc_fail"]) else f"{f['auroc_fail']:.3f}"
            lines.append(
                f"| {preset} | {name} | {f['n']} | {f['iou']:.3f} | {f['failures']} | {auroc} | "
                f"{f['flagged']} | {f['failures_flagged']} of {f['failures']} |"
            )
    lines += ["", "| preset | review threshold | how it was chosen |", "|---|---:|---|"]
    lines += [f"| {preset} | {v.review_threshold:.2f} | {v.rule} |" for preset, v in trust.verdicts.items()]
    lines += ["", "Development sets: " + "; ".join(f"`{k}`: {v}" for k, v in trust.data.items()) + "."]
    return "\n".join(lines) + "\n"
