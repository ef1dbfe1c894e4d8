"""Classification figures from the files earlier runs wrote (read only; nothing is recomputed).

* ``learning_curves.png`` from a training run's ``metrics.jsonl`` (training loss; validation
  ROC-AUC and balanced accuracy per epoch, the selected epoch marked);
* ``roc.png`` from a test run's ``scores.csv`` (image_id, melanoma, score) and ``metrics.json``
  (the operating point at the threshold chosen on the threshold split).

    python -m visualisations.classification_plots --set train_run=results/train_x --set test_run=results/test_x
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from common.config import config_from_argv  # noqa: E402
from common.io import read_json, save_figure  # noqa: E402

CONFIG: dict[str, Any] = {
    "train_run": None,   # folder with metrics.jsonl (classification.train)
    "test_run": None,    # folder with scores.csv and metrics.json (classification.test)
    "out_dir": None,     # None: each figure beside its input
}


def read_history(path: str | Path) -> list[dict]:
    """The per-epoch rows of a training run's ``metrics.jsonl``."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


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
    ax.scatter([1 - report["specificity"]], [report["sensitivity"]], c="red", zorder=3,
               label=f"threshold {report['threshold']:.3f} (chosen on {report['threshold_split']})")
    ax.set_xlabel("1 - specificity (false positive rate)")
    ax.set_ylabel("sensitivity (true positive rate)")
    ax.set_title(f"Melanoma ROC, {report['split']} split (n = {report['n_images']})")
    ax.legend(loc="lower right")
    return fig


def main(argv: list[str] | None = None) -> list[Path]:
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0])
    if not cfg["train_run"] and not cfg["test_run"]:
        raise SystemExit("set train_run=<training run folder> and/or test_run=<test run folder>")
    written = []
    if cfg["train_run"]:
        run = Path(cfg["train_run"])
        if not (run / "metrics.jsonl").is_file():
            raise SystemExit(f"{run / 'metrics.jsonl'} not found: is {run} a classification.train run?")
        path = Path(cfg["out_dir"] or run) / "learning_curves.png"
        save_figure(learning_curves_figure(read_history(run / "metrics.jsonl")), path, dpi=150)
        written.append(path)
    if cfg["test_run"]:
        run = Path(cfg["test_run"])
        for name in ("scores.csv", "metrics.json"):
            if not (run / name).is_file():
                raise SystemExit(f"{run / name} not found: is {run} a classification.test run?")
        scores = pd.read_csv(run / "scores.csv")
        path = Path(cfg["out_dir"] or run) / "roc.png"
        save_figure(roc_figure(scores["score"].to_numpy(), scores["melanoma"].to_numpy(), read_json(run / "metrics.json")),
                    path, dpi=150)
        written.append(path)
    for path in written:
        print(f"written: {path}")
    return written


if __name__ == "__main__":
    main(sys.argv[1:])
