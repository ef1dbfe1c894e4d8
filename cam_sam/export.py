"""Export the student (the default's segmenter) as ONNX, checked against PyTorch.

    python -m cam_sam.export                                       # the shipped student -> results/export/
    python -m cam_sam.export --set student_checkpoint=results/student_x/student.pt --set out=student_x.onnx

Writes ``<out>`` (the U-Net, dynamic batch; :mod:`models.student_export`) and ``<out>.json`` (its
card: names, shapes, preprocessing, the check below). Before writing, the exported graph runs in
onnxruntime on generated lesions (and on the first ISIC validation images when ``data_root`` has
them) and every mask (sigmoid > 0.5) must match PyTorch's with IoU >= ``min_iou``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cam_sam.settings import DATA_CONFIG, PIPELINE_CONFIG
from common.cli import run_main
from common.config import config_from_argv
from common.errors import CheckpointError, RunError
from common.geometry import pairwise_iou
from common.io import write_atomically, write_json
from data.isic import DataError, ISICDataset
from data.synthetic import make_synthetic_sample
from models.student import StudentConfig, load_student
from models.student_export import INPUT_NAME, OPSET, export_onnx, model_card, preprocess

CONFIG: dict[str, Any] = {
    "student_checkpoint": PIPELINE_CONFIG["student_checkpoint"],
    "out": "results/export/student.onnx",
    "opset": OPSET,
    "data_root": DATA_CONFIG["data_root"],  # its validation images join the check when present
    "n_check": 8,  # generated lesions (and as many validation images) checked
    "min_iou": 0.999,  # exported vs PyTorch mask, every checked image
}

log = logging.getLogger("cam_sam.export")


def check_images(cfg: dict[str, Any]) -> list[np.ndarray]:
    """Generated lesions, then the first validation images where ``data_root`` holds them."""
    images = [make_synthetic_sample(1000 + i).image for i in range(cfg["n_check"])]
    try:
        data = ISICDataset(cfg["data_root"], "val", read_masks=False)
        images += [data[i].image for i in range(min(cfg["n_check"], len(data)))]
    except (DataError, FileNotFoundError, OSError):
        log.info("no ISIC validation images in %s: the check uses generated lesions only", cfg["data_root"])
    return images


def compare(model: torch.nn.Module, session, images: list[np.ndarray], config: StudentConfig) -> list[float]:
    """Per image, the IoU of the ONNX and PyTorch masks (logits > 0), one batch of all images."""
    batch = np.concatenate([preprocess(image, config) for image in images])
    onnx_logits = session.run(None, {INPUT_NAME: batch})[0]
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(batch)).numpy()
    return [float(pairwise_iou(np.stack([a[0] > 0, b[0] > 0]))[0, 1]) for a, b in zip(onnx_logits, torch_logits)]


def check_and_write(
    graph: bytes,
    model: torch.nn.Module,
    config: StudentConfig,
    cfg: dict[str, Any],
    out: Path,
    card: dict[str, Any],
) -> list[float]:
    """Run ``graph`` in onnxruntime on :func:`check_images`, refuse it (nothing written) unless every
    mask matches PyTorch's with IoU >= ``cfg["min_iou"]``, then write it to ``out`` and ``card`` beside it."""
    import onnxruntime

    session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
    ious = compare(model, session, check_images(cfg), config)
    min_iou = cfg["min_iou"]
    if min(ious) < min_iou:
        raise RunError(
            f"{out.name}: the exported student's masks differ from PyTorch's "
            f"(lowest IoU {min(ious):.4f} < {min_iou}); nothing written"
        )
    write_atomically(out, lambda tmp: tmp.write_bytes(graph))
    write_json(
        out.with_suffix(".json"), {**card, "check": {"n_images": len(ious), "min_mask_iou_vs_pytorch": min(ious)}}
    )
    log.info(
        "%s written (%.1f MB); masks vs PyTorch on %d images: lowest IoU %.5f",
        out,
        len(graph) / 1e6,
        len(ious),
        min(ious),
    )
    return ious


def main(argv: list[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0])
    checkpoint = Path(cfg["student_checkpoint"] or "")
    if not checkpoint.is_file():
        raise CheckpointError(f"student checkpoint not found: {checkpoint}")
    model, config, _ = load_student(checkpoint)
    model = model.float().eval()
    out = Path(cfg["out"])
    card = model_card(config, checkpoint, cfg["opset"])
    onnx_bytes = export_onnx(model, config, cfg["opset"])
    ious = check_and_write(onnx_bytes, model, config, cfg, out, card)
    return {"out": str(out), "ious": ious}


if __name__ == "__main__":
    run_main(main)
