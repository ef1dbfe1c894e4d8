"""Layer-wise Relevance Propagation (LRP) through zennit, under the same :class:`CamResult`
contract as the CAMs: a (H, W) map in [0, 1] on the original image frame.

LRP redistributes the explained logit backwards, layer by layer, onto the input pixels (zennit's
``EpsilonPlusFlat`` composite: epsilon rule for dense layers, z+ for convolutions, flat for the
first layer). It explains through the whole network, so the CAM ``layer`` does not apply. The
target is the CAM's (:func:`explainers.cams.make_target`): the same logit is explained.

Pixel relevance is speckled (it follows edges and texture); summed over colour channels, kept
where positive (evidence for the target), then smoothed by a Gaussian of
:data:`LRP_SMOOTH_SIGMA` x the input side so that thresholding gives regions rather than dots.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import torch
from zennit.attribution import Gradient
from zennit.composites import EpsilonPlusFlat

LRP_SMOOTH_SIGMA = 0.02  # Gaussian sigma, as a fraction of the classifier's input side


def relevance_output(target: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """zennit's output function for a grad-cam target: d target(logits) / d logits (a one-hot for
    a class, +-1 for a single logit), so that LRP starts from exactly the logit the CAM explains."""

    def grad_of_target(output: torch.Tensor) -> torch.Tensor:
        logits = output.detach().requires_grad_(True)
        with torch.enable_grad():
            value = sum(target(row).sum() for row in logits)
            (grad,) = torch.autograd.grad(value, logits)
        return grad

    return grad_of_target


def lrp_map(model: torch.nn.Module, tensor: torch.Tensor, target: Callable) -> np.ndarray:
    """(S, S) float32 positive relevance of the (1, 3, S, S) input ``tensor``, smoothed; not
    normalised (:func:`explainers.cams.to_original_frame` does that)."""
    x = tensor.detach().clone().requires_grad_(True)
    with Gradient(model=model, composite=EpsilonPlusFlat()) as attributor:
        _, relevance = attributor(x, relevance_output(target))
    heat = relevance[0].sum(0).clamp(min=0).detach().cpu().numpy().astype(np.float32)
    sigma = LRP_SMOOTH_SIGMA * heat.shape[0]
    return cv2.GaussianBlur(heat, (0, 0), sigma) if sigma > 0 else heat
