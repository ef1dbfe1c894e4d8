"""The student through ONNX Runtime or OpenVINO: the same network, exported once from the loaded
weights (:class:`medsam.runtime.OnnxExport`: cached by a key of the weights, rebuilt when stale or
corrupt), answering what :meth:`models.student.StudentSegmenter.forward` answers: logits and the
pooled deepest features, for a batch of any size (the flips of one image are one batch)."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from medsam.runtime import OnnxExport, load_runner, resolve_backend
from models.student import StudentSegmenter

log = logging.getLogger(__name__)


class _WithFeatures(torch.nn.Module):
    """The student's U-Net as one graph: (B, 3, S, S) -> (logits (B, 1, S, S), features (B, C))."""

    def __init__(self, student: StudentSegmenter) -> None:
        super().__init__()
        self.net = student.model          # a registered submodule: its weights key the export
        self._student = student

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, pooled = self._student.forward(x)
        return logits, pooled


def use_student_backend(student: StudentSegmenter, backend: str, export_dir: str | Path,
                        device: str | torch.device = "cpu") -> str:
    """Run ``student`` through ``backend`` (``auto``, ``torch``, ``onnxruntime``, ``openvino``;
    :func:`medsam.runtime.resolve_backend`); returns the backend used. A model whose forward pass
    gives no features (not a U-Net with an encoder) stays on torch."""
    resolved = resolve_backend(backend, device)
    if resolved == "torch":
        return resolved
    student.runner = None
    if not student.has_features:
        log.info("the student gives no features: it stays on torch")
        return "torch"
    size = student.config.input_size
    example = torch.zeros(3, 3, size, size)
    axes = {"image": {0: "batch"}, "logits": {0: "batch"}, "features": {0: "batch"}}
    export = OnnxExport(export_dir, f"student_{student.config.backbone}_{size}", _WithFeatures(student),
                        (example,), (["image"], ["logits", "features"]), axes)
    student.runner = load_runner(resolved, export)
    return resolved
