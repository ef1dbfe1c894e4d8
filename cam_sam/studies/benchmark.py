"""Speed of the segmentation pipeline on this machine.

For N images of a split: seconds per image end to end (CAMs, proposals, one encoding, every
decode, selection, post-processing; image loading excluded), seconds per stage, the time to
write one image's outputs, and the ratio to ONE PLAIN PYTORCH image-encoder pass timed in the same
run (a separate torch segmenter, whatever backend the pipeline uses). With ``processes``, also
the wall-clock time and images per second of the whole ``cam_sam.segment`` command on
``n_images`` images for each number of processes (``torchrun``), and whether their
``metrics.json`` agree.

    python -m cam_sam.studies.benchmark --set n_images=10
    python -m cam_sam.studies.benchmark --set backend=torch                 # the plain PyTorch path
    python -m cam_sam.studies.benchmark --set preset=arbiter                # teacher, student and box via LiteMedSAM
    python -m cam_sam.studies.benchmark --set processes='[1, 2]' --set n_images=120
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cam_sam.runs.build import build_pipeline
from cam_sam.runs.inputs import open_data
from cam_sam.runs.work import write_image_outputs
from cam_sam.settings import PRESETS, SEGMENT_CONFIG, DataSettings, resolve_pipeline
from common.cli import run_main
from common.config import config_from_argv
from common.devices import resolve_device
from common.io import read_json, resolve_run_dir, write_json
from medsam.factory import create_segmenter

CONFIG: dict[str, Any] = {**SEGMENT_CONFIG, "n_images": 10, "warmup": 1, "out_dir": None,
                          "processes": []}   # e.g. [1, 2]: time the segment command under torchrun


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_pipeline(cfg: dict[str, Any], images: list[np.ndarray], device: str) -> dict[str, Any]:
    """Per-image end-to-end and per-stage seconds, writing, and the plain torch encoder pass."""
    pipeline = build_pipeline(*resolve_pipeline(cfg), device)
    if pipeline.segmenter is not None:
        pipeline.segmenter.use_cache(None, "")   # a benchmark times real encodings, never the disk cache
    reference = create_segmenter(cfg["segmenter"], cfg["segmenter_checkpoint"], device, cfg["decode_batch_size"])
    for image in images[: cfg["warmup"]]:
        pipeline.segment(image)
        reference.set_image(image)
    timed = images[cfg["warmup"]:] or images
    pipeline.timer.reset()
    end_to_end, encoder, writing = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for image in timed:
            output = None

            def run():
                nonlocal output
                output = pipeline.segment(image)
            end_to_end.append(_timed(run))
            # what cam_sam.segment writes per image: the mask PNG and the uncertainty map
            writing.append(_timed(lambda: write_image_outputs(Path(folder), "image", output, save_uncertainty=True)))
            encoder.append(_timed(lambda: reference.set_image(image)))
    stages = {name: seconds / len(timed) for name, seconds in pipeline.timer.seconds.items()}
    stages["writing"] = float(np.mean(writing))
    return {"n_images": len(timed), "backend": pipeline.segmenter.backend if pipeline.segmenter else None,
            "seconds_per_image": float(np.mean(end_to_end)), "stages": stages,
            "torch_encoder_seconds": float(np.mean(encoder)),
            "ratio_to_torch_encoder": float(np.mean(end_to_end) / np.mean(encoder))}


def time_processes(cfg: dict[str, Any], counts: list[int], folder: Path) -> list[dict[str, Any]]:
    """Wall-clock seconds of ``cam_sam.segment`` on ``n_images`` images for each process count."""
    rows, reference = [], None
    for n in counts:
        out_dir = folder / f"processes_{n}"
        settings = {k: v for k, v in cfg.items() if k in SEGMENT_CONFIG and v != SEGMENT_CONFIG[k]}
        settings.update(out_dir=str(out_dir), limit=cfg["n_images"], n_overlays=0)
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
                   "-m", "cam_sam.segment"] + [a for k, v in settings.items() for a in ("--set", f"{k}={json.dumps(v)}")]
        seconds = _timed(lambda: subprocess.run(command, check=True, capture_output=True))
        metrics = read_json(out_dir / "metrics.json")
        summary = metrics["summary"]
        reference = reference or summary
        rows.append({"processes": n, "seconds": seconds, "images_per_second": cfg["n_images"] / seconds,
                     "metrics_identical_to_first": summary == reference})
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0], presets=PRESETS)
    dataset, synthetic = open_data(DataSettings.from_config(cfg))
    device = resolve_device(cfg["device"])
    images = [dataset[i].image for i in range(min(cfg["n_images"] + cfg["warmup"], len(dataset)))]
    result = {"synthetic": synthetic, "device": device, "threads": torch.get_num_threads(),
              **time_pipeline(cfg, images, device), "config": cfg}
    run_dir = resolve_run_dir(cfg["results_root"], cfg["out_dir"], "benchmark")
    if cfg["processes"]:
        result["processes"] = time_processes(cfg, cfg["processes"], run_dir)
    write_json(run_dir / "benchmark.json", result)
    print_report(result)
    print(f"written to {run_dir / 'benchmark.json'}")
    return result


def print_report(result: dict[str, Any]) -> None:
    print(f"{result['n_images']} images on {result['device']} ({result['threads']} threads), backend "
          f"{result['backend']}: {result['seconds_per_image']:.3f} s per image end to end; one plain PyTorch "
          f"encoder pass {result['torch_encoder_seconds']:.3f} s -> ratio {result['ratio_to_torch_encoder']:.2f}")
    print("| stage | seconds per image |\n|---|---:|")
    for name, seconds in result["stages"].items():
        print(f"| {name} | {seconds:.3f} |")
    for row in result.get("processes", []):
        print(f"{row['processes']} process(es): {row['seconds']:.1f} s, {row['images_per_second']:.2f} images/s, "
              f"metrics identical to the first: {row['metrics_identical_to_first']}")


if __name__ == "__main__":
    run_main(main)
