"""Fine-tune a melanoma classifier on ISIC 2017 image labels (no masks): the paper's "finetuned" arm.

    python -m classification.train --set classifier=efficientnet_lite0 --set epochs=5
    torchrun --nproc_per_node 4 -m classification.train        # same script, several GPUs / nodes

Selection and early stopping use validation ROC-AUC (accuracy rewards predicting "benign" when
only ~19 % are melanoma): the melanoma AUC, or for ``task=three_class`` (melanoma / seborrheic
keratosis / nevus, softmax) the mean one-vs-rest AUC. The class imbalance is handled by a
positive-class weight or class weights (or a balanced sampler, single process). ``holdout_every=18``
keeps the unseen ``train_every18`` crops out of training. Preprocessing is the model's own data config, identical at training,
test and CAM time. The run folder holds ``best.pth`` and ``last.pth`` (model, optimiser, epoch,
config, class names), ``log.txt``, ``metrics.jsonl`` and ``learning_curves.png``; starting the same
command with the same ``out_dir`` resumes from ``last.pth``.
"""
from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, WeightedRandomSampler
from tqdm import tqdm

from classification.data import LabelledImages, eval_transform, train_transform
from classification.evaluation import predict, validation_metrics
from classification.tasks import TASKS
from common.cli import run_main
from common.config import config_from_argv
from common.distributed import ShardedShuffle, setup_distributed
from common.runs import fix_run_config
from common.io import read_jsonl, resolve_run_dir, save_figure, write_json, write_text
from common.checkpoints import safe_load, save_atomically
from models.registry import create_classifier, resolve_preprocessing
from visualisations.classification_figures import learning_curves_figure

CONFIG: dict[str, Any] = {
    "data_root": "../shared/data/ISIC2017",
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
    "imbalance": "pos_weight",           # "pos_weight", "balanced_sampler" (single process) or "none"
    "augment_strength": 1.0,
    "num_workers": 2,
    "amp": True,                         # mixed precision and channels_last, on GPU only
    "results_root": "results",
    "out_dir": None,
    "export": None,                      # also write the best epoch's weights here in float16 (model_checkpoints/)
    "log_sample_ids": False,             # write the ids each rank saw per epoch (tests)
    "device": "auto",
    "seed": 0,
}

log = logging.getLogger("classification.train")


def make_loss(task: str, targets: np.ndarray, imbalance: str, device: torch.device) -> torch.nn.Module:
    if task == "melanoma":
        pos_weight = None
        if imbalance == "pos_weight":
            positives = max(1, int(targets.sum()))
            pos_weight = torch.tensor([(len(targets) - positives) / positives], device=device)
        return torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    weight = None
    if imbalance == "pos_weight":
        counts = np.bincount(targets, minlength=len(TASKS[task])).clip(min=1)
        weight = torch.tensor(len(targets) / (len(counts) * counts), dtype=torch.float32, device=device)
    return torch.nn.CrossEntropyLoss(weight=weight)


def loss_of(loss_fn, logits: torch.Tensor, targets: torch.Tensor, task: str) -> torch.Tensor:
    if task == "melanoma":
        return loss_fn(logits[:, 0], targets.float())
    return loss_fn(logits, targets)


def save_checkpoint(path: Path, model, optimizer, epoch: int, best_auc: float, cfg: dict, num_classes: int) -> None:
    module = model.module if hasattr(model, "module") else model
    payload = {"model": module.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
               "best_auc": best_auc, "config": cfg, "class_names": TASKS[cfg["task"]],
               "num_classes": num_classes, "arch": cfg["classifier"]}
    save_atomically(payload, path)


def open_run_dir(cfg: dict[str, Any], rank: int, world: int) -> Path:
    """The run folder (made by rank 0, shared with the other ranks); a folder holding a run of
    another config (except ``epochs``) is refused. Rank 0 also logs to ``log.txt`` there."""
    run_dir = Path(cfg["out_dir"]) if cfg["out_dir"] else None
    if rank == 0:
        run_dir = resolve_run_dir(cfg["results_root"], cfg["out_dir"], f"train_{cfg['classifier']}")
        fix_run_config(run_dir, cfg, resumable={"epochs", "export"}, defaults=CONFIG)
        file_handler = logging.FileHandler(run_dir / "log.txt")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(file_handler)
    if world > 1:
        names = [str(run_dir)]
        dist.broadcast_object_list(names, src=0)
        run_dir = Path(names[0])
    return run_dir


def make_loaders(cfg: dict[str, Any], data_config: dict, rank: int, world: int, use_cuda: bool):
    """(training set, its sampler, training loader, validation loader)."""
    train_set = LabelledImages(cfg["data_root"], cfg["train_split"], cfg["task"],
                               train_transform(data_config, cfg["augment_strength"]), cfg["train_every"], cfg["train_limit"],
                               cfg["holdout_every"])
    val_set = LabelledImages(cfg["data_root"], cfg["val_split"], cfg["task"], eval_transform(data_config),
                             limit=cfg["val_limit"])
    if cfg["imbalance"] == "balanced_sampler":
        if world > 1:
            raise SystemExit("imbalance=balanced_sampler is single-process; use pos_weight with torchrun")
        counts = np.bincount(train_set.targets)
        weights = 1.0 / counts[train_set.targets]
        sampler = WeightedRandomSampler(weights, len(weights), generator=torch.Generator().manual_seed(cfg["seed"]))
    else:
        sampler = ShardedShuffle(len(train_set), rank, world, cfg["seed"])
    train_loader = DataLoader(train_set, cfg["batch_size"], sampler=sampler, num_workers=cfg["num_workers"],
                              pin_memory=use_cuda, persistent_workers=cfg["num_workers"] > 0)
    val_loader = DataLoader(val_set, cfg["batch_size"], shuffle=False, num_workers=cfg["num_workers"])
    return train_set, sampler, train_loader, val_loader


def export_best(best: Path, path: str | Path, history: list[dict]) -> None:
    """The best epoch's model weights in float16 (half the size, for shipping; loading casts them
    back) with their metadata (config, class names, ``num_classes``, ``arch``, the epoch and its
    validation row); no optimiser state."""
    state = safe_load(best, "training checkpoint")
    row = next((h for h in history if h["epoch"] == state["epoch"]), {})
    payload = {k: state[k] for k in ("config", "class_names", "num_classes", "arch", "epoch")}
    payload.update({"model": {k: v.half() if v.is_floating_point() else v for k, v in state["model"].items()},
                    "validation": row})
    save_atomically(payload, path)
    log.info("float16 copy of epoch %d written to %s", state["epoch"], path)


def resume(run_dir: Path, model, optimizer) -> tuple[int, float, list[dict], int]:
    """(first epoch to run, best AUC, history, epochs since the best) from ``last.pth``, if any."""
    last = run_dir / "last.pth"
    if not last.is_file():
        return 1, -1.0, [], 0
    state = safe_load(last, "training checkpoint")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    best_auc = state["best_auc"]
    history = [h for h in read_jsonl(run_dir / "metrics.jsonl") if h["epoch"] <= state["epoch"]]
    stale = state["epoch"] - max((h["epoch"] for h in history if h["val_auc"] == best_auc), default=state["epoch"])
    log.info("resuming from %s at epoch %d (best AUC %.4f)", last, state["epoch"] + 1, best_auc)
    return state["epoch"] + 1, best_auc, history, stale


def train_epoch(ddp_model, loader, optimizer, scaler, loss_fn, cfg: dict[str, Any], device, amp: bool,
                world: int, show: bool, epoch: int) -> float:
    """One pass over ``loader`` (mixed precision with ``amp``); the mean training loss."""
    ddp_model.train()
    losses = []
    context = ddp_model.join() if world > 1 else contextlib.nullcontext()
    with context:
        for images, labels in tqdm(loader, desc=f"epoch {epoch}", disable=not show, leave=False):
            images, labels = images.to(device), labels.to(device)
            if amp:
                images = images.to(memory_format=torch.channels_last)
            with torch.autocast(device.type, enabled=amp):
                loss = loss_of(loss_fn, ddp_model(images).float(), labels, cfg["task"])
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            losses.append(loss.item())
    return float(np.mean(losses))


def setup_logging(main_process: bool) -> None:
    """Log INFO on the main process (WARNING on the others), without the log file of an earlier
    run in this process (open_run_dir adds this run's)."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s")
    log.setLevel(logging.INFO if main_process else logging.WARNING)
    for handler in [h for h in log.handlers if isinstance(h, logging.FileHandler)]:
        log.removeHandler(handler)
        handler.close()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0])
    if cfg["task"] not in TASKS:
        raise SystemExit(f"task must be one of {list(TASKS)}")
    rank, world, device = setup_distributed(cfg["device"])
    main_process = rank == 0
    setup_logging(main_process)
    torch.manual_seed(cfg["seed"] + rank)
    np.random.seed(cfg["seed"] + rank)
    run_dir = open_run_dir(cfg, rank, world)

    num_classes = 1 if cfg["task"] == "melanoma" else len(TASKS[cfg["task"]])
    model = create_classifier(cfg["classifier"], num_classes=num_classes, pretrained=cfg["pretrained"])
    use_cuda = device.type == "cuda"
    amp = use_cuda and cfg["amp"]
    train_set, sampler, train_loader, val_loader = make_loaders(cfg, resolve_preprocessing(model), rank, world, use_cuda)
    model.to(device)
    if amp:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    loss_fn = make_loss(cfg["task"], train_set.targets, cfg["imbalance"], device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    start_epoch, best_auc, history, stale = resume(run_dir, model, optimizer)
    ddp_model = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model

    for epoch in range(start_epoch, cfg["epochs"] + 1):
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        if cfg["log_sample_ids"]:
            write_json(run_dir / f"seen_rank{rank}_epoch{epoch}.json", [train_set.ids[i] for i in sampler])
        started = time.time()
        loss = train_epoch(ddp_model, train_loader, optimizer, scaler, loss_fn, cfg, device, amp, world, main_process, epoch)
        if main_process:
            probs, targets = predict(model, val_loader, cfg["task"], device)
            row = {"epoch": epoch, "train_loss": loss, "minutes": (time.time() - started) / 60,
                   **validation_metrics(probs, targets, cfg["task"], TASKS[cfg["task"]])}
            history.append(row)
            improved = row["val_auc"] > best_auc
            best_auc, stale = (row["val_auc"], 0) if improved else (best_auc, stale + 1)
            if improved:
                save_checkpoint(run_dir / "best.pth", model, optimizer, epoch, best_auc, cfg, num_classes)
            save_checkpoint(run_dir / "last.pth", model, optimizer, epoch, best_auc, cfg, num_classes)
            write_text(run_dir / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))
            save_figure(learning_curves_figure(history), run_dir / "learning_curves.png")
            log.info("epoch %d: loss %.4f, val AUC %.4f, balanced acc %.3f, %.1f min%s", epoch, row["train_loss"],
                     row["val_auc"], row["val_balanced_accuracy"], row["minutes"], " (best)" if improved else "")
        stop = torch.tensor([int(main_process and stale >= cfg["patience"])])
        if world > 1:
            dist.broadcast(stop, src=0)
        if stop.item():
            log.info("early stop: no better validation AUC for %d epochs", cfg["patience"])
            break
    if main_process and cfg["export"] and (run_dir / "best.pth").is_file():
        export_best(run_dir / "best.pth", cfg["export"], history)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return {"run_dir": str(run_dir), "best_auc": best_auc, "history": history}


if __name__ == "__main__":
    run_main(main)
