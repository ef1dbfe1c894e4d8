"""One image through the zero-shot pipeline: CAMs -> prompts -> one encoding -> batched decoding
-> mask selection without ground truth -> post-processing.

The pipeline never sees a ground-truth mask: :meth:`CamSamPipeline.segment` takes the image alone.
It returns every candidate mask with its predicted IoU, so an evaluator may compute an *oracle*
choice afterwards, under its own label.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from cam_sam.postprocess import postprocess_mask
from cam_sam.prompts import cam_to_box, negative_points, perturb_boxes, sample_points
from data.isic import check_image_content
from explainers.cams import CamExplainer, CamResult
from medsam.base import PromptableSegmenter


@dataclass
class PromptConfig:
    """How a CAM becomes prompts. Fractions are of the box (padding, perturbation) or of the CAM
    peak (threshold)."""

    box_threshold: float = 0.5
    box_padding: float = 0.1
    n_perturbations: int = 10
    perturb_scale: float = 0.05
    n_points: int = 0              # positive points sampled from CAM**point_power (0: box only)
    point_power: float = 30.0
    n_negative_points: int = 0     # background points from the low-CAM region
    negative_max_cam: float = 0.1


@dataclass
class PostprocessConfig:
    open_frac: float = 0.0
    close_frac: float = 0.0
    keep_largest: bool = True
    fill_holes: bool = True


@dataclass
class Candidates:
    """Every decoded prompt of one CAM method. ``boxes``: (K, 4) xyxy; ``points``: (K, N, 2) or
    None; ``masks``: (K, H, W) bool; ``scores``: (K,) predicted IoU. Row 0 is the unperturbed prompt."""

    boxes: np.ndarray
    points: np.ndarray | None
    point_labels: np.ndarray | None
    masks: np.ndarray
    scores: np.ndarray


@dataclass
class MethodOutput:
    cam: CamResult
    candidates: Candidates | None
    chosen: int | None            # index into candidates, chosen by predicted IoU
    mask: np.ndarray | None       # post-processed chosen mask, (H, W) bool
    error: str | None = None

    @property
    def score(self) -> float:
        return float(self.candidates.scores[self.chosen]) if self.chosen is not None else float("-inf")


@dataclass
class ImageOutput:
    methods: dict[str, MethodOutput]
    final_method: str | None
    final_mask: np.ndarray | None
    uncertainty: np.ndarray | None = None   # (H, W) float32: spread of all candidate masks


@dataclass
class PipelineConfig:
    methods: list[str] = field(default_factory=lambda: ["gradcam"])
    prompts: PromptConfig = field(default_factory=PromptConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class CamSamPipeline:
    """CAM-prompted zero-shot segmentation of single images.

    ``explainer`` gives the CAMs; ``segmenter`` encodes each image once and decodes every prompt
    of every CAM method against that one embedding.
    """

    def __init__(self, explainer: CamExplainer, segmenter: PromptableSegmenter, config: PipelineConfig) -> None:
        self.explainer = explainer
        self.segmenter = segmenter
        self.config = config

    def prompts_for(self, cam: np.ndarray, rng: np.random.Generator):
        """(boxes (K, 4), points (K, N, 2) | None, labels (K, N) | None) for one CAM; None if flat."""
        p = self.config.prompts
        hw = cam.shape
        box = cam_to_box(cam, p.box_threshold, p.box_padding)
        if box is None:
            return None
        boxes = np.concatenate([box[None], perturb_boxes(box, p.n_perturbations, p.perturb_scale, rng, hw)])
        if p.n_points == 0 and p.n_negative_points == 0:
            return boxes, None, None
        pos = sample_points(cam, p.n_points, p.point_power, rng) if p.n_points else np.zeros((0, 2), np.float32)
        neg = (negative_points(cam, p.n_negative_points, rng, p.negative_max_cam)
               if p.n_negative_points else np.zeros((0, 2), np.float32))
        points = np.concatenate([pos, neg])
        labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))]).astype(np.int64)
        k = len(boxes)
        return boxes, np.repeat(points[None], k, 0), np.repeat(labels[None], k, 0)

    def segment(self, image: np.ndarray, cams: dict[str, CamResult] | None = None,
                image_id: str = "image") -> ImageOutput:
        """Segment one (H, W, 3) uint8 image. ``cams``: precomputed CAMs (method -> result) to
        reuse instead of recomputing them."""
        check_image_content(image, image_id)
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        missing = [m for m in cfg.methods if cams is None or m not in cams]
        cams = dict(cams or {})
        if missing:
            cams.update(self.explainer.explain(image, missing))
        prompts = {}
        for method in cfg.methods:
            if not cams[method].constant:
                prompts[method] = self.prompts_for(cams[method].heatmap, rng)
        outputs: dict[str, MethodOutput] = {}
        if any(v is not None for v in prompts.values()):
            self.segmenter.set_image(image)   # the one expensive encoding of this image
        for method in cfg.methods:
            prompt = prompts.get(method)
            if prompt is None:
                reason = "constant CAM" if cams[method].constant else "empty CAM region"
                outputs[method] = MethodOutput(cams[method], None, None, None, error=reason)
                continue
            boxes, points, labels = prompt
            pred = self.segmenter.predict(boxes=boxes, points=points, point_labels=labels)
            cand = Candidates(boxes, points, labels, pred.masks, pred.scores)
            chosen = int(np.argmax(pred.scores))
            mask = postprocess_mask(pred.masks[chosen], **asdict(cfg.postprocess))
            outputs[method] = MethodOutput(cams[method], cand, chosen, mask)
        scored = [m for m in cfg.methods if outputs[m].chosen is not None]
        if not scored:
            return ImageOutput(outputs, None, None)
        final = max(scored, key=lambda m: outputs[m].score)
        stack = np.concatenate([outputs[m].candidates.masks for m in scored]).astype(np.float32)
        return ImageOutput(outputs, final, outputs[final].mask, uncertainty=stack.std(axis=0))
