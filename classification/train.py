"""Fine-tune a melanoma classifier on ISIC 2017 image labels (no masks): the paper's "finetuned" arm.

    python -m classification.train --set classifier=efficientnet_lite0 --set epochs=5
    torchrun --nproc_per_node 4 -m classification.train        # same script, several GPUs / nodes

Selection and early stopping use validation ROC-AUC (accuracy rewards predicting "benign" when
only ~19 % are melanoma): the melanoma AUC, or for ``task=three_class`` (melanoma / seborrheic
keratosis / nevus, softmax) the mean one-vs-rest AUC. The class imbalance is handled by a
positive-class weight or class weights. ``holdout_every=18`` keeps the unseen ``train_every18``
crops out of training. Preprocessing is the model's own data config, identical at training, test
and CAM time (:mod:`classification.training` does the work). The run folder holds ``best.pth`` and
``last.pth`` (model, optimiser, epoch, config, class names), ``log.txt``, ``metrics.jsonl`` and
``learning_curves.png``; starting the same command with the same ``out_dir`` resumes from ``last.pth``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from classification.training import ClassifierTraining, train_classifier
from common.cli import run_main
from common.config import config_from_argv
from common.defaults import DATA_ROOT, RESULTS_ROOT
from common.io import save_figure
from visualisations.classification_figures import learning_curves_figure

# fmt: off
CONFIG: dict[str, Any] = {
    "data_root": DATA_ROOT,
    "train_split": "train",
    "val_split": "val",
    "train_every": 1, "train_limit": None, "val_limit": None,   # subsets, for quick runs
    "holdout_every": 0,                  # 18: keep the unseen train_every18 crops out of training
    "classifier": "efficientnet_lite0",
    "pretrained": True,                  # ImageNet weights where they install with pip
    "task": "melanoma",                  # "melanoma" (one logit, BCE) or "three_class" (softmax, CE)
    "epochs": 200,
    "patience": 50,                      # early stopping on validation ROC-AUC
    "batch_size": 32,
    "lr": 1e-4,
    "weight_decay": 0.0,
    "num_workers": 2,
    "amp": True,                         # mixed precision and channels_last, on GPU only
    "results_root": RESULTS_ROOT,
    "out_dir": None,
    "export": None,                      # also write the best epoch's weights here in float16 (model_checkpoints/)
    "log_sample_ids": False,             # write the ids each rank saw per epoch (tests)
    "device": "auto",
    "seed": 0,
}
# fmt: on


def main(argv: list[str] | None = None) -> dict[str, Any]:
    settings = ClassifierTraining.from_config(config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0]))
    result = train_classifier(settings, defaults=CONFIG)
    if result["main_process"] and result["history"]:
        save_figure(learning_curves_figure(result["history"]), Path(result["run_dir"]) / "learning_curves.png")
    return result


if __name__ == "__main__":
    run_main(main)
