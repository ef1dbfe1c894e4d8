"""Fine-tuning a lesion classifier on image labels, the library of ``classification.train``: its
typed settings (:class:`ClassifierTraining`, resolved from the script's CONFIG), the loss that
weighs the rare classes up, and the loop (:func:`train_classifier`: data-parallel under torchrun,
selection and early stopping by validation ROC-AUC, resumed from ``last.pth``). No mask is read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm import tqdm

from classification.data import LabelledImages, eval_transform, train_transform
from classification.evaluation import predict, validation_metrics
from classification.tasks import TASKS
from common.checkpoints import safe_load, save_atomically
from common.distributed import ShardedShuffle, setup_distributed
from common.errors import SettingsError
from common.io import read_jsonl, resolve_run_dir, write_json, write_text
from common.runs import fix_run_config
from models.registry import create_classifier, resolve_preprocessing

log = logging.getLogger("classification.train")

RESUMABLE = frozenset({"epochs", "export"})


@dataclass(frozen=True)
class ClassifierTraining:
    """One fine-tuning run: each field is the ``classification.train`` CONFIG key of that name
    (documented there); ``config`` is the CONFIG as given, saved in the checkpoints."""

    data_root: str
    train_split: str
    val_split: str
    train_every: int
    train_limit: int | None
    val_limit: int | None
    holdout_every: int
    classifier: str
    pretrained: bool
    task: str
    epochs: int
    patience: int
    batch_size: int
    lr: float
    weight_decay: float
    num_workers: int
    amp: bool
    results_root: str
    out_dir: str | None
    export: str | None
    log_sample_ids: bool
    device: str
    seed: int
    config: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> ClassifierTraining:
        if cfg["task"] not in TASKS:
            raise SettingsError(f"task must be one of {list(TASKS)}, not {cfg['task']!r}")
        return cls(**{f.name: cfg[f.name] for f in fields(cls) if f.name != "config"}, config=dict(cfg))

    @property
    def num_classes(self) -> int:
        return 1 if self.task == "melanoma" else len(TASKS[self.task])


def make_loss(task: str, targets: np.ndarray, device: torch.device) -> torch.nn.Module:
    """BCE on one logit (``melanoma``) or cross-entropy, the rare classes weighed up: the positive
    class weighs negatives / positives (every class n / (k x n_class) with softmax)."""
    if task == "melanoma":
        positives = max(1, int(targets.sum()))
        pos_weight = torch.tensor([(len(targets) - positives) / positives], device=device)
        return torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    counts = np.bincount(targets, minlength=len(TASKS[task])).clip(min=1)
    weight = torch.tensor(len(targets) / (len(counts) * counts), dtype=torch.float32, device=device)
    return torch.nn.CrossEntropyLoss(weight=weight)


def loss_of(loss_fn, logits: torch.Tensor, targets: torch.Tensor, task: str) -> torch.Tensor:
    if task == "melanoma":
        return loss_fn(logits[:, 0], targets.float())
    return loss_fn(logits, targets)


def save_checkpoint(path: Path, model, optimizer, epoch: int, best_auc: float, s: ClassifierTraining) -> None:
    module = model.module if hasattr(model, "module") else model
    payload = {
        "model": module.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "best_auc": best_auc,
        "config": s.config,
        "class_names": TASKS[s.task],
        "num_classes": s.num_classes,
        "arch": s.classifier,
    }
    save_atomically(payload, path)


def open_run_dir(s: ClassifierTraining, rank: int, world: int, defaults: dict[str, Any] | None) -> Path:
    """The run folder (made by rank 0, shared with the other ranks); a folder holding a run of
    another config (except ``epochs`` and ``export``) is refused. Rank 0 also logs to ``log.txt``."""
    run_dir = Path(s.out_dir) if s.out_dir else None
    if rank == 0:
        run_dir = resolve_run_dir(s.results_root, s.out_dir, f"train_{s.classifier}")
        fix_run_config(run_dir, s.config, resumable=RESUMABLE, defaults=defaults)
        file_handler = logging.FileHandler(run_dir / "log.txt")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(file_handler)
    if world > 1:
        names = [str(run_dir)]
        dist.broadcast_object_list(names, src=0)
        run_dir = Path(names[0])
    return run_dir


def make_loaders(s: ClassifierTraining, data_config: dict, rank: int, world: int, use_cuda: bool):
    """(training set, its sampler, training loader, validation loader)."""
    train_set = LabelledImages(
        s.data_root, s.train_split, s.task, train_transform(data_config), s.train_every, s.train_limit, s.holdout_every
    )
    val_set = LabelledImages(s.data_root, s.val_split, s.task, eval_transform(data_config), limit=s.val_limit)
    sampler = ShardedShuffle(len(train_set), rank, world, s.seed)
    train_loader = DataLoader(
        train_set,
        s.batch_size,
        sampler=sampler,
        num_workers=s.num_workers,
        pin_memory=use_cuda,
        persistent_workers=s.num_workers > 0,
    )
    val_loader = DataLoader(val_set, s.batch_size, shuffle=False, num_workers=s.num_workers)
    return train_set, sampler, train_loader, val_loader


def export_best(best: Path, path: str | Path, history: list[dict]) -> None:
    """The best epoch's model weights in float16 (half the size, for shipping; loading casts them
    back) with their metadata (config, class names, ``num_classes``, ``arch``, the epoch and its
    validation row); no optimiser state."""
    state = safe_load(best, "training checkpoint")
    row = next((h for h in history if h["epoch"] == state["epoch"]), {})
    payload = {k: state[k] for k in ("config", "class_names", "num_classes", "arch", "epoch")}
    payload.update(
        {"model": {k: v.half() if v.is_floating_point() else v for k, v in state["model"].items()}, "validation": row}
    )
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


def train_epoch(
    ddp_model, loader, optimizer, scaler, loss_fn, task: str, device, amp: bool, world: int, show: bool, epoch: int
) -> float:
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
                loss = loss_of(loss_fn, ddp_model(images).float(), labels, task)
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


def _record_epoch(
    s: ClassifierTraining,
    run_dir: Path,
    model,
    optimizer,
    val_loader,
    device,
    row: dict,
    history: list[dict],
    best_auc: float,
) -> bool:
    """Score the epoch on validation into ``row`` and ``history``; write ``last.pth`` (and
    ``best.pth`` when the AUC improved) and ``metrics.jsonl``. True: the AUC improved."""
    probs, targets = predict(model, val_loader, s.task, device)
    row.update(validation_metrics(probs, targets, s.task, TASKS[s.task]))
    history.append(row)
    improved = row["val_auc"] > best_auc
    if improved:
        save_checkpoint(run_dir / "best.pth", model, optimizer, row["epoch"], row["val_auc"], s)
    save_checkpoint(run_dir / "last.pth", model, optimizer, row["epoch"], max(best_auc, row["val_auc"]), s)
    write_text(run_dir / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))
    log.info(
        "epoch %d: loss %.4f, val AUC %.4f, balanced acc %.3f, %.1f min%s",
        row["epoch"],
        row["train_loss"],
        row["val_auc"],
        row["val_balanced_accuracy"],
        row["minutes"],
        " (best)" if improved else "",
    )
    return improved


def train_classifier(s: ClassifierTraining, defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fine-tune the classifier of ``s`` in its run folder (resumed from its ``last.pth``), keeping
    the epoch of the best validation AUC (``best.pth``; its float16 copy at ``export``) and stopping
    after ``patience`` epochs without a better one. ``defaults``: the script's CONFIG (settings added
    after a run started resume at their default). Returns the run folder, best AUC, history and
    whether this process is the main one (rank 0)."""
    rank, world, device = setup_distributed(s.device)
    main_process = rank == 0
    setup_logging(main_process)
    torch.manual_seed(s.seed + rank)
    np.random.seed(s.seed + rank)
    random.seed(s.seed + rank)  # the 90-degree rotations of classification.data
    run_dir = open_run_dir(s, rank, world, defaults)
    model = create_classifier(s.classifier, num_classes=s.num_classes, pretrained=s.pretrained)
    use_cuda = device.type == "cuda"
    amp = use_cuda and s.amp
    train_set, sampler, train_loader, val_loader = make_loaders(s, resolve_preprocessing(model), rank, world, use_cuda)
    model.to(device)
    if amp:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    loss_fn = make_loss(s.task, train_set.targets, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    start_epoch, best_auc, history, stale = resume(run_dir, model, optimizer)
    ddp_model = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    for epoch in range(start_epoch, s.epochs + 1):
        sampler.set_epoch(epoch)
        if s.log_sample_ids:
            write_json(run_dir / f"seen_rank{rank}_epoch{epoch}.json", [train_set.ids[i] for i in sampler])
        started = time.time()
        loss = train_epoch(
            ddp_model, train_loader, optimizer, scaler, loss_fn, s.task, device, amp, world, main_process, epoch
        )
        if main_process:
            row = {"epoch": epoch, "train_loss": loss, "minutes": (time.time() - started) / 60}
            improved = _record_epoch(s, run_dir, model, optimizer, val_loader, device, row, history, best_auc)
            best_auc, stale = (row["val_auc"], 0) if improved else (best_auc, stale + 1)
        stop = torch.tensor([int(main_process and stale >= s.patience)])
        if world > 1:
            dist.broadcast(stop, src=0)
        if stop.item():
            log.info("early stop: no better validation AUC for %d epochs", s.patience)
            break
    if main_process and s.export and (run_dir / "best.pth").is_file():
        export_best(run_dir / "best.pth", s.export, history)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return {"run_dir": str(run_dir), "best_auc": best_auc, "history": history, "main_process": main_process}
