"""Building the pipeline from a run's typed settings (:mod:`cam_sam.settings`): the one place every
script (segment, benchmark, baselines, pseudo-labelling, the page) turns settings into networks
(the images: :mod:`cam_sam.runs.inputs`)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from cam_sam.calibration import ARBITER_PRESET, PRESET_VARIANTS, Verdicts, confidence_variant
from cam_sam.depth import DepthCheck
from cam_sam.pipeline import ARBITER, SEGMENTER_SOURCES, STUDENT, LesionPipeline, PipelineConfig
from cam_sam.runs.student_trust import load_student_trust, trust_path
from cam_sam.settings import ModelSettings
from cam_sam.trust import UNCALIBRATED_REVIEW_THRESHOLD
from common.errors import SettingsError
from explainers.cams import CamExplainer
from medsam.base import PromptableSegmenter
from medsam.factory import create_segmenter
from models.registry import create_classifier
from models.student_runtime import runtime_student

log = logging.getLogger(__name__)


def build_explainer(models: ModelSettings, device: str) -> CamExplainer:
    """The classifier (``classifier``, ``classifier_checkpoint``) and its CAM explainer."""
    classifier = create_classifier(models.classifier, checkpoint=models.classifier_checkpoint)
    return CamExplainer(
        classifier,
        models.classifier,
        models.target_class,
        models.cam_batch_size,
        device,
        binary_target=models.binary_target,
        ensemble_methods=models.ensemble_methods,
    )


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
        lines.append(
            f"classifier_checkpoint={models.classifier_checkpoint} is not used: no CAM method runs "
            "(methods=[]) and multiclass is off; add one, e.g. --set methods='[\"gradcam\"]', "
            "or drop classifier_checkpoint"
        )
    if (models.user_set("segmenter_checkpoint") or models.user_set("segmenter")) and not needs_segmenter(pipeline):
        lines.append(
            f"segmenter={models.segmenter} / segmenter_checkpoint={models.segmenter_checkpoint} is not used: "
            f"no source of this run prompts a segmenter (methods={pipeline.methods}, proposals={pipeline.proposals})"
        )
    if models.user_set("student_checkpoint") and not pipeline.needs_student:
        lines.append(
            f"student_checkpoint={models.student_checkpoint} is not used: no student source runs "
            f'(proposals={pipeline.proposals}); add "student" to proposals'
        )
    return lines


def build_pipeline(
    models: ModelSettings,
    pipeline: PipelineConfig,
    device: str,
    explainer: CamExplainer | None = None,
    segmenter: PromptableSegmenter | None = None,
    refuse_unused: bool = True,
    multiclass: bool = False,
) -> LesionPipeline:
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
        student, _ = runtime_student(
            models.student_checkpoint, models.student_backend, models.export_dir, device, models.student_tta
        )
        verdicts, depth = student_verdicts(
            models.student_checkpoint, verdicts_key(pipeline, models.student_tta), pipeline.review_threshold
        )
        calibration = verdicts.calibration if verdicts is not None else None
        if pipeline.review_threshold is None and verdicts is not None:
            pipeline = replace(pipeline, review_threshold=verdicts.review_threshold)
    return LesionPipeline(
        explainer if pipeline.methods else None,
        segmenter if needs_segmenter(pipeline) else None,
        pipeline,
        student,
        depth,
        calibration,
    )


def verdicts_key(pipeline: PipelineConfig, tta: bool) -> str | None:
    """The preset whose verdicts in a student's trust sidecar apply to this run: ``arbiter`` for
    the arbiter's rule; where the student alone is delivered, the student preset of its
    confidence's variant (:data:`~cam_sam.calibration.PRESET_VARIANTS`); None for any other run."""
    if pipeline.final_rule == ARBITER:
        return ARBITER_PRESET
    if pipeline.final_sources == [STUDENT] and pipeline.proposals == [STUDENT] and not pipeline.methods:
        variant = confidence_variant(pipeline.zoom_stability, tta)
        return next((name for name, v in PRESET_VARIANTS.items() if v == variant), None)
    return None


_SAID: set[tuple[str, str | None]] = set()  # (student, preset) whose missing verdicts were said, in this process


def student_verdicts(
    student_checkpoint: str | Path, preset: str | None, review_threshold: float | None = None
) -> tuple[Verdicts | None, DepthCheck | None]:
    """(the verdicts of ``preset`` in the student's trust sidecar, its depth check). A student
    without a sidecar, or whose sidecar holds no verdicts for this kind of run, is said once: its
    verdicts are uncalibrated (no expected IoU; flagged below ``review_threshold`` or the fallback,
    :data:`~cam_sam.trust.UNCALIBRATED_REVIEW_THRESHOLD`; no out-of-depth check without a sidecar)."""
    trust = load_student_trust(student_checkpoint)
    verdicts = trust.verdicts.get(preset) if trust is not None and preset else None
    if verdicts is None and (str(student_checkpoint), preset) not in _SAID:
        _SAID.add((str(student_checkpoint), preset))
        path = trust_path(student_checkpoint)
        where = (
            f"{path} holds no verdicts for this kind of run ({preset or 'not a preset'})"
            if trust is not None
            else f"the student has no trust sidecar ({path}): no out-of-depth check either"
        )
        threshold = UNCALIBRATED_REVIEW_THRESHOLD if review_threshold is None else review_threshold
        log.warning(
            "%s; its verdicts are uncalibrated: no expected IoU, flagged below confidence %.2f "
            "(python -m self_training.ship fits them)",
            where,
            threshold,
        )
    return verdicts, trust.depth_check() if trust is not None else None
