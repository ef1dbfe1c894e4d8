"""Map the confidence to an expected IoU and check that it transfers.

Fits :class:`cam_sam.calibration.Calibration` (isotonic) on the ``fit`` runs, pooled (the
synthetic development set: pairs from frames that never entered training, masks known by
construction; or evaluation sets) and reports, on every run of ``sets``, how far each decile's
expected IoU is from its mean IoU, the confidence's AUROC for IoU < 0.5, and what a review
threshold on the expected IoU would flag, and the confidence it amounts to (a preset's
``review_threshold``). The threshold is chosen on the fit runs alone: the lowest expected IoU
below which ``min_failures_flagged`` of the failures of each fit run fall (with
``pool_failures``, of their failures pooled). With several fit runs, each is also left out in
turn: fitted on the others, checked on it (how the choice transfers). Reads only the runs'
``metrics.json``; writes ``calibration.md``, ``calibration.csv``, ``reliability.png`` into
``out_dir``. The same rules, fitted on both development sets pooled, make a shipped student's
maps and thresholds (``python -m self_training.ship``).

    python -m cam_sam.studies.calibration --set variant=no_zoom --set pool_failures=true \\
        --set fit='{"val": "results/eval/fast_val", "train_every18": "results/eval/fast_e18"}' \\
        --set sets='{"val": "results/eval/fast_val", "train_every18": "results/eval/fast_e18"}'   # preset=fast's runs
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cam_sam.calibration import Calibration
from cam_sam.runs.dataset import confidence_and_iou
from common.cli import run_main
from common.config import config_from_argv
from common.errors import DataError, SettingsError
from common.io import read_json, save_figure, write_csv, write_text
from common.metrics import FAIL_IOU, auroc_fail

# fmt: off
CONFIG: dict[str, Any] = {
    "fit": {},                      # {name: run folder}: the runs (pooled) the map and threshold are fitted on
    "sets": {},                     # {name: run folder}: where they are checked (and, two of them, left out in turn)
    "variant": "no_zoom",           # the confidence's variant the runs used (cam_sam.calibration.confidence_variant)
    "n_deciles": 10,
    "min_failures_flagged": 0.8,    # the review threshold flags at least this share of the fit run's failures
    "pool_failures": False,         # ... of the fit runs' failures pooled, instead of each run's: with few
                                    # failures in a run (4 of 99) its 80 % is all of them, and one confident
                                    # failure would set the level for every image (docs/experiments/tr-11)
    "out_dir": "results/calibration",
}
# fmt: on


def deciles(calibration: Calibration, frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """Images in ``n`` equal-count bins of expected IoU: n, mean expected IoU, mean IoU, their gap."""
    ranked = frame.assign(expected=calibration(frame["confidence"].to_numpy())).sort_values(["expected", "id"])
    ranked["decile"] = np.minimum(np.arange(len(ranked)) * n // max(len(ranked), 1), n - 1)
    table = ranked.groupby("decile").agg(n=("iou", "size"), expected=("expected", "mean"), iou=("iou", "mean"))
    return table.assign(gap=(table["expected"] - table["iou"]).abs())


def review_threshold(calibration: Calibration, frames: list[pd.DataFrame], share: float) -> float:
    """The lowest expected-IoU threshold that flags (expected < threshold) ``share`` of the
    failures of each of ``frames`` (:meth:`~cam_sam.calibration.Calibration.review_level`)."""
    return calibration.review_level([f.loc[f["iou"] < FAIL_IOU, "confidence"].to_numpy() for f in frames], share)


def check(calibration: Calibration, threshold: float, frame: pd.DataFrame, n: int) -> dict[str, Any]:
    """One row of the report: deciles' worst and mean gap, AUROC, share flagged, failures flagged."""
    table = deciles(calibration, frame, n)
    flagged = calibration(frame["confidence"].to_numpy()) < threshold
    failed = frame["iou"].to_numpy() < FAIL_IOU
    conf = dict(zip(frame["id"], frame["confidence"]))
    return {
        "n": len(frame),
        "iou": float(frame["iou"].mean()),
        "max_decile_gap": float(table["gap"].max()),
        "mean_decile_gap": float(table["gap"].mean()),
        "auroc_fail": auroc_fail(conf, dict(zip(frame["id"], frame["iou"]))),
        "share_flagged": float(flagged.mean()),
        "failures_flagged": float(flagged[failed].mean()) if failed.any() else None,
    }


def reliability_figure(rows: dict[str, pd.DataFrame], title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 5))
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="expected = observed")
    for name, table in rows.items():
        ax.plot(table["expected"], table["iou"], marker="o", label=name)
    ax.set(xlabel="expected IoU (decile mean)", ylabel="mean IoU of the decile", xlim=(0, 1), ylim=(0, 1), title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> dict[str, Any]:
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0])
    if not cfg["fit"]:
        raise SettingsError("fit: give the {name: run folder} (one or more, pooled) to fit the map on")
    frames = {
        name: confidence_and_iou(read_json(Path(path) / "metrics.json"))
        for name, path in {**cfg["fit"], **cfg["sets"]}.items()
    }
    empty = [name for name, frame in frames.items() if frame.empty]
    if empty:
        raise DataError(f"no scored image with a confidence in the runs {empty}")
    fit_name = "+".join(cfg["fit"])
    fits = {fit_name: [name for name in cfg["sets"] if name != fit_name]}
    for left_out in cfg["fit"] if len(cfg["fit"]) > 1 else []:  # leave one set out: the others fit it
        others = "+".join(name for name in cfg["fit"] if name != left_out)
        fits[others] = [left_out]
    for pooled in fits:
        frames.setdefault(pooled, pd.concat([frames[name] for name in pooled.split("+")], ignore_index=True))
    rows, tables = [], {}
    for fitted_on, checked in fits.items():
        calibration = Calibration.fit(frames[fitted_on]["confidence"], frames[fitted_on]["iou"], fitted_on)
        fit_frames = [frames[n] for n in fitted_on.split("+")]
        if cfg["pool_failures"]:
            fit_frames = [pd.concat(fit_frames, ignore_index=True)]
        threshold = review_threshold(calibration, fit_frames, cfg["min_failures_flagged"])
        for name in [fitted_on] + checked:
            rows.append(
                {
                    "fitted_on": fitted_on,
                    "set": name,
                    "threshold": threshold,
                    "confidence_threshold": calibration.confidence_at(threshold),
                    **check(calibration, threshold, frames[name], cfg["n_deciles"]),
                }
            )
            if fitted_on == fit_name:
                tables[name] = deciles(calibration, frames[name], cfg["n_deciles"])
    report = pd.DataFrame(rows)
    out = Path(cfg["out_dir"])
    write_csv(out / "calibration.csv", report)
    write_text(out / "calibration.md", report.to_markdown(index=False, floatfmt=".3f") + "\n")
    save_figure(reliability_figure(tables, f"fitted on {fit_name} ({cfg['variant']})"), out / "reliability.png")
    print(report.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return {"report": rows, "out_dir": str(out)}


if __name__ == "__main__":
    run_main(main)
