"""Speed of the segmentation pipeline on this machine.

Prints, for N images of a split: seconds per image end to end (CAMs, proposals, one encoding,
all decodes, post-processing; image loading excluded) and its ratio to one image-encoder forward
pass timed in the same run. Also the time of one CAM pass and of one prompt decode.

    python -m cam_sam.benchmark --set n_images=10
    python -m cam_sam.benchmark --set preset=fast --set student_checkpoint=model_checkpoints/student_r2.pt

The reference encoder pass is always timed, also for a pipeline that needs no segmenter (the
fast preset), so the ratio compares like with like.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from cam_sam.build import build_pipeline, open_data
from cam_sam.evaluation import PRESETS, SEGMENT_CONFIG
from common.cli import run_main
from common.devices import resolve_device
from medsam.factory import create_segmenter
from common.config import config_from_argv
from common.io import resolve_run_dir, write_json

CONFIG: dict[str, Any] = {**SEGMENT_CONFIG, "n_images": 10, "warmup": 1, "out_dir": None}


def _timed(fn, repeats: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main(argv: list[str] | None = None) -> dict[str, Any]:
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0], presets=PRESETS)
    dataset, synthetic = open_data(cfg)
    device = resolve_device(cfg["device"])
    pipeline = build_pipeline(cfg, device)
    explainer = pipeline.explainer
    if pipeline.segmenter is not None:
        pipeline.segmenter.use_cache(None, "")   # a benchmark times real encodings, never the disk cache
    segmenter = pipeline.segmenter or create_segmenter(cfg["segmenter"], cfg["segmenter_checkpoint"], device,
                                                       cfg["decode_batch_size"])
    images = [dataset[i].image for i in range(min(cfg["n_images"] + cfg["warmup"], len(dataset)))]
    for image in images[: cfg["warmup"]]:
        pipeline.segment(image)
    images = images[cfg["warmup"]:] or images
    end_to_end, encoder, decode, cam = [], [], [], []
    for image in images:
        end_to_end.append(_timed(lambda: pipeline.segment(image)))
        encoder.append(_timed(lambda: segmenter.set_image(image)))
        h, w = image.shape[:2]
        box = np.array([[w * 0.25, h * 0.25, w * 0.75, h * 0.75]], np.float32)
        decode.append(_timed(lambda: segmenter.predict(boxes=box), repeats=3))
        if explainer is not None:
            cam.append(_timed(lambda: explainer.explain(image, cfg["methods"][:1])))
    result = {
        "n_images": len(images), "synthetic": synthetic, "device": device, "threads": torch.get_num_threads(),
        "seconds_per_image": float(np.mean(end_to_end)),
        "encoder_seconds": float(np.mean(encoder)),
        "ratio_to_encoder": float(np.mean(end_to_end) / np.mean(encoder)),
        "decode_seconds_per_prompt": float(np.mean(decode)),
        "cam_seconds": float(np.mean(cam)) if cam else None,
        "config": cfg,
    }
    run_dir = resolve_run_dir(cfg["results_root"], cfg["out_dir"], "benchmark")
    write_json(run_dir / "benchmark.json", result)
    print(f"{len(images)} images on {device} ({torch.get_num_threads()} threads): "
          f"{result['seconds_per_image']:.2f} s per image end to end; image encoder {result['encoder_seconds']:.2f} s "
          f"-> ratio {result['ratio_to_encoder']:.2f}; one prompt decode {result['decode_seconds_per_prompt'] * 1000:.0f} ms"
          + (f"; one {cfg['methods'][0]} CAM {result['cam_seconds']:.2f} s" if cam else ""))
    print(f"written to {run_dir / 'benchmark.json'}")
    return result


if __name__ == "__main__":
    run_main(main)
