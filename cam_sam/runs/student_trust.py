"""A student's trust sidecar, ``<checkpoint stem>.trust.json`` beside its checkpoint: the
:class:`~cam_sam.calibration.Verdicts` of each preset (review threshold, expected-IoU map, how they
were fitted), the name of its out-of-depth statistics (:mod:`cam_sam.depth`, a ``.npz`` beside it)
and the data each was fitted on. ``python -m self_training.ship`` writes it; a run reads it
(:func:`cam_sam.runs.build.student_verdicts`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cam_sam.calibration import ARBITER_PRESET, PRESET_VARIANTS, Verdicts
from cam_sam.depth import DepthCheck
from common.errors import CheckpointError
from common.io import write_json

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
        return DepthCheck.load(Path(self.path).parent / self.depth) if self.depth else None

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
