"""One image at a time, for interactive use (the web page ``cam_sam.serve.app``, the demo notebook):
the same :func:`cam_sam.runs.build.build_pipeline` as ``cam_sam.segment``, with every model loaded
once and shared by all requests.

A request names a classifier, a CAM method and a segmenter by their labels; the service keeps one
explainer per classifier, one segmenter per segmenter and one pipeline per combination. The CAM is
always computed (it is what the page shows). The ``student`` choice runs the default pipeline
(preset ``student``: the self-trained student, no segmenter); a segmenter choice runs the preset
``arbiter`` through that segmenter (teacher, student and its box; the CAM's box decoded and shown
beside them).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from cam_sam.pipeline import ImageOutput, LesionPipeline, PipelineConfig
from cam_sam.runs.build import build_explainer, build_pipeline, build_segmenter, needs_segmenter
from cam_sam.settings import ModelSettings
from classification.lesion_classifier import LesionClassifier
from classification.tasks import LesionClass
from common.errors import SettingsError
from common.metrics import mask_metrics
from data.isic import DataError, check_image_content
from explainers.cams import CamResult

STUDENT_CHOICE = "student"  # the segmenter choice that runs the default, preset "student" (no segmenter)
SEGMENTER_PRESET = "arbiter"  # what a segmenter choice runs (cam_sam.settings.PRESETS)
MAX_PIXELS = 40_000_000  # larger images are refused: decoding them would exhaust memory
MIN_SIDE = 32  # shorter sides are refused: nothing to see at CAM resolution


@dataclass
class ServiceResult:
    """What one request returns. ``cam``: the CAM shown (None when its method failed);
    ``prompts``: (K, 4) xyxy boxes that prompted the segmenter from the CAM (None if none);
    ``metrics``: IoU/Dice against an uploaded ground truth, else None."""

    output: ImageOutput
    cam: CamResult | None
    prompts: np.ndarray | None
    metrics: dict[str, float] | None
    seconds: float
    lesion: LesionClass | None = None  # the three-class classifier's call, when the service has one

    @property
    def chosen(self):
        return self.output.sources.get(self.output.final_source) if self.output.final_source else None


def check_request_image(image: np.ndarray, name: str) -> None:
    """Raise :class:`DataError` (naming ``name``) for an image the service will not segment."""
    check_image_content(image, name)
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise DataError(f"{name}: image is too small ({w}x{h}); the shorter side must be at least {MIN_SIDE} px")
    if h * w > MAX_PIXELS:
        raise DataError(
            f"{name}: image is too large ({w}x{h}, {h * w / 1e6:.0f} MP); at most {MAX_PIXELS / 1e6:.0f} MP"
        )


class SegmentationService:
    """``choices``: segmenter label -> (models, pipeline) it runs, resolved by the script from its
    CONFIG: :data:`STUDENT_CHOICE` (the default pipeline) and, per segmenter, the arbiter through
    it (module docstring). ``classifiers``: label -> classifier checkpoint (None: the ImageNet
    weights of the models' ``classifier``). ``lesion_checkpoint``: a three-class classifier
    (:mod:`cam_sam.multiclass`) that names each lesion's class beside its mask; None: no class."""

    def __init__(
        self,
        choices: dict[str, tuple[ModelSettings, PipelineConfig]],
        classifiers: dict[str, str | None],
        device: str = "cpu",
        lesion_checkpoint: str | None = None,
    ) -> None:
        if STUDENT_CHOICE not in choices:
            raise SettingsError(f"the service needs the {STUDENT_CHOICE!r} choice (the default pipeline)")
        self.choices, self.classifiers, self.device = choices, classifiers, device
        base_models = choices[STUDENT_CHOICE][0]
        self.lesion_classifier = (
            LesionClassifier(base_models.classifier, lesion_checkpoint, device) if lesion_checkpoint else None
        )
        self._explainers: dict[str, Any] = {}
        self._segmenters: dict[str, Any] = {}
        self._pipelines: dict[tuple[str, str, str], LesionPipeline] = {}
        self._lock = threading.Lock()  # one request at a time uses the models

    @property
    def segmenter_choices(self) -> list[str]:
        return [STUDENT_CHOICE, *(c for c in self.choices if c != STUDENT_CHOICE)]

    def settings(self, classifier: str, method: str, segmenter: str) -> tuple[ModelSettings, PipelineConfig]:
        """(models, pipeline) of one request: its segmenter choice with the chosen classifier and,
        through a segmenter, this CAM method decoded beside the arbiter's sources."""
        if classifier not in self.classifiers:
            raise SettingsError(f"unknown classifier {classifier!r}; available: {list(self.classifiers)}")
        if segmenter not in self.choices:
            raise SettingsError(f"unknown segmenter {segmenter!r}; available: {self.segmenter_choices}")
        models, pipeline = self.choices[segmenter]
        models = replace(models, classifier_checkpoint=self.classifiers[classifier])
        return models, pipeline if segmenter == STUDENT_CHOICE else replace(pipeline, methods=[method])

    def pipeline(self, classifier: str, method: str, segmenter: str) -> LesionPipeline:
        key = (classifier, method, segmenter)
        if key not in self._pipelines:
            models, pipeline = self.settings(classifier, method, segmenter)
            seg = None
            if needs_segmenter(pipeline):
                seg = self._segmenters.get(segmenter) or build_segmenter(models, self.device)
                self._segmenters[segmenter] = seg
            # the page always computes the CAM it shows, so its classifier is never unused
            self._pipelines[key] = build_pipeline(
                models, pipeline, self.device, self.explainer(classifier), seg, refuse_unused=False
            )
        return self._pipelines[key]

    def explainer(self, classifier: str):
        if classifier not in self._explainers:
            models = replace(self.choices[STUDENT_CHOICE][0], classifier_checkpoint=self.classifiers[classifier])
            self._explainers[classifier] = build_explainer(models, self.device)
        return self._explainers[classifier]

    def segment(
        self,
        image: np.ndarray,
        classifier: str,
        method: str,
        segmenter: str,
        truth: np.ndarray | None = None,
        name: str = "image",
    ) -> ServiceResult:
        """Segment one (H, W, 3) uint8 image; ``truth`` (H, W) bool is only scored, after the fact."""
        check_request_image(image, name)
        if truth is not None and truth.shape != image.shape[:2]:
            raise DataError(
                f"the ground-truth mask is {truth.shape[1]}x{truth.shape[0]} but {name} is "
                f"{image.shape[1]}x{image.shape[0]}"
            )
        with self._lock:
            start = time.perf_counter()
            pipe = self.pipeline(classifier, method, segmenter)
            cam = self.explainer(classifier).explain(image, [method])[method]
            output = pipe.segment(image, cams={method: cam}, image_id=name)
            lesion = self.lesion_classifier.classify(image) if self.lesion_classifier is not None else None
            seconds = time.perf_counter() - start
        source = output.sources.get(method)
        prompts = source.candidates.boxes if source is not None and source.candidates is not None else None
        metrics = None
        if truth is not None:
            metrics = {k: v for k, v in mask_metrics(output.final_mask, truth).items() if k in ("iou", "dice")}
        return ServiceResult(output, None if cam.constant else cam, prompts, metrics, seconds, lesion)
