"""Melanoma scores and validation metrics of a classifier (shared by training and testing)."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score, roc_auc_score


def melanoma_score(logits: torch.Tensor, task: str) -> torch.Tensor:
    """The probability of melanoma (class 1 in both tasks)."""
    return torch.sigmoid(logits[:, 0]) if task == "melanoma" else torch.softmax(logits, dim=1)[:, 1]


@torch.no_grad()
def predict(model, loader, task: str, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """(melanoma probability per image, targets) over ``loader``."""
    model.eval()
    scores, targets = [], []
    for images, labels in loader:
        logits = model(images.to(device)).float()
        scores.append(melanoma_score(logits, task).cpu().numpy())
        targets.append(labels.numpy())
    return np.concatenate(scores), np.concatenate(targets)


def validation_metrics(scores: np.ndarray, targets: np.ndarray, task: str) -> dict[str, float]:
    melanoma = (targets == 1).astype(int)
    auc = float(roc_auc_score(melanoma, scores)) if 0 < melanoma.sum() < len(melanoma) else float("nan")
    predicted = (scores >= 0.5).astype(int)
    return {"val_auc": auc, "val_accuracy": float((predicted == melanoma).mean()),
            "val_balanced_accuracy": float(balanced_accuracy_score(melanoma, predicted))}
