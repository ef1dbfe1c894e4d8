"""Does the int8 student deliver the float32 student's masks, and how much faster is its network?

For each preset (``presets``: the default ``student`` and ``realtime``), the images of one set
(``split``, ``every``, ``limit`` as for ``cam_sam.segment``) are segmented twice in this process,
with ``student_backend`` = ``float_backend`` and = ``int8_backend``; the delivered masks (at each
image's size) are compared with the ground truth (mean IoU of each backend) and with each other
(per image IoU of the int8 mask against the float32 one: its minimum, how many are below
``min_image_iou``). The bar to keep int8 (``bar``): mean IoU within ``max_mean_drop`` of float32 and
no image below ``min_image_iou``. Then the network alone: one pass of the preset's batch (its
flips and zoomed-out view) per backend at each of ``threads``, the two backends interleaved,
``n_timing`` passes each (median and fastest in ms).

    python -m cam_sam.studies.int8 --set split=val
    python -m cam_sam.studies.int8 --set split=train --set every=18

Timings on a machine shared with other work are indicative: compare the two backends of one run.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch

from cam_sam.runs.build import build_pipeline
from cam_sam.runs.inputs import open_data
from cam_sam.runs.work import set_threads
from cam_sam.settings import PRESETS, SEGMENT_CONFIG, DataSettings, resolve_pipeline
from common.cli import run_main
from common.config import config_from_argv
from common.io import resolve_run_dir, write_json
from common.metrics import mask_metrics
from data.isic import mask_at_size, subset_ids
from models.student_runtime import runtime_student

CONFIG: dict[str, Any] = {
    **SEGMENT_CONFIG,
    "presets": ["student", "realtime"],  # the default and the one-pass preset
    "float_backend": "openvino",
    "int8_backend": "openvino_int8",
    "threads": [1, 2],  # the network timed at each thread count
    "n_timing": 30,  # passes per backend and thread count
    "max_mean_drop": 0.005,  # the bar: mean IoU (vs ground truth) at most this far below float32
    "min_image_iou": 0.9,  # ... and every image's int8 mask at least this IoU with the float32 mask
    "out_dir": None,
}

log = logging.getLogger("cam_sam.studies.int8")


def delivered_masks(cfg: dict[str, Any], dataset, ids: list[str], positions: dict[str, int]) -> dict[str, Any]:
    """Per image id: (the delivered mask at the image's size, its IoU against the ground truth or None)."""
    models, pipeline_config = resolve_pipeline(cfg)
    pipeline = build_pipeline(models, pipeline_config, "cpu")
    masks, ious = {}, {}
    for image_id in ids:
        sample = dataset[positions[image_id]]
        output = pipeline.segment(sample.image)
        final = mask_at_size(output.final_mask, sample.hw)
        if final is None:
            final = np.zeros(sample.hw, bool)
        masks[image_id] = final
        ious[image_id] = None if sample.mask is None else float(mask_metrics(final, sample.mask)["iou"])
    return {"masks": masks, "ious": ious}


def compare(float_run: dict, int8_run: dict, cfg: dict[str, Any]) -> dict[str, Any]:
    """The quality of each backend and the per-image agreement of their masks (module docstring)."""
    ids = list(float_run["masks"])
    agree = {i: float(mask_metrics(int8_run["masks"][i], float_run["masks"][i])["iou"]) for i in ids}
    row: dict[str, Any] = {"n_images": len(ids)}
    if all(float_run["ious"][i] is not None for i in ids):
        row["mean_iou_float32"] = float(np.mean([float_run["ious"][i] for i in ids]))
        row["mean_iou_int8"] = float(np.mean([int8_run["ious"][i] for i in ids]))
        row["mean_iou_change"] = row["mean_iou_int8"] - row["mean_iou_float32"]
    lowest = sorted(agree, key=agree.get)
    row.update(
        min_iou_int8_vs_float32=agree[lowest[0]],
        mean_iou_int8_vs_float32=float(np.mean(list(agree.values()))),
        n_below=sum(v < cfg["min_image_iou"] for v in agree.values()),
        lowest=[{"id": i, "iou_vs_float32": agree[i]} for i in lowest[:5]],
    )
    row["passes"] = row["n_below"] == 0 and row.get("mean_iou_change", 0.0) >= -cfg["max_mean_drop"]
    return row


def time_network(cfg: dict[str, Any], views: int) -> list[dict[str, Any]]:
    """Milliseconds per pass of a batch of ``views`` images, each backend at each thread count."""
    rows, checkpoint, size = [], cfg["student_checkpoint"], None
    for threads in cfg["threads"]:
        torch.set_num_threads(int(threads))
        students = {
            b: runtime_student(checkpoint, b, cfg["export_dir"])[0] for b in (cfg["float_backend"], cfg["int8_backend"])
        }
        size = next(iter(students.values())).config.input_size
        batch = torch.zeros(views, 3, size, size)
        times: dict[str, list[float]] = {b: [] for b in students}
        with torch.no_grad():
            for student in students.values():
                student.forward(batch)
            for _ in range(cfg["n_timing"]):
                for backend, student in students.items():  # interleaved: both see the same load
                    start = time.perf_counter()
                    student.forward(batch)
                    times[backend].append(1000 * (time.perf_counter() - start))
        for backend, values in times.items():
            rows.append(
                {
                    "threads": int(threads),
                    "backend": backend,
                    "batch": views,
                    "median_ms": float(np.median(values)),
                    "fastest_ms": float(np.min(values)),
                }
            )
    return rows


def study_preset(cfg: dict[str, Any], preset: str, dataset, ids: list[str], positions: dict[str, int]) -> dict:
    settings = {**cfg, **PRESETS[preset]}
    runs = {
        b: delivered_masks({**settings, "student_backend": b}, dataset, ids, positions)
        for b in (cfg["float_backend"], cfg["int8_backend"])
    }
    row = {"preset": preset, **compare(runs[cfg["float_backend"]], runs[cfg["int8_backend"]], cfg)}
    views = (3 if settings["student_tta"] else 1) + (1 if settings["zoom_stability"] else 0)
    row["network"] = time_network(settings, views)
    return row


def main(argv: list[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0])
    dataset, synthetic = open_data(DataSettings.from_config(cfg))
    ids, positions = subset_ids(dataset, cfg["every"], cfg["limit"])
    set_threads(max(int(t) for t in cfg["threads"]))
    rows = [study_preset(cfg, preset, dataset, ids, positions) for preset in cfg["presets"]]
    result = {"split": cfg["split"], "every": cfg["every"], "synthetic": synthetic, "rows": rows, "config": cfg}
    run_dir = resolve_run_dir(cfg["results_root"], cfg["out_dir"], "int8")
    write_json(run_dir / "int8.json", result)
    print_report(result)
    print(f"written to {run_dir / 'int8.json'}")
    return result


def print_report(result: dict[str, Any]) -> None:
    print(f"split={result['split']} every={result['every']}")
    print(
        "| preset | images | mean IoU float32 | mean IoU int8 | change | min IoU int8 vs float32 | below bar | kept |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for row in result["rows"]:
        quality = (
            f"{row['mean_iou_float32']:.4f} | {row['mean_iou_int8']:.4f} | {row['mean_iou_change']:+.4f}"
            if "mean_iou_float32" in row
            else "- | - | -"
        )
        print(
            f"| {row['preset']} | {row['n_images']} | {quality} | {row['min_iou_int8_vs_float32']:.4f} | "
            f"{row['n_below']} | {'yes' if row['passes'] else 'no'} |"
        )
    print("| preset | threads | backend | batch | median ms per pass | fastest ms |\n|---|---:|---|---:|---:|---:|")
    for row in result["rows"]:
        for t in row["network"]:
            print(
                f"| {row['preset']} | {t['threads']} | {t['backend']} | {t['batch']} | {t['median_ms']:.1f} | "
                f"{t['fastest_ms']:.1f} |"
            )


if __name__ == "__main__":
    run_main(main)
