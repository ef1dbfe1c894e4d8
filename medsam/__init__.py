"""One promptable-segmenter interface over LiteMedSAM, MedSAM and SAM.

Encode an image once with ``set_image``, then decode any number of box / point prompts against
the cached embedding with ``predict``. Masks come back at the original resolution with the
model's own predicted IoU. This package adapts the upstream libraries; it vendors none of them.
"""

from medsam.base import Prediction, PromptableSegmenter, ResizeFrame
from medsam.factory import SEGMENTERS, create_segmenter

__all__ = ["Prediction", "PromptableSegmenter", "ResizeFrame", "SEGMENTERS", "create_segmenter"]
