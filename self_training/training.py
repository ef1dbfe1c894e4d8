"""Training the student segmenter on pseudo-masks, the library of ``self_training.train_student``:
its typed settings (:class:`StudentTraining`, resolved from the script's CONFIG), the images it
trains on (:func:`training_labels`), the network it starts from (:func:`make_student`) and the
loop (:func:`train`: data-parallel under torchrun, resumed from ``last.pt``). No pixel label is
read anywhere. The loss is pixel-weighted binary cross-entropy plus soft Dice
(:func:`weighted_bce_dice`).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from common.checkpoints import safe_load
from common.distributed import ShardedShuffle, setup_distributed
from common.errors import CheckpointError, DataError, SettingsError
from common.io import resolve_run_dir, write_json
from common.runs import fix_run_config
from data.catalogue import open_dataset
from data.holdout import holdout_ids
from models.student import StudentConfig, build_student, load_backbone, load_student, save_student
from self_training.data import PseudoLabel, PseudoMaskDataset, collect_pseudo_labels, keep_most_trusted

log = logging.getLogger("self_training.train_student")

# Keys that may change when a training run resumes: they change speed or outputs, not the weights.
RESUMABLE = frozenset({"num_workers", "threads", "device", "export", "out_dir"})
DICE_WEIGHT = 1.0  # weight of the soft-Dice term beside BCE
DICE_EPS = 1.0  # smoothing of the soft Dice (pixels)


@dataclass(frozen=True)
class ExtraSet:
    """One ``extra_sets`` entry: another image folder (``image_dir``) with its own pseudo-labelling
    runs, optionally its own ``keep_fraction``, and with ``share`` resampled to be that share of the
    training items."""

    name: str
    pseudo_dirs: tuple[str, ...]
    image_dir: str
    keep_fraction: float | None = None
    share: float | None = None

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> ExtraSet:
        name, known = entry.get("name"), {f.name for f in fields(cls)}
        required = {"name", "pseudo_dirs", "image_dir"}
        if (
            not isinstance(name, str)
            or not name
            or ":" in name
            or required - set(entry)
            or set(entry) - known
            or not isinstance(entry["image_dir"], str)
            or not entry["image_dir"]
        ):
            raise SettingsError(
                f"extra_sets entry {entry}: needs a unique 'name' (no ':'), 'pseudo_dirs' and 'image_dir', "
                "optionally 'keep_fraction' and 'share', nothing else"
            )
        if entry.get("share") is not None and not 0 < entry["share"] < 1:
            raise SettingsError(f"extra_sets {name!r}: share must be in (0, 1), not {entry['share']}")
        return cls(**{**entry, "pseudo_dirs": tuple(entry["pseudo_dirs"])})


@dataclass(frozen=True)
class StudentTraining:
    """One training run of the student: each field is the ``self_training.train_student`` CONFIG
    key of that name (documented there); ``config`` is the CONFIG as given, recorded in the run
    folder and in the student."""

    dataset: str
    data_root: str
    split: str
    image_dir: str | None
    pseudo_dirs: tuple[str, ...]
    extra_sets: tuple[ExtraSet, ...]
    holdout_every: int
    backbone: str
    classifier_checkpoint: str | None
    init_student: str | None
    input_size: int
    cache_size: int
    keep_fraction: float
    confidence_key: str
    uncertainty_weight: float
    vignette_p: float
    epochs: int
    batch_size: int
    lr: float
    encoder_lr_scale: float
    weight_decay: float
    num_workers: int
    threads: int | None
    results_root: str
    out_dir: str | None
    export: str | None
    device: str
    seed: int
    config: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> StudentTraining:
        extra_sets = tuple(ExtraSet.from_entry(entry) for entry in cfg["extra_sets"])
        names = [extra.name for extra in extra_sets]
        if len(set(names)) < len(names):
            raise SettingsError(f"extra_sets: each entry needs a unique 'name', not {names}")
        picked = {f.name: cfg[f.name] for f in fields(cls) if f.name not in ("extra_sets", "config")}
        return cls(
            **{
                **picked,
                "pseudo_dirs": tuple(cfg["pseudo_dirs"]),
                "extra_sets": extra_sets,
                "config": dict(cfg),
            }
        )


def _set_labels(
    name: str, dataset, pseudo_dirs: tuple[str, ...], held: set[str], keep: float, key: str
) -> list[PseudoLabel]:
    """One image set's pseudo-labels, ids in ``held`` refused, the least trusted dropped."""
    paths = dict(zip(dataset.ids, dataset.image_paths))
    labels = [p for p in collect_pseudo_labels(pseudo_dirs, paths) if p.image_id not in held]
    kept = keep_most_trusted(labels, keep, key)
    log.info("%s: %d pseudo-masks, %d kept (keep_fraction %.2f by %s)", name, len(labels), len(kept), keep, key)
    return kept


def resample_to_share(labels: list[PseudoLabel], n_others: int, share: float, seed: int) -> list[PseudoLabel]:
    """``labels`` repeated or thinned (a seeded draw, whole copies first) to ``share`` of the
    items once ``n_others`` other items join them: ``round(share / (1 - share) * n_others)`` items."""
    n = max(1, round(share / (1 - share) * n_others))
    rng = np.random.default_rng(seed)
    whole, rest = divmod(n, len(labels))
    return labels * whole + [labels[i] for i in sorted(rng.choice(len(labels), rest, replace=False))]


def training_labels(s: StudentTraining) -> list[PseudoLabel]:
    """The pseudo-labels to train on: the main set's (``data_root``/``split`` or ``image_dir``) and
    every extra set's, each with its least trusted dropped; ids held back in the main set refused
    in every set; an extra set's ids prefixed ``<name>:``."""
    main_set = open_dataset(s.data_root, s.split, s.image_dir, read_masks=False, dataset=s.dataset)
    held = set(holdout_ids(main_set.ids, s.holdout_every)) if not s.image_dir else set()
    labels = _set_labels("main set", main_set, s.pseudo_dirs, held, s.keep_fraction, s.confidence_key)
    shared: list[tuple[ExtraSet, list[PseudoLabel]]] = []  # sets with a share, sized once the rest is known
    for extra in s.extra_sets:
        dataset = open_dataset(s.data_root, s.split, extra.image_dir, read_masks=False)
        keep = s.keep_fraction if extra.keep_fraction is None else extra.keep_fraction
        named = [
            replace(p, image_id=f"{extra.name}:{p.image_id}")
            for p in _set_labels(extra.name, dataset, extra.pseudo_dirs, held, keep, s.confidence_key)
        ]
        if extra.share is not None and named:
            shared.append((extra, named))
        else:
            labels += named
    n_others = len(labels)
    for extra, named in shared:
        sized = resample_to_share(named, n_others, extra.share, s.seed)
        log.info("%s: %d items (share %.2f of %d)", extra.name, len(sized), extra.share, n_others + len(sized))
        labels += sized
    if not labels:
        raise DataError(
            f"no pseudo-masks found in {list(s.pseudo_dirs)} or extra_sets: run self_training.pseudo_label first"
        )
    return labels


def make_student(s: StudentTraining) -> tuple[torch.nn.Module, StudentConfig]:
    """The student to train: from ``init_student`` (every weight; saved with this run's input
    size, the U-Net being fully convolutional, and without colour correction, as it is trained),
    else a new U-Net whose encoder is the classifier's (``classifier_checkpoint`` or ImageNet)."""
    if not s.init_student:
        config = StudentConfig(backbone=s.backbone, input_size=s.input_size)
        model = build_student(config)
        copied = load_backbone(model, s.backbone, s.classifier_checkpoint)
        log.info("encoder: %d tensors from %s", copied, s.classifier_checkpoint or "ImageNet weights")
        return model, config
    if not Path(s.init_student).is_file():
        raise CheckpointError(f"init_student not found: {s.init_student}")
    model, config, _ = load_student(s.init_student)
    if config.backbone != s.backbone:
        raise CheckpointError(f"init_student {s.init_student} has the encoder {config.backbone}, not {s.backbone}")
    if config.input_size != s.input_size:
        log.info("fine-tuning a student of %d px at %d px", config.input_size, s.input_size)
    if config.colour_constancy is not None:
        log.info(
            "fine-tuning a student of colour constancy %s (%g) on uncorrected images: the new student has "
            "none (self_training.average_students gives it one)",
            config.colour_constancy,
            config.colour_strength,
        )
    log.info("every weight from %s", s.init_student)
    return model.float(), replace(config, input_size=s.input_size, colour_constancy=None, colour_strength=1.0)


def make_optimizer(model: torch.nn.Module, s: StudentTraining, total_steps: int):
    """AdamW with a lower rate for the pretrained encoder; cosine decay over ``total_steps``."""
    groups = [
        {"params": model.encoder.parameters(), "lr": s.lr * s.encoder_lr_scale},
        {"params": [p for n, p in model.named_parameters() if not n.startswith("encoder.")], "lr": s.lr},
    ]
    optimizer = torch.optim.AdamW(groups, weight_decay=s.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))
    )
    return optimizer, schedule


def weighted_bce_dice(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``BCE(weighted) + DICE_WEIGHT * (1 - soft Dice(weighted))``.
    ``logits``, ``target``, ``weight``: (B, 1, H, W); target in {0, 1}; weight >= 0."""
    bce = F.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction="sum") / weight.sum().clamp_min(1)
    prob = torch.sigmoid(logits)
    dims = (1, 2, 3)
    inter = (weight * prob * target).sum(dims)
    total = (weight * (prob + target)).sum(dims)
    dice = (2 * inter + DICE_EPS) / (total + DICE_EPS)
    return bce + DICE_WEIGHT * (1 - dice).mean()


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


def _loader(s: StudentTraining, labels: list[PseudoLabel], rank: int, world: int) -> tuple[ShardedShuffle, DataLoader]:
    """The training set (augmented, seeded by rank; every rank its own shard of each epoch) and its loader."""
    dataset = PseudoMaskDataset(
        labels,
        s.input_size,
        train=True,
        cache_size=s.cache_size,
        uncertainty_weight=s.uncertainty_weight,
        vignette_p=s.vignette_p,
        seed=s.seed + rank,
    )
    sampler = ShardedShuffle(len(dataset), rank, world, s.seed)
    loader = DataLoader(dataset, s.batch_size, sampler=sampler, num_workers=s.num_workers, drop_last=True)
    if len(loader) == 0:  # drop_last: fewer images than one batch would train nothing, silently
        raise DataError(
            f"{len(dataset)} training images (after keep_fraction) for each of {world} process(es) make no full "
            f"batch of batch_size={s.batch_size}: pseudo-label more images or lower batch_size"
        )
    return sampler, loader


def train(s: StudentTraining, defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train the student of ``s`` in its run folder (``out_dir``, resumed from its ``last.pt``),
    writing ``last.pt`` and ``history.json`` each epoch, then ``student.pt`` (and the float16
    ``export``). ``defaults``: the script's CONFIG (settings added after a run started resume at
    their default). Returns the run folder, the history and the number of items trained on."""
    if s.threads:
        torch.set_num_threads(int(s.threads))
    rank, world, device = setup_distributed(s.device)
    if world > 1 and not s.out_dir:
        raise SettingsError("under torchrun, set out_dir (every rank writes and resumes there)")
    main_process = rank == 0
    torch.manual_seed(s.seed)
    run_dir = resolve_run_dir(s.results_root, s.out_dir, "student") if main_process else Path(s.out_dir or ".")
    if main_process:
        fix_run_config(run_dir, s.config, RESUMABLE, defaults=defaults)
    labels = training_labels(s)
    sampler, loader = _loader(s, labels, rank, world)
    model, student_config = make_student(s)
    model.to(device)
    optimizer, schedule = make_optimizer(model, s, s.epochs * len(loader))
    start, history = resume_state(run_dir / "last.pt", model, optimizer, schedule)
    ddp = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    for epoch in range(start, s.epochs + 1):
        sampler.set_epoch(epoch)
        started = time.time()
        loss = train_epoch(ddp, loader, optimizer, schedule, device, main_process, f"epoch {epoch}/{s.epochs}")
        if main_process:
            minutes = (time.time() - started) / 60
            history.append({"epoch": epoch, "loss": loss, "minutes": minutes, "n_images": len(loader.dataset)})
            log.info("epoch %d: loss %.4f, %.1f min", epoch, loss, minutes)
            state = {"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "epoch": epoch}
            save_student(run_dir / "last.pt", model, student_config, {**state, "history": history})
            write_json(run_dir / "history.json", history)
    if main_process:
        _save_final(s, run_dir, model, student_config, labels, history)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return {"run_dir": str(run_dir), "history": history, "n_trained_on": len(labels)}


def _save_final(
    s: StudentTraining, run_dir: Path, model, config: StudentConfig, labels: list[PseudoLabel], history: list[dict]
) -> None:
    """``student.pt`` (with the ids trained on and the run's CONFIG) and the float16 ``export``."""
    recorded = {k: v for k, v in s.config.items() if isinstance(v, (int, float, str, list, type(None)))}
    save_student(
        run_dir / "student.pt",
        model,
        config,
        {"trained_on": [p.image_id for p in labels], "history": history, "train_config": recorded},
    )
    log.info("student written to %s", run_dir / "student.pt")
    if s.export:
        save_student(s.export, model, config, {"history": history, "n_trained_on": len(labels)}, half=True)
        log.info("float16 copy written to %s", s.export)
