"""The trust a student ships with, as files beside its checkpoint: its sidecar
``<checkpoint stem>.trust.json`` (the :class:`~cam_sam.calibration.Verdicts` of each preset: review
threshold, expected-IoU map, how they were fitted; the name of its out-of-depth statistics; the
data each was fitted on) and those statistics (:class:`~cam_sam.depth.DepthCheck` as a ``.npz`` of
plain arrays, read without pickle), and the training images' features they are fitted from.
``python -m self_training.ship`` writes them; a run reads them (:func:`cam_sam.runs.build.student_verdicts`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cam_sam.calibration import ARBITER_PRESET, PRESET_VARIANTS, Verdicts
from cam_sam.depth import DepthCheck, mean_chroma
from common.errors import CheckpointError, DataError
from common.io import write_atomically, write_json

log = logging.getLogger(__name__)

TRUST_FORMAT = 1  # the sidecar's format version ("format" in the file)


@dataclass(frozen=True)
class StudentTrust:
    """A student's trust sidecar: ``verdicts`` per preset name; ``depth``, the file name of its
    out-of-depth statistics beside the sidecar (or None), fitted on ``depth_fitted_on``; ``data``:
    what each dataset a rule names is. ``path``: where it was read."""

    verdicts: dict[str, Verdicts]
    depth: str | None = None
    depth_fitted_on: str = ""
    data: dict[str, str] = field(default_factory=dict)
    path: Path | None = None

    def depth_check(self) -> DepthCheck | None:
        return load_depth_check(Path(self.path).parent / self.depth) if self.depth else None

    def save(self, path: str | Path, student: str = "") -> None:
        variants = {**PRESET_VARIANTS, ARBITER_PRESET: ARBITER_PRESET}
        depth = {"file": self.depth, "fitted_on": self.depth_fitted_on} if self.depth else None
        presets = {k: v.to_json(variants.get(k)) for k, v in self.verdicts.items()}
        write_json(
            path, {"format": TRUST_FORMAT, "student": student, "data": self.data, "presets": presets, "depth": depth}
        )

    @classmethod
    def load(cls, path: str | Path) -> StudentTrust:
        """Read a sidecar; an unreadable or malformed one raises :class:`CheckpointError` naming it."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            if data.get("format") != TRUST_FORMAT:
                raise ValueError(f"format {data.get('format')!r}, not {TRUST_FORMAT}")
            verdicts = {k: Verdicts.from_json(v, f"[{k}]") for k, v in data["presets"].items()}
            depth = data.get("depth") or {}
            return cls(verdicts, depth.get("file"), str(depth.get("fitted_on", "")), dict(data.get("data", {})), path)
        except (OSError, KeyError, TypeError, AttributeError, ValueError) as exc:
            raise CheckpointError(f"trust sidecar {path} unreadable: {exc}") from exc


def trust_path(student_checkpoint: str | Path) -> Path:
    """Where a student's trust sidecar ships: ``<checkpoint without .pt>.trust.json`` beside it."""
    return Path(student_checkpoint).with_name(Path(student_checkpoint).stem + ".trust.json")


def load_student_trust(student_checkpoint: str | Path) -> StudentTrust | None:
    """The sidecar of ``student_checkpoint`` (None when it has none)."""
    path = trust_path(student_checkpoint)
    return StudentTrust.load(path) if path.is_file() else None


def save_depth_check(check: DepthCheck, path: str | Path) -> None:
    """Write ``check`` as a ``.npz`` of plain arrays (the references as float16, as fitted)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            arrays = {
                "mean": check.mean.astype(np.float32),
                "scale": check.scale.astype(np.float32),
                "references": check.references.astype(np.float16),
                "k": np.int64(check.k),
            }
            np.savez(handle, kind=np.str_(check.kind), threshold=np.float64(check.threshold), **arrays)

    write_atomically(path, write)


def load_depth_check(path: str | Path) -> DepthCheck:
    """Read a :func:`save_depth_check` file; a missing, malformed or other kind of file raises
    :class:`CheckpointError` naming it."""
    try:
        with np.load(path, allow_pickle=False) as data:
            kind = str(data["kind"]) if "kind" in data.files else "mahalanobis"
            if kind != DepthCheck.kind:
                raise ValueError(
                    f"statistics of kind {kind!r}, not {DepthCheck.kind!r}: refit them (python -m self_training.ship)"
                )
            return DepthCheck(
                float(data["threshold"]),
                data["mean"],
                data["scale"],
                data["references"].astype(np.float32),
                int(data["k"]),
            )
    except (OSError, KeyError, ValueError) as exc:
        raise CheckpointError(f"depth statistics {path} unreadable: {exc}") from exc


def features_of(student, images: Iterable[Callable[[], np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """((N, C) the ``student``'s pooled deepest features, flips included, (N,) mean chroma) of the
    images ``images`` load, one row each (an unreadable file skipped, logged)."""
    rows, chroma = [], []
    for load in images:
        try:
            image = load()
        except DataError as exc:
            log.warning("skipped: %s", exc)
            continue
        rows.append(student.predict_with_features(image)[2])
        chroma.append(mean_chroma(image))
    return np.array(rows), np.array(chroma)
