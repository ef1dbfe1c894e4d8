"""Synthetic pairs for the student: pseudo-labelled lesions pasted into frames whose own lesion was
removed; the target is the pasted mask, known by construction (no mask file is opened).

    python -m self_training.make_synthetic --set pseudo_dirs='["results/pseudo_r6_frames"]' \
        --set n_pairs=500 --set out_dir=results/synthetic_r6             # training pairs
    python -m self_training.make_synthetic --set pseudo_dirs='["results/pseudo_r6_dev"]' \
        --set n_pairs=400 --set out_dir=results/synthetic_dev --set seed=1  # a development set

The frames (``image_dir``) and their pseudo-labelling runs (``pseudo_dirs``) give the donors and
the backgrounds (see :mod:`self_training.synthetic_pairs`); which frames a run may use is which
frames those runs labelled, so a development set built from held-out frames
(``self_training.pseudo_label --set held_out_only=true``) never shares an image with training.

Writes ``images/<pair>.png``, ``masks/<pair>.png`` (0/255), ``records/<pair>.json`` (how the
pair was made, and a confidence of 1: the mask is right by construction) and, with
``paste.unknown_grow`` > 0, ``unknown/<pair>.png`` (255 where the target is not known: left out of
the student's loss), so the folder is both an
image folder and a pseudo-labelling run for ``self_training.train_student``'s ``extra_sets``, and
``cam_sam.segment --set image_dir=<out>/images --set mask_dir=<out>/masks`` scores a student on
it. Also ``montage.png`` (the first pairs, their target outlined) and ``pools.json``. Each pair is
drawn from its own seeded generator, so a rerun resumes and gives the same pairs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from cam_sam.trust import solidity
from common.cli import run_main
from common.config import config_from_argv
from common.defaults import RESULTS_ROOT
from common.io import read_json, resolve_run_dir, write_json, write_png
from common.runs import ResumableRun
from data.isic import DataError, list_images, read_image, read_mask
from self_training.data import collect_pseudo_labels
from self_training.synthetic_pairs import (
    Background,
    Donor,
    PasteConfig,
    draw_kind,
    make_background,
    make_donor,
    make_pair,
)
from visualisations.synthetic import montage_figure


def _as_lists(value: Any) -> Any:
    """A PasteConfig field as JSON likes it: tuples (of tuples) as lists."""
    return [_as_lists(v) for v in value] if isinstance(value, tuple) else value


def _as_tuples(value: Any) -> Any:
    return tuple(_as_tuples(v) for v in value) if isinstance(value, list) else value


# fmt: off
CONFIG: dict[str, Any] = {
    "image_dir": "../shared/data/ISIC2017_full_frames/images",   # the frames the pseudo-masks belong to
    "pseudo_dirs": ["results/pseudo_r6_frames"],  # their pseudo-labelling runs (donors and backgrounds)
    "n_pairs": 500,
    # donors: pseudo-masks that plainly differ from the skin (the confidence's colour contrast) and
    # do not fill the frame, drawn uniformly among the contrast bins
    "donor_min_contrast": 15.0,
    "donor_area": [0.005, 0.5],             # share of the frame
    "donor_contrast_bins": [15.0, 25.0, 40.0],   # bin edges (the last bin is open)
    "donor_min_solidity": 0.8,              # area / convex hull: ragged pseudo-masks (vessels, hair) are no lesion
    "donor_border": 0.01,                   # share of the side: a donor touching the frame's edge this close is
                                            # cut by it, and would carry a straight cut edge elsewhere
    # backgrounds: frames whose pseudo-lesion is clearly outlined (so removing it removes the lesion)
    "background_min_contrast": 15.0,
    "background_max_area": 0.35,
    "paste": {k: _as_lists(v) for k, v in PasteConfig().__dict__.items()},   # PasteConfig's fields
                                            # (self_training/synthetic_pairs.py)
    "n_montage": 24,
    "results_root": RESULTS_ROOT,
    "out_dir": None,
    "seed": 0,
}
# fmt: on
RESUMABLE = {"n_pairs", "n_montage"}

log = logging.getLogger("self_training.make_synthetic")


def paste_config(cfg: dict[str, Any]) -> PasteConfig:
    """The typed paste settings of the script's ``paste`` group."""
    return PasteConfig(**{key: _as_tuples(value) for key, value in cfg["paste"].items()})


def build_pools(
    cfg: dict[str, Any], config: PasteConfig
) -> tuple[list[list[Donor]], list[tuple[str, np.ndarray, np.ndarray]]]:
    """(donors grouped by contrast bin, backgrounds as (id, image, pseudo-mask)) from the pseudo-labelled frames."""
    image_dir = Path(cfg["image_dir"])
    if not image_dir.is_dir():
        raise DataError(f"image folder not found: {image_dir}")
    paths = {p.stem: p for p in list_images(image_dir)}
    labels = collect_pseudo_labels(cfg["pseudo_dirs"], paths)
    if not labels:
        raise DataError(
            f"no pseudo-masks of {cfg['image_dir']} in {cfg['pseudo_dirs']}: run self_training.pseudo_label first"
        )
    edges = list(cfg["donor_contrast_bins"])
    donors: list[list[Donor]] = [[] for _ in edges]
    backgrounds = []
    for label in tqdm(labels, desc="donors and backgrounds", unit="img", leave=False):
        try:
            image, mask = read_image(label.image_path), read_mask(label.mask_path)
        except DataError as exc:
            log.warning("skipped: %s", exc)
            continue
        side = (config.size, config.size)
        image = cv2.resize(image, side, interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask.astype(np.uint8), side, interpolation=cv2.INTER_NEAREST).astype(bool)
        donor = make_donor(label.image_id, image, mask)
        if donor is None:
            continue
        area = mask.mean()
        if (
            donor.contrast >= cfg["donor_min_contrast"]
            and cfg["donor_area"][0] <= area <= cfg["donor_area"][1]
            and solidity(donor.mask) >= cfg["donor_min_solidity"]
            and not _touches_border(mask, cfg["donor_border"])
        ):
            donors[int(np.searchsorted(edges, donor.contrast, side="right")) - 1].append(donor)
        if donor.contrast >= cfg["background_min_contrast"] and area <= cfg["background_max_area"]:
            backgrounds.append((label.image_id, image, mask))
    donors = [group for group in donors if group]
    if not donors or len(backgrounds) < 2:
        raise DataError(
            f"too few usable frames in {cfg['pseudo_dirs']}: {sum(map(len, donors))} donors, "
            f"{len(backgrounds)} backgrounds"
        )
    return donors, backgrounds


def _touches_border(mask: np.ndarray, share: float) -> bool:
    band = max(1, round(share * max(mask.shape)))
    return bool(mask[:band].any() or mask[-band:].any() or mask[:, :band].any() or mask[:, -band:].any())


def draw_pair(
    index: int, donors: list[list[Donor]], backgrounds: list, cfg: dict[str, Any], config: PasteConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict]:
    """Pair ``index``, from its own generator seeded by (seed, index): a background, donors drawn
    by contrast bin (never the background's own frame), then :func:`make_pair`. (image, target,
    the pixels the target does not vouch for or None, record)."""
    rng = np.random.default_rng([cfg["seed"], index])
    background_id, image, mask = backgrounds[int(rng.integers(len(backgrounds)))]
    background: Background = make_background(background_id, image, mask, rng, config)
    kind = draw_kind(rng, config)
    chosen: list[Donor] = []
    while len(chosen) < 2:
        group = donors[int(rng.integers(len(donors)))]
        donor = group[int(rng.integers(len(group)))]
        if donor.image_id != background_id and donor not in chosen:
            chosen.append(donor)
    image, target, record = make_pair(background, chosen, rng, config, kind)
    unknown = None if background.unknown is None else background.unknown & ~target
    return image, target, unknown, record


def main(argv: list[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0])
    config = paste_config(cfg)
    run_dir = resolve_run_dir(cfg["results_root"], cfg["out_dir"], "synthetic")
    run = ResumableRun(run_dir, cfg, RESUMABLE, defaults=CONFIG)  # settings added later, at their default, resume
    donors, backgrounds = build_pools(cfg, config)
    pools = {"donors_per_contrast_bin": [len(g) for g in donors], "backgrounds": len(backgrounds)}
    write_json(run_dir / "pools.json", pools)
    log.info("%s donors by contrast bin, %d backgrounds", pools["donors_per_contrast_bin"], len(backgrounds))
    ids = [f"syn_{i:05d}" for i in range(int(cfg["n_pairs"]))]

    def work(index: int, pair_id: str) -> dict[str, Any]:
        image, target, unknown, record = draw_pair(index, donors, backgrounds, cfg, config)
        write_png(run_dir / "images" / f"{pair_id}.png", image)
        write_png(run_dir / "masks" / f"{pair_id}.png", target.astype(np.uint8) * 255)
        if unknown is not None:
            write_png(run_dir / "unknown" / f"{pair_id}.png", unknown.astype(np.uint8) * 255)
        # the mask is right by construction: full trust (train_student keeps by this key)
        return {"synthetic": record, "confidence": {"selection_score": 1.0, "trust": 1.0}}

    run.process(ids, work, desc="synthetic pairs")
    shown = ids[: cfg["n_montage"]]
    records = [run.load(i) for i in shown]
    figure_path = run_dir / "montage.png"
    montage_figure(
        [read_image(run_dir / "images" / f"{i}.png") for i in shown],
        [read_mask(run_dir / "masks" / f"{i}.png") for i in shown],
        [_title(r["synthetic"]) for r in records],
        figure_path,
    )
    kinds = [read_json(run.record_path(i))["synthetic"]["kind"] for i in ids]
    log.info(
        "%d pairs in %s (%s); montage %s",
        len(ids),
        run_dir,
        {k: kinds.count(k) for k in sorted(set(kinds))},
        figure_path,
    )
    return {"run_dir": str(run_dir), "n_pairs": len(ids), "pools": pools}


def _title(record: dict) -> str:
    if record["kind"] == "empty":
        return "empty"
    areas = "+".join(f"{a:.0%}" for a in record["areas"])
    strengths = "+".join(f"{s:.2f}" for s in record["strengths"])
    return f"{record['kind']}: area {areas}, alpha {strengths}, contrast {record['contrast']:.0f}"


if __name__ == "__main__":
    run_main(main)
