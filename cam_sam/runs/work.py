"""The per-image work of a dataset run, in each process that segments: the models built, every
image of this process's share segmented, scored, written and drawn (:func:`segment_share`). The
run's planning, its worker processes and its summary live in :mod:`cam_sam.runs.dataset`, which
imports this module only where images are segmented.

Scores use the ground truth only after the pipeline has delivered its mask. ``oracle_*`` rows
choose among the same candidates WITH the ground truth: upper bounds, labelled so.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from cam_sam.multiclass import label_map, pixel_confusion, true_label
from cam_sam.pipeline import ImageOutput, PostprocessConfig
from cam_sam.postprocess import postprocess_mask
from cam_sam.runs.build import build_pipeline
from cam_sam.runs.overlays import OverlayFn, OverlayWriter
from cam_sam.settings import MULTICLASS_CHECKPOINT, ModelSettings, RunSettings
from classification.lesion_classifier import LesionClassifier
from common.devices import resolve_device
from common.errors import SettingsError
from common.io import encode_uncertainty, write_png
from common.metrics import mask_metrics
from common.runs import Deferred, ResumableRun
from common.shards import Shard
from data.isic import DataError, mask_at_size
from explainers.methods import CamResult


def evaluate(
    output: ImageOutput,
    truth: np.ndarray,
    postprocess: PostprocessConfig,
    oracle: bool,
    final: np.ndarray | None = None,
) -> dict[str, dict]:
    """Metrics per prompt source (each CAM method, ``colour``) and for the delivered (``final``)
    mask; with ``oracle``, also the ground-truth-chosen upper bounds ``oracle_<source>`` (best of
    that source's candidates, post-processed as the pipeline does) and ``oracle_final`` (best
    candidate of any source). Masks of an image segmented reduced are scored at the size of
    ``truth`` (:func:`data.isic.mask_at_size`), one at a time; ``final``: the delivered mask at
    that size, when the caller has it already. A mask met twice (the student's is also the
    delivered one, and its only candidate) is scored once."""
    seen: dict[int, tuple[np.ndarray | None, dict]] = {}
    if final is not None and output.final_mask is not None:  # the delivered mask at the truth's size: scored once
        seen[id(output.final_mask)] = (output.final_mask, mask_metrics(final, truth))

    def scored(mask: np.ndarray | None) -> dict:
        if id(mask) not in seen:  # the mask is kept with its scores, so its id stays its own
            seen[id(mask)] = (mask, mask_metrics(mask_at_size(mask, truth.shape), truth))
        return dict(seen[id(mask)][1])

    scores: dict[str, dict] = {}
    post = asdict(postprocess)
    best_any = None
    for source, out in output.sources.items():
        entry = scored(out.mask)
        entry.update(
            {
                "failed": out.mask is None,
                "pred_iou": out.score if out.mask is not None else None,
                "selection_score": out.selection_score if out.mask is not None else None,
            }
        )
        if out.cam is not None:
            entry["constant_cam"] = out.cam.constant
        if out.error:
            entry["error"] = out.error
        scores[source] = entry
        if oracle:
            best = scored(None)
            if out.candidates is not None:
                # the chosen candidate post-processed is the source's own mask
                candidates = [
                    scored(out.mask if k == out.chosen else postprocess_mask(m, **post))
                    for k, m in enumerate(out.candidates.masks)
                ]
                best = max(candidates, key=lambda m: m["iou"])
            scores[f"oracle_{source}"] = best
            if best_any is None or best["iou"] > best_any["iou"]:
                best_any = best
    for name, mask in output.derived.items():
        scores[name] = scored(mask)
    final_scores = scored(output.final_mask)
    final_scores.update({"failed": output.final_mask is None, "source": output.final_source})
    scores["final"] = final_scores
    if oracle:
        scores["oracle_final"] = best_any
    return scores


# Images whose scoring and writing may lag behind the segmentation (ResumableRun.process): they run
# in a thread beside the next image's segmentation (on a 2-core CPU about 0.008 s an image less on
# validation's large images, nothing measurable on 512 px crops: docs/experiments/sp-07); each holds its image
# and outputs in memory until written.
WRITE_BEHIND = 4


def segment_share(
    settings: RunSettings,
    overlay: OverlayFn | None,
    run: ResumableRun,
    dataset,
    ids: list[str],
    positions: dict[str, int],
    shard: Shard,
    build_lock=None,
    progress: bool = True,
    on_saved=None,
) -> None:
    """Segment ``shard``'s share of ``ids`` (those without a record) into ``run``: the models are
    built here (under ``build_lock``, so that processes starting together export a cache once);
    ``on_saved()`` after each record (:meth:`common.runs.ResumableRun.process`)."""
    models, run_dir = settings.models, run.dir
    device = shard.device(resolve_device(models.device))
    torch.manual_seed(settings.seed)
    with build_lock or nullcontext():
        pipeline = build_pipeline(models, settings.pipeline, device, multiclass=settings.multiclass)
        lesion_classifier = build_lesion_classifier(models, settings.multiclass, device)
    order_of = {image_id: i for i, image_id in enumerate(ids)}

    def work(_: int, image_id: str, sample) -> dict[str, Any] | Deferred:
        if isinstance(sample, DataError):
            return {"error": str(sample)}
        output = pipeline.segment(
            sample.image, cams=load_saved_cams(models.cam_dir, image_id, settings.pipeline.methods), image_id=image_id
        )
        # the classifier runs here, beside the pipeline
        labels = {} if lesion_classifier is None else write_label_map(run_dir, sample, output, lesion_classifier)

        def score_and_write() -> dict[str, Any]:  # in the run's writer thread (ResumableRun.process)
            final = mask_at_size(output.final_mask, sample.hw)  # once: the image's own size
            record = write_image_outputs(run_dir, image_id, output, settings.save_uncertainty, final)
            record["has_truth"] = sample.mask is not None
            if sample.mask is not None:
                record["metrics"] = evaluate(output, sample.mask, settings.pipeline.postprocess, settings.oracle, final)
            record.update(labels)
            overlays.draw(image_id, order_of[image_id] < settings.n_overlays, sample, output, record)
            return record

        return score_and_write

    overlays = OverlayWriter(overlay, run_dir, settings.n_overlays)
    try:
        run.process(
            shard.take(ids),
            work,
            desc="segment" if shard.world == 1 else f"segment (rank {shard.rank})",
            load=partial(sample_or_error, dataset, positions),
            progress=progress,
            write_behind=WRITE_BEHIND,
            on_saved=on_saved,
        )
    finally:
        overlays.close()


def set_threads(threads: int) -> None:
    """This process's thread count for torch (and through it the ONNX runtimes) and OpenCV."""
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


def sample_or_error(dataset, positions: dict[str, int], image_id: str):
    """The dataset's sample of ``image_id``, or the :class:`DataError` that reading it raised."""
    try:
        return dataset[positions[image_id]]
    except DataError as exc:
        return exc


def write_image_outputs(
    run_dir: Path, image_id: str, output: ImageOutput, save_uncertainty: bool, final: np.ndarray | None = None
) -> dict[str, Any]:
    """Write the delivered mask (and the uncertainty map) of one image; its record so far: the
    delivered source, its trust, or why there is no mask. ``final``: the delivered mask at the
    image's own size when it was segmented reduced (:func:`data.isic.mask_at_size`); the mask is
    written at that size, the uncertainty at the size segmented (an 8-bit PNG,
    :func:`common.io.encode_uncertainty`), and the record says both sizes (``image_size``,
    ``working_size``, each [H, W])."""
    record: dict[str, Any] = {"final_source": output.final_source}
    if output.trust is not None:
        record["trust"] = output.trust.to_record()
    mask = output.final_mask if final is None else final
    if mask is None:
        errors = {m: o.error for m, o in output.sources.items()}
        record["error"] = f"no prompt source gave a mask: {errors}"
    else:
        write_png(run_dir / "masks" / f"{image_id}.png", np.multiply(mask.view(np.uint8), 255, dtype=np.uint8))
        if mask.shape != output.final_mask.shape:
            record["image_size"], record["working_size"] = list(mask.shape), list(output.final_mask.shape)
    if output.uncertainty is not None and save_uncertainty:
        write_png(run_dir / "uncertainty" / f"{image_id}.png", encode_uncertainty(output.uncertainty), smooth=True)
    return record


def build_lesion_classifier(models: ModelSettings, multiclass: bool, device: str) -> LesionClassifier | None:
    """The three-class classifier of a ``multiclass`` run (``classifier``, ``classifier_checkpoint``)."""
    if not multiclass:
        return None
    if not models.classifier_checkpoint:
        raise SettingsError(
            "multiclass needs a three-class classifier_checkpoint, e.g. --set preset=multiclass "
            f"({MULTICLASS_CHECKPOINT})"
        )
    return LesionClassifier(models.classifier, models.classifier_checkpoint, device)


def write_label_map(run_dir: Path, sample, output: ImageOutput, classifier: LesionClassifier) -> dict[str, Any]:
    """Write ``labels/<id>.png`` (values of :data:`classification.tasks.LABEL_NAMES`) for the delivered
    mask; the record's ``class`` (the call and its probabilities) and, when the image has a mask
    and an ISIC 2017 Part 3 class, ``multiclass`` (true class, 4 x 4 pixel confusion)."""
    lesion = classifier.classify(sample.image)
    labels = label_map(mask_at_size(output.final_mask, sample.hw), sample.hw, lesion)  # the image's own size
    write_png(run_dir / "labels" / f"{sample.image_id}.png", labels)
    record: dict[str, Any] = {"class": lesion.to_record()}
    truth = true_label(sample.labels)
    if sample.mask is not None and truth is not None:
        record["multiclass"] = {"true": truth, "pixel_confusion": pixel_confusion(labels, sample.mask, truth).tolist()}
    return record


def load_saved_cams(cam_dir: str | None, image_id: str, methods: list[str]) -> dict[str, CamResult]:
    """Heatmaps written by explainers.generate_cams (``<cam_dir>/<method>/<id>.npy``), where they exist."""
    if not cam_dir:
        return {}
    cams = {}
    for method in methods:
        path = Path(cam_dir) / method / f"{image_id}.npy"
        if path.is_file():
            heatmap = np.load(path).astype(np.float32)
            cams[method] = CamResult(method, heatmap, bool(heatmap.max() <= 0), "saved")
    return cams
