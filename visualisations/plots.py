"""Figures from one or more ``metrics.json`` files (read only; nothing is recomputed).

* ``bars.png``: mean IoU and Dice per METHOD with 95 % bootstrap intervals;
* ``iou_distribution.png``: IoU per image, one violin per METHOD;
* ``precision_recall.png``: precision against recall per image;
* ``gallery.png``: best, median and worst images of one METHOD, from the run's saved masks and the
  data's images and ground-truth masks.

    python -m visualisations.plots --set runs='["results/segment_..."]'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from common.cli import run_main
from common.config import config_from_argv  # noqa: E402
from common.errors import SettingsError  # noqa: E402
from common.io import read_json, save_figure  # noqa: E402
from visualisations.stats import bootstrap_interval  # noqa: E402

CONFIG: dict[str, Any] = {
    "runs": [],  # run folders (each with metrics.json)
    "methods": None,  # METHOD rows to draw (None: all but oracle_*)
    "gallery_method": "final",
    "out_dir": None,  # None: the first run's folder / figures
    "n_bootstrap": 2000,
    "seed": 0,
}


def per_image_values(metrics: dict, method: str, key: str) -> np.ndarray:
    return np.array([rows[method][key] for rows in metrics["per_image"].values() if method in rows], float)


def _labelled(runs: list[Path], methods: list[str] | None) -> list[tuple[str, dict, str]]:
    out = []
    for run in runs:
        metrics = read_json(run / "metrics.json")
        for method in metrics["summary"]:
            if (methods is None and not method.startswith("oracle_")) or (methods and method in methods):
                label = method if len(runs) == 1 else f"{run.name}:{method}"
                out.append((label, metrics, method))
    return out


def bars_figure(series, n_bootstrap: int, seed: int):
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(series)), 4.5))
    x = np.arange(len(series))
    for offset, key, colour in ((-0.2, "iou", "tab:blue"), (0.2, "dice", "tab:orange")):
        means, lows, highs = [], [], []
        for _, metrics, method in series:
            v = per_image_values(metrics, method, key)
            lo, hi = bootstrap_interval(v, n_bootstrap, seed)
            means.append(v.mean())
            lows.append(v.mean() - lo)
            highs.append(hi - v.mean())
        ax.bar(
            x + offset, means, 0.4, yerr=[lows, highs], capsize=3, color=colour, label="IoU" if key == "iou" else "Dice"
        )
    ax.set_xticks(x, [s[0] for s in series], rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean over images (95 % bootstrap CI)")
    ax.set_title("Segmentation quality per method")
    ax.legend()
    return fig


def distribution_figure(series):
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(series)), 4.5))
    data = [per_image_values(m, method, "iou") for _, m, method in series]
    ax.violinplot(data, showmedians=True)
    ax.set_xticks(np.arange(1, len(series) + 1), [s[0] for s in series], rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("IoU per image")
    ax.set_title("Distribution of IoU per image")
    return fig


def precision_recall_figure(series):
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for label, metrics, method in series:
        ax.scatter(
            per_image_values(metrics, method, "recall"),
            per_image_values(metrics, method, "precision"),
            s=10,
            alpha=0.6,
            label=label,
        )
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall (share of the lesion found)")
    ax.set_ylabel("precision (share of the mask on the lesion)")
    ax.set_title("Precision and recall per image")
    ax.legend(fontsize=8)
    return fig


def gallery_figure(run: Path, metrics: dict, method: str):
    """Best, median and worst images of ``method``: image, delivered mask vs ground truth."""
    from data.catalogue import open_dataset
    from data.isic import read_mask

    config = read_json(run / "config.json")
    scored = sorted(
        ((rows[method]["iou"], image_id) for image_id, rows in metrics["per_image"].items() if method in rows),
        reverse=True,
    )
    picks = [("best", scored[0]), ("median", scored[len(scored) // 2]), ("worst", scored[-1])]
    root = (
        Path(config["results_root"]) / "synthetic_isic2017"
        if config.get("data_is_synthetic")
        else config.get("data_root")
    )  # an image-folder run records no data_root or split
    dataset = open_dataset(
        root,
        config.get("split", "val"),
        config.get("image_dir"),
        config.get("mask_dir"),
        dataset=config.get("dataset", "isic2017"),
    )
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.5))
    for ax, (name, (iou, image_id)) in zip(axes, picks):
        sample = dataset[dataset.ids.index(image_id)]
        ax.imshow(sample.image)
        mask_path = run / "masks" / f"{image_id}.png"
        if sample.mask is not None:
            ax.contour(sample.mask, levels=[0.5], colors="red", linewidths=1.5)
        if mask_path.is_file():
            ax.contour(read_mask(mask_path), levels=[0.5], colors="lime", linewidths=1.5)
        ax.set_title(f"{name}: {image_id}  IoU {iou:.2f}")
        ax.axis("off")
    fig.suptitle(f"{method}: delivered mask (green) vs ground truth (red)")
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> list[Path]:
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0])
    runs = [Path(r) for r in cfg["runs"]]
    if not runs:
        raise SettingsError("give the run folders: --set runs='[\"results/segment_...\"]'")
    out_dir = Path(cfg["out_dir"] or runs[0] / "figures")
    series = _labelled(runs, cfg["methods"])
    written = []
    for name, fig in (
        ("bars", bars_figure(series, cfg["n_bootstrap"], cfg["seed"])),
        ("iou_distribution", distribution_figure(series)),
        ("precision_recall", precision_recall_figure(series)),
    ):
        save_figure(fig, out_dir / f"{name}.png", dpi=150)
        written.append(out_dir / f"{name}.png")
    metrics = read_json(runs[0] / "metrics.json")
    if (runs[0] / "masks").is_dir() and metrics["per_image"] and cfg["gallery_method"] in metrics["summary"]:
        save_figure(gallery_figure(runs[0], metrics, cfg["gallery_method"]), out_dir / "gallery.png", dpi=150)
        written.append(out_dir / "gallery.png")
    for path in written:
        print(f"written: {path}")
    return written


if __name__ == "__main__":
    run_main(main)
