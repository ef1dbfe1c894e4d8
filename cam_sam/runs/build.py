"""Building the pipeline and opening data from a script's settings (the keys of
:mod:`cam_sam.settings`): the one place every script (segment, benchmark, baselines,
pseudo-labelling, the page) turns settings into library objects."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from cam_sam.calibration import Calibration, confidence_variant, load_calibration
from cam_sam.depth import DepthCheck
from cam_sam.pipeline import SEGMENTER_SOURCES, LesionPipeline, PipelineConfig, PostprocessConfig, PromptConfig
from cam_sam.proposals import ColourProposalConfig
from cam_sam.settings import DATA_CONFIG, PIPELINE_CONFIG
from cam_sam.student_runtime import use_student_backend

from data.catalogue import Dataset, open_dataset
from data.isic import DataError
from data.synthetic import write_synthetic_isic
from explainers.cams import CamExplainer
from medsam.base import PromptableSegmenter
from medsam.factory import create_segmenter
from models.registry import create_classifier
from models.student import StudentSegmenter

log = logging.getLogger(__name__)



def pipeline_config(cfg: dict[str, Any]) -> PipelineConfig:
    """The typed pipeline settings from a script's CONFIG (its :class:`PipelineConfig` keys)."""
    fields = {k: cfg[k] for k in PipelineConfig.__dataclass_fields__}
    return PipelineConfig(**{**fields, "prompts": PromptConfig(**fields["prompts"]),
                             "colour": ColourProposalConfig(**fields["colour"]),
                             "postprocess": PostprocessConfig(**fields["postprocess"])})


def build_explainer(cfg: dict[str, Any], device: str) -> CamExplainer:
    """The classifier (``classifier``, ``classifier_checkpoint``) and its CAM explainer."""
    classifier = create_classifier(cfg["classifier"], checkpoint=cfg["classifier_checkpoint"])
    return CamExplainer(classifier, cfg["classifier"], cfg["target_class"], cfg["cam_batch_size"], device,
                        binary_target=cfg["binary_target"], ensemble_methods=cfg["ensemble_methods"])


def build_segmenter(cfg: dict[str, Any], device: str) -> PromptableSegmenter:
    """The promptable segmenter (``segmenter``, ``segmenter_checkpoint``) on its ``backend``, with
    the embedding cache."""
    segmenter = create_segmenter(cfg["segmenter"], cfg["segmenter_checkpoint"], device, cfg["decode_batch_size"])
    segmenter.use_backend(cfg["backend"], cfg["export_dir"])
    segmenter.use_cache(cfg.get("embedding_cache"), f"{cfg['segmenter']}|{cfg['segmenter_checkpoint']}")
    return segmenter


def needs_segmenter(cfg: dict[str, Any]) -> bool:
    return bool(cfg["methods"]) or any(p in SEGMENTER_SOURCES for p in cfg["proposals"])


def unused_settings(cfg: dict[str, Any]) -> list[str]:
    """One line per model file the user set (it differs from :data:`PIPELINE_CONFIG`'s default)
    that this configuration will never open, naming the setting that makes it unused."""
    def user_set(key: str) -> bool:
        return cfg.get(key) is not None and cfg.get(key) != PIPELINE_CONFIG[key]

    lines = []
    if user_set("classifier_checkpoint") and not cfg["methods"] and not cfg.get("multiclass"):
        lines.append(f"classifier_checkpoint={cfg['classifier_checkpoint']} is not used: no CAM method runs "
                     "(methods=[]) and multiclass is off; add one, e.g. --set methods='[\"gradcam\"]', or drop classifier_checkpoint")
    if (user_set("segmenter_checkpoint") or user_set("segmenter")) and not needs_segmenter(cfg):
        lines.append(f"segmenter={cfg['segmenter']} / segmenter_checkpoint={cfg['segmenter_checkpoint']} is not used: "
                     f"no source of this run prompts a segmenter (methods={cfg['methods']}, proposals={cfg['proposals']})")
    if user_set("student_checkpoint") and not pipeline_config(cfg).needs_student:
        lines.append(f"student_checkpoint={cfg['student_checkpoint']} is not used: no student source runs "
                     f"(proposals={cfg['proposals']}, student_weight={cfg['student_weight']}); add \"student\" to proposals")
    return lines


def build_pipeline(cfg: dict[str, Any], device: str, explainer: CamExplainer | None = None,
                   segmenter: PromptableSegmenter | None = None, refuse_unused: bool = True) -> LesionPipeline:
    """Classifier and explainer (only when CAM methods are asked for), segmenter and pipeline.
    ``explainer`` / ``segmenter``: already built ones to share (an app serving many requests).
    ``refuse_unused``: a model file the user set that this configuration never opens ends the run
    with one line naming both settings (:func:`unused_settings`): running on would let them believe
    it shaped the result."""
    problems = unused_settings(cfg) if refuse_unused else []
    if problems:
        raise SystemExit("; ".join(problems))
    if cfg["methods"] and explainer is None:
        explainer = build_explainer(cfg, device)
    if needs_segmenter(cfg) and segmenter is None:
        segmenter = build_segmenter(cfg, device)
    student, depth, calibration = None, None, None
    if cfg["student_checkpoint"]:
        student = StudentSegmenter.from_checkpoint(cfg["student_checkpoint"], device, cfg["student_tta"])
        use_student_backend(student, cfg["student_backend"], cfg["export_dir"], device)
        depth = load_depth_check(cfg["student_checkpoint"])
        calibration = load_student_calibration(cfg["student_checkpoint"],
                                               confidence_variant(cfg["zoom_stability"], cfg["student_tta"]))
    return LesionPipeline(explainer if cfg["methods"] else None, segmenter if needs_segmenter(cfg) else None,
                          pipeline_config(cfg), student, depth, calibration)


def depth_path(student_checkpoint: str | Path) -> Path:
    """Where a student's depth statistics ship: ``<checkpoint without .pt>.depth.npz`` beside it."""
    path = Path(student_checkpoint)
    return path.with_name(path.stem + ".depth.npz")


def calibration_path(student_checkpoint: str | Path) -> Path:
    """Where a student's confidence -> expected IoU maps ship: ``<checkpoint without .pt>.calibration.json``."""
    path = Path(student_checkpoint)
    return path.with_name(path.stem + ".calibration.json")


def load_student_calibration(student_checkpoint: str | Path, variant: str) -> Calibration | None:
    """The student's :class:`~cam_sam.calibration.Calibration` for the confidence ``variant``
    (None, said in the log, when none ships: its masks then get no expected IoU)."""
    path = calibration_path(student_checkpoint)
    try:
        calibration = load_calibration(path, variant) if path.is_file() else None
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    if calibration is None:
        log.info("no calibration %s [%s] beside the student: no expected IoU", path, variant)
    return calibration


def load_depth_check(student_checkpoint: str | Path) -> DepthCheck | None:
    """The student's :class:`~cam_sam.depth.DepthCheck` (None, said once in the log, when it has none:
    its masks then get no out-of-depth verdict)."""
    path = depth_path(student_checkpoint)
    if not path.is_file():
        log.info("no depth statistics %s beside the student: no out-of-depth check", path)
        return None
    try:
        return DepthCheck.load(path)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc


def open_data(cfg: dict[str, Any], read_masks: bool = True) -> tuple[Dataset, bool]:
    """(the dataset to segment, whether it is synthetic): generated synthetic images only when the
    user gave no data at all (the default ISIC 2017 root, missing on this machine) and
    ``synthetic_if_missing``; a data root or dataset the user gave that is not there ends the run
    with one line naming it. ``read_masks=False``: no mask file is ever opened."""
    root = Path(cfg["data_root"])
    data_given = cfg["data_root"] != DATA_CONFIG["data_root"] or cfg["dataset"] != DATA_CONFIG["dataset"]
    if not cfg["image_dir"] and not root.is_dir() and (data_given or not cfg["synthetic_if_missing"]):
        raise DataError(f"no {cfg['dataset']} data: the folder {root} does not exist (data_root); "
                         "point data_root at the dataset's unzipped download, or set image_dir")
    if cfg["image_dir"] or root.is_dir():
        return open_dataset(cfg["data_root"], cfg["split"], cfg["image_dir"], cfg["mask_dir"], read_masks,
                            cfg["dataset"], cfg["derm7pt_image"]), False
    root = Path(cfg["results_root"]) / "synthetic_isic2017"
    log.warning("no ISIC data at %s: segmenting %d SYNTHETIC images written to %s instead. "
                "Point data_root at your ISIC 2017 download for real results.",
                cfg["data_root"], cfg["n_synthetic"], root)
    write_synthetic_isic(root, cfg["n_synthetic"], cfg["split"], seed=cfg["seed"])
    return open_dataset(root, cfg["split"], read_masks=read_masks), True
