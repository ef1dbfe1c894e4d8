"""CAM-quality table and figures from ``explainers.generate_cams`` runs (read only; nothing is
recomputed).

* ``cam_quality.md`` / ``.csv``: per model x method, the mean pointing game, energy pointing game,
  IoU of the CAM thresholded at 0.5 of its peak, box IoU, ROAD (when the run computed it) and the
  share of flat maps, with 95 % bootstrap intervals for pointing game and box IoU;
* ``cam_quality.png``: those two scores as bars with their intervals;
* ``cam_iou_by_threshold.png``: IoU of the thresholded CAM against the threshold, one line each.

    python -m explainers.cam_quality --set runs='["results/cams_val"]'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from common.cli import run_main
from common.config import config_from_argv  # noqa: E402
from common.errors import DataError, SettingsError  # noqa: E402
from common.io import read_json, save_figure, write_csv, write_text  # noqa: E402
from explainers.quality import quality_rows  # noqa: E402
from visualisations.stats import bootstrap_interval  # noqa: E402

CONFIG: dict[str, Any] = {
    "runs": [],  # generate_cams run folders (each with records/*.json)
    "out_dir": None,  # None: the first run's folder / figures
    "n_bootstrap": 2000,
    "seed": 0,
}

INTERVAL_SCORES = ("pointing_game", "box_iou@0.5")


def per_image_quality(runs: list[str | Path]) -> pd.DataFrame:
    """One row per (run, image, model, method) with every quality value the runs recorded; a
    failed image counts 0 (:func:`explainers.quality.quality_rows`)."""
    rows = []
    for run in map(Path, runs):
        records = sorted((run / "records").glob("*.json"))
        if not records:
            raise DataError(f"{run / 'records'} holds no records: is {run} a generate_cams run?")
        rows += [{"run": run.name, **row} for row in quality_rows({p.stem: read_json(p) for p in records})]
    return pd.DataFrame(rows)


def threshold_columns(frame: pd.DataFrame) -> list[str]:
    return sorted((c for c in frame.columns if c.startswith("iou@")), key=lambda c: float(c[4:]))


def summary_table(frame: pd.DataFrame, n_bootstrap: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Means per (run, model, method); ``<score> lo`` / ``<score> hi``: 95 % bootstrap interval."""
    keep = [
        c
        for c in ("pointing_game", "energy_pointing_game", "iou@0.5", "box_iou@0.5", "road", "constant", "failed")
        if c in frame.columns
    ]
    rows = []
    for (run, model, method), group in frame.groupby(["run", "model", "method"], sort=False):
        row = {"run": run, "model": model, "method": method, "n_images": len(group)}
        for column in keep:
            values = group[column].dropna().to_numpy(float)
            row[column] = values.mean() if len(values) else np.nan
            if column in INTERVAL_SCORES and len(values):
                row[f"{column} lo"], row[f"{column} hi"] = bootstrap_interval(values, n_bootstrap, seed)
        rows.append(row)
    return pd.DataFrame(rows)


def _labels(table: pd.DataFrame) -> list[str]:
    """``model/method``, prefixed with the run only where two runs share a model label."""
    several = table.groupby("model")["run"].nunique().max() > 1
    return [
        f"{r['run']}:{r['model']}/{r['method']}" if several else f"{r['model']}/{r['method']}"
        for _, r in table.iterrows()
    ]


def bars_figure(table: pd.DataFrame):
    """Horizontal bars (one row per model x method, top to bottom) so that long labels stay readable."""
    y = np.arange(len(table))[::-1]
    fig, ax = plt.subplots(figsize=(8, 1.5 + 0.42 * len(table)))
    for offset, key, name in (
        (0.2, "pointing_game", "pointing game (peak inside lesion)"),
        (-0.2, "box_iou@0.5", "box IoU (CAM >= 0.5 of peak)"),
    ):
        mean = table[key].to_numpy(float)
        err = [mean - table[f"{key} lo"].to_numpy(float), table[f"{key} hi"].to_numpy(float) - mean]
        ax.barh(y + offset, mean, 0.4, xerr=err, capsize=2, label=name)
    ax.set_yticks(y, _labels(table))
    ax.set_xlim(0, 1)
    ax.set_xlabel("mean over images (95 % bootstrap CI)")
    ax.set_title("CAM quality against the lesion masks", pad=30)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def threshold_figure(frame: pd.DataFrame):
    """Small multiples: one panel per model, one line per CAM method."""
    columns = threshold_columns(frame)
    thresholds = [float(c[4:]) for c in columns]
    several = frame.groupby("model")["run"].nunique().max() > 1
    models = list(dict.fromkeys(zip(frame["run"], frame["model"])))
    methods = list(dict.fromkeys(frame["method"]))
    ncols = min(3, len(models))
    nrows = -(-len(models) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), sharex=True, sharey=True, squeeze=False)
    for ax, (run, model) in zip(axes.flat, models):
        for method, group in frame[(frame["run"] == run) & (frame["model"] == model)].groupby("method", sort=False):
            ax.plot(
                thresholds,
                group[columns].mean().to_numpy(),
                marker="o",
                ms=3,
                color=f"C{methods.index(method) % 10}",
                label=method,
            )
        ax.set_title(f"{run}:{model}" if several else model, fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(models) :]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("mean IoU with the lesion")
    for ax in axes[-1, :]:
        ax.set_xlabel("threshold (fraction of CAM peak)")
    axes[0, 0].set_ylim(bottom=0)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(methods), bbox_to_anchor=(0.5, 1.0))
    fig.suptitle("IoU of the thresholded CAM against the threshold", y=1.04)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> pd.DataFrame:
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0])
    if not cfg["runs"]:
        raise SettingsError("give the run folders: --set runs='[\"results/cams_...\"]'")
    out_dir = Path(cfg["out_dir"] or Path(cfg["runs"][0]) / "figures")
    frame = per_image_quality(cfg["runs"])
    if frame.empty:
        raise DataError("the runs recorded no CAM quality (were the masks missing?)")
    table = summary_table(frame, cfg["n_bootstrap"], cfg["seed"])
    write_csv(out_dir / "cam_quality.csv", table)
    shown = table[[c for c in table.columns if not c.endswith((" lo", " hi"))]]
    markdown = shown.to_markdown(index=False, floatfmt=".3f")
    write_text(out_dir / "cam_quality.md", markdown + "\n")
    save_figure(bars_figure(table), out_dir / "cam_quality.png", dpi=150)
    if threshold_columns(frame):
        save_figure(threshold_figure(frame), out_dir / "cam_iou_by_threshold.png", dpi=150)
    print(markdown)
    print(f"\nwritten: {out_dir}/cam_quality.(md|csv|png), cam_iou_by_threshold.png")
    return table


if __name__ == "__main__":
    run_main(main)
