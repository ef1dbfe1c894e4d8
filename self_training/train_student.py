"""Train the student segmenter on pseudo-masks (no pixel label anywhere).

    python -m self_training.train_student --set pseudo_dirs='["results/pseudo_r1"]' --set out_dir=results/student_r1
    python -m self_training.train_student --set pseudo_dirs='["results/pseudo_r4_crops"]' \
        --set extra_sets='[{"name": "frames", "image_dir": "../shared/data/ISIC2017_full_frames/images",
                           "pseudo_dirs": ["results/pseudo_r4_frames"]}]' --set out_dir=results/student_r4   # crops + frames
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
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm import tqdm

from cam_sam.settings import DATA_CONFIG
from common.colour import COLOUR_CONSTANCY_METHODS
from common.cli import run_main
from common.config import config_from_argv
from common.distributed import ShardedShuffle, setup_distributed
from common.io import resolve_run_dir, write_json
from common.runs import fix_run_config
from data.catalogue import open_dataset
from common.checkpoints import safe_load
from models.student import StudentConfig, build_student, load_backbone, load_student, save_student
from self_training.data import PseudoLabel, PseudoMaskDataset, collect_pseudo_labels, keep_most_trusted
from self_training.holdout import HOLDOUT_EVERY, holdout_ids
from self_training.losses import weighted_bce_dice

CONFIG: dict[str, Any] = {
    "dataset": DATA_CONFIG["dataset"],
    "data_root": DATA_CONFIG["data_root"],
    "split": "train",
    "image_dir": None,                      # a folder of unlabelled images instead of ISIC
    "pseudo_dirs": ["results/pseudo_r1"],   # pseudo-labelling runs (a later one's masks win)
    "extra_sets": [],                       # more image folders, each {"name", "image_dir", "pseudo_dirs"}
                                            # (or "dataset"/"data_root"/"split" instead of image_dir); optional
                                            # "keep_fraction" (this set's own) and "share": the set is sampled
                                            # (repeated or thinned, seeded) to be that share of the training
                                            # items (synthetic pairs: self_training.make_synthetic)
    "holdout_every": HOLDOUT_EVERY,         # refuse to train on these ids (the unseen evaluation crops)
    "backbone": "efficientnet_lite0",       # classifier registry name of the encoder
    "classifier_checkpoint": None,          # classification/train.py file; None: ImageNet weights
    "init_student": None,                   # a student checkpoint to start from instead (a fine-tune, or a
                                            # curriculum's second stage); its backbone must be "backbone"
    "input_size": 256,
    "colour_constancy": None,               # the images' colour cast removed first ("shades_of_gray"; common.colour):
    "colour_strength": 1.0,                 # by this much (1: fully); both saved in the student's config, so
                                            # inference does the same
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
    "results_root": "results",
    "out_dir": None,
    "export": None,                         # also write the final weights here in float16 (model_checkpoints/)
    "device": "auto",
    "seed": 0,
}

# Keys that may change when a training run resumes: they change speed or outputs, not the weights.
RESUMABLE = {"num_workers", "threads", "device", "export", "out_dir"}

log = logging.getLogger("self_training.train_student")


def _set_labels(name: str, dataset, pseudo_dirs: list[str], held: set[str], cfg: dict[str, Any],
                keep_fraction: float | None = None) -> list[PseudoLabel]:
    """One training set's pseudo-labels, ids in ``held`` refused, the least trusted dropped (its
    own ``keep_fraction``, else the run's)."""
    keep = cfg["keep_fraction"] if keep_fraction is None else float(keep_fraction)
    paths = dict(zip(dataset.ids, dataset.image_paths))
    labels = [p for p in collect_pseudo_labels(pseudo_dirs, paths) if p.image_id not in held]
    kept = keep_most_trusted(labels, keep, cfg["confidence_key"])
    log.info("%s: %d pseudo-masks, %d kept (keep_fraction %.2f by %s)", name, len(labels), len(kept),
             keep, cfg["confidence_key"])
    return kept


def resample_to_share(labels: list[PseudoLabel], n_others: int, share: float, seed: int) -> list[PseudoLabel]:
    """``labels`` repeated or thinned (a seeded draw, whole copies first) to ``share`` of the
    items once ``n_others`` other items join them: ``round(share / (1 - share) * n_others)`` items."""
    if not 0 < share < 1:
        raise SystemExit(f"extra_sets share must be in (0, 1), not {share}")
    n = max(1, round(share / (1 - share) * n_others))
    rng = np.random.default_rng(seed)
    whole, rest = divmod(n, len(labels))
    return labels * whole + [labels[i] for i in sorted(rng.choice(len(labels), rest, replace=False))]


EXTRA_SET_KEYS = {"name", "image_dir", "dataset", "data_root", "split", "pseudo_dirs", "keep_fraction", "share"}


def training_labels(cfg: dict[str, Any]) -> list[PseudoLabel]:
    """The pseudo-labels to train on: the main set's (``data_root``/``split`` or ``image_dir``) and
    every ``extra_sets`` entry's, each with its least trusted dropped; ids held back in the main
    set refused in every set; an extra set's ids prefixed ``<name>:``."""
    main_set = open_dataset(cfg["data_root"], cfg["split"], cfg["image_dir"], read_masks=False, dataset=cfg["dataset"])
    held = set(holdout_ids(main_set.ids, cfg["holdout_every"])) if not cfg["image_dir"] else set()
    labels = _set_labels("main set", main_set, cfg["pseudo_dirs"], held, cfg)
    names: set[str] = set()
    shared: list[tuple[dict, list[PseudoLabel]]] = []      # sets with a "share", sized once the rest is known
    for spec in cfg["extra_sets"]:
        name = spec.get("name")
        if not name or ":" in name or name in names or "pseudo_dirs" not in spec or set(spec) - EXTRA_SET_KEYS:
            raise SystemExit(f"extra_sets entry {spec}: needs a unique 'name' (no ':') and 'pseudo_dirs', "
                             "and 'image_dir' or 'dataset'/'data_root'/'split', nothing else")
        names.add(name)
        dataset = open_dataset(spec.get("data_root", cfg["data_root"]), spec.get("split", cfg["split"]),
                               spec.get("image_dir"), read_masks=False, dataset=spec.get("dataset", cfg["dataset"]))
        named = [replace(p, image_id=f"{name}:{p.image_id}")
                 for p in _set_labels(name, dataset, spec["pseudo_dirs"], held, cfg, spec.get("keep_fraction"))]
        if "share" in spec and named:
            shared.append((spec, named))
        else:
            labels += named
    n_others = len(labels)
    for spec, named in shared:
        sized = resample_to_share(named, n_others, float(spec["share"]), cfg["seed"])
        log.info("%s: %d items (share %.2f of %d)", spec["name"], len(sized), spec["share"], n_others + len(sized))
        labels += sized
    if not labels:
        raise SystemExit(f"no pseudo-masks found in {cfg['pseudo_dirs']} or extra_sets: "
                         "run self_training.pseudo_label first")
    return labels


def make_student(cfg: dict[str, Any]) -> tuple[torch.nn.Module, StudentConfig]:
    """The student to train: from ``init_student`` (every weight), else a new U-Net whose encoder
    is the classifier's (``classifier_checkpoint`` or ImageNet)."""
    if cfg["init_student"]:
        if not Path(cfg["init_student"]).is_file():
            raise SystemExit(f"init_student not found: {cfg['init_student']}")
        model, config, _ = load_student(cfg["init_student"])
        if config.backbone != cfg["backbone"]:
            raise SystemExit(f"init_student {cfg['init_student']} has the encoder {config.backbone}, not {cfg['backbone']}")
        if config.input_size != cfg["input_size"]:
            # The U-Net is fully convolutional: its weights fit any input size; the new size is
            # the one it is fine-tuned at and saved with.
            log.info("fine-tuning a student of %d px at %d px", config.input_size, cfg["input_size"])
            config = replace(config, input_size=cfg["input_size"])
        colour = {"colour_constancy": cfg["colour_constancy"], "colour_strength": float(cfg["colour_strength"])}
        if (config.colour_constancy, config.colour_strength) != tuple(colour.values()):
            log.info("fine-tuning a student of colour constancy %s (%g) with %s (%g)", config.colour_constancy,
                     config.colour_strength, *colour.values())
            config = replace(config, **colour)
        log.info("every weight from %s", cfg["init_student"])
        return model.float(), config
    config = StudentConfig(backbone=cfg["backbone"], input_size=cfg["input_size"], colour_constancy=cfg["colour_constancy"],
                           colour_strength=float(cfg["colour_strength"]))
    model = build_student(config)
    copied = load_backbone(model, cfg["backbone"], cfg["classifier_checkpoint"])
    log.info("encoder: %d tensors from %s", copied, cfg["classifier_checkpoint"] or "ImageNet weights")
    return model, config


def make_optimizer(model: torch.nn.Module, cfg: dict[str, Any], total_steps: int):
    """AdamW with a lower rate for the pretrained encoder; cosine decay over ``total_steps``."""
    groups = [{"params": model.encoder.parameters(), "lr": cfg["lr"] * cfg["encoder_lr_scale"]},
              {"params": [p for n, p in model.named_parameters() if not n.startswith("encoder.")], "lr": cfg["lr"]}]
    optimizer = torch.optim.AdamW(groups, weight_decay=cfg["weight_decay"])
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1))))
    return optimizer, schedule


def train_epoch(model, loader, optimizer, schedule, device, show: bool, desc: str) -> float:
    """One pass over ``loader``; the mean loss."""
    model.train()
    losses = []
    for images, masks, weights in tqdm(loader, desc=desc, disable=not show, leave=False, unit="batch"):
        images, masks, weights = images.to(device), masks.to(device), weights.to(device)
        loss = weighted_bce_dice(model(images), masks, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return float(np.mean(losses)) if losses else float("nan")


def resume_state(last: Path, model, optimizer, schedule) -> tuple[int, list[dict]]:
    """(first epoch to run, history so far) from ``last.pt``, or (1, []) when there is none."""
    if not last.is_file():
        return 1, []
    state = safe_load(last, "student training checkpoint")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    log.info("resuming from %s after epoch %d", last, state["epoch"])
    return int(state["epoch"]) + 1, list(state["history"])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0])
    if cfg["colour_constancy"] not in (None, *COLOUR_CONSTANCY_METHODS):
        raise SystemExit(f"colour_constancy must be null or one of {COLOUR_CONSTANCY_METHODS}, not {cfg['colour_constancy']!r}")
    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    rank, world, device = setup_distributed(cfg["device"])
    if world > 1 and not cfg["out_dir"]:
        raise SystemExit("under torchrun, set out_dir (every rank writes and resumes there)")
    main_process = rank == 0
    torch.manual_seed(cfg["seed"])
    run_dir = resolve_run_dir(cfg["results_root"], cfg["out_dir"], "student") if main_process else Path(cfg["out_dir"] or ".")
    if main_process:
        fix_run_config(run_dir, cfg, RESUMABLE, defaults=CONFIG)

    labels = training_labels(cfg)
    dataset = PseudoMaskDataset(labels, cfg["input_size"], train=True, cache_size=cfg["cache_size"],
                                uncertainty_weight=cfg["uncertainty_weight"], vignette_p=cfg["vignette_p"],
                                seed=cfg["seed"] + rank,
                                colour_constancy=cfg["colour_constancy"], colour_strength=float(cfg["colour_strength"]))
    sampler = ShardedShuffle(len(dataset), rank, world, cfg["seed"])
    loader = DataLoader(dataset, cfg["batch_size"], sampler=sampler, num_workers=cfg["num_workers"], drop_last=True)
    model, student_config = make_student(cfg)
    model.to(device)
    optimizer, schedule = make_optimizer(model, cfg, cfg["epochs"] * len(loader))
    last = run_dir / "last.pt"
    start, history = resume_state(last, model, optimizer, schedule)
    ddp = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model

    for epoch in range(start, cfg["epochs"] + 1):
        sampler.set_epoch(epoch)
        started = time.time()
        loss = train_epoch(ddp, loader, optimizer, schedule, device, main_process, f"epoch {epoch}/{cfg['epochs']}")
        if main_process:
            history.append({"epoch": epoch, "loss": loss, "minutes": (time.time() - started) / 60,
                            "n_images": len(dataset)})
            log.info("epoch %d: loss %.4f, %.1f min", epoch, loss, history[-1]["minutes"])
            save_student(last, model, student_config, {"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                                                       "epoch": epoch, "history": history})
            write_json(run_dir / "history.json", history)
    if main_process:
        save_student(run_dir / "student.pt", model, student_config,
                     {"trained_on": [p.image_id for p in labels], "history": history,
                      "train_config": {k: v for k, v in cfg.items() if isinstance(v, (int, float, str, list, type(None)))}})
        log.info("student written to %s", run_dir / "student.pt")
        if cfg["export"]:
            save_student(cfg["export"], model, student_config, {"history": history, "n_trained_on": len(labels)}, half=True)
            log.info("float16 copy written to %s", cfg["export"])
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return {"run_dir": str(run_dir), "history": history}


if __name__ == "__main__":
    run_main(main)
