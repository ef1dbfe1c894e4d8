"""Speed of a dataset run on this machine, stage by stage, against its network alone.

For ``n_images`` images of the run's data (read as a run reads them: a large photo reduced,
``max_side``), one at a time in this process: seconds per image end to end (reading, the
pipeline, scoring, writing the mask, the uncertainty and the record), the seconds of each stage,
and the network's passes alone: the student's batch for one image (its flips and zoomed-out view,
as the preset asks) run on its own, the same number of times, so the ratio of the whole to the
network is visible (``ratio_to_network``); a segmenter preset's image encoder is timed alone too.
Both wall-clock and CPU seconds (on a shared machine the CPU seconds are the steadier figure).

With ``worker_counts``, also the wall-clock time and images per second of the whole ``cam_sam.segment``
command on ``n_images`` images for each number of worker processes (start-up included; figures
off), and with ``processes`` the same under ``torchrun``; whether their ``metrics.json`` agree.
``network_batches``: the network alone on batches of that many images (does batching across
images pay on this machine?).

    python -m cam_sam.studies.benchmark --set n_images=40
    python -m cam_sam.studies.benchmark --set preset=realtime --set n_images=40 --set worker_counts='[2]'
    python -m cam_sam.studies.benchmark --set image_dir=/tmp/photos --set n_images=20      # full-size photos
    python -m cam_sam.studies.benchmark --set preset=arbiter                # teacher, student and box via LiteMedSAM
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from cam_sam.runs.build import build_pipeline
from cam_sam.runs.inputs import open_data
from cam_sam.runs.work import evaluate, set_threads, write_image_outputs
from cam_sam.settings import PRESETS, SEGMENT_CONFIG, DataSettings, resolve_pipeline
from common.cli import run_main
from common.config import config_from_argv
from common.devices import resolve_device
from common.io import read_json, resolve_run_dir, write_json
from data.isic import mask_at_size
from medsam.runtime import resolve_backend

CONFIG: dict[str, Any] = {
    **SEGMENT_CONFIG,
    "n_images": 10,
    "warmup": 1,
    "out_dir": None,
    "worker_counts": [],  # e.g. [1, 2]: time the segment command with that many workers
    "processes": [],  # e.g. [1, 2]: time the segment command under torchrun
    "network_batches": [],  # e.g. [1, 4, 8]: the network alone on that many images at once
    "threads": None,
}  # torch's, OpenCV's and the runtimes' threads (None: as they are;
# 1 is what each of two workers on a 2-core CPU gets)


class Clock:
    """Wall-clock and CPU seconds of a block: ``with clock: ...``; both accumulate."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def __enter__(self) -> Clock:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_) -> None:
        self.wall += time.perf_counter() - self._wall
        self.cpu += time.process_time() - self._cpu


def _count_network(student) -> Clock:
    """Time every forward pass of ``student`` (its runtime or torch network) into a clock."""
    clock, forward = Clock(), student.forward

    def timed(batch):
        with clock:
            return forward(batch)

    student.forward = timed
    return clock


def views_per_image(pipeline) -> int:
    """Images in the student's batch for one image: its flips, and the zoomed-out view when measured."""
    return len(pipeline.student.flips) + (1 if pipeline.config.zoom_stability else 0)


def time_pipeline(cfg: dict[str, Any], dataset, ids: list[int], device: str) -> dict[str, Any]:
    """Per-image end-to-end seconds, per-stage seconds and the network alone (module docstring)."""
    models, pipeline_config = resolve_pipeline(cfg)
    pipeline = build_pipeline(models, pipeline_config, device)
    if pipeline.segmenter is not None:
        pipeline.segmenter.use_cache(None, "")  # a benchmark times real encodings, never the disk cache
    run_settings = {"save_uncertainty": cfg["save_uncertainty"], "oracle": cfg["oracle"]}
    for index in ids[: cfg["warmup"]]:
        pipeline.segment(dataset[index].image)
    timed = ids[cfg["warmup"] :] or ids
    network = _count_network(pipeline.student) if pipeline.student is not None else None
    pipeline.timer.reset()
    total, reading, writing, scoring = Clock(), Clock(), Clock(), Clock()
    with tempfile.TemporaryDirectory() as folder:
        for index in timed:
            with total:
                with reading:
                    sample = dataset[index]
                output = pipeline.segment(sample.image)
                with writing:  # what cam_sam.segment writes per image: mask, uncertainty, record
                    final = mask_at_size(output.final_mask, sample.hw)
                    record = write_image_outputs(Path(folder), "image", output, run_settings["save_uncertainty"], final)
                if sample.mask is not None:
                    with scoring:
                        record["metrics"] = evaluate(
                            output, sample.mask, pipeline_config.postprocess, run_settings["oracle"], final
                        )
                with writing:
                    write_json(Path(folder) / "record.json", record, indent=None)
    n = len(timed)
    stages = {
        "reading": reading.wall / n,
        **{name: seconds / n for name, seconds in pipeline.timer.seconds.items()},
        "scoring": scoring.wall / n,
        "writing": writing.wall / n,
    }
    result: dict[str, Any] = {
        "n_images": n,
        "backend": pipeline.segmenter.backend if pipeline.segmenter else None,
        "student_backend": (
            None
            if pipeline.student is None
            else "torch"
            if pipeline.student.runner is None
            else resolve_backend(models.student_backend, device, "student_backend")
        ),
        "seconds_per_image": total.wall / n,
        "cpu_seconds_per_image": total.cpu / n,
        "stages": stages,
    }
    alone = Clock()
    if network is not None:
        stages["student network (in proposals)"] = network.wall / n
        batch = torch.zeros(
            views_per_image(pipeline), 3, pipeline.student.config.input_size, pipeline.student.config.input_size
        )
        with torch.no_grad():
            for _ in range(n):
                with alone:
                    pipeline.student.forward(batch)
        # the wrapper counted these too; the pipeline's share is what it counted before
        result["network"] = {
            "views_per_image": int(batch.shape[0]),
            "seconds_per_image": (alone.wall / n),
            "cpu_seconds_per_image": alone.cpu / n,
        }
    if pipeline.segmenter is not None:
        encoder = Clock()
        for index in timed:
            image = dataset[index].image
            with encoder:
                pipeline.segmenter.set_image(image)
        result.setdefault("network", {})["segmenter_encoder_seconds_per_image"] = encoder.wall / n
    alone_wall = alone.wall / n + result.get("network", {}).get("segmenter_encoder_seconds_per_image", 0.0)
    if alone_wall > 0:
        result["ratio_to_network"] = result["seconds_per_image"] / alone_wall
        if alone.cpu > 0:
            result["cpu_ratio_to_network"] = result["cpu_seconds_per_image"] / (alone.cpu / n)
    if cfg["network_batches"] and pipeline.student is not None:
        result["network_batches"] = network_batches(pipeline, cfg["network_batches"], n)
    return result


def network_batches(pipeline, sizes: list[int], repeats: int) -> list[dict[str, float]]:
    """The student's network alone on batches of ``size`` images (each its views), per image."""
    rows, size_px = [], pipeline.student.config.input_size
    views = views_per_image(pipeline)
    for size in sizes:
        batch = torch.zeros(views * size, 3, size_px, size_px)
        clock = Clock()
        with torch.no_grad():
            pipeline.student.forward(batch)
            for _ in range(max(2, repeats // size)):
                with clock:
                    pipeline.student.forward(batch)
        runs = max(2, repeats // size)
        rows.append(
            {
                "images_per_batch": size,
                "seconds_per_image": clock.wall / runs / size,
                "cpu_seconds_per_image": clock.cpu / runs / size,
            }
        )
    return rows


def _segment_command(cfg: dict[str, Any], out_dir: Path, launcher: list[str], extra: dict[str, Any]) -> list[str]:
    settings = {k: v for k, v in cfg.items() if k in SEGMENT_CONFIG and v != SEGMENT_CONFIG[k]}
    settings.update(out_dir=str(out_dir), limit=cfg["n_images"], n_overlays=0, **extra)
    settings.pop("preset", None)  # already applied to cfg
    return (
        launcher
        + ["-m", "cam_sam.segment"]
        + [a for k, v in settings.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    )


def time_commands(cfg: dict[str, Any], folder: Path) -> list[dict[str, Any]]:
    """Wall-clock seconds of ``cam_sam.segment`` on ``n_images`` images for each worker count
    (``worker_counts``) and each ``torchrun`` process count (``processes``)."""
    rows, reference = [], None
    runs = [("workers", n, [sys.executable], {"workers": n}) for n in cfg["worker_counts"]]
    runs += [
        ("processes", n, [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}"], {})
        for n in cfg["processes"]
    ]
    for kind, n, launcher, extra in runs:
        out_dir = folder / f"{kind}_{n}"
        start = time.perf_counter()
        subprocess.run(_segment_command(cfg, out_dir, launcher, extra), check=True, capture_output=True)
        seconds = time.perf_counter() - start
        summary = read_json(out_dir / "metrics.json")["summary"]
        reference = reference or summary
        rows.append(
            {
                kind: n,
                "seconds": seconds,
                "images_per_second": cfg["n_images"] / seconds,
                "metrics_identical_to_first": summary == reference,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0], presets=PRESETS)
    dataset, synthetic = open_data(DataSettings.from_config(cfg))
    device = resolve_device(cfg["device"])
    if cfg["threads"]:
        set_threads(int(cfg["threads"]))
    ids = list(range(min(cfg["n_images"] + cfg["warmup"], len(dataset))))
    result = {
        "synthetic": synthetic,
        "device": device,
        "threads": torch.get_num_threads(),
        **time_pipeline(cfg, dataset, ids, device),
        "config": cfg,
    }
    run_dir = resolve_run_dir(cfg["results_root"], cfg["out_dir"], "benchmark")
    if cfg["worker_counts"] or cfg["processes"]:
        result["commands"] = time_commands(cfg, run_dir)
    write_json(run_dir / "benchmark.json", result)
    print_report(result)
    print(f"written to {run_dir / 'benchmark.json'}")
    return result


def print_report(result: dict[str, Any]) -> None:
    line = (
        f"{result['n_images']} images on {result['device']} ({result['threads']} threads): "
        f"{result['seconds_per_image']:.3f} s per image end to end ({result['cpu_seconds_per_image']:.3f} s CPU)"
    )
    network = result.get("network", {})
    if "seconds_per_image" in network:
        line += (
            f"; the student's network alone ({network['views_per_image']} views) {network['seconds_per_image']:.3f} s "
            f"({network['cpu_seconds_per_image']:.3f} s CPU)"
        )
    if "segmenter_encoder_seconds_per_image" in network:
        line += f"; the segmenter's encoder alone {network['segmenter_encoder_seconds_per_image']:.3f} s"
    if "ratio_to_network" in result:
        line += f" -> end to end / network {result['ratio_to_network']:.2f}"
        if "cpu_ratio_to_network" in result:
            line += f" ({result['cpu_ratio_to_network']:.2f} in CPU seconds)"
    print(line)
    print("| stage | seconds per image |\n|---|---:|")
    for name, seconds in result["stages"].items():
        print(f"| {name} | {seconds:.4f} |")
    for row in result.get("network_batches", []):
        print(
            f"network alone, {row['images_per_batch']} image(s) per batch: {row['seconds_per_image']:.4f} s per image "
            f"({row['cpu_seconds_per_image']:.4f} s CPU)"
        )
    for row in result.get("commands", []):
        kind = "workers" if "workers" in row else "processes"
        print(
            f"cam_sam.segment, {kind}={row[kind]}: {row['seconds']:.1f} s, {row['images_per_second']:.2f} images/s, "
            f"metrics identical to the first: {row['metrics_identical_to_first']}"
        )


if __name__ == "__main__":
    run_main(main)
