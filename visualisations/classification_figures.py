"""Classification figures from saved values: learning curves and the ROC curve."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402


def learning_curves_figure(history: list[dict]):
    """Training loss and validation scores against epoch; the best-AUC epoch is marked."""
    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.plot(epochs, [h["train_loss"] for h in history], marker="o")
    a.set_xlabel("epoch")
    a.set_ylabel("training loss (weighted BCE / CE)")
    a.set_title("Training loss")
    auc = [h["val_auc"] for h in history]
    b.plot(epochs, auc, marker="o", label="ROC-AUC")
    b.plot(epochs, [h["val_balanced_accuracy"] for h in history], marker="s", label="balanced accuracy (p >= 0.5)")
    if auc and not all(np.isnan(auc)):
        best = int(np.nanargmax(auc))
        b.axvline(epochs[best], ls="--", c="grey", label=f"selected: epoch {epochs[best]}")
    b.set_xlabel("epoch")
    b.set_ylabel("validation score")
    b.set_ylim(0, 1)
    b.set_title("Validation")
    b.legend(loc="lower right")
    fig.tight_layout()
    return fig


def roc_figure(scores: np.ndarray, melanoma: np.ndarray, report: dict):
    """ROC curve of melanoma scores (N,) against 0/1 truth (N,), with ``report``'s operating point."""
    fpr, tpr, _ = roc_curve(melanoma, scores)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, label=f"ROC-AUC {report['roc_auc']:.3f}")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", label="chance")
    ax.scatter(
        [1 - report["specificity"]],
        [report["sensitivity"]],
        c="red",
        zorder=3,
        label=f"threshold {report['threshold']:.3f} (chosen on {report['threshold_split']})",
    )
    ax.set_xlabel("1 - specificity (false positive rate)")
    ax.set_ylabel("sensitivity (true positive rate)")
    ax.set_title(f"Melanoma ROC, {report['split']} split (n = {report['n_images']})")
    ax.legend(loc="lower right")
    return fig


def confusion_figure(report: dict, title: str):
    """The confusion matrix of :func:`classification.evaluation.multiclass_report` (rows: true
    class, columns: predicted), counts and row shares, with per-class ROC-AUC in the labels."""
    matrix = np.asarray(report["confusion_matrix"])
    names = [n.replace("_", " ") for n in report["class_names"]]
    shares = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.6, 4.8))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(
            j,
            i,
            f"{count}\n{shares[i, j]:.0%}",
            ha="center",
            va="center",
            color="white" if shares[i, j] > 0.6 else "black",
            fontsize=9,
        )
    aucs = report["per_class_auc"]
    ax.set_yticks(range(len(names)), [f"{n}\n(AUC {aucs[k]:.2f})" for n, k in zip(names, report["class_names"])])
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set_xlabel("predicted (arg-max)")
    ax.set_ylabel("true class")
    ax.set_title(f"{title}\nbalanced accuracy {report['balanced_accuracy']:.3f}, macro AUC {report['macro_auc']:.3f}")
    fig.tight_layout()
    return fig
