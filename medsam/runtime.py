"""Faster CPU inference for a segmenter: its image encoder and its box decoder exported to ONNX by
the project's own code (from the weights already loaded, so nothing is downloaded) and run by
ONNX Runtime or OpenVINO.

Exports are cached on disk, one ``<part>-<key>.onnx`` with a ``.json`` manifest per model part.
The key hashes the weights, the input shape, the torch version and :data:`EXPORT_VERSION`, so new
weights or a new exporter make a new file; the manifest also records the file's SHA-256, so a
truncated or corrupt export is detected and rebuilt. A file the runtime still cannot load is
rebuilt once.

Backends (``backend`` config key): ``torch`` (no export), ``onnxruntime``, ``openvino``, and
``auto``: OpenVINO on the CPU when it is installed, else ONNX Runtime, else torch; torch on a GPU.
Precision is float32 throughout (OpenVINO is told so: on CPUs with bfloat16 units it would
otherwise compute in bfloat16), so masks match the torch path (``tests/test_runtime.py``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import logging
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch

from common.errors import SettingsError
from common.io import read_json, write_atomically, write_json

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnxruntime", "openvino")
EXPORT_VERSION = 1  # bump when the export code changes: every cached file is rebuilt
OPSET = 17
OPENVINO_CACHE = "openvino"  # the folder, beside the exports, of OpenVINO's compiled networks


def resolve_backend(backend: str, device: str | torch.device, setting: str = "backend") -> str:
    """The backend ``auto`` stands for on ``device``; a named one is checked to be installed.
    ``setting``: the name an error gives it (``backend`` or ``student_backend``)."""
    if backend not in BACKENDS:
        raise SettingsError(f"unknown {setting} {backend!r}; available: {', '.join(BACKENDS)}")
    if backend == "auto":
        if torch.device(device).type != "cpu":
            return "torch"
        return next((b for b in ("openvino", "onnxruntime") if importlib.util.find_spec(b)), "torch")
    if backend != "torch" and importlib.util.find_spec(backend) is None:
        raise SettingsError(f"{setting} {backend!r} is not installed (pip install {backend})")
    if backend != "torch" and torch.device(device).type != "cpu":
        raise SettingsError(f"{setting} {backend!r} runs on the CPU only; on {device} use {setting}=torch (or auto)")
    return backend


def state_digest(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of named tensors (names, shapes, dtypes, values), in name order: the same for a
    module's ``state_dict()`` and for a checkpoint's tensors loaded as that module would hold them."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name]
        digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def weights_digest(module: torch.nn.Module) -> str:
    """:func:`state_digest` of a module's parameters and buffers."""
    return state_digest(module.state_dict())


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class OnnxExport:
    """One model part exported to ``<folder>/<name>-<key>.onnx`` (see the module docstring).

    ``module``: the torch part, or a call that builds it when the file must be (re)built, with
    ``weights`` its :func:`weights_digest` known without it (a cached export then runs without the
    torch network ever being built); ``example``: its example inputs (their shapes are fixed,
    except the axes named in ``dynamic_axes``); ``names``: (input names, output names)."""

    def __init__(
        self,
        folder: str | Path,
        name: str,
        module: torch.nn.Module | Callable[[], torch.nn.Module],
        example: tuple[torch.Tensor, ...],
        names: tuple[list[str], list[str]],
        dynamic_axes: dict | None = None,
        weights: str | None = None,
    ) -> None:
        if weights is None and not isinstance(module, torch.nn.Module):
            raise ValueError("an export built on demand needs the digest of its weights (weights=)")
        self.module, self.example, self.names, self.dynamic_axes = module, example, names, dynamic_axes or {}
        shapes = [tuple(t.shape) for t in example]
        key = hashlib.sha256(
            f"{weights or weights_digest(module)}|{shapes}|{self.dynamic_axes}|{torch.__version__}|"
            f"{OPSET}|{EXPORT_VERSION}".encode()
        ).hexdigest()
        self.key = key
        self.path = Path(folder) / f"{name}-{key[:16]}.onnx"
        self.manifest = self.path.with_suffix(".json")

    def is_valid(self) -> bool:
        """The file exists, was written for this key, and is byte for byte what was written."""
        if not (self.path.is_file() and self.manifest.is_file()):
            return False
        try:
            manifest = read_json(self.manifest)
        except (OSError, ValueError):
            return False
        return manifest.get("key") == self.key and manifest.get("sha256") == file_digest(self.path)

    def build(self) -> Path:
        """Export (again) and write the manifest; returns the file."""
        log.info("exporting %s to ONNX (once; cached)", self.path.name)

        module = self.module if isinstance(self.module, torch.nn.Module) else self.module()

        def export(tmp: Path) -> None:
            buffer = io.BytesIO()
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer notes on shape asserts: expected, not the user's concern
                torch.onnx.export(
                    module.eval(),
                    self.example,
                    buffer,
                    input_names=self.names[0],
                    output_names=self.names[1],
                    dynamic_axes=self.dynamic_axes,
                    opset_version=OPSET,
                    dynamo=False,
                )
            tmp.write_bytes(buffer.getvalue())

        write_atomically(self.path, export)
        write_json(
            self.manifest,
            {
                "key": self.key,
                "sha256": file_digest(self.path),
                "torch": torch.__version__,
                "opset": OPSET,
                "export_version": EXPORT_VERSION,
            },
        )
        return self.path

    def file(self) -> Path:
        """The cached export, rebuilt when missing, stale or corrupt."""
        if not self.is_valid():
            if self.path.exists():
                log.warning("cached ONNX export %s is stale or corrupt: rebuilding it", self.path)
            self.build()
        return self.path


Runner = Callable[..., list[np.ndarray]]


def _open_runner(backend: str, path: Path, threads: int) -> Runner:
    """A callable ``run(**inputs) -> [outputs]`` over ``path`` with ``backend``."""
    if backend == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return lambda **inputs: session.run(None, inputs)
    import openvino as ov

    # float32 (not the bfloat16 OpenVINO picks on CPUs with AMX), the thread count torch was given, and
    # no pinning: several processes on one machine (torchrun) would otherwise pin to the same cores.
    # OpenVINO keeps the compiled network in CACHE_DIR beside the exports, so a later start reads it
    # instead of compiling again (0.21 -> 0.10 s for the student on a 2-core CPU; the same outputs).
    # The graph is read first and compiled as a model: its cache entry is then keyed by the graph's
    # content (compiled from a path, OpenVINO 2026.4 served a rebuilt file's stale network).
    core = ov.Core()
    compiled = core.compile_model(
        core.read_model(str(path)),
        "CPU",
        {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": "f32",
            "ENABLE_CPU_PINNING": False,
            "CACHE_DIR": str(path.parent / OPENVINO_CACHE),
        },
    )
    request = compiled.create_infer_request()
    return lambda **inputs: [np.asarray(v) for v in request.infer(inputs).values()]


def load_runner(backend: str, export: OnnxExport, threads: int | None = None) -> Runner:
    """A runner of ``export`` (built if needed); a file the runtime rejects is rebuilt once."""
    threads = threads or torch.get_num_threads()
    path = export.file()
    try:
        return _open_runner(backend, path, threads)
    except Exception as exc:  # noqa: BLE001 - both runtimes raise their own error types
        log.warning("%s could not load %s (%s): rebuilding it", backend, path, exc)
        return _open_runner(backend, export.build(), threads)
