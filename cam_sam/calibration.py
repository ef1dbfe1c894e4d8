"""From confidence to expected IoU: a monotone map fitted where masks are known.

The confidence of :mod:`cam_sam.trust` ranks masks (higher: more likely right) but its value is no
IoU. An isotonic regression of IoU on confidence, fitted on images whose masks are known and that
never entered training (the synthetic development set of ``self_training.make_synthetic``, or an
evaluation set in a leave-one-set-out check), turns it into an *expected IoU*: the mean IoU of
masks with that confidence. The map is monotone by construction, so it orders masks exactly as the
confidence does; it ships beside the student as JSON breakpoints (no data at run time).

The confidence has a different scale with and without the zoomed-out pass and the flips, so one
file holds one map per *variant* of it (:func:`confidence_variant`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.io import write_json


def confidence_variant(zoom_stability: bool, student_tta: bool) -> str:
    """The name of a confidence's variant: ``zoom`` (the default), ``no_zoom`` (preset ``fast``),
    each with ``_one_pass`` when the student runs without its flips (preset ``realtime``)."""
    return ("zoom" if zoom_stability else "no_zoom") + ("" if student_tta else "_one_pass")


@dataclass(frozen=True)
class Calibration:
    """Breakpoints of a monotone map: ``confidence`` (K,) increasing, ``expected_iou`` (K,)
    non-decreasing; between them linear, beyond them constant. ``fitted_on`` says where."""

    confidence: np.ndarray
    expected_iou: np.ndarray
    fitted_on: str = ""

    def __call__(self, confidence: float | np.ndarray) -> float | np.ndarray:
        out = np.interp(confidence, self.confidence, self.expected_iou)
        return float(out) if np.ndim(out) == 0 else out

    @classmethod
    def fit(cls, confidence: np.ndarray, iou: np.ndarray, fitted_on: str = "") -> "Calibration":
        """The isotonic (increasing steps) map of ``iou`` on ``confidence``, each (N,), N >= 2."""
        from sklearn.isotonic import IsotonicRegression

        confidence, iou = np.asarray(confidence, float), np.asarray(iou, float)
        if len(confidence) < 2 or len(confidence) != len(iou):
            raise ValueError(f"calibration needs at least two (confidence, IoU) pairs, got {len(confidence)} / {len(iou)}")
        model = IsotonicRegression(increasing=True, out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(confidence, iou)
        return cls(np.asarray(model.X_thresholds_, float), np.asarray(model.y_thresholds_, float), fitted_on)

    def to_json(self) -> dict:
        return {"confidence": self.confidence.round(6).tolist(), "expected_iou": self.expected_iou.round(6).tolist(),
                "fitted_on": self.fitted_on}

    @classmethod
    def from_json(cls, entry: dict, source: str = "") -> "Calibration":
        try:
            xs, ys = np.asarray(entry["confidence"], float), np.asarray(entry["expected_iou"], float)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"calibration {source} is not a confidence -> expected IoU map: {exc}") from exc
        if xs.ndim != 1 or xs.shape != ys.shape or len(xs) < 1 or np.any(np.diff(xs) < 0) or np.any(np.diff(ys) < 0):
            raise ValueError(f"calibration {source} is not monotone breakpoints of equal length")
        return cls(xs, ys, str(entry.get("fitted_on", "")))


def load_calibration(path: str | Path, variant: str) -> Calibration | None:
    """The map of ``variant`` in the JSON file ``path`` (None when the file has none for it)."""
    path = Path(path)
    try:
        maps = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the calibration {path}: {exc}") from exc
    return Calibration.from_json(maps[variant], f"{path} [{variant}]") if variant in maps else None


def save_calibration(path: str | Path, variant: str, calibration: Calibration) -> None:
    """Put ``calibration`` into the file ``path`` under ``variant`` (other variants kept)."""
    path = Path(path)
    maps = json.loads(path.read_text()) if path.is_file() else {}
    maps[variant] = calibration.to_json()
    write_json(path, maps)
