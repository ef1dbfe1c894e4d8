"""Test a trained melanoma classifier: accuracy, balanced accuracy, ROC-AUC, sensitivity and
specificity at the threshold chosen on the validation split (Youden's J), F1, confusion matrix,
ROC curve PNG, ``metrics.json`` and the per-image ``scores.csv``. A three-class classifier also
gets ``metrics.json["three_class"]`` (per-class ROC-AUC, balanced accuracy and confusion of the
arg-max class) and ``confusion.png``.

    python -m classification.test --set checkpoint=results/train_.../best.pth --set split=val
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score, roc_auc_score, roc_curve
from torch.utils.data import DataLoader

from classification.data import LabelledImages, eval_transform
from classification.evaluation import melanoma_column, multiclass_report, predict
from classification.tasks import TASKS
from common.cli import run_main
from common.config import config_from_argv
from common.defaults import DATA_ROOT, RESULTS_ROOT
from common.errors import SettingsError
from common.io import resolve_run_dir, save_figure, write_csv, write_json
from models.registry import create_classifier, read_checkpoint, resolve_preprocessing
from visualisations.classification_figures import confusion_figure, roc_figure

CONFIG: dict[str, Any] = {
    "checkpoint": None,  # best.pth from classification.train
    "data_root": DATA_ROOT,
    "split": "val",  # the split to report
    "threshold_split": "val",  # the split the decision threshold is chosen on
    "limit": None,
    "batch_size": 32,
    "num_workers": 2,
    "results_root": RESULTS_ROOT,
    "out_dir": None,
}


def youden_threshold(scores: np.ndarray, melanoma: np.ndarray) -> float:
    """The threshold maximising sensitivity + specificity - 1."""
    fpr, tpr, thresholds = roc_curve(melanoma, scores)
    return float(thresholds[int(np.argmax(tpr - fpr))])


def binary_report(scores: np.ndarray, melanoma: np.ndarray, threshold: float) -> dict[str, Any]:
    predicted = (scores >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(melanoma, predicted, labels=[0, 1]).ravel()
    return {
        "threshold": threshold,
        "accuracy": float((predicted == melanoma).mean()),
        "balanced_accuracy": float(balanced_accuracy_score(melanoma, predicted)),
        "roc_auc": float(roc_auc_score(melanoma, scores)) if 0 < melanoma.sum() < len(melanoma) else None,
        "sensitivity": float(tp / max(1, tp + fn)),
        "specificity": float(tn / max(1, tn + fp)),
        "f1": float(f1_score(melanoma, predicted, zero_division=0)),
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
        "n_images": int(len(melanoma)),
        "n_melanoma": int(melanoma.sum()),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0])
    if not cfg["checkpoint"]:
        raise SettingsError("set checkpoint=<run>/best.pth")
    _, meta = read_checkpoint(cfg["checkpoint"])
    train_cfg = meta.get("config", {})
    arch, task = meta.get("arch") or train_cfg.get("classifier"), train_cfg.get("task", "melanoma")
    model = create_classifier(arch, checkpoint=cfg["checkpoint"])
    transform = eval_transform(resolve_preprocessing(model))

    def scores_of(split: str) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray, np.ndarray]:
        data = LabelledImages(cfg["data_root"], split, task, transform, limit=cfg["limit"])
        probs, targets = predict(
            model, DataLoader(data, cfg["batch_size"], num_workers=cfg["num_workers"]), task, "cpu"
        )
        return melanoma_column(probs, task), (targets == 1).astype(int), data.ids, probs, targets

    scores, melanoma, ids, probs, targets = scores_of(cfg["split"])
    threshold_scores, threshold_truth = (
        (scores, melanoma) if cfg["threshold_split"] == cfg["split"] else scores_of(cfg["threshold_split"])[:2]
    )
    report = binary_report(scores, melanoma, youden_threshold(threshold_scores, threshold_truth))
    report.update(
        {
            "checkpoint": cfg["checkpoint"],
            "split": cfg["split"],
            "threshold_split": cfg["threshold_split"],
            "classifier": arch,
            "task": task,
        }
    )
    run_dir = resolve_run_dir(cfg["results_root"], cfg["out_dir"], "test_classifier")
    if task != "melanoma":
        report[task] = multiclass_report(probs, targets, TASKS[task])
        save_figure(
            confusion_figure(report[task], f"{arch}, {cfg['split']} split (n = {len(targets)})"),
            run_dir / "confusion.png",
        )
    write_json(run_dir / "config.json", cfg)
    write_json(run_dir / "metrics.json", report)
    write_csv(run_dir / "scores.csv", pd.DataFrame({"image_id": ids, "melanoma": melanoma, "score": scores}))
    save_figure(roc_figure(scores, melanoma, report), run_dir / "roc.png")
    print({k: v for k, v in report.items() if k not in ("checkpoint",)})
    return report


if __name__ == "__main__":
    run_main(main)
