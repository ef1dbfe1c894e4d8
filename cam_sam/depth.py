"""Is an image of the kind the student was trained on? A label-free check of its features.

The student's encoder summarises an image as the spatial mean of its deepest feature map
(:meth:`models.student.StudentSegmenter.predict_with_features`, (C,) per image, from the pass that
segments it). Over the student's own training images those vectors form a cloud; a distance of a
new image's vector from that cloud says how far outside it the image lies: the Euclidean distance
to its k-th nearest training vector, every feature standardised (:class:`DepthCheck`). An image
farther than ``threshold`` (a high quantile of held-out training images' distances, fixed when the
statistics are fitted), or a greyscale image, is *out of its depth*: its mask gets its own verdict
instead of a stack of reasons that assume a dermoscopy frame.

The statistics ship beside the student as a ``.npz`` of plain arrays (read with
``allow_pickle=False``), named by its trust sidecar (:mod:`cam_sam.runs.student_trust`): no data
is needed at run time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

# fmt: off
OUT_OF_DEPTH_REASON = "not a dermoscopy image like the training data: check this mask"
# The threshold: this quantile of the distances of HELD-OUT training images (half of them, from a
# fit on the other half). In 320 dimensions a training image's distance from a fit that includes it
# is biased low, so an in-sample quantile would call a third of the validation images out of depth.
THRESHOLD_QUANTILE = 0.99
# The neighbour whose distance counts: chosen among 1, 5 and 10 for the default's
# student looking at validation, generated lesions and photographs (a choice that saw validation:
# docs/experiments/tr-08); a single neighbour lets one odd training frame vouch for an image.
NEIGHBOURS = 5
GREY_CHROMA = 2.0            # mean CIELAB chroma (0-~130) below which an image counts as greyscale
                             # (a grey photograph: 0; pale dermoscopy frames reach down to about 3.9)
# fmt: on


def mean_chroma(image: np.ndarray) -> float:
    """Mean CIELAB chroma sqrt(a^2 + b^2) of an (H, W, 3) uint8 RGB image, at most 256 px a side."""
    scale = 256 / max(image.shape[:2])
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
    lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    return float(np.hypot(lab[..., 1], lab[..., 2]).mean())


@dataclass(frozen=True)
class DepthCheck:
    """The training images' (N, C) feature vectors standardised (``(x - mean) / scale``; float16
    values, held as float32 ``references``); an image's distance is the Euclidean one from its
    standardised vector to the ``k``-th nearest of them (about 1 ms for 1600 images of 320
    features). Farther than ``threshold``, or greyscale, is out of depth."""

    threshold: float
    mean: np.ndarray
    scale: np.ndarray
    references: np.ndarray
    k: int = NEIGHBOURS
    kind = "neighbours"  # the name a saved file carries (cam_sam.runs.student_trust)

    def distance(self, features: np.ndarray) -> float:
        """The distance of one (C,) feature vector from the training images' vectors."""
        z = (np.asarray(features, np.float32) - self.mean) / self.scale
        squared = np.square(self.references - z).sum(axis=1)
        return float(np.sqrt(np.partition(squared, self.k - 1)[self.k - 1]))

    def assess(self, features: np.ndarray, image: np.ndarray | None = None) -> tuple[float, bool]:
        """(distance, out of depth): farther than ``threshold``, or (given the ``image``) greyscale."""
        distance = self.distance(features)
        return distance, distance > self.threshold or (image is not None and mean_chroma(image) < GREY_CHROMA)

    def is_out(self, features: np.ndarray, image: np.ndarray | None = None) -> bool:
        return self.assess(features, image)[1]

    @classmethod
    def fit(cls, features: np.ndarray, threshold: float = float("inf"), k: int = NEIGHBOURS) -> DepthCheck:
        features = np.asarray(features, np.float32)
        mean, scale = features.mean(axis=0), np.maximum(features.std(axis=0), 1e-6)
        # rounded to float16 as saved, so a loaded check measures the very distances of the fitted one
        return cls(threshold, mean, scale, ((features - mean) / scale).astype(np.float16).astype(np.float32), k)


def fit_depth(features: np.ndarray, quantile: float = THRESHOLD_QUANTILE, seed: int = 0) -> DepthCheck:
    """The check from (N, C) training feature vectors, fitted on them all; threshold: the
    ``quantile`` of held-out distances (a fit on a seeded half, the other half measured)."""
    features = np.asarray(features, np.float64)
    order = np.random.default_rng(seed).permutation(len(features))
    half, rest = features[order[: len(features) // 2]], features[order[len(features) // 2 :]]
    held_out = DepthCheck.fit(half)
    threshold = float(np.quantile([held_out.distance(f) for f in rest], quantile))
    return replace(DepthCheck.fit(features), threshold=threshold)
