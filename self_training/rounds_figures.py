"""Self-training at a glance, from the ablation's runs (``python -m cam_sam.studies.ablation``).

* ``self_training_rounds.png``: per evaluation set, each row's mean IoU with its 95 % bootstrap
  interval, against the zero-shot pipeline's delivered mask (the ablation's ``default`` run, the
  default before round 4) and the oracle (best candidate by ground truth);
* ``self_training_gallery.png``: the images of one evaluation set where a row gains most and loses
  most against that reference (picked by ground truth: a figure, not a result): the image with the
  ground truth (red) and the reference's mask (green), then each listed student's own mask.
* ``self_training_rounds.csv``: the figure's numbers.

Rows whose run is missing are left out with a warning, so the figure draws whatever was run.

    python -m self_training.rounds_figures
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from common.cli import run_main  # noqa: E402
from common.config import config_from_argv  # noqa: E402
from common.errors import DataError, SettingsError  # noqa: E402
from common.io import read_json, save_figure, write_csv  # noqa: E402
from common.metrics import mask_metrics, row_ious  # noqa: E402
from visualisations.stats import bootstrap_interval  # noqa: E402

CONFIG: dict[str, Any] = {
    "ablation_root": "results/ablation",
    "eval_sets": ["val", "train_every18"],
    "reference": ["default", "final"],  # (run, source): the zero-shot pipeline (the ablation's "default" run)
    "oracle": ["default", "oracle_final"],  # drawn as a ceiling, never a result
    # (label, run, source row in its metrics.json)
    "rows": [
        ["round 1 alone", "student_r1", "student"],
        ["round 2 (box) alone", "student_r2", "student"],
        ["round 2-AND alone", "student_r2and", "student"],
        ["round 3-AND alone", "student_r3and", "student"],
        ["round 4 (crops + frames) alone", "student_r4", "student"],
        ["round 4 (frames only) alone", "student_r4f", "student"],
        ["round 4 (frames, fine-tuned encoder) alone (the default before st-25)", "student_r4fe", "student"],
        ["mean of round 4 and two fine-tunes alone (the default before st-33)", "student_soup3h", "student"],
        ["the same, half a Shades of Gray correction (the default)", "student_soup3h_sog", "student"],
        ["arbiter: colour, round 3-AND, its box (preset arbiter)", "arbiter_r3and", "final"],
        ["arbiter: colour, fine-tuned-encoder student, its box", "arbiter_r4fe", "final"],
    ],
    "gallery_set": "val",
    # gains / losses of this row against the reference
    "gallery_row": "round 4 (frames, fine-tuned encoder) alone (the default before st-25)",
    "n_gains": 3,
    "n_losses": 3,
    # (label, student checkpoint): one gallery column each (its own mask, as the `student` source)
    # (the shipped ones; the others, rebuilt by the commands of their model cards, can be added back)
    "gallery_students": [
        ["round 3-AND", "model_checkpoints/student_r3and.pt"],
        ["the default's student", "model_checkpoints/student_soup3h_sog.pt"],
    ],
    "device": "cpu",
    "out_dir": None,  # None: <ablation_root>/figures
    "n_bootstrap": 2000,
    "seed": 0,
}

log = logging.getLogger("self_training.rounds_figures")

REFERENCE_LABEL = "zero-shot (colour -> LiteMedSAM)"
ORACLE_LABEL = "oracle (NOT a result)"


def run_ious(run_dir: Path, source: str | list[str]) -> dict[str, float] | None:
    """image id -> IoU of one row of the run's ``metrics.json`` (a source, or a post-hoc list;
    failed images: 0); None when the run or the row is missing."""
    path = run_dir / "metrics.json"
    return (row_ious(read_json(path)["per_image"], source) or None) if path.is_file() else None


def rounds_table(cfg: dict[str, Any]) -> pd.DataFrame:
    """One line per (evaluation set, row): mean IoU, its 95 % bootstrap interval, n images."""
    root = Path(cfg["ablation_root"])
    named = [[REFERENCE_LABEL, *cfg["reference"]], *cfg["rows"], [ORACLE_LABEL, *cfg["oracle"]]]
    lines = []
    for eval_set in cfg["eval_sets"]:
        for label, run, source in named:
            ious = run_ious(root / eval_set / run, source)
            if ious is None:
                log.warning("no %s / %s / %s: row left out", eval_set, run, source)
                continue
            values = np.array(list(ious.values()))
            low, high = bootstrap_interval(values, cfg["n_bootstrap"], cfg["seed"])
            lines.append(
                {
                    "eval_set": eval_set,
                    "row": label,
                    "iou": float(values.mean()),
                    "low": low,
                    "high": high,
                    "n": len(values),
                }
            )
    return pd.DataFrame(lines, columns=["eval_set", "row", "iou", "low", "high", "n"])


def rounds_figure(table: pd.DataFrame, eval_sets: list[str]):
    """Horizontal bars per evaluation set; the default and the oracle as vertical lines."""
    labels = list(dict.fromkeys(r for r in table["row"] if r not in (REFERENCE_LABEL, ORACLE_LABEL)))
    left = min(0.4, float(np.floor(table["low"].min() * 10) / 10))
    fig, axes = plt.subplots(
        1, len(eval_sets), figsize=(5.5 * len(eval_sets), 0.45 * len(labels) + 1.8), sharey=True, squeeze=False
    )
    for ax, eval_set in zip(axes[0], eval_sets):
        part = table[table["eval_set"] == eval_set].set_index("row")
        y = np.arange(len(labels))
        rows = part.reindex(labels)  # a row this set lacks: NaN, no bar
        means = rows["iou"].to_numpy(float)
        errors = np.nan_to_num(np.stack([means - rows["low"].to_numpy(float), rows["high"].to_numpy(float) - means]))
        ax.barh(y, means, xerr=errors, capsize=3, color="tab:blue", alpha=0.8)
        lines = []
        for label, name, style, colour in (
            (REFERENCE_LABEL, "zero-shot", "--", "black"),
            (ORACLE_LABEL, "oracle", ":", "tab:red"),
        ):
            if label in part.index:
                ax.axvline(part.loc[label, "iou"], ls=style, color=colour)
                lines.append(
                    f"{name} {part.loc[label, 'iou']:.3f} ({'dashed' if style == '--' else 'dotted, NOT a result'})"
                )
        for yi, m in zip(y, means):
            if np.isfinite(m) and m > left + 0.05:
                ax.text(left + 0.01, yi, f"{m:.3f}", va="center", fontsize=8, color="white")
        n = int(part["n"].max()) if len(part) else 0
        ax.set_title(f"{eval_set} ({n} images)\n" + "\n".join(lines), fontsize=10)
        ax.set_xlim(left, 0.9)
        ax.set_xlabel("mean IoU (95 % bootstrap CI)")
    axes[0][0].set_yticks(np.arange(len(labels)), labels)
    axes[0][0].invert_yaxis()
    fig.suptitle("Self-training rounds against the zero-shot colour pipeline (no pixel label used)")
    fig.tight_layout()
    return fig


def gallery_picks(
    row: dict[str, float], reference: dict[str, float], n_gains: int, n_losses: int
) -> list[tuple[str, float]]:
    """(image id, row IoU - reference IoU) of the ``n_gains`` largest gains, then the ``n_losses``
    largest losses (no image twice; only images both score)."""
    diffs = sorted(((row[i] - reference[i], i) for i in set(row) & set(reference)), reverse=True)
    gains = diffs[:n_gains]
    losses = [d for d in reversed(diffs) if d not in gains][:n_losses]
    return [(i, d) for d, i in gains + losses]


def gallery_figure(cfg: dict[str, Any], picks: list[tuple[str, float]], reference: dict[str, float]):
    """Rows: the picked images. Columns: image + ground truth + default mask (``reference``: its
    IoU per image), then each student's own mask."""
    import torch

    from cam_sam.pipeline import student_mask
    from data.catalogue import open_dataset
    from data.isic import read_mask
    from models.student import StudentSegmenter

    run_dir = Path(cfg["ablation_root"]) / cfg["gallery_set"] / cfg["reference"][0]
    run_cfg = read_json(run_dir / "config.json")
    dataset = open_dataset(
        run_cfg["data_root"],
        run_cfg["split"],
        run_cfg.get("image_dir"),
        run_cfg.get("mask_dir"),
        dataset=run_cfg.get("dataset", "isic2017"),
    )
    students = {
        label: StudentSegmenter.from_checkpoint(path, torch.device(cfg["device"]))
        for label, path in cfg["gallery_students"]
        if Path(path).is_file()
    }
    fig, axes = plt.subplots(
        len(picks), 1 + len(students), figsize=(2.6 * (1 + len(students)), 2.6 * len(picks)), squeeze=False
    )
    for row_axes, (image_id, diff) in zip(axes, picks):
        sample = dataset[dataset.ids.index(image_id)]
        panels = [("default", read_mask(run_dir / "masks" / f"{image_id}.png"), reference[image_id])]
        for label, student in students.items():
            mask = student_mask(student, sample.image)[1]
            panels.append((label, mask, mask_metrics(mask, sample.mask)["iou"]))
        for ax, (label, mask, iou) in zip(row_axes, panels):
            ax.imshow(sample.image)
            ax.contour(sample.mask, levels=[0.5], colors="red", linewidths=1.2)
            ax.contour(mask, levels=[0.5], colors="lime", linewidths=1.2)
            ax.set_title(f"{label}: IoU {iou:.2f}", fontsize=8)
            ax.axis("off")
        row_axes[0].set_title(f"{image_id} ({diff:+.2f})\ndefault: IoU {panels[0][2]:.2f}", fontsize=8)
    fig.suptitle(
        f"{cfg['gallery_set']}: largest gains and losses of {cfg['gallery_row']} against the default\n"
        "ground truth red, mask green (images picked by ground truth: an illustration, not a result)",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> pd.DataFrame:
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0])
    out_dir = Path(cfg["out_dir"] or Path(cfg["ablation_root"]) / "figures")
    table = rounds_table(cfg)
    if table.empty:
        raise DataError(f"no ablation runs under {cfg['ablation_root']}: run python -m cam_sam.studies.ablation first")
    write_csv(out_dir / "self_training_rounds.csv", table.round(4))
    save_figure(
        rounds_figure(table, [s for s in cfg["eval_sets"] if s in set(table["eval_set"])]),
        out_dir / "self_training_rounds.png",
    )
    gallery_row = next((r for r in cfg["rows"] if r[0] == cfg["gallery_row"]), None)
    if gallery_row is None:
        raise SettingsError(f"gallery_row {cfg['gallery_row']!r} is not one of the rows' labels")
    set_dir = Path(cfg["ablation_root"]) / cfg["gallery_set"]
    row, reference = (
        run_ious(set_dir / gallery_row[1], gallery_row[2]),
        run_ious(set_dir / cfg["reference"][0], cfg["reference"][1]),
    )
    if row and reference:
        picks = gallery_picks(row, reference, cfg["n_gains"], cfg["n_losses"])
        save_figure(gallery_figure(cfg, picks, reference), out_dir / "self_training_gallery.png")
    else:
        log.warning("no %s runs for the gallery row %r: gallery left out", cfg["gallery_set"], cfg["gallery_row"])
    print(table.round(3).to_markdown(index=False))
    return table


if __name__ == "__main__":
    run_main(main)
