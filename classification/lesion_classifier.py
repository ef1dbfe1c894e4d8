"""The three-class lesion classifier: the lesion's class in a multi-class run (its label map:
:mod:`cam_sam.multiclass`) and on the page."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from classification.tasks import LABEL_NAMES, LABEL_OF_OUTPUT, TASKS, LesionClass
from common.errors import CheckpointError
from models.registry import create_classifier, preprocess_image, read_checkpoint, resolve_preprocessing


class LesionClassifier:
    """A three-class classifier (``classifier`` registry name, ``checkpoint`` of
    ``classification.train --set task=three_class``) that names a lesion's class."""

    def __init__(self, classifier: str, checkpoint: str | Path, device: str | torch.device = "cpu") -> None:
        _, meta = read_checkpoint(checkpoint)
        task = meta.get("config", {}).get("task")
        if task != "three_class" and meta.get("num_classes") != len(TASKS["three_class"]):
            raise CheckpointError(
                f"{checkpoint} is not a three-class classifier (task={task!r}, "
                f"num_classes={meta.get('num_classes')}): train one with "
                "classification.train --set task=three_class"
            )
        self.model = create_classifier(classifier, checkpoint=checkpoint).to(device).eval()
        self.data_config = resolve_preprocessing(self.model)
        self.device = torch.device(device)

    @torch.no_grad()
    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """(3,) softmax over the classifier's outputs for one (H, W, 3) uint8 image."""
        logits = self.model(preprocess_image(image, self.data_config).to(self.device)).float()
        return torch.softmax(logits, dim=1)[0].cpu().numpy()

    def classify(self, image: np.ndarray) -> LesionClass:
        probs = self.probabilities(image)
        by_label = {LABEL_OF_OUTPUT[i]: float(p) for i, p in enumerate(probs)}
        label = max(by_label, key=by_label.get)
        return LesionClass(label, by_label[label], {LABEL_NAMES[k]: by_label[k] for k in sorted(by_label)})
