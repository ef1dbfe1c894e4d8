"""The student through ONNX Runtime or OpenVINO: the same network, exported once from its weights
(:class:`medsam.runtime.OnnxExport`: cached by a key of the weights, rebuilt when stale or
corrupt), answering what :meth:`models.student.StudentSegmenter.forward` answers: logits and the
pooled deepest features, for a batch of any size (the flips of one image are one batch).

:func:`runtime_student` keys the export by the checkpoint's tensors, so that when a valid export
is cached the torch network is never built (segmentation-models-pytorch, timm and the torchvision
they import stay unloaded: about 2 s less at start-up on a 2-core CPU)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from medsam.runtime import OnnxExport, load_runner, resolve_backend, state_digest
from models.student import StudentConfig, StudentSegmenter, load_student, read_student

log = logging.getLogger(__name__)

OUTPUT_NAMES = (["image"], ["logits", "features"])
DYNAMIC_AXES = {"image": {0: "batch"}, "logits": {0: "batch"}, "features": {0: "batch"}}
NET_PREFIX = "net."  # _WithFeatures holds the U-Net as ``net``: its state dict's names start so


class _WithFeatures(torch.nn.Module):
    """The student's U-Net as one graph: (B, 3, S, S) -> (logits (B, 1, S, S), features (B, C))."""

    def __init__(self, student: StudentSegmenter) -> None:
        super().__init__()
        self.net = student.model  # a registered submodule: its weights key the export
        self._student = student

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, pooled = self._student.forward(x)
        return logits, pooled


def _export(folder: str | Path, config: StudentConfig, module, weights: str | None = None) -> OnnxExport:
    size = config.input_size
    return OnnxExport(
        folder,
        f"student_{config.backbone}_{size}",
        module,
        (torch.zeros(3, 3, size, size),),
        OUTPUT_NAMES,
        DYNAMIC_AXES,
        weights=weights,
    )


def use_student_backend(
    student: StudentSegmenter,
    backend: str,
    export_dir: str | Path,
    device: str | torch.device = "cpu",
) -> str:
    """Run ``student`` through ``backend`` (``auto``, ``torch``, ``onnxruntime``, ``openvino``;
    :func:`medsam.runtime.resolve_backend`); returns the backend used.
    A model whose forward pass gives no features (not a U-Net with an encoder) stays on torch."""
    resolved = resolve_backend(backend, device, "student_backend")
    if resolved == "torch":
        return resolved
    student.runner = None
    if not student.has_features:
        log.info("the student gives no features: it stays on torch")
        return "torch"
    export = _export(export_dir, student.config, _WithFeatures(student))
    student.runner = load_runner(resolved, export)
    return resolved


def exported_weights_digest(payload: dict) -> str:
    """The digest the export of a checkpoint's student is keyed by (:func:`medsam.runtime.weights_digest`
    of the ``_WithFeatures`` module that holds it), from the checkpoint's tensors alone: each as the
    loaded float32 network holds it (a float16 file's weights are exactly their float32 values)."""
    return state_digest(
        {
            NET_PREFIX + name: tensor.float() if tensor.is_floating_point() else tensor
            for name, tensor in payload["model"].items()
        }
    )


def runtime_student(
    checkpoint: str | Path,
    backend: str,
    export_dir: str | Path,
    device: str | torch.device = "cpu",
    tta: bool = True,
) -> tuple[StudentSegmenter, str]:
    """(the student of ``checkpoint``, the backend it runs on). On ONNX Runtime or OpenVINO with a
    valid cached export of these weights, the student runs from the
    export alone; otherwise the torch network is built (and, for a runtime, exported:
    :func:`use_student_backend`)."""
    resolved = resolve_backend(backend, device, "student_backend")
    if resolved != "torch":
        config, payload = read_student(checkpoint)

        def build() -> torch.nn.Module:  # only when the cached file must be (re)built
            return _WithFeatures(StudentSegmenter(load_student(checkpoint)[0], config, "cpu", tta))

        export = _export(export_dir, config, build, exported_weights_digest(payload))
        if export.is_valid():
            runner = load_runner(resolved, export)
            return StudentSegmenter(None, config, device, tta, runner=runner), resolved
    student = StudentSegmenter.from_checkpoint(checkpoint, device, tta)
    return student, use_student_backend(student, backend, export_dir, device)
