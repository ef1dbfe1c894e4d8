"""One image through the zero-shot pipeline: prompt sources -> one encoding -> batched decoding
-> mask selection without ground truth -> post-processing.

Prompt sources: each CAM method (a box from the thresholded CAM plus perturbed copies, optionally
points); ``colour`` lesion proposals (:mod:`cam_sam.proposals`); and, with a trained student
(:mod:`models.student`), ``student`` (the student's own mask, no segmenter) and ``student_box``
(the box of the student's mask, padded, plus perturbed copies). Every segmenter source's
candidates are decoded against the same image embedding; within a source and then among the
sources named in ``final_sources``, the mask with the highest selection score is delivered: the
segmenter's predicted IoU plus a small weight times the candidate's agreement with the others.
The default configuration (``PipelineConfig()``) runs the student alone: no encoding, no decoding.

The pipeline never sees a ground-truth mask: :meth:`LesionPipeline.segment` takes the image alone.
It returns every candidate mask with its predicted IoU, so an evaluator may compute an *oracle*
choice afterwards, under its own label.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, NamedTuple

import cv2
import numpy as np

from cam_sam.calibration import Calibration
from cam_sam.depth import DepthCheck
from cam_sam.postprocess import postprocess_mask
from cam_sam.prompts import cam_to_box, perturb_boxes, perturb_points, sample_points
from cam_sam.proposals import ColourProposalConfig, colour_components, colour_proposals
from cam_sam.trust import (
    NO_LESION_REASON,
    UNCALIBRATED_REVIEW_THRESHOLD,
    Trust,
    arbitrate,
    candidate_signals,
    mask_trust,
    signals_among,
)
from common.errors import SettingsError
from common.geometry import mask_to_box, pad_box, pairwise_iou
from common.timing import StageTimer
from data.isic import check_image_content
from explainers.methods import CamResult

if TYPE_CHECKING:  # the networks' modules load torch: a pipeline is handed them, built elsewhere
    from explainers.cams import CamExplainer
    from medsam.base import PromptableSegmenter
    from models.student import StudentSegmenter

# fmt: off
COLOUR = "colour"
STUDENT = "student"            # the student's mask itself (no segmenter)
STUDENT_BOX = "student_box"    # the student mask's box, decoded by the segmenter
COLOUR_REGION = "colour_region"  # the colour proposals' own regions as masks (no segmenter)
PROPOSAL_SOURCES = (COLOUR, STUDENT, STUDENT_BOX, COLOUR_REGION)
SEGMENTER_SOURCES = (COLOUR, STUDENT_BOX)   # proposal sources decoded by the promptable segmenter
MASK_SOURCES = (STUDENT, COLOUR_REGION)     # sources whose candidates are masks, not decoded prompts
STUDENT_THRESHOLD = 0.5        # student probability above which a pixel is lesion
VOTE = "vote"                  # final_source of a mask voted by the final sources (final_rule "vote")
ARBITER = "arbiter"            # final rule: cam_sam.trust.arbitrate among the final sources and their vote
SELECT = "select"              # final rule: the final source's mask with the best selection score
LONE_REGION_SCORE = 0.5        # colour_region's score when only one region was found (no agreement to measure)
FINAL_RULES = (SELECT, VOTE, ARBITER)
EMPTY = "empty"                # final_source of an explicit empty mask (no_lesion_fallback)
NO_LESION_FALLBACKS = (COLOUR_REGION, EMPTY)
# sources made from another source's mask (not independent of it, when that one runs too)
DERIVED_FROM = {STUDENT_BOX: (STUDENT,), COLOUR: (COLOUR_REGION,)}
# fmt: on


@dataclass
class PromptConfig:
    """How a CAM becomes prompts. Fractions are of the box (padding, perturbation) or of the CAM
    peak (threshold)."""

    box_threshold: float = 0.5
    box_padding: float = 0.1
    n_perturbations: int = 10
    perturb_scale: float = 0.05
    n_points: int = 0  # positive points sampled from CAM**point_power (0: box only)
    point_power: float = 30.0


@dataclass
class PostprocessConfig:
    """Clean-up of the chosen mask. Kernel sizes are fractions of the shorter image side."""

    open_frac: float = 0.0
    close_frac: float = 0.0
    keep_largest: bool = True
    fill_holes: bool = True


@dataclass
class Candidates:
    """Every decoded prompt of one source. ``boxes``: (K, 4) xyxy; ``points``: (K, N, 2) or None;
    ``masks``: (K, H, W) bool; ``scores``: (K,) predicted IoU."""

    boxes: np.ndarray
    points: np.ndarray | None
    point_labels: np.ndarray | None
    masks: np.ndarray
    scores: np.ndarray


def agreement(masks: np.ndarray) -> np.ndarray:
    """(K,) mean IoU of each of K boolean (K, H, W) masks with the K - 1 others (0 when K == 1)."""
    k = len(masks)
    if k < 2:
        return np.zeros(k, np.float32)
    return ((pairwise_iou(masks).sum(axis=1) - 1.0) / (k - 1)).astype(np.float32)


def selection_scores(pred_iou: np.ndarray, masks: np.ndarray, agreement_weight: float) -> np.ndarray:
    """The score a candidate is chosen by, without ground truth: the segmenter's predicted IoU plus
    ``agreement_weight`` x its mean IoU with the other candidates of the same source (a mask that
    the other prompts also find is more likely the lesion)."""
    if agreement_weight == 0:
        return np.asarray(pred_iou, np.float32)
    return np.asarray(pred_iou, np.float32) + agreement_weight * agreement(masks)


@dataclass
class SourceOutput:
    """One prompt source's result: its CAM (None for ``colour``), candidates, the index chosen by
    :func:`selection_scores` and the post-processed mask (H, W) bool; ``error`` says why there is none."""

    cam: CamResult | None
    candidates: Candidates | None
    chosen: int | None
    mask: np.ndarray | None
    error: str | None = None
    selection: np.ndarray | None = None  # (K,) selection score of each candidate

    @property
    def score(self) -> float:
        """The predicted IoU of the chosen mask."""
        return float(self.candidates.scores[self.chosen]) if self.chosen is not None else float("-inf")

    @property
    def selection_score(self) -> float:
        return float(self.selection[self.chosen]) if self.chosen is not None else float("-inf")


@dataclass
class ImageOutput:
    sources: dict[str, SourceOutput]
    final_source: str | None
    final_mask: np.ndarray | None
    uncertainty: np.ndarray | None = None  # (H, W) float32: std of the masks that compete for the delivered one
    trust: Trust | None = None  # the delivered mask's confidence, review flag and reason
    derived: dict[str, np.ndarray] = field(default_factory=dict)  # masks made from several sources ("vote")


@dataclass
class PipelineConfig:
    """Which prompt sources run, how the delivered mask is chosen, and every group of settings."""

    methods: list[str] = field(default_factory=list)
    """CAM methods (explainers.EXPLAIN_METHODS: the grad-cam ones and "lrp"), each a prompt source.
    None by default: no CAM box ever won the delivered mask in the ablation, and running one costs
    a classifier pass and 11 decodes per image; ``["gradcam"]`` reports its row beside colour's."""
    proposals: list[str] = field(default_factory=lambda: [STUDENT])
    """Other prompt sources: any of "colour", "student", "student_box", "colour_region" (the colour
    proposals' regions themselves, no segmenter). The default runs the self-trained student alone,
    the best configuration on both evaluation sets (docs/results.md): no segmenter and no CAM.
    The colour regions do not run beside it: as a second opinion for its confidence they lowered
    how well it ranks failures on both evaluation sets (docs/experiments/tr-12). The
    route through the segmenter (teacher "colour", "student_box", their arbiter) is the preset "arbiter"."""
    final_sources: list[str] = field(default_factory=lambda: [STUDENT])
    """Sources whose best-scored mask competes for the delivered ("final") mask."""
    agreement_weight: float = 0.1
    """Selection score = predicted IoU + this x mean IoU with the source's other candidates."""
    student_box_padding: float = 0.05
    """student_box: the student mask's box is padded by this fraction of its size."""
    student_box_perturbations: int = 2
    """student_box: perturbed copies of that box decoded beside it (the student's box is tight
    already; the CAM boxes' ``prompts.n_perturbations`` does not apply to it)."""
    final_rule: str = SELECT
    """How the delivered mask comes from the final sources: "select" (the best selection score),
    "vote" (pixels where a strict majority of the final sources' chosen masks agree; "select" when
    that is empty) or "arbiter" (among the final sources' masks and their vote, the highest
    label-free arbiter score of :mod:`cam_sam.trust`: agreement between independent sources, the
    source's own score, plausibility)."""
    zoom_stability: bool = True
    """Measure the student's agreement with itself on the zoomed-out image for the confidence
    (:meth:`StudentSegmenter.zoom_agreement`: one more image in the student's batch,
    :meth:`StudentSegmenter.predict_with_zoom`); it never changes a mask. Off in the preset "fast"."""
    review_threshold: float | None = None
    """A delivered mask whose confidence (:mod:`cam_sam.trust`) is below this is flagged for review.
    None: the student's own threshold for this kind of run, from its trust sidecar
    (:mod:`cam_sam.calibration`); where none holds one (a student without a sidecar, a run without
    a student), :data:`cam_sam.trust.UNCALIBRATED_REVIEW_THRESHOLD`."""
    no_lesion_fallback: str = COLOUR_REGION
    """What is delivered when the student is the delivered source and finds no lesion (the image
    is flagged "the student found no lesion" whatever this is): "colour_region", the colour
    regions' mask (the region they agree on most, :mod:`cam_sam.proposals`), or an empty mask
    where they find none either; "empty", an empty mask."""
    prompts: PromptConfig = field(default_factory=PromptConfig)
    colour: ColourProposalConfig = field(default_factory=ColourProposalConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    seed: int = 0

    @property
    def sources(self) -> list[str]:
        return list(self.methods) + [p for p in self.proposals if p not in self.methods]

    @property
    def needs_student(self) -> bool:
        return any(p in (STUDENT, STUDENT_BOX) for p in self.proposals)


def soft_iou(prob: np.ndarray, mask: np.ndarray) -> float:
    """sum(min(p, m)) / sum(max(p, m)) of a probability map and its binary mask: 1 when the map is
    crisp, lower where it hesitates. The student's own estimate of its mask's IoU."""
    m = mask.astype(np.float32)
    union = float(np.maximum(prob, m).sum())
    return float(np.minimum(prob, m).sum()) / union if union > 0 else 0.0


class StudentPrediction(NamedTuple):
    """The student on one image: ``prob`` (H, W) float32 and ``mask`` (H, W) bool (probability >
    :data:`STUDENT_THRESHOLD`, post-processed), both in original pixels; ``stability``: its flip
    agreement (:meth:`StudentSegmenter.predict`); ``zoom_stability``: its agreement with itself on
    the zoomed-out image (:meth:`StudentSegmenter.zoom_agreement`; 1.0 when not measured)."""

    prob: np.ndarray
    mask: np.ndarray
    stability: float
    zoom_stability: float = 1.0
    features: np.ndarray | None = None  # (C,) the encoder's pooled deepest features (cam_sam.depth)


def student_mask(
    student: StudentSegmenter, image: np.ndarray, postprocess: PostprocessConfig | None = None, zoom: bool = False
) -> StudentPrediction:
    """The ``student`` source's mask of an (H, W, 3) uint8 RGB image; ``zoom``: also measure its
    zoom stability (one more image in the same forward pass; the confidence uses it, the mask never does)."""
    if zoom:  # the flips and the zoomed-out view in one forward pass
        prob, stability, features, zoom_stability = student.predict_with_zoom(image)
    else:
        (prob, stability, features), zoom_stability = student.predict_with_features(image), 1.0
    mask = postprocess_mask(prob > STUDENT_THRESHOLD, **asdict(postprocess or PostprocessConfig()))
    return StudentPrediction(prob, mask, stability, zoom_stability, features)


class LesionPipeline:
    """Lesion segmentation of single images, without pixel labels: by the self-trained student
    alone (the default), or by CAM and colour prompts decoded by a promptable segmenter, or both
    with a label-free choice among them.

    ``explainer`` gives the CAMs; ``segmenter`` encodes each image once and decodes every prompt
    of every source against that one embedding; ``student`` (optional) gives the student sources.
    The student alone needs neither explainer nor segmenter.
    """

    def __init__(
        self,
        explainer: CamExplainer | None,
        segmenter: PromptableSegmenter | None,
        config: PipelineConfig,
        student: StudentSegmenter | None = None,
        depth: DepthCheck | None = None,
        calibration: Calibration | None = None,
    ) -> None:
        unknown = [p for p in config.proposals if p not in PROPOSAL_SOURCES]
        if unknown:
            raise SettingsError(f"unknown proposal source(s) {unknown}; available: {list(PROPOSAL_SOURCES)}")
        if config.no_lesion_fallback not in NO_LESION_FALLBACKS:
            raise SettingsError(
                f"no_lesion_fallback must be one of {list(NO_LESION_FALLBACKS)}, got {config.no_lesion_fallback!r}"
            )
        if config.final_rule not in FINAL_RULES:
            raise SettingsError(f"final_rule must be one of {list(FINAL_RULES)}, got {config.final_rule!r}")
        if config.needs_student and student is None:
            raise SettingsError("the student sources need a trained student (student_checkpoint)")
        missing = [s for s in config.final_sources if s not in config.sources]
        if missing:
            raise SettingsError(f"final_sources {missing} are neither CAM methods nor proposals of this run")
        if config.methods and explainer is None:
            raise SettingsError("CAM methods need an explainer")
        if segmenter is None and (config.methods or any(p in SEGMENTER_SOURCES for p in config.proposals)):
            raise SettingsError("CAM methods, colour and student_box need a promptable segmenter")
        self.explainer = explainer
        self.segmenter = segmenter
        self.config = config
        self.student = student
        self.depth = depth  # is the image like the student's training images (cam_sam.depth)
        self.calibration = calibration  # confidence -> expected IoU (cam_sam.calibration)
        self.timer = StageTimer()  # seconds per stage, read by cam_sam.studies.benchmark

    def cam_prompts(self, cam: np.ndarray, rng: np.random.Generator):
        """(boxes (K, 4), points (K, N, 2) | None, labels (K, N) | None) for one CAM, or None when
        it has no region. Row 0 is the unperturbed box."""
        p = self.config.prompts
        hw = cam.shape
        box = cam_to_box(cam, p.box_threshold, p.box_padding)
        if box is None:
            return None
        boxes = np.concatenate([box[None], perturb_boxes(box, p.n_perturbations, p.perturb_scale, rng, hw)])
        if p.n_points == 0:
            return boxes, None, None
        points = sample_points(cam, p.n_points, p.point_power, rng)
        labels = np.ones(len(points), np.int64)
        moved = perturb_points(points, p.n_perturbations, p.perturb_scale, box, rng, hw)
        all_points = np.concatenate([points[None], moved])  # row 0 unperturbed, like the boxes
        return boxes, all_points, np.repeat(labels[None], len(boxes), 0)

    def segment(
        self, image: np.ndarray, cams: dict[str, CamResult] | None = None, image_id: str = "image"
    ) -> ImageOutput:
        """Segment one (H, W, 3) uint8 image. ``cams``: precomputed CAMs (method -> result) to
        reuse instead of recomputing them. Stages are timed into :attr:`timer`."""
        check_image_content(image, image_id)
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        cams = dict(cams or {})
        missing = [m for m in cfg.methods if m not in cams]
        if missing:
            with self.timer.stage("classifier + CAM"):
                cams.update(self.explainer.explain(image, missing))
        with self.timer.stage("proposals"):
            prompts, errors, student = self._prompts(image, cams, rng)
        if any(v is not None for k, v in prompts.items() if k != COLOUR_REGION):
            with self.timer.stage("encoder"):
                self.segmenter.set_image(image)  # the one expensive encoding of this image
        outputs: dict[str, SourceOutput] = {}
        for source in cfg.sources:
            cam = cams.get(source)
            if source == STUDENT:
                outputs[source] = self._student_output(student)
            elif source == COLOUR_REGION and prompts.get(source) is not None:
                outputs[source] = self._region_output(prompts[source], image.shape[:2])
            elif prompts.get(source) is None:
                outputs[source] = SourceOutput(cam, None, None, None, error=errors.get(source))
            else:
                outputs[source] = self._decode_and_choose(prompts[source], cam)
        return self._finalise(outputs, student, image)

    def _prompts(self, image: np.ndarray, cams: dict[str, CamResult], rng: np.random.Generator):
        """(prompts per source (or None), why a source has none, the student's (prob, mask) or None)."""
        cfg = self.config
        prompts: dict[str, tuple | None] = {}
        errors: dict[str, str] = {}
        for method in cfg.methods:
            prompts[method] = None if cams[method].constant else self.cam_prompts(cams[method].heatmap, rng)
            if prompts[method] is None:
                errors[method] = "constant CAM" if cams[method].constant else "empty CAM region"
        components = colour_components(image, cfg.colour) if {COLOUR, COLOUR_REGION} & set(cfg.proposals) else []
        if COLOUR_REGION in cfg.proposals:
            prompts[COLOUR_REGION] = components or None
            if not components:
                errors[COLOUR_REGION] = "no colour region"
        if COLOUR in cfg.proposals:
            boxes = colour_proposals(image, cfg.colour, components)
            prompts[COLOUR] = (boxes, None, None) if len(boxes) else None
            if not len(boxes):
                errors[COLOUR] = "no colour proposal"
        student = self._student_mask(image) if cfg.needs_student else None
        if STUDENT_BOX in cfg.proposals:
            prompts[STUDENT_BOX] = self._student_box_prompts(student.mask, rng) if student is not None else None
            if prompts[STUDENT_BOX] is None:
                errors[STUDENT_BOX] = "empty student mask"
        return prompts, errors, student

    def _decode_and_choose(self, prompts: tuple, cam: CamResult | None) -> SourceOutput:
        """Decode one source's prompts and choose its mask by the selection score."""
        cfg = self.config
        boxes, points, labels = prompts
        with self.timer.stage("decoding"):
            pred = self.segmenter.predict(boxes=boxes, points=points, point_labels=labels)
        with self.timer.stage("selection"):
            selection = selection_scores(pred.scores, pred.masks, cfg.agreement_weight)
            chosen = int(np.argmax(selection))
            mask = postprocess_mask(pred.masks[chosen], **asdict(cfg.postprocess))
        return SourceOutput(
            cam, Candidates(boxes, points, labels, pred.masks, pred.scores), chosen, mask, selection=selection
        )

    def _student_mask(self, image: np.ndarray) -> StudentPrediction:
        return student_mask(self.student, image, self.config.postprocess, zoom=self.config.zoom_stability)

    def _student_box_prompts(self, mask: np.ndarray, rng: np.random.Generator):
        """The student mask's box, padded, and perturbed copies (row 0 unperturbed); None when empty."""
        box = mask_to_box(mask)
        if box is None:
            return None
        p = self.config.prompts
        box = pad_box(box, self.config.student_box_padding, mask.shape)
        moved = perturb_boxes(box, self.config.student_box_perturbations, p.perturb_scale, rng, mask.shape)
        return np.concatenate([box[None], moved]), None, None

    def _region_output(self, components: list[np.ndarray], hw: tuple[int, int]) -> SourceOutput:
        """The ``colour_region`` source: every colour region (work size) resized to the image as a
        candidate; the one agreeing most with the others is chosen, its agreement is its score."""
        masks = np.stack(
            [cv2.resize(c.astype(np.uint8), (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST) > 0 for c in components]
        )
        score = agreement(masks) if len(masks) > 1 else np.full(1, LONE_REGION_SCORE, np.float32)
        chosen = int(np.argmax(score))
        boxes = np.stack([mask_to_box(m) for m in masks])
        mask = postprocess_mask(masks[chosen], **asdict(self.config.postprocess))
        return SourceOutput(None, Candidates(boxes, None, None, masks, score), chosen, mask, selection=score)

    def _student_output(self, student: StudentPrediction) -> SourceOutput:
        """The ``student`` source: its mask as the one candidate, scored by :func:`soft_iou`."""
        prob, mask = student.prob, student.mask
        if not mask.any():
            return SourceOutput(None, None, None, None, error="empty student mask")
        score = np.array([soft_iou(prob, mask)], np.float32)
        box = mask_to_box(mask)[None]
        return SourceOutput(None, Candidates(box, None, None, mask[None], score), 0, mask, selection=score)

    def _finalise(
        self, outputs: dict[str, SourceOutput], student: tuple | None = None, image: np.ndarray | None = None
    ) -> ImageOutput:
        """The delivered mask from ``final_sources`` by ``final_rule`` (if none of them produced a
        mask, from every source that did), and its :class:`~cam_sam.trust.Trust`. Uncertainty: the
        per-pixel std of the masks that compete for the delivered one (every candidate of the one
        final source when there is one; the student's Bernoulli std sqrt(p (1 - p)) when it is the
        only final source)."""
        cfg = self.config
        produced = [s for s in cfg.sources if outputs[s].chosen is not None]
        if not produced and cfg.final_sources == [STUDENT] and student is not None and image is not None:
            return self._no_lesion(outputs, student, image)
        if not produced:
            return ImageOutput(outputs, None, None)
        pool = [s for s in cfg.final_sources if s in produced] or produced
        masks = {s: outputs[s].mask for s in produced}
        quality = {s: outputs[s].score for s in produced}
        parents = {s: tuple(p for p in DERIVED_FROM[s] if p in produced) for s in produced if s in DERIVED_FROM}
        if cfg.final_rule in (VOTE, ARBITER) and len(pool) > 1:
            votes = np.sum([outputs[s].mask for s in pool], axis=0)
            voted = postprocess_mask(votes * 2 > len(pool), **asdict(cfg.postprocess))
            if voted.any():
                masks[VOTE], parents[VOTE] = voted, tuple(pool)
                quality[VOTE] = float(np.mean([quality[s] for s in pool]))
        with self.timer.stage("trust"):
            measured = student is not None and STUDENT in masks
            stability = {STUDENT: (student.stability, student.zoom_stability)} if measured else {}
            signals, pairwise = (
                candidate_signals(image, masks, quality, parents, cfg.colour, stability)
                if image is not None
                else (None, None)
            )
        with self.timer.stage("selection"):
            return self._deliver(outputs, produced, pool, masks, (signals, pairwise, parents), student, image)

    def _deliver(
        self, outputs, produced, pool, masks, trust_inputs, student: StudentPrediction | None, image: np.ndarray | None
    ) -> ImageOutput:
        """The final choice by ``final_rule``, the uncertainty and the trust of the delivered mask."""
        cfg = self.config
        signals, pairwise, parents = trust_inputs
        final = max(pool, key=lambda s: outputs[s].selection_score)
        if cfg.final_rule == VOTE and VOTE in masks:
            final = VOTE
        elif cfg.final_rule == ARBITER and signals is not None:
            # the arbiter weighs agreement among the competing masks only (not the other sources)
            final = arbitrate(signals_among(signals, pairwise, parents, pool + ([VOTE] if VOTE in masks else [])))
        mask = masks[final]
        if pool == [STUDENT] and student is not None:
            uncertainty = np.sqrt(student.prob * (1 - student.prob))
        else:
            competing = outputs[pool[0]].candidates.masks if len(pool) == 1 else np.stack([masks[s] for s in pool])
            uncertainty = competing.astype(np.float32).std(axis=0)
        measured = self.depth is not None and student is not None and student.features is not None and image is not None
        distance, out_of_depth = self.depth.assess(student.features, image) if measured else (None, None)
        threshold = UNCALIBRATED_REVIEW_THRESHOLD if cfg.review_threshold is None else cfg.review_threshold
        trust = (
            mask_trust(signals, final, threshold, pairwise, parents, distance, out_of_depth)
            if signals is not None
            else None
        )
        if trust is not None and self.calibration is not None:
            trust = replace(trust, expected_iou=self.calibration(trust.confidence))
        derived = {VOTE: masks[VOTE]} if VOTE in masks else {}
        return ImageOutput(outputs, final, mask, uncertainty=uncertainty, trust=trust, derived=derived)

    def _no_lesion(
        self, outputs: dict[str, SourceOutput], student: StudentPrediction, image: np.ndarray
    ) -> ImageOutput:
        """The student, the delivered source, found no lesion: the mask of ``no_lesion_fallback``,
        flagged with :data:`~cam_sam.trust.NO_LESION_REASON` (confidence 0, no expected IoU; the
        out-of-depth check still measured)."""
        mask, source = np.zeros(image.shape[:2], bool), EMPTY
        if self.config.no_lesion_fallback == COLOUR_REGION:
            components = colour_components(image, self.config.colour)
            if components:
                mask, source = self._region_output(components, image.shape[:2]).mask, COLOUR_REGION
        measured = self.depth is not None and student.features is not None
        distance, out_of_depth = self.depth.assess(student.features, image) if measured else (None, None)
        trust = Trust(
            0.0, True, NO_LESION_REASON, {}, depth_distance=distance, out_of_depth=out_of_depth, no_lesion=True
        )
        return ImageOutput(outputs, source, mask, trust=trust)
