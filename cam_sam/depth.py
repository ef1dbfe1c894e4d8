"""Is an image of the kind the student was trained on? A label-free check of its features.

The student's encoder summarises an image as the spatial mean of its deepest feature map
(:meth:`models.student.StudentSegmenter.predict_with_features`, (C,) per image, from the pass that
segments it). Over the student's own training images those vectors form a cloud; the Mahalanobis
distance of a new image's vector from that cloud (a Ledoit-Wolf shrunk covariance, stable with
a few thousand images in a few hundred dimensions) says how far outside it the image lies. An image
farther than ``threshold`` (a high quantile of held-out training images' distances, fixed when the
statistics are fitted), or a greyscale image, is *out of its depth*: its mask gets its own verdict instead of a stack of
reasons that assume a dermoscopy frame.

The statistics ship beside the student as a ``.npz`` of plain arrays (read with
``allow_pickle=False``): no data is needed at run time.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from common.io import write_atomically

OUT_OF_DEPTH_REASON = "not a dermoscopy image like the training data: check this mask"
# The threshold: this quantile of the distances of HELD-OUT training images (half of them, from a
# fit on the other half). In 320 dimensions a training image's distance from a fit that includes it
# is biased low, so an in-sample quantile would call a third of the validation images out of depth.
THRESHOLD_QUANTILE = 0.99
GREY_CHROMA = 2.0            # mean CIELAB chroma (0-~130) below which an image counts as greyscale
                             # (a grey photograph: 0; pale dermoscopy frames reach down to about 3.9)


def mean_chroma(image: np.ndarray) -> float:
    """Mean CIELAB chroma sqrt(a^2 + b^2) of an (H, W, 3) uint8 RGB image, at most 256 px a side."""
    scale = 256 / max(image.shape[:2])
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
    lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    return float(np.hypot(lab[..., 1], lab[..., 2]).mean())


@dataclass(frozen=True)
class DepthCheck:
    """``mean`` (C,) and ``precision`` (C, C) of the training images' feature vectors; an image
    whose Mahalanobis distance exceeds ``threshold`` is out of depth."""

    mean: np.ndarray
    precision: np.ndarray
    threshold: float

    def distance(self, features: np.ndarray) -> float:
        """Mahalanobis distance of one (C,) feature vector from the training images' mean."""
        d = np.asarray(features, np.float64) - self.mean
        return float(np.sqrt(max(d @ self.precision @ d, 0.0)))

    def assess(self, features: np.ndarray, image: np.ndarray | None = None) -> tuple[float, bool]:
        """(distance, out of depth): farther than ``threshold``, or (given the ``image``) greyscale."""
        distance = self.distance(features)
        return distance, distance > self.threshold or (image is not None and mean_chroma(image) < GREY_CHROMA)

    def is_out(self, features: np.ndarray, image: np.ndarray | None = None) -> bool:
        return self.assess(features, image)[1]

    def save(self, path: str | Path) -> None:
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                # float32 halves the file (the precision of 320 features: 400 kB); distances move < 1e-4
                np.savez(handle, mean=self.mean.astype(np.float32), precision=self.precision.astype(np.float32),
                         threshold=np.float64(self.threshold))
        write_atomically(path, write)

    @classmethod
    def load(cls, path: str | Path) -> "DepthCheck":
        """Read a :meth:`save` file; a missing or malformed one raises ``ValueError`` naming it."""
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(data["mean"].astype(np.float64), data["precision"].astype(np.float64),
                           float(data["threshold"]))
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"depth statistics {path} unreadable: {exc}") from exc


def fit_depth(features: np.ndarray, quantile: float = THRESHOLD_QUANTILE, seed: int = 0) -> DepthCheck:
    """The check from (N, C) training feature vectors: Ledoit-Wolf mean and precision of them all;
    threshold: the ``quantile`` of held-out distances (a fit on a seeded half, the other half measured)."""
    features = np.asarray(features, np.float64)
    order = np.random.default_rng(seed).permutation(len(features))
    half, rest = features[order[: len(features) // 2]], features[order[len(features) // 2:]]
    held_out = _fitted(half)
    threshold = float(np.quantile([held_out.distance(f) for f in rest], quantile))
    full = _fitted(features)
    return DepthCheck(full.mean, full.precision, threshold)


def _fitted(features: np.ndarray) -> DepthCheck:
    from sklearn.covariance import LedoitWolf

    model = LedoitWolf().fit(features)
    return DepthCheck(model.location_, model.precision_, float("inf"))
