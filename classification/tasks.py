"""The classification tasks and their class order (output index -> class name). A module of its own,
without torch or torchvision, so that the segmentation side can read the order without importing
the training transforms."""

from __future__ import annotations

TASKS: dict[str, list[str]] = {
    "melanoma": ["melanoma"],  # one logit, BCE
    "three_class": ["nevus_or_other", "melanoma", "seborrheic_keratosis"],  # softmax, CE
}
