"""The student in int8: post-training quantization of its exported ONNX graph by NNCF, calibrated on
ISIC 2017 training frames only, cached on disk like the float32 export.

Calibration (:class:`CalibrationSet`): ``n`` frames drawn with ``seed`` from
``ISIC2017_full_frames`` (whole training frames, 256 x 256) less every evaluation image, checked by
id: the ISIC 2017 validation and test ids and every 18th training crop (``split=train every=18``)
of ``isic_root``. A calibration list holding one of them is refused (:func:`check_calibration`).
Each frame is given to the network as the student's own input (:func:`models.student.to_input`
with its colour gains).

The quantized graph is QDQ ONNX (``QuantizeLinear``/``DequantizeLinear`` pairs): onnxruntime and
OpenVINO both run it (OpenVINO in int8). :class:`Int8Export` keys it by the float32 export's key,
the calibration frames' bytes, the NNCF version and :data:`QUANTIZE_VERSION`; like
:class:`medsam.runtime.OnnxExport` it is rebuilt when missing, stale or corrupt, so
:func:`medsam.runtime.load_runner` runs it as it runs a float32 export.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.defaults import DATA_ROOT
from common.errors import DataError, SettingsError
from common.io import read_json, write_atomically, write_json
from data.isic import ISICDataset, list_images, read_image
from models.student import StudentConfig, to_input

log = logging.getLogger(__name__)

FRAMES_DIR = "../shared/data/ISIC2017_full_frames/images"  # ISIC 2017 training images as whole frames
ISIC_ROOT = DATA_ROOT  # whose evaluation ids are never calibrated on
EVAL_TRAIN_EVERY = 18  # the training development set: every 18th training crop in sorted id order
N_FRAMES = 300
SEED = 0
QUANTIZE_VERSION = 1  # bump when the quantization code or its settings change: every int8 file is rebuilt
INPUT_NAME = "image"


@dataclass(frozen=True)
class CalibrationSet:
    """Which frames calibrate the int8 student (see the module docstring)."""

    frames_dir: str = FRAMES_DIR
    isic_root: str = ISIC_ROOT
    n: int = N_FRAMES
    seed: int = SEED
    extra_forbidden: frozenset[str] = field(default_factory=frozenset)  # more ids never to calibrate on


def evaluation_ids(isic_root: str | Path) -> frozenset[str]:
    """Every ISIC 2017 id an evaluation reads: validation, test (when present) and every
    :data:`EVAL_TRAIN_EVERY`-th training crop. The folder must hold at least the validation and
    training splits (else nothing can be checked: :class:`DataError`)."""
    ids: set[str] = set()
    for split, every in (("val", 1), ("train", EVAL_TRAIN_EVERY), ("test", 1)):
        try:
            ids.update(ISICDataset(isic_root, split, read_masks=False).ids[::every])
        except DataError:
            if split != "test":
                raise DataError(
                    f"int8 calibration needs the ISIC 2017 {split} split in {isic_root} to leave its "
                    f"evaluation images out"
                ) from None
    return frozenset(ids)


def check_calibration(paths: Sequence[Path], forbidden: frozenset[str]) -> None:
    """:class:`DataError` when a calibration frame is an evaluation image (by id, the file's stem)."""
    bad = sorted(p.stem for p in paths if p.stem in forbidden)
    if bad:
        raise DataError(f"int8 calibration refused: {len(bad)} evaluation image(s) among the frames, e.g. {bad[0]}")


def calibration_frames(calibration: CalibrationSet = CalibrationSet()) -> list[Path]:
    """The calibration frames: ``n`` drawn with ``seed`` from the frames that are no evaluation
    image, in name order (checked again by :func:`check_calibration`)."""
    folder = Path(calibration.frames_dir)
    if not folder.is_dir():
        raise DataError(f"int8 calibration frames not found: {folder} (ISIC2017_full_frames/images)")
    forbidden = evaluation_ids(calibration.isic_root) | calibration.extra_forbidden
    candidates = [p for p in list_images(folder) if p.stem not in forbidden]
    if len(candidates) < calibration.n:
        raise DataError(
            f"int8 calibration needs {calibration.n} frames; {folder} has {len(candidates)} "
            f"that are no evaluation image"
        )
    picked = sorted(random.Random(calibration.seed).sample(candidates, calibration.n), key=lambda p: p.name)
    check_calibration(picked, forbidden)
    return picked


def calibration_inputs(paths: Sequence[Path], config: StudentConfig) -> list[np.ndarray]:
    """Each frame as the student's network input: (1, 3, S, S) float32, its colour gains applied."""
    inputs = []
    for path in paths:
        image = read_image(path)
        inputs.append(to_input(image, config.input_size, config.colour_gains(image)).numpy().astype(np.float32))
    return inputs


def frames_digest(paths: Sequence[Path]) -> str:
    """SHA-256 of the frames' names and bytes, in order: the calibration set's part of the int8 key."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"|" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


RUNTIMES = ("openvino", "onnxruntime")
# Quantization settings, chosen on 150 held-out training frames (neither calibration frames nor
# evaluation images) by the per-frame IoU of the int8 mask against the float32 one: 8-bit weights in
# every layer (NNCF's overflow fix off: 7-bit weights lowered that IoU; CPUs with VNNI, as here,
# need no fix) and the first convolution (the image's own values) kept in float32. Patterns of
# node names, matched in the exported graph with or without its features wrapper.
IGNORED: tuple[str, ...] = (".*conv_stem.*",)


def _nncf():
    try:
        import nncf
    except ImportError:
        raise SettingsError("an int8 student is built by NNCF: pip install nncf") from None
    return nncf


def _settings(nncf, ignored: Sequence[str]) -> dict:
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    return {
        "advanced_parameters": AdvancedQuantizationParameters(overflow_fix=OverflowFix.DISABLE),
        "ignored_scope": nncf.IgnoredScope(patterns=list(ignored), validate=False),
    }


def quantize_onnx(model, inputs: Sequence[np.ndarray], input_name: str = INPUT_NAME, ignored: Sequence[str] = IGNORED):
    """The int8 (QDQ) ``onnx.ModelProto`` of the float32 ONNX ``model`` (a ModelProto or a path),
    calibrated on ``inputs`` (each a batch for ``input_name``): for onnxruntime."""
    import onnx

    nncf = _nncf()
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    dataset = nncf.Dataset(list(inputs), lambda x: {input_name: x})
    return nncf.quantize(model, dataset, subset_size=len(inputs), **_settings(nncf, ignored))


def quantize_openvino(path: str | Path, inputs: Sequence[np.ndarray], ignored: Sequence[str] = IGNORED):
    """The int8 ``openvino.Model`` of the float32 ONNX file ``path``, calibrated on ``inputs``."""
    import openvino as ov

    nncf = _nncf()
    model = ov.Core().read_model(str(path))
    return nncf.quantize(model, nncf.Dataset(list(inputs)), subset_size=len(inputs), **_settings(nncf, ignored))


class Int8Export:
    """The int8 copy of a float32 :class:`medsam.runtime.OnnxExport` (``source``) for ``runtime``,
    beside it: ``<its name>-int8-<key>.xml`` (+ ``.bin``, OpenVINO's own form, quantized by NNCF for
    OpenVINO) or ``.onnx`` (QDQ, quantized for onnxruntime); :meth:`file`, :meth:`build` and
    :meth:`is_valid` as the float32 export's. ``config``: the student's (its preprocessing
    calibrates)."""

    def __init__(
        self, source, config: StudentConfig, calibration: CalibrationSet = CalibrationSet(), runtime: str = "openvino"
    ) -> None:
        if runtime not in RUNTIMES:
            raise SettingsError(f"an int8 student runs on {' or '.join(RUNTIMES)}, not {runtime!r}")
        self.source, self.config, self.runtime = source, config, runtime
        self.frames = calibration_frames(calibration)
        self.key = hashlib.sha256(
            f"{source.key}|{frames_digest(self.frames)}|{runtime}|{IGNORED}|{QUANTIZE_VERSION}".encode()
        ).hexdigest()
        stem = source.path.stem.rsplit("-", 1)[0]
        self.path = source.path.with_name(
            f"{stem}-int8-{self.key[:16]}" + (".xml" if runtime == "openvino" else ".onnx")
        )
        self.manifest = self.path.with_suffix(".json")

    @property
    def files(self) -> list[Path]:
        return [self.path, self.path.with_suffix(".bin")] if self.runtime == "openvino" else [self.path]

    def is_valid(self) -> bool:
        if not (all(p.is_file() for p in self.files) and self.manifest.is_file()):
            return False
        try:
            manifest = read_json(self.manifest)
        except (OSError, ValueError):
            return False
        return manifest.get("key") == self.key and manifest.get("sha256") == [_file_digest(p) for p in self.files]

    def build(self) -> Path:
        """Quantize the float32 export (built first when needed) and write the manifest."""
        version = _nncf().__version__
        log.info(
            "quantizing %s to int8 for %s on %d training frames (once; cached)",
            self.source.path.name,
            self.runtime,
            len(self.frames),
        )
        inputs = calibration_inputs(self.frames, self.config)
        if self.runtime == "openvino":
            import openvino as ov

            model = quantize_openvino(self.source.file(), inputs)
            tmp = self.path.with_name(self.path.stem + ".tmp.xml")
            ov.save_model(model, str(tmp), compress_to_fp16=False)
            for suffix in (".bin", ".xml"):
                os.replace(tmp.with_suffix(suffix), self.path.with_suffix(suffix))
        else:
            model = quantize_onnx(self.source.file(), inputs)
            write_atomically(self.path, lambda tmp: tmp.write_bytes(model.SerializeToString()))
        write_json(
            self.manifest,
            {
                "key": self.key,
                "sha256": [_file_digest(p) for p in self.files],
                "source": self.source.path.name,
                "runtime": self.runtime,
                "nncf": version,
                "quantize_version": QUANTIZE_VERSION,
                "calibration": [p.stem for p in self.frames],
            },
        )
        return self.path

    def file(self) -> Path:
        if not self.is_valid():
            if self.path.exists():
                log.warning("cached int8 export %s is stale or corrupt: rebuilding it", self.path)
            self.build()
        return self.path


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
