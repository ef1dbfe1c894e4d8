"""Class probabilities and validation metrics of a classifier (shared by training and testing).

Both tasks put melanoma at class index 1 of :data:`classification.tasks.TASKS` except the one-logit
``melanoma`` task, whose single column is the melanoma probability.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, roc_auc_score


def probabilities(logits: torch.Tensor, task: str) -> torch.Tensor:
    """(N, C) class probabilities: sigmoid of the one melanoma logit (C = 1) or softmax (C = 3)."""
    return torch.sigmoid(logits[:, :1]) if task == "melanoma" else torch.softmax(logits, dim=1)


def melanoma_column(probs: np.ndarray, task: str) -> np.ndarray:
    """(N,) the probability of melanoma from :func:`probabilities`' (N, C) output."""
    return probs[:, 0] if task == "melanoma" else probs[:, 1]


@torch.no_grad()
def predict(model, loader, task: str, device: torch.device | str) -> tuple[np.ndarray, np.ndarray]:
    """((N, C) class probabilities, (N,) targets) over ``loader``."""
    model.eval()
    probs, targets = [], []
    for images, labels in loader:
        logits = model(images.to(device)).float()
        probs.append(probabilities(logits, task).cpu().numpy())
        targets.append(labels.numpy())
    return np.concatenate(probs), np.concatenate(targets)


def _auc(truth: np.ndarray, scores: np.ndarray) -> float:
    return float(roc_auc_score(truth, scores)) if 0 < truth.sum() < len(truth) else float("nan")


def multiclass_report(probs: np.ndarray, targets: np.ndarray, class_names: list[str]) -> dict:
    """Per-class one-vs-rest ROC-AUC, their mean (``macro_auc``), balanced accuracy and accuracy of
    the arg-max class, and the confusion matrix (rows: true class, columns: predicted, in
    ``class_names`` order)."""
    predicted = probs.argmax(axis=1)
    per_class = {name: _auc((targets == c).astype(int), probs[:, c]) for c, name in enumerate(class_names)}
    return {
        "per_class_auc": per_class,
        "macro_auc": float(np.nanmean(list(per_class.values()))),
        "balanced_accuracy": float(balanced_accuracy_score(targets, predicted)),
        "accuracy": float((predicted == targets).mean()),
        "confusion_matrix": confusion_matrix(targets, predicted, labels=list(range(len(class_names)))).tolist(),
        "class_names": list(class_names),
    }


def validation_metrics(probs: np.ndarray, targets: np.ndarray, task: str, class_names: list[str]) -> dict[str, float]:
    """``val_auc`` is the selection metric: melanoma ROC-AUC for ``melanoma``, the macro one-vs-rest
    ROC-AUC for ``three_class`` (whose melanoma AUC is ``val_melanoma_auc``)."""
    melanoma = (targets == 1).astype(int)
    scores = melanoma_column(probs, task)
    row = {"val_melanoma_auc": _auc(melanoma, scores)}
    if task == "melanoma":
        predicted = (scores >= 0.5).astype(int)
        return {
            "val_auc": row["val_melanoma_auc"],
            **row,
            "val_accuracy": float((predicted == melanoma).mean()),
            "val_balanced_accuracy": float(balanced_accuracy_score(melanoma, predicted)),
        }
    report = multiclass_report(probs, targets, class_names)
    return {
        "val_auc": report["macro_auc"],
        **row,
        "val_accuracy": report["accuracy"],
        "val_balanced_accuracy": report["balanced_accuracy"],
        **{f"val_auc_{name}": auc for name, auc in report["per_class_auc"].items()},
    }
