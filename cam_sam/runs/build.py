"""Building the pipeline from a run's typed settings (:mod:`cam_sam.settings`): the one place every
script (segment, benchmark, baselines, pseudo-labelling, the page) turns settings into networks
(the images: :mod:`cam_sam.runs.inputs`)."""
from __future__ import annotations

import logging
from pathlib import Path

from cam_sam.calibration import Calibration, confidence_variant, load_calibration
from cam_sam.depth import DepthCheck
from cam_sam.pipeline import SEGMENTER_SOURCES, LesionPipeline, PipelineConfig
from cam_sam.settings import ModelSettings
from cam_sam.student_runtime import runtime_student
from common.errors import CheckpointError, SettingsError
from explainers.cams import CamExplainer
from medsam.base import PromptableSegmenter
from medsam.factory import create_segmenter
from models.registry import create_classifier

log = logging.getLogger(__name__)



def build_explainer(models: ModelSettings, device: str) -> CamExplainer:
    """The classifier (``classifier``, ``classifier_checkpoint``) and its CAM explainer."""
    classifier = create_classifier(models.classifier, checkpoint=models.classifier_checkpoint)
    return CamExplainer(classifier, models.classifier, models.target_class, models.cam_batch_size, device,
                        binary_target=models.binary_target, ensemble_methods=models.ensemble_methods)


def build_segmenter(models: ModelSettings, device: str) -> PromptableSegmenter:
    """The promptable segmenter (``segmenter``, ``segmenter_checkpoint``) on its ``backend``, with
    the embedding cache."""
    segmenter = create_segmenter(models.segmenter, models.segmenter_checkpoint, device, models.decode_batch_size)
    segmenter.use_backend(models.backend, models.export_dir)
    segmenter.use_cache(models.embedding_cache, f"{models.segmenter}|{models.segmenter_checkpoint}")
    return segmenter


def needs_segmenter(pipeline: PipelineConfig) -> bool:
    return bool(pipeline.methods) or any(p in SEGMENTER_SOURCES for p in pipeline.proposals)


def unused_settings(models: ModelSettings, pipeline: PipelineConfig, multiclass: bool = False) -> list[str]:
    """One line per model file the user set (it differs from :data:`PIPELINE_CONFIG`'s default)
    that this configuration will never open, naming the setting that makes it unused."""
    lines = []
    if models.user_set("classifier_checkpoint") and not pipeline.methods and not multiclass:
        lines.append(f"classifier_checkpoint={models.classifier_checkpoint} is not used: no CAM method runs "
                     "(methods=[]) and multiclass is off; add one, e.g. --set methods='[\"gradcam\"]', or drop classifier_checkpoint")
    if (models.user_set("segmenter_checkpoint") or models.user_set("segmenter")) and not needs_segmenter(pipeline):
        lines.append(f"segmenter={models.segmenter} / segmenter_checkpoint={models.segmenter_checkpoint} is not used: "
                     f"no source of this run prompts a segmenter (methods={pipeline.methods}, proposals={pipeline.proposals})")
    if models.user_set("student_checkpoint") and not pipeline.needs_student:
        lines.append(f"student_checkpoint={models.student_checkpoint} is not used: no student source runs "
                     f"(proposals={pipeline.proposals}); add \"student\" to proposals")
    return lines


def build_pipeline(models: ModelSettings, pipeline: PipelineConfig, device: str, explainer: CamExplainer | None = None,
                   segmenter: PromptableSegmenter | None = None, refuse_unused: bool = True,
                   multiclass: bool = False) -> LesionPipeline:
    """Classifier and explainer (only when CAM methods are asked for), segmenter and pipeline.
    ``explainer`` / ``segmenter``: already built ones to share (an app serving many requests).
    ``refuse_unused``: a model file the user set that this configuration never opens ends the run
    with one line naming both settings (:func:`unused_settings`; ``multiclass`` runs use the
    classifier): running on would let them believe it shaped the result."""
    problems = unused_settings(models, pipeline, multiclass) if refuse_unused else []
    if problems:
        raise SettingsError("; ".join(problems))
    if pipeline.methods and explainer is None:
        explainer = build_explainer(models, device)
    if needs_segmenter(pipeline) and segmenter is None:
        segmenter = build_segmenter(models, device)
    student, depth, calibration = None, None, None
    if models.student_checkpoint:
        student, _ = runtime_student(models.student_checkpoint, models.student_backend, models.export_dir, device,
                                     models.student_tta)
        depth = load_depth_check(models.student_checkpoint)
        calibration = load_student_calibration(models.student_checkpoint,
                                               confidence_variant(pipeline.zoom_stability, models.student_tta))
    return LesionPipeline(explainer if pipeline.methods else None, segmenter if needs_segmenter(pipeline) else None,
                          pipeline, student, depth, calibration)


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
        raise CheckpointError(str(exc)) from exc
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
        raise CheckpointError(str(exc)) from exc
