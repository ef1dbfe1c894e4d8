"""Segmenting a dataset into a resumable run folder and scoring it: the library behind
``cam_sam.segment``, ``cam_sam.studies.ablation`` and the student evaluations.

Scores use the ground truth only after the pipeline has delivered its mask. ``oracle_*`` rows
choose among the same candidates WITH the ground truth: upper bounds, labelled so.
"""
from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, replace
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from cam_sam.multiclass import CLASS_RULES, LABEL_NAMES, LesionClassifier, label_map, multiclass_summary, pixel_confusion, true_label
from cam_sam.pipeline import ImageOutput, PostprocessConfig
from cam_sam.postprocess import postprocess_mask
from cam_sam.runs.build import build_pipeline, open_data
from cam_sam.settings import MULTICLASS_CHECKPOINT, SEGMENT_CONFIG, SEGMENT_RESUMABLE, ModelSettings, RunSettings
from common.devices import resolve_device
from common.distributed import Shard
from common.io import read_json, resolve_run_dir, write_csv, write_json, write_npy, write_png
from common.metrics import auroc_fail, failure_counts, flag_summary, mask_metrics, risk_coverage
from common.runs import Deferred, ResumableRun
from data.isic import DataError, subset_ids
from explainers.cams import CamResult

log = logging.getLogger("cam_sam.segment")

OverlayFn = Callable[[Path, str, np.ndarray, "np.ndarray | None", ImageOutput, dict], None]


def evaluate(output: ImageOutput, truth: np.ndarray, postprocess: PostprocessConfig, oracle: bool) -> dict[str, dict]:
    """Metrics per prompt source (each CAM method, ``colour``) and for the delivered (``final``)
    mask; with ``oracle``, also the ground-truth-chosen upper bounds ``oracle_<source>`` (best of
    that source's candidates, post-processed as the pipeline does) and ``oracle_final`` (best
    candidate of any source)."""
    scores: dict[str, dict] = {}
    post = asdict(postprocess)
    best_any = None
    for source, out in output.sources.items():
        entry = mask_metrics(out.mask, truth)
        entry.update({"failed": out.mask is None, "pred_iou": out.score if out.mask is not None else None,
                      "selection_score": out.selection_score if out.mask is not None else None})
        if out.cam is not None:
            entry["constant_cam"] = out.cam.constant
        if out.error:
            entry["error"] = out.error
        scores[source] = entry
        if oracle:
            best = mask_metrics(None, truth)
            if out.candidates is not None:
                candidates = [mask_metrics(postprocess_mask(m, **post), truth) for m in out.candidates.masks]
                best = max(candidates, key=lambda m: m["iou"])
            scores[f"oracle_{source}"] = best
            if best_any is None or best["iou"] > best_any["iou"]:
                best_any = best
    for name, mask in output.derived.items():
        scores[name] = mask_metrics(mask, truth)
    final = mask_metrics(output.final_mask, truth)
    final.update({"failed": output.final_mask is None, "source": output.final_source})
    scores["final"] = final
    if oracle:
        scores["oracle_final"] = best_any
    return scores


def segment_dataset(run_settings: RunSettings, overlay: OverlayFn | None = None) -> dict[str, Any]:
    """Segment (and, where masks exist, score) every image of the run's data into a resumable run
    folder; returns ``metrics.json``'s content. ``run_settings``: :func:`cam_sam.settings.resolve_run`
    of a script's CONFIG (its ``config`` is recorded). ``overlay(run_dir, image_id, image, truth,
    output, record)`` draws an image's figure (scripts pass one), in a worker (:class:`OverlayWriter`).

    The images are shared among processes, each segmenting every N-th image into the same folder:
    ``workers`` local processes this function starts (:func:`local_workers`: on a CPU, one per
    core), or the processes of ``torchrun`` (:class:`Shard`). After all are done, one writes
    ``metrics.json`` from every record, so the result is the same for any number of processes, and
    a rerun with another number resumes."""
    settings, models, data = run_settings, run_settings.models, run_settings.data
    shard = Shard.from_environment()
    if shard.world > 1 and not settings.out_dir:
        raise SystemExit("under torchrun, set out_dir: every process writes into that one folder")
    if shard.world > 1 and resolve_device(models.device) == "cpu":
        set_threads(max(1, (os.cpu_count() or 1) // shard.local_world))
    dataset, synthetic = open_data(data)
    run_dir = resolve_run_dir(data.results_root, settings.out_dir, "segment")
    run = open_run(run_dir, settings, synthetic)
    log.info("run folder: %s", run_dir)
    ids, positions = subset_ids(dataset, data.every, data.limit)
    todo = sum(not run.is_done(i) for i in ids)
    workers = local_workers(settings.workers, models.device, shard.world, todo)
    settings = replace(settings, out_dir=str(run_dir))
    if workers > 1:
        run_in_workers(settings, overlay, workers, run, ids)
    else:
        segment_share(settings, overlay, run, dataset, ids, positions, shard)
    shard.barrier()                     # every image of every rank is done
    scored = getattr(dataset, "has_masks", True) and (not data.image_dir or bool(data.mask_dir))
    if shard.rank == 0:
        metrics = summarise_run(run, ids, settings.pipeline.sources, scored, getattr(dataset, "labels", {}),
                                settings.multiclass)
    shard.barrier()                     # metrics.json is written
    if shard.rank != 0:
        metrics = read_json(run_dir / "metrics.json")
    shard.close()
    metrics["run_dir"], metrics["synthetic"] = str(run_dir), synthetic
    return metrics


def open_run(run_dir: str | Path, settings: RunSettings, synthetic: bool) -> ResumableRun:
    """The run folder of a ``segment`` run, its config fixed at its first start (a rerun resumes)."""
    return ResumableRun(run_dir, {**settings.config, "data_is_synthetic": synthetic}, SEGMENT_RESUMABLE,
                        defaults=SEGMENT_CONFIG)


# Images whose scoring and writing may lag behind the segmentation (ResumableRun.process): they run
# in a thread beside the next image's segmentation (on a 2-core CPU about 0.008 s an image less on
# validation's large images, nothing measurable on 512 px crops: docs/speed.md); each holds its image
# and outputs in memory until written.
WRITE_BEHIND = 4


def segment_share(settings: RunSettings, overlay: OverlayFn | None, run: ResumableRun, dataset,
                  ids: list[str], positions: dict[str, int], shard: Shard, build_lock=None,
                  progress: bool = True) -> None:
    """Segment ``shard``'s share of ``ids`` (those without a record) into ``run``: the models are
    built here (under ``build_lock``, so that processes starting together export a cache once)."""
    models, run_dir = settings.models, run.dir
    device = shard.device(resolve_device(models.device))
    torch.manual_seed(settings.seed)
    with build_lock or nullcontext():
        pipeline = build_pipeline(models, settings.pipeline, device, multiclass=settings.multiclass)
        lesion_classifier = build_lesion_classifier(models, settings.multiclass, settings.class_rule, device)
    order_of = {image_id: i for i, image_id in enumerate(ids)}

    def work(_: int, image_id: str, sample) -> dict[str, Any] | Deferred:
        if isinstance(sample, DataError):
            return {"error": str(sample)}
        output = pipeline.segment(sample.image, cams=load_saved_cams(models.cam_dir, image_id, settings.pipeline.methods),
                                  image_id=image_id)
        labels = ({} if lesion_classifier is None else     # the classifier runs here, beside the pipeline
                  write_label_map(run_dir, sample, output, lesion_classifier, settings.class_rule))

        def score_and_write() -> dict[str, Any]:           # in the run's writer thread (ResumableRun.process)
            record = write_image_outputs(run_dir, image_id, output, settings.save_uncertainty)
            record["has_truth"] = sample.mask is not None
            if sample.mask is not None:
                record["metrics"] = evaluate(output, sample.mask, settings.pipeline.postprocess, settings.oracle)
            record.update(labels)
            overlays.draw(image_id, order_of[image_id] < settings.n_overlays, sample, output, record)
            return record
        return score_and_write

    overlays = OverlayWriter(overlay, run_dir, settings.n_overlays)
    try:
        run.process(shard.take(ids), work, desc="segment" if shard.world == 1 else f"segment (rank {shard.rank})",
                    load=partial(sample_or_error, dataset, positions), progress=progress, write_behind=WRITE_BEHIND)
    finally:
        overlays.close()


# Local worker processes of a dataset run (``workers``).
AUTO_WORKERS_MAX = 4          # "auto" starts at most this many (each loads its own models)
MIN_IMAGES_PER_WORKER = 64    # "auto" starts a worker per this many images at most: starting one (Python,
                              # its models, its runtime compiled) costs about 4.5 s from a cached export,
                              # some 35 images' work on a 2-core CPU, where two workers gain about 15 %
                              # (docs/speed.md)


def local_workers(workers: int | str, device: str, world: int, todo: int) -> int:
    """How many local processes segment a run's ``todo`` images: ``workers`` as set, or for
    "auto" one per CPU core (at most :data:`AUTO_WORKERS_MAX`, one per
    :data:`MIN_IMAGES_PER_WORKER` images); 1 under ``torchrun`` (its processes are the workers) and,
    for "auto", on a GPU."""
    if workers != "auto" and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise SystemExit(f'workers must be "auto" or a whole number >= 1, not {workers!r}')
    if world > 1 or todo <= 1:
        return 1
    if workers == "auto":
        if resolve_device(device) != "cpu":
            return 1
        return max(1, min(os.cpu_count() or 1, AUTO_WORKERS_MAX, todo // MIN_IMAGES_PER_WORKER))
    return min(workers, todo)


def set_threads(threads: int) -> None:
    """This process's thread count for torch (and through it the ONNX runtimes) and OpenCV."""
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


def run_in_workers(settings: RunSettings, overlay: OverlayFn | None, workers: int, run: ResumableRun,
                   ids: list[str]) -> None:
    """Segment ``ids`` in ``workers`` spawned processes, worker k taking every ``workers``-th image
    from the k-th (:func:`segment_share`), each with cores / ``workers`` threads; one progress bar
    counts the records they write. A worker that stops ends the run with one line (a rerun resumes)."""
    context = get_context("spawn")
    lock = context.Lock()
    threads = max(1, (os.cpu_count() or 1) // workers)
    processes = [context.Process(target=_segment_in_worker, args=(settings, overlay, rank, workers, threads, lock))
                 for rank in range(workers)]
    for process in processes:
        process.start()
    wanted = set(ids)
    try:
        with tqdm(total=len(ids), desc=f"segment ({workers} processes)", unit="img") as bar:
            while any(p.is_alive() for p in processes):
                time.sleep(0.5)
                bar.update(len(wanted.intersection(f[:-5] for f in os.listdir(run.records_dir))) - bar.n)
    except KeyboardInterrupt:
        for process in processes:
            process.terminate()
        raise
    finally:
        for process in processes:
            process.join()
    stopped = [p.exitcode for p in processes if p.exitcode != 0]
    if stopped:
        raise SystemExit(f"{len(stopped)} of {workers} segmentation processes stopped (exit codes {stopped}; "
                         f"their messages are above); a rerun resumes in {run.dir}")


def _segment_in_worker(settings: RunSettings, overlay: OverlayFn | None, rank: int, world: int, threads: int,
                       lock) -> None:
    """One worker of :func:`run_in_workers`: opens the data and the run folder as the parent did
    and segments its share."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    set_threads(threads)
    dataset, synthetic = open_data(settings.data)
    run = open_run(settings.out_dir, settings, synthetic)
    ids, positions = subset_ids(dataset, settings.data.every, settings.data.limit)
    segment_share(settings, overlay, run, dataset, ids, positions, Shard(rank, world, rank, world), lock,
                  progress=False)


def sample_or_error(dataset, positions: dict[str, int], image_id: str):
    """The dataset's sample of ``image_id``, or the :class:`DataError` that reading it raised."""
    try:
        return dataset[positions[image_id]]
    except DataError as exc:
        return exc


def summarise_run(run: ResumableRun, ids: list[str], sources: list[str], scored: bool,
                  labels: dict[str, dict], multiclass: bool) -> dict[str, Any]:
    """``metrics.json`` from the records: scores per source, trust, failure kinds by class and,
    with ``multiclass``, the class figures."""
    metrics = run.write_metrics(ids, sources + ["final"], scored=scored)
    metrics = add_trust(run, ids, metrics)
    if scored:
        metrics = add_failures_by_class(run, metrics, labels)
        if multiclass:
            metrics = add_multiclass(run, ids, metrics, labels)
    return metrics


def write_image_outputs(run_dir: Path, image_id: str, output: ImageOutput, save_uncertainty: bool) -> dict[str, Any]:
    """Write the delivered mask (and the uncertainty map) of one image; its record so far: the
    delivered source, its trust, or why there is no mask."""
    record: dict[str, Any] = {"final_source": output.final_source}
    if output.trust is not None:
        record["trust"] = output.trust.to_record()
    if output.final_mask is None:
        errors = {m: o.error for m, o in output.sources.items()}
        record["error"] = f"no prompt source gave a mask: {errors}"
    else:
        write_png(run_dir / "masks" / f"{image_id}.png", output.final_mask.astype(np.uint8) * 255)
    if output.uncertainty is not None and save_uncertainty:
        write_npy(run_dir / "uncertainty" / f"{image_id}.npy", output.uncertainty.astype(np.float16))
    return record


def build_lesion_classifier(models: ModelSettings, multiclass: bool, class_rule: str,
                            device: str) -> LesionClassifier | None:
    """The three-class classifier of a ``multiclass`` run (``classifier``, ``classifier_checkpoint``)."""
    if not multiclass:
        return None
    if class_rule not in CLASS_RULES:
        raise SystemExit(f"class_rule must be one of {CLASS_RULES}, not {class_rule!r}")
    if not models.classifier_checkpoint:
        raise SystemExit("multiclass needs a three-class classifier_checkpoint, e.g. --set preset=multiclass "
                         f"({MULTICLASS_CHECKPOINT})")
    return LesionClassifier(models.classifier, models.classifier_checkpoint, device)


def write_label_map(run_dir: Path, sample, output: ImageOutput, classifier: LesionClassifier,
                    class_rule: str) -> dict[str, Any]:
    """Write ``labels/<id>.png`` (values of :data:`cam_sam.multiclass.LABEL_NAMES`) for the delivered
    mask; the record's ``class`` (the call and its probabilities) and, when the image has a mask
    and an ISIC 2017 Part 3 class, ``multiclass`` (true class, 4 x 4 pixel confusion)."""
    lesion = classifier.classify(sample.image)
    cams = classifier.class_cams(sample.image) if class_rule == "cam" and output.final_mask is not None else None
    labels = label_map(output.final_mask, sample.image.shape[:2], lesion, cams)
    write_png(run_dir / "labels" / f"{sample.image_id}.png", labels)
    record: dict[str, Any] = {"class": lesion.to_record()}
    truth = true_label(sample.labels)
    if sample.mask is not None and truth is not None:
        record["multiclass"] = {"true": truth, "pixel_confusion": pixel_confusion(labels, sample.mask, truth).tolist()}
    return record


def add_multiclass(run: ResumableRun, ids: list[str], metrics: dict[str, Any],
                   labels: dict[str, dict[str, float]]) -> dict[str, Any]:
    """``summary["multiclass"]`` (:func:`cam_sam.multiclass.multiclass_summary`) from the records'
    label-map confusions; an image that failed before it was classified (unreadable, constant)
    counts as a wrong class when ``labels`` (the dataset's Part 3 labels) give its class."""
    confusions, pairs = [], []
    for image_id in ids:
        if not run.is_done(image_id):
            continue
        record = run.load(image_id)
        if "multiclass" in record:
            confusions.append(np.asarray(record["multiclass"]["pixel_confusion"]))
            pairs.append((record["multiclass"]["true"], record["class"]["label"]))
        elif "class" not in record and (truth := true_label(labels.get(image_id, {}))) is not None:
            pairs.append((truth, None))
    if pairs:
        metrics["summary"]["multiclass"] = multiclass_summary(confusions, pairs)
        write_json(run.dir / "metrics.json", metrics)
    return metrics


FLAGGED_PREFIX = "0_flagged_"   # overlays of flagged images: named to sort before the others


class OverlayWriter:
    """Draws the overlay figures (matplotlib: about a second each) in one worker process, off the
    segmentation path; :meth:`close` waits for them. The image's overlay when it is among the first
    ``n_overlays``, and a second one named ``0_flagged_<id>`` (listed first) while fewer than
    ``n_overlays`` flagged images have one. A figure that fails is logged; the run goes on (the
    records, not the figures, are what a run resumes from)."""

    def __init__(self, overlay: OverlayFn | None, run_dir: Path, n_overlays: int) -> None:
        self.overlay, self.run_dir, self.n_overlays = overlay, run_dir, n_overlays
        self.n_flagged = len(list((run_dir / "overlays").glob(f"{FLAGGED_PREFIX}*.png")))
        self.pool = ProcessPoolExecutor(1, mp_context=get_context("spawn")) if overlay and n_overlays > 0 else None
        self.pending: list = []

    def draw(self, image_id: str, among_first: bool, sample, output: ImageOutput, record: dict) -> None:
        if self.pool is None:
            return
        names = [image_id] if among_first else []
        if output.trust is not None and output.trust.flagged and self.n_flagged < self.n_overlays:
            self.n_flagged += 1
            names.append(FLAGGED_PREFIX + image_id)
        for name in names:
            self.pending.append(self.pool.submit(self.overlay, self.run_dir, name, sample.image, sample.mask,
                                                 output, record))

    def close(self) -> None:
        if self.pool is None:
            return
        for future in self.pending:
            try:
                future.result()
            except Exception as exc:  # a figure must not fail the run
                log.error("an overlay figure failed: %s: %s", type(exc).__name__, exc)
        self.pool.shutdown()


def add_trust(run: ResumableRun, ids: list[str], metrics: dict[str, Any]) -> dict[str, Any]:
    """Put each delivered mask's confidence, review flag and reason (records' ``trust``) into
    ``metrics.json`` (``per_image[ID]["final"]``, also for images without ground truth) and the
    trust summary into ``summary["final"]`` (``n_flagged``, ``share_flagged``; with ground truth
    ``auroc_fail``, ``risk_coverage``, ``failures_flagged``); write ``flagged.csv`` (flagged images,
    least confident first). Everything is rebuilt from the records, so a resumed run gets it whole."""
    trust = {}
    for image_id in ids:
        if run.is_done(image_id):
            record = run.load(image_id)
            if "trust" in record:
                trust[image_id] = record["trust"]
    if not trust:
        return metrics
    per_image = metrics["per_image"]
    for image_id, t in trust.items():
        per_image.setdefault(image_id, {}).setdefault("final", {}).update(
            {"confidence": t["confidence"], "flagged": t["flagged"], "reason": t["reason"],
             "out_of_depth": t.get("out_of_depth"), "expected_iou": t.get("expected_iou")})
    confidence = {i: t["confidence"] for i, t in trust.items()}
    flagged = {i: bool(t["flagged"]) for i, t in trust.items()}
    ious = {i: per_image[i]["final"]["iou"] for i in trust if "iou" in per_image[i]["final"]}
    ious.update({i: 0.0 for i in per_image if i not in trust and "iou" in per_image[i].get("final", {})})
    summary = metrics["summary"].setdefault("final", {"n_images": len(trust)})
    summary.update(flag_summary(flagged, ious or None))
    summary["n_out_of_depth"] = int(sum(bool(t.get("out_of_depth")) for t in trust.values()))
    if ious:
        confidence.update({i: 0.0 for i in ious if i not in confidence})   # a failed image: confidence 0
        summary.update({"auroc_fail": auroc_fail(confidence, ious), "risk_coverage": risk_coverage(confidence, ious)})
    expected = {i: t.get("expected_iou") for i, t in trust.items()}
    if all(v is not None for v in expected.values()):
        summary["mean_expected_iou"] = float(np.mean(list(expected.values())))
    # least expected IoU (where a calibration ships; it orders as the confidence does) first
    rows = sorted((i for i in trust if flagged[i]), key=lambda i: (confidence[i], i))
    write_csv(run.dir / "flagged.csv", pd.DataFrame(
        [{"id": i, "expected_iou": None if expected[i] is None else round(expected[i], 3),
          "confidence": round(confidence[i], 4), "reason": trust[i]["reason"],
          "mask": str(run.dir / "masks" / f"{i}.png")} for i in rows],
        columns=["id", "expected_iou", "confidence", "reason", "mask"]))
    # undefined figures (no failed image, or only failed ones) are null, as in the file
    summary.update({k: None for k, v in summary.items() if isinstance(v, float) and np.isnan(v)})
    write_json(run.dir / "metrics.json", metrics)
    return metrics


def add_failures_by_class(run: ResumableRun, metrics: dict[str, Any], labels: dict[str, dict]) -> dict[str, Any]:
    """``summary["final"]["by_class"]``: per ISIC 2017 class (where the dataset gives one), the
    number of images, their mean IoU and their failure kinds (:func:`common.metrics.failure_counts`).
    Written into ``metrics.json``; unchanged metrics when no image has a class."""
    per_image = metrics["per_image"]
    groups: dict[str, list[dict]] = {}
    for image_id, rows in per_image.items():
        label = true_label(labels.get(image_id, {}))
        if label is not None and "iou" in rows.get("final", {}):
            groups.setdefault(LABEL_NAMES[label], []).append(rows["final"])
    if not groups or "final" not in metrics["summary"]:
        return metrics
    metrics["summary"]["final"]["by_class"] = {
        name: {"n_images": len(rows), "iou": float(np.mean([r["iou"] for r in rows])),
               "failure_kinds": failure_counts(rows)} for name, rows in sorted(groups.items())}
    write_json(run.dir / "metrics.json", metrics)
    return metrics


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


def print_summary(metrics: dict[str, Any], run_dir: Path, synthetic: bool) -> None:
    """What a run did, for a person: the score table where the images have masks, else how many
    were segmented and where the masks are; failure kinds, review flags, classes, failed images."""
    tag = " (SYNTHETIC images)" if synthetic else ""
    print(f"\nResults{tag} in {run_dir}")
    if any("iou" in s for s in metrics["summary"].values()):
        print_score_table(metrics["summary"])
    else:
        n_masks = len(list((run_dir / "masks").glob("*.png")))
        print(f"{n_masks} images segmented, no ground truth to score them (masks: {run_dir / 'masks'}; "
              f"give mask_dir to score)")
    print_final_details(metrics, run_dir)
    for image_id, message in metrics["failures"].items():
        print(f"failed: {image_id}: {message}")


def print_score_table(summary: dict[str, dict]) -> None:
    print(f"{'method':<22}{'IoU':>7}{'Dice':>7}{'Prec':>7}{'Rec':>7}{'IoU>=.65':>9}{'n':>5}{'failed':>7}")
    for method, s in summary.items():
        if "iou" not in s:
            continue
        print(f"{method:<22}{s['iou']:7.3f}{s['dice']:7.3f}{s['precision']:7.3f}{s['recall']:7.3f}"
              f"{s['share_iou_ge_0.65']:9.2f}{s['n_images']:5d}{s['n_failed']:7d}")


def print_final_details(metrics: dict[str, Any], run_dir: Path) -> None:
    """The delivered masks' failure kinds (by class), review flags and multi-class figures."""
    final = metrics["summary"].get("final", {})
    if "failure_kinds" in final:
        kinds = final["failure_kinds"]
        line = (f"failures (IoU < 0.5): {kinds['over']} over-segmented (the field around the lesion), "
                f"{kinds['under']} under-segmented, {kinds['other']} other")
        by_class = final.get("by_class", {})
        if by_class:
            line += "; by class: " + ", ".join(f"{name} {c['iou']:.3f} (n {c['n_images']}, over/under/other "
                                             f"{c['failure_kinds']['over']}/{c['failure_kinds']['under']}/"
                                             f"{c['failure_kinds']['other']})" for name, c in by_class.items())
        print(line)
    if "n_flagged" in final:
        line = f"flagged for review: {final['n_flagged']} images (list: {run_dir / 'flagged.csv'})"
        if final.get("n_out_of_depth"):
            line += f", {final['n_out_of_depth']} of them unlike the student's training images (out of its depth)"
        if final.get("auroc_fail") is not None:
            line += (f"; confidence AUROC for IoU < 0.5: {final['auroc_fail']:.3f}; mean IoU of the 80 % most "
                     f"confident: {final['risk_coverage']['0.8']:.3f} (all: {final['risk_coverage']['1.0']:.3f})")
        print(line)
    multi = metrics["summary"].get("multiclass")
    if multi:
        per_class = ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in multi["per_class_iou"].items() if v is not None)
        print(f"multi-class: mIoU {multi['miou']:.3f} ({per_class}); pixel accuracy {multi['pixel_accuracy']:.3f}; "
              f"image-level class accuracy {multi['image_accuracy']:.3f} (label maps: {run_dir / 'labels'})")
    if any(m.startswith("oracle_") for m in metrics["summary"]):
        print("oracle_* rows chose masks WITH the ground truth: upper bounds, not results.")


def confidence_and_iou(metrics: dict[str, Any]) -> pd.DataFrame:
    """(id, confidence, iou, flagged) of every scored image of a run's metrics; an image without a
    delivered mask has confidence 0 and IoU 0."""
    rows = []
    for image_id, record in metrics["per_image"].items():
        final = record.get("final", {})
        if "iou" in final:
            rows.append({"id": image_id, "confidence": float(final.get("confidence") or 0.0),
                         "iou": float(final["iou"]), "flagged": bool(final.get("flagged", True))})
    return pd.DataFrame(rows, columns=["id", "confidence", "iou", "flagged"])
