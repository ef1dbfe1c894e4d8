"""From confidence to verdict: the expected-IoU map and the review threshold a student carries.

The confidence of :mod:`cam_sam.trust` ranks masks (higher: more likely right) but its value is no
IoU. An isotonic regression of IoU on confidence, fitted on images whose masks are known and that
never entered training (the development sets), turns it into an *expected IoU*: the mean IoU of
masks with that confidence (:class:`Calibration`). The map is monotone by construction, so it
orders masks exactly as the confidence does.

Both the map and the review threshold belong to one student (another network's confidence has
another scale), and to one kind of run: the confidence has a different scale with and without the
zoomed-out pass and the flips (:func:`confidence_variant`), and the arbiter's is another sum. So
each preset (:data:`PRESET_VARIANTS`, and ``arbiter``) of a student has its :class:`Verdicts`,
shipped in the student's trust sidecar (:mod:`cam_sam.runs.student_trust`). No data at run time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from common.errors import DataError
from common.metrics import FAIL_IOU

# The student presets by the variant of their confidence; a sidecar may also hold "arbiter".
PRESET_VARIANTS = {"student": "zoom", "fast": "no_zoom", "realtime": "no_zoom_one_pass"}
ARBITER_PRESET = "arbiter"
RULE = (
    "the confidence at which the expected-IoU map reaches the lowest level that flags at least {share:g} % of the "
    "failures (IoU < {fail:g}) of {sets} pooled (expected IoU {level:.2f}), rounded up to two decimals"
)


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
    def fit(cls, confidence: np.ndarray, iou: np.ndarray, fitted_on: str = "") -> Calibration:
        """The isotonic (increasing steps) map of ``iou`` on ``confidence``, each (N,), N >= 2."""
        from sklearn.isotonic import IsotonicRegression

        confidence, iou = np.asarray(confidence, float), np.asarray(iou, float)
        if len(confidence) < 2 or len(confidence) != len(iou):
            raise DataError(f"calibration needs two or more (confidence, IoU) pairs: {len(confidence)} / {len(iou)}")
        model = IsotonicRegression(increasing=True, out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(confidence, iou)
        return cls(np.asarray(model.X_thresholds_, float), np.asarray(model.y_thresholds_, float), fitted_on)

    def review_level(self, failure_confidences: list[np.ndarray], share: float) -> float:
        """The lowest expected IoU below which ``share`` of the failures of each set fall (given
        each set's failures' confidences; the highest of the sets' levels; 0 without failures)."""
        levels = [0.0]
        for confidences in failure_confidences:
            expected = np.sort(self(np.asarray(confidences, float)))
            if len(expected):
                levels.append(float(expected[min(len(expected) - 1, int(np.ceil(share * len(expected))) - 1)] + 1e-6))
        return max(levels)

    def confidence_at(self, expected_iou: float) -> float:
        """The confidence at which the map reaches ``expected_iou``: masks whose confidence is below
        it are the masks whose expected IoU is below ``expected_iou`` (the map is monotone)."""
        grid = np.linspace(0.0, 1.0, 100_001)
        above = grid[self(grid) >= expected_iou]
        return float(above[0]) if len(above) else 1.0

    def to_json(self) -> dict:
        return {
            "confidence": self.confidence.round(6).tolist(),
            "expected_iou": self.expected_iou.round(6).tolist(),
            "fitted_on": self.fitted_on,
        }

    @classmethod
    def from_json(cls, entry: dict, source: str = "") -> Calibration:
        try:
            xs, ys = np.asarray(entry["confidence"], float), np.asarray(entry["expected_iou"], float)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"calibration {source} is not a confidence -> expected IoU map: {exc}") from exc
        if xs.ndim != 1 or xs.shape != ys.shape or len(xs) < 1 or np.any(np.diff(xs) < 0) or np.any(np.diff(ys) < 0):
            raise ValueError(f"calibration {source} is not monotone breakpoints of equal length")
        return cls(xs, ys, str(entry.get("fitted_on", "")))


@dataclass(frozen=True)
class Verdicts:
    """How one kind of run of a student turns a confidence into a verdict: a mask whose confidence
    is below ``review_threshold`` is flagged; ``calibration`` maps a confidence to an expected IoU
    (None: none was fitted); ``rule``: how the threshold was chosen, on which data."""

    review_threshold: float
    calibration: Calibration | None = None
    rule: str = ""

    @classmethod
    def fit(cls, confidence: np.ndarray, iou: np.ndarray, sets: list[str], share: float) -> tuple[Verdicts, float]:
        """(A student preset's verdicts, the expected-IoU level its threshold stands for) from its
        images of the development ``sets`` pooled: the isotonic map, and the confidence at which it
        reaches the lowest level flagging ``share`` of the pooled failures, rounded up to two decimals."""
        confidence, iou = np.asarray(confidence, float), np.asarray(iou, float)
        calibration = Calibration.fit(confidence, iou, "+".join(sets))
        level = calibration.review_level([confidence[iou < FAIL_IOU]], share)
        threshold = math.ceil(round(calibration.confidence_at(level) * 100, 6)) / 100
        rule = RULE.format(share=100 * share, fail=FAIL_IOU, sets=" and ".join(sets), level=level)
        return cls(threshold, calibration, rule), level

    def to_json(self, variant: str | None = None) -> dict:
        return {
            "confidence": variant,
            "review_threshold": self.review_threshold,
            "rule": self.rule,
            "expected_iou": self.calibration.to_json() if self.calibration is not None else None,
        }

    @classmethod
    def from_json(cls, entry: dict, source: str) -> Verdicts:
        expected = entry.get("expected_iou")
        return cls(
            float(entry["review_threshold"]),
            Calibration.from_json(expected, source) if expected else None,
            str(entry.get("rule", "")),
        )
