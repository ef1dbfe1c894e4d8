"""Which masks to trust, at a glance, from finished runs of ``cam_sam.segment`` (their
``metrics.json`` holds each image's confidence and, where there is ground truth, its IoU):

* risk-coverage: the mean IoU of the most confident share of the images, from 50 % to 100 %, one
  line per run, with the review threshold's coverage marked;
* calibration: the images binned by confidence, each bin's mean IoU against its mean confidence
  (the diagonal would be a confidence calibrated to IoU), with the share of failures (IoU < 0.5).

Writes ``trust.png`` and ``trust.csv`` (the curves' numbers) into ``out_dir``.

    python -m cam_sam.studies.trust_figures --set runs='{"default, val": "results/ablation/val/default"}'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cam_sam.runs.dataset import confidence_and_iou  # noqa: E402
from common.cli import run_main  # noqa: E402
from common.config import config_from_argv  # noqa: E402
from common.errors import DataError, SettingsError  # noqa: E402
from common.io import read_json, save_figure, write_csv  # noqa: E402
from common.metrics import FAIL_IOU  # noqa: E402

# fmt: off
CONFIG: dict[str, Any] = {
    "runs": {},                       # label -> run folder (with metrics.json)
    "coverages": [0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
    "n_bins": 5,                      # calibration bins (equal counts of images)
    "out_dir": "results/trust_figures",
}
# fmt: on


def coverage_curve(frame: pd.DataFrame, coverages: list[float]) -> list[float]:
    ranked = frame.sort_values(["confidence", "id"], ascending=[False, True])
    return [float(ranked["iou"].iloc[: max(1, int(round(c * len(ranked))))].mean()) for c in coverages]


def calibration(frame: pd.DataFrame, n_bins: int) -> pd.DataFrame:
    """Per confidence bin (equal counts): mean confidence, mean IoU, share of failures."""
    ranked = frame.sort_values(["confidence", "id"]).reset_index(drop=True)
    ranked["bin"] = np.minimum(np.arange(len(ranked)) * n_bins // max(len(ranked), 1), n_bins - 1)
    return ranked.groupby("bin").agg(
        confidence=("confidence", "mean"),
        iou=("iou", "mean"),
        failures=("iou", lambda v: float(np.mean(v < FAIL_IOU))),
        n=("iou", "size"),
    )


def trust_row(label: str, frame: pd.DataFrame, coverages: list[float]) -> dict[str, Any]:
    """One row of the trust table: AUROC for failures, risk-coverage, the flags' share and catch."""
    from common.metrics import auroc_fail

    curve = coverage_curve(frame, coverages)
    failed = frame["iou"] < FAIL_IOU
    auroc = auroc_fail(dict(zip(frame["id"], frame["confidence"])), dict(zip(frame["id"], frame["iou"])))
    return {
        "run": label,
        "n": len(frame),
        "mean IoU": round(float(frame["iou"].mean()), 3),
        "AUROC (IoU < 0.5)": round(auroc, 3),
        **{f"top {c:.0%}": round(v, 3) for c, v in zip(coverages, curve)},
        "top 80% - all": round(curve[coverages.index(0.8)] - curve[-1], 3) if 0.8 in coverages else None,
        "flagged": round(float(frame["flagged"].mean()), 3),
        "failures flagged": round(float(frame.loc[failed, "flagged"].mean()), 3) if failed.any() else None,
    }


def trust_figure(frames: dict[str, pd.DataFrame], coverages: list[float], n_bins: int):
    """The two panels (risk-coverage, calibration) for every run in ``frames``."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, frame in frames.items():
        curve = coverage_curve(frame, coverages)
        (line,) = left.plot([100 * c for c in coverages], curve, marker="o", label=label)
        share = 100 * (1 - frame["flagged"].mean())
        left.axvline(share, color=line.get_color(), linestyle=":", linewidth=1)
        cal = calibration(frame, n_bins)
        right.plot(cal["confidence"], cal["iou"], marker="o", color=line.get_color(), label=label)
    left.set_xlabel("coverage: most confident images kept (%)\n(dotted: the share not flagged for review)")
    left.set_ylabel("mean IoU of the images kept")
    left.set_title("risk-coverage")
    left.invert_xaxis()
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    right.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="calibrated to IoU")
    right.set_xlim(0, 1)
    right.set_ylim(0, 1)
    right.set_xlabel(f"confidence (mean of each of {n_bins} equal-count bins)")
    right.set_ylabel("mean IoU of the bin")
    right.set_title("calibration (a ranking score, not a probability)")
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> dict[str, Any]:
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0])
    if not cfg["runs"]:
        raise SettingsError('name the runs to draw: --set runs=\'{"label": "results/<run folder>"}\'')
    frames = {}
    for label, run in cfg["runs"].items():
        path = Path(run) / "metrics.json"
        if not path.is_file():
            raise DataError(f"no metrics.json in {run}: run cam_sam.segment there first")
        frames[label] = confidence_and_iou(read_json(path))
        if frames[label].empty:
            raise DataError(f"{path} has no scored image with a confidence")
    out = Path(cfg["out_dir"])
    save_figure(trust_figure(frames, cfg["coverages"], cfg["n_bins"]), out / "trust.png")
    table = pd.DataFrame([trust_row(label, f, cfg["coverages"]) for label, f in frames.items()])
    write_csv(out / "trust.csv", table)
    print(table.to_markdown(index=False))
    return {"figure": str(out / "trust.png"), "table": table}


if __name__ == "__main__":
    run_main(main)
