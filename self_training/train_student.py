"""Train the student segmenter on pseudo-masks (no pixel label anywhere).

    python -m self_training.train_student --set pseudo_dirs='["results/pseudo_r1"]' --set out_dir=results/student_r1
    python -m self_training.train_student --set pseudo_dirs='["results/pseudo_r4_crops"]' \
        --set extra_sets='[{"name": "frames", "image_dir": "../shared/data/ISIC2017_full_frames/images",
                           "pseudo_dirs": ["results/pseudo_r4_frames"]}]' \
        --set out_dir=results/student_r4                                  # crops + frames
    torchrun --nproc_per_node 2 -m self_training.train_student ...        # data-parallel, same result layout

The encoder is a classifier backbone from the registry (ImageNet weights, or the melanoma
classifier of ``classification/train.py`` with ``classifier_checkpoint``); the U-Net decoder comes
from ``segmentation-models-pytorch``. The least trusted ``1 - keep_fraction`` of the pseudo-masks
(by the pipeline's selection score) are dropped; pixels on which the pipeline's candidates
disagreed count less. ``extra_sets`` add other image folders (the full frames) with their own
pseudo-labelling runs; their ids are kept apart from the main set's as ``<name>:<id>`` (the same
image id may be a crop in one folder and a whole frame in another), and no image whose id is held
back in the main set is used from any set. A fixed number of epochs, no choice by any ground truth. Writes
``last.pt`` (resume), ``student.pt`` (the final weights, ``weights_only`` loadable),
``history.json`` and ``config.json``; rerunning with the same ``out_dir`` resumes.
"""

from __future__ import annotations

import logging
from typing import Any

from cam_sam.settings import DATA_CONFIG
from common.cli import run_main
from common.config import config_from_argv
from common.defaults import RESULTS_ROOT
from data.holdout import HOLDOUT_EVERY
from self_training.training import StudentTraining, train

# fmt: off
CONFIG: dict[str, Any] = {
    "dataset": DATA_CONFIG["dataset"],
    "data_root": DATA_CONFIG["data_root"],
    "split": "train",
    "image_dir": None,                      # a folder of unlabelled images instead of ISIC
    "pseudo_dirs": ["results/pseudo_r1"],   # pseudo-labelling runs (a later one's masks win)
    "extra_sets": [],                       # more image folders, each {"name", "image_dir", "pseudo_dirs"}; optional
                                            # "keep_fraction" (this set's own) and "share": the set is sampled
                                            # (repeated or thinned, seeded) to be that share of the training
                                            # items (synthetic pairs: self_training.make_synthetic)
    "holdout_every": HOLDOUT_EVERY,         # refuse to train on these ids (the unseen evaluation crops)
    "backbone": "efficientnet_lite0",       # classifier registry name of the encoder
    "classifier_checkpoint": None,          # classification/train.py file; None: ImageNet weights
    "init_student": None,                   # a student checkpoint to start from instead (a fine-tune, or a
                                            # curriculum's second stage); its backbone must be "backbone"
    "input_size": 256,
    "cache_size": 320,                      # images kept in memory at this side before augmentation
    "keep_fraction": 0.8,                   # the most trusted share of pseudo-masks (by confidence_key)
    "confidence_key": "selection_score",
    "uncertainty_weight": 0.5,              # pixel weight 1 - w * (normalised std among candidates)
    "vignette_p": 0.3,                      # share of training images given a dark circular vignette
    "epochs": 8,
    "batch_size": 16,
    "lr": 1e-3,                             # decoder; the encoder trains at lr * encoder_lr_scale
    "encoder_lr_scale": 0.3,
    "weight_decay": 1e-4,
    "num_workers": 0,
    "threads": None,                        # torch CPU threads (None: torch's default)
    "results_root": RESULTS_ROOT,
    "out_dir": None,
    "export": None,                         # also write the final weights here in float16 (model_checkpoints/)
    "device": "auto",
    "seed": 0,
}
# fmt: on


def main(argv: list[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = StudentTraining.from_config(config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0]))
    return train(settings, defaults=CONFIG)


if __name__ == "__main__":
    run_main(main)
