"""The explanation methods by name and the map they return: what a configuration, a pipeline and
a saved-maps reader need to know of the explainers without loading torch (:mod:`explainers.cams`
computes the maps)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CAM_METHODS: dict[str, str] = {  # method -> the grad-cam class that computes it
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "eigencam": "SignedEigenCAM",  # EigenCAM with its sign fixed (see cam_class)
    "ablationcam": "AblationCAM",
    "scorecam": "ScoreCAM",
    "randomcam": "RandomCAM",  # a control: random channel weights
}
LRP = "lrp"  # Layer-wise Relevance Propagation (explainers.lrp, zennit): not a CAM, same contract
ENSEMBLE = "ensemble"  # the mean of its members' normalised maps (CamExplainer.ensemble_methods)
EXPLAIN_METHODS = [*CAM_METHODS, LRP, ENSEMBLE]
DEFAULT_ENSEMBLE = ("gradcam", "gradcam++", "eigencam", "lrp")
"""The ``ensemble`` method's members: methods of :data:`EXPLAIN_METHODS` (not ``ensemble``), each
optionally at another CAM layer of the classifier as ``"method@layer"`` (``"gradcam@stage5"``)."""
LAYER_SEPARATOR = "@"


@dataclass
class CamResult:
    """``heatmap``: (H, W) float32 in [0, 1] on the original image frame. ``constant``: the method
    produced a flat or non-finite map (then ``heatmap`` is all zeros), reported rather than dropped."""

    method: str
    heatmap: np.ndarray
    constant: bool
    target: str
    raw: np.ndarray | None = None  # (S, S) map on the classifier's input, as grad-cam returned it
