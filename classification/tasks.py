"""The classification tasks and their class order (output index -> class name), and the label values
a multi-class run writes for the three-class task. A module of its own, without torch or
torchvision, so that the segmentation side can read them without importing the networks.

Label values (``labels/<id>.png`` of a multi-class run)::

    0 background   1 melanoma   2 seborrheic keratosis   3 nevus
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TASKS: dict[str, list[str]] = {
    "melanoma": ["melanoma"],  # one logit, BCE
    "three_class": ["nevus_or_other", "melanoma", "seborrheic_keratosis"],  # softmax, CE
}

LABEL_NAMES = ("background", "melanoma", "seborrheic_keratosis", "nevus")
# the three-class classifier's output order (TASKS) -> label value
LABEL_OF_OUTPUT = {
    TASKS["three_class"].index("nevus_or_other"): 3,
    TASKS["three_class"].index("melanoma"): 1,
    TASKS["three_class"].index("seborrheic_keratosis"): 2,
}


@dataclass
class LesionClass:
    """The classifier's call for one image: ``label`` (1-3, :data:`LABEL_NAMES`), its probability,
    and every class's probability by name."""

    label: int
    probability: float
    probabilities: dict[str, float]

    @property
    def name(self) -> str:
        return LABEL_NAMES[self.label]

    def to_record(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "name": self.name,
            "probability": round(self.probability, 4),
            "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
        }
