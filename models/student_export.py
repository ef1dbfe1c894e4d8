"""The student as an ONNX file that runs without this project: onnxruntime and numpy are enough.

The exported graph is the U-Net alone, ``image`` (B, 3, S, S) float32 -> ``logits`` (B, 1, S, S),
with a dynamic batch; the preprocessing (stretch the RGB image to S x S, scale to [0, 1], subtract
``NORM_MEAN``, divide by ``NORM_STD``) and the post-processing (sigmoid > 0.5, resize back, flips
averaged if wanted) stay outside, written out in :func:`preprocess` and in the README's example.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from models.student import NORM_MEAN, NORM_STD, StudentConfig, to_input

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "image", "logits"


def export_onnx(model: torch.nn.Module, config: StudentConfig, opset: int = OPSET) -> bytes:
    """The ONNX bytes of ``model`` (float32, eval mode) for (B, 3, S, S) inputs, B dynamic."""
    model = model.float().eval()
    example = torch.zeros(2, 3, config.input_size, config.input_size)
    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            model,
            example,
            buffer,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    return buffer.getvalue()


def preprocess(image: np.ndarray, config: StudentConfig) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (1, 3, S, S) float32, as the student was trained (the same tensor as
    :class:`models.student.StudentSegmenter` gives its network, colour constancy included)."""
    gains = config.colour_gains(image)
    return to_input(image, config.input_size, gains).numpy().astype(np.float32)


def model_card(config: StudentConfig, checkpoint: str | Path, opset: int = OPSET) -> dict:
    """What a user needs to run the file: names, shapes, preprocessing and threshold."""
    return {
        "checkpoint": str(checkpoint),
        "opset": opset,
        "input": {"name": INPUT_NAME, "shape": ["batch", 3, config.input_size, config.input_size], "dtype": "float32"},
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch", 1, config.input_size, config.input_size],
            "meaning": "lesion logits; mask = sigmoid(logits) > 0.5",
        },
        "preprocessing": f"RGB stretched to {config.input_size} x {config.input_size} (bilinear, antialiased; "
        f"aspect not kept), / 255, "
        + (
            ""
            if config.colour_constancy is None
            else f"each channel times its {config.colour_constancy} gain to the power {config.colour_strength} "
            f"(common.colour, clipped to 0-1), "
        )
        + f"(x - {NORM_MEAN}) / {NORM_STD}, channels first",
        "backbone": config.backbone,
    }
