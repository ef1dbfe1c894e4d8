"""Segmenting a dataset into a resumable run folder and scoring it: the library behind
``cam_sam.segment``, ``cam_sam.studies.ablation`` and the student evaluations.

This module plans a run, starts its worker processes and writes its summary; the per-image work
(models, segmentation, scores, masks, figures) is :mod:`cam_sam.runs.work`, imported only by a
process that segments. So a run's parent that hands every image to workers never loads torch or
the networks (about 2.5 s less before the workers start on a 2-core CPU), nor does the process
that draws its figures.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from cam_sam.multiclass import multiclass_summary, true_label
from cam_sam.runs.inputs import open_data
from cam_sam.runs.overlays import OverlayFn
from cam_sam.settings import SEGMENT_CONFIG, SEGMENT_RESUMABLE, RunSettings
from classification.tasks import LABEL_NAMES
from common.devices import resolve_device
from common.errors import RunError, SettingsError
from common.io import read_json, resolve_run_dir, write_csv, write_json
from common.metrics import auroc_fail, failure_counts, flag_summary, risk_coverage
from common.runs import ResumableRun, metrics_from_records
from common.shards import Shard
from data.isic import subset_ids

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("cam_sam.segment")


def segment_dataset(run_settings: RunSettings, overlay: OverlayFn | None = None) -> dict[str, Any]:
    """Segment (and, where masks exist, score) every image of the run's data into a resumable run
    folder; returns ``metrics.json``'s content. ``run_settings``: :func:`cam_sam.settings.resolve_run`
    of a script's CONFIG (its ``config`` is recorded). ``overlay(run_dir, names, image, truth,
    output, record)`` draws an image's figure once and writes it under each of its names (scripts
    pass one), in a worker (:class:`cam_sam.runs.overlays.OverlayWriter`).

    The images are shared among processes, each segmenting every N-th image into the same folder:
    ``workers`` local processes this function starts (:func:`local_workers`: on a CPU, one per
    core), or the processes of ``torchrun`` (:class:`Shard`). After all are done, one writes
    ``metrics.json`` from every record, so the result is the same for any number of processes, and
    a rerun with another number resumes."""
    settings, models, data = run_settings, run_settings.models, run_settings.data
    shard = Shard.from_environment()
    if shard.world > 1 and not settings.out_dir:
        raise SettingsError("under torchrun, set out_dir: every process writes into that one folder")
    if shard.world > 1 and resolve_device(models.device) == "cpu":
        from cam_sam.runs.work import set_threads

        set_threads(max(1, (os.cpu_count() or 1) // shard.local_world))
    dataset, synthetic = open_data(data)
    run_dir = resolve_run_dir(data.results_root, settings.out_dir, "segment")
    run = open_run(run_dir, settings, synthetic)
    log.info("run folder: %s", run_dir)
    ids, positions = subset_ids(dataset, data.every, data.limit)
    done = run.done_ids()
    todo = sum(i not in done for i in ids)
    workers = local_workers(settings.workers, models.device, shard.world, todo)
    settings = replace(settings, out_dir=str(run_dir))
    if workers > 1:
        run_in_workers(settings, overlay, workers, run, ids, len(ids) - todo)
    else:
        from cam_sam.runs.work import segment_share

        segment_share(settings, overlay, run, dataset, ids, positions, shard)
    shard.barrier()  # every image of every rank is done
    scored = getattr(dataset, "has_masks", True) and (not data.image_dir or bool(data.mask_dir))
    if shard.rank == 0:
        metrics = summarise_run(
            run, ids, settings.pipeline.sources, scored, getattr(dataset, "labels", {}), settings.multiclass
        )
    shard.barrier()  # metrics.json is written
    if shard.rank != 0:
        metrics = read_json(run_dir / "metrics.json")
    shard.close()
    metrics["run_dir"], metrics["synthetic"] = str(run_dir), synthetic
    return metrics


def open_run(run_dir: str | Path, settings: RunSettings, synthetic: bool) -> ResumableRun:
    """The run folder of a ``segment`` run, its config (:func:`applied_config`) fixed at its first
    start (a rerun resumes)."""
    return ResumableRun(
        run_dir,
        {**applied_config(settings.config), "data_is_synthetic": synthetic},
        SEGMENT_RESUMABLE,
        defaults=SEGMENT_CONFIG,
    )


# Where a dataset is: settings that do not apply to a run on a folder of the user's own images.
DATASET_KEYS = ("dataset", "data_root", "split", "derm7pt_image", "synthetic_if_missing", "n_synthetic")


def applied_config(config: dict[str, Any]) -> dict[str, Any]:
    """A run's CONFIG as its ``config.json`` records it: only the data settings that applied. A
    run on ``image_dir`` leaves out the dataset's (:data:`DATASET_KEYS`); a dataset run leaves out
    ``image_dir`` and ``mask_dir``, and ``derm7pt_image`` unless the dataset is derm7pt."""
    if config.get("image_dir"):
        left_out = set(DATASET_KEYS)
    else:
        left_out = {"image_dir", "mask_dir"} | ({"derm7pt_image"} if config.get("dataset") != "derm7pt" else set())
    return {key: value for key, value in config.items() if key not in left_out}


# Local worker processes of a dataset run (``workers``).
# fmt: off
AUTO_WORKERS_MAX = 4          # "auto" starts at most this many (each loads its own models)
MIN_IMAGES_PER_WORKER = 16    # "auto" starts a worker per this many images at most. A worker's start (Python,
                              # torch, its models, its compiled runtime: about 3.5 s of a core) runs beside
                              # the others', since the parent loads no torch: on a 2-core CPU two workers
                              # segmented 45 validation images in 16.4-17.8 s against 16.8-20.1 s for one
                              # process, and 240 crops about 15 % faster (docs/experiments/sp-08)
# fmt: on


def local_workers(workers: int | str, device: str, world: int, todo: int) -> int:
    """How many local processes segment a run's ``todo`` images: ``workers`` as set, or for
    "auto" one per CPU core (at most :data:`AUTO_WORKERS_MAX`, one per
    :data:`MIN_IMAGES_PER_WORKER` images); 1 under ``torchrun`` (its processes are the workers) and,
    for "auto", on a GPU."""
    if workers != "auto" and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise SettingsError(f'workers must be "auto" or a whole number >= 1, not {workers!r}')
    if world > 1 or todo <= 1:
        return 1
    if workers == "auto":
        if resolve_device(device) != "cpu":
            return 1
        return max(1, min(os.cpu_count() or 1, AUTO_WORKERS_MAX, todo // MIN_IMAGES_PER_WORKER))
    return min(workers, todo)


def run_in_workers(
    settings: RunSettings, overlay: OverlayFn | None, workers: int, run: ResumableRun, ids: list[str], done: int = 0
) -> None:
    """Segment ``ids`` in ``workers`` spawned processes, worker k taking every ``workers``-th image
    from the k-th (:func:`cam_sam.runs.work.segment_share`), each with cores / ``workers`` threads; one progress bar
    counts the records they write (a shared counter: no look at the folder), from the ``done`` of an
    earlier start, with this start's rate and time left. A worker that stops ends the run with one
    line (a rerun resumes); a worker whose parent is killed stops too."""
    context = get_context("spawn")
    lock = context.Lock()
    saved = context.Value("q", 0)
    threads = max(1, (os.cpu_count() or 1) // workers)
    processes = [
        context.Process(
            target=_segment_in_worker, args=(settings, overlay, rank, workers, threads, lock, saved, os.getpid())
        )
        for rank in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        with tqdm(total=len(ids), initial=done, desc=f"segment ({workers} processes)", unit="img") as bar:
            while any(p.is_alive() for p in processes):
                time.sleep(0.5)
                bar.update(done + saved.value - bar.n)
    except KeyboardInterrupt:
        for process in processes:
            process.terminate()
        raise
    finally:
        for process in processes:
            process.join()
    stopped = [p.exitcode for p in processes if p.exitcode != 0]
    if stopped:
        raise RunError(
            f"{len(stopped)} of {workers} segmentation processes stopped (exit codes {stopped}; "
            f"their messages are above); a rerun resumes in {run.dir}"
        )


def _segment_in_worker(
    settings: RunSettings, overlay: OverlayFn | None, rank: int, world: int, threads: int, lock, saved, parent: int
) -> None:
    """One worker of :func:`run_in_workers`: opens the data and the run folder as the parent did
    and segments its share, adding each record it saves to ``saved``; it ends at once when its
    ``parent`` process is gone (killed), so that a rerun never runs beside it."""
    import threading

    from cam_sam.runs.work import segment_share, set_threads

    def orphaned() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=orphaned, daemon=True).start()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    set_threads(threads)
    dataset, synthetic = open_data(settings.data)
    run = open_run(settings.out_dir, settings, synthetic)
    ids, positions = subset_ids(dataset, settings.data.every, settings.data.limit)

    def count() -> None:
        with saved.get_lock():
            saved.value += 1

    segment_share(
        settings,
        overlay,
        run,
        dataset,
        ids,
        positions,
        Shard(rank, world, rank, world),
        lock,
        progress=False,
        on_saved=count,
    )


def summarise_run(
    run: ResumableRun, ids: list[str], sources: list[str], scored: bool, labels: dict[str, dict], multiclass: bool
) -> dict[str, Any]:
    """``metrics.json`` from the records, each read once, written once: scores per source, trust,
    failure kinds by class and, with ``multiclass``, the class figures; ``flagged.csv`` beside it."""
    records = run.load_records(ids)
    metrics = metrics_from_records(records, sources + ["final"], scored=scored)
    add_trust(records, metrics, run.dir)
    if scored:
        add_failures_by_class(metrics, labels)
        if multiclass:
            add_multiclass(records, ids, metrics, labels)
    write_json(run.dir / "metrics.json", metrics)
    return metrics


def add_multiclass(
    records: dict[str, dict], ids: list[str], metrics: dict[str, Any], labels: dict[str, dict[str, float]]
) -> None:
    """``summary["multiclass"]`` (:func:`cam_sam.multiclass.multiclass_summary`) from the records'
    label-map confusions; an image that failed before it was classified (unreadable, constant)
    counts as a wrong class when ``labels`` (the dataset's Part 3 labels) give its class."""
    confusions, pairs = [], []
    for image_id in ids:
        record = records.get(image_id)
        if record is None:
            continue
        if "multiclass" in record:
            confusions.append(np.asarray(record["multiclass"]["pixel_confusion"]))
            pairs.append((record["multiclass"]["true"], record["class"]["label"]))
        elif "class" not in record and (truth := true_label(labels.get(image_id, {}))) is not None:
            pairs.append((truth, None))
    if pairs:
        metrics["summary"]["multiclass"] = multiclass_summary(confusions, pairs)


def add_trust(records: dict[str, dict], metrics: dict[str, Any], run_dir: Path) -> None:
    """Put each delivered mask's confidence, review flag and reason (records' ``trust``) into
    ``metrics`` (``per_image[ID]["final"]``, also for images without ground truth; ``no_lesion``
    where the student found no lesion and the mask is the pipeline's fallback) and the trust summary
    into ``summary["final"]`` (``n_flagged``, ``share_flagged``, ``n_out_of_depth``, ``n_no_lesion``;
    with ground truth ``auroc_fail``, ``risk_coverage``, ``failures_flagged``); write ``flagged.csv``
    (flagged images, least confident first). Everything is rebuilt from the records, so a resumed
    run gets it whole."""
    trust = {image_id: record["trust"] for image_id, record in records.items() if "trust" in record}
    if not trust:
        return
    per_image = metrics["per_image"]
    for image_id, t in trust.items():
        per_image.setdefault(image_id, {}).setdefault("final", {}).update(
            {
                "confidence": t["confidence"],
                "flagged": t["flagged"],
                "reason": t["reason"],
                "out_of_depth": t.get("out_of_depth"),
                "expected_iou": t.get("expected_iou"),
                **({"no_lesion": True} if t.get("no_lesion") else {}),
            }
        )
    confidence = {i: t["confidence"] for i, t in trust.items()}
    flagged = {i: bool(t["flagged"]) for i, t in trust.items()}
    ious = {i: per_image[i]["final"]["iou"] for i in trust if "iou" in per_image[i]["final"]}
    ious.update({i: 0.0 for i in per_image if i not in trust and "iou" in per_image[i].get("final", {})})
    summary = metrics["summary"].setdefault("final", {"n_images": len(trust)})
    summary.update(flag_summary(flagged, ious or None))
    summary["n_out_of_depth"] = int(sum(bool(t.get("out_of_depth")) for t in trust.values()))
    summary["n_no_lesion"] = int(sum(bool(t.get("no_lesion")) for t in trust.values()))
    if ious:
        confidence.update({i: 0.0 for i in ious if i not in confidence})  # a failed image: confidence 0
        summary.update({"auroc_fail": auroc_fail(confidence, ious), "risk_coverage": risk_coverage(confidence, ious)})
    expected = {i: t.get("expected_iou") for i, t in trust.items()}
    known = [v for i, v in expected.items() if not trust[i].get("no_lesion")]  # a fallback mask has none
    if known and all(v is not None for v in known):
        summary["mean_expected_iou"] = float(np.mean(known))
    # least expected IoU (where a calibration ships; it orders as the confidence does) first
    rows = sorted((i for i in trust if flagged[i]), key=lambda i: (confidence[i], i))
    import pandas as pd

    write_csv(
        run_dir / "flagged.csv",
        pd.DataFrame(
            [
                {
                    "id": i,
                    "expected_iou": None if expected[i] is None else round(expected[i], 3),
                    "confidence": round(confidence[i], 4),
                    "reason": trust[i]["reason"],
                    "mask": str(run_dir / "masks" / f"{i}.png"),
                }
                for i in rows
            ],
            columns=["id", "expected_iou", "confidence", "reason", "mask"],
        ),
    )
    # undefined figures (no failed image, or only failed ones) are null, as in the file
    summary.update({k: None for k, v in summary.items() if isinstance(v, float) and np.isnan(v)})


def add_failures_by_class(metrics: dict[str, Any], labels: dict[str, dict]) -> None:
    """``summary["final"]["by_class"]``: per ISIC 2017 class (where the dataset gives one), the
    number of images, their mean IoU and their failure kinds (:func:`common.metrics.failure_counts`);
    nothing when no image has a class."""
    per_image = metrics["per_image"]
    groups: dict[str, list[dict]] = {}
    for image_id, rows in per_image.items():
        label = true_label(labels.get(image_id, {}))
        if label is not None and "iou" in rows.get("final", {}):
            groups.setdefault(LABEL_NAMES[label], []).append(rows["final"])
    if not groups or "final" not in metrics["summary"]:
        return
    metrics["summary"]["final"]["by_class"] = {
        name: {
            "n_images": len(rows),
            "iou": float(np.mean([r["iou"] for r in rows])),
            "failure_kinds": failure_counts(rows),
        }
        for name, rows in sorted(groups.items())
    }


def print_summary(metrics: dict[str, Any], run_dir: Path, synthetic: bool) -> None:
    """What a run did, for a person: the score table where the images have masks, else how many
    were segmented and where the masks are; failure kinds, review flags, classes, failed images."""
    tag = " (SYNTHETIC images)" if synthetic else ""
    print(f"\nResults{tag} in {run_dir}")
    if any("iou" in s for s in metrics["summary"].values()):
        print_score_table(metrics["summary"])
    else:
        n_masks = len(list((run_dir / "masks").glob("*.png")))
        print(
            f"{n_masks} images segmented, no ground truth to score them (masks: {run_dir / 'masks'}; "
            f"give mask_dir to score)"
        )
    print_final_details(metrics, run_dir)
    for image_id, message in metrics["failures"].items():
        print(f"failed: {image_id}: {message}")


def print_score_table(summary: dict[str, dict]) -> None:
    print(f"{'method':<22}{'IoU':>7}{'Dice':>7}{'Prec':>7}{'Rec':>7}{'IoU>=.65':>9}{'n':>5}{'failed':>7}")
    for method, s in summary.items():
        if "iou" not in s:
            continue
        print(
            f"{method:<22}{s['iou']:7.3f}{s['dice']:7.3f}{s['precision']:7.3f}{s['recall']:7.3f}"
            f"{s['share_iou_ge_0.65']:9.2f}{s['n_images']:5d}{s['n_failed']:7d}"
        )


def print_final_details(metrics: dict[str, Any], run_dir: Path) -> None:
    """The delivered masks' failure kinds (by class), review flags and multi-class figures."""
    final = metrics["summary"].get("final", {})
    if "failure_kinds" in final:
        kinds = final["failure_kinds"]
        line = (
            f"failures (IoU < 0.5): {kinds['over']} over-segmented (the field around the lesion), "
            f"{kinds['under']} under-segmented, {kinds['other']} other"
        )
        by_class = final.get("by_class", {})
        if by_class:
            line += "; by class: " + ", ".join(
                f"{name} {c['iou']:.3f} (n {c['n_images']}, over/under/other "
                f"{c['failure_kinds']['over']}/{c['failure_kinds']['under']}/"
                f"{c['failure_kinds']['other']})"
                for name, c in by_class.items()
            )
        print(line)
    if "n_flagged" in final:
        line = f"flagged for review: {final['n_flagged']} images (list: {run_dir / 'flagged.csv'})"
        if final.get("n_out_of_depth"):
            line += f", {final['n_out_of_depth']} of them unlike the student's training images (out of its depth)"
        if final.get("n_no_lesion"):
            line += f", {final['n_no_lesion']} where the student found no lesion (the fallback mask delivered)"
        if final.get("auroc_fail") is not None:
            line += (
                f"; confidence AUROC for IoU < 0.5: {final['auroc_fail']:.3f}; mean IoU of the 80 % most "
                f"confident: {final['risk_coverage']['0.8']:.3f} (all: {final['risk_coverage']['1.0']:.3f})"
            )
        print(line)
    multi = metrics["summary"].get("multiclass")
    if multi:
        per_class = ", ".join(
            f"{k.replace('_', ' ')} {v:.3f}" for k, v in multi["per_class_iou"].items() if v is not None
        )
        print(
            f"multi-class: mIoU {multi['miou']:.3f} ({per_class}); pixel accuracy {multi['pixel_accuracy']:.3f}; "
            f"image-level class accuracy {multi['image_accuracy']:.3f} (label maps: {run_dir / 'labels'})"
        )
    if any(m.startswith("oracle_") for m in metrics["summary"]):
        print("oracle_* rows chose masks WITH the ground truth: upper bounds, not results.")


def confidence_and_iou(metrics: dict[str, Any]) -> pd.DataFrame:
    """(id, confidence, iou, flagged) of every scored image of a run's metrics; an image without a
    delivered mask has confidence 0 and IoU 0."""
    import pandas as pd

    rows = []
    for image_id, record in metrics["per_image"].items():
        final = record.get("final", {})
        if "iou" in final:
            rows.append(
                {
                    "id": image_id,
                    "confidence": float(final.get("confidence") or 0.0),
                    "iou": float(final["iou"]),
                    "flagged": bool(final.get("flagged", True)),
                }
            )
    return pd.DataFrame(rows, columns=["id", "confidence", "iou", "flagged"])
