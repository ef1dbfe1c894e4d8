"""How the arbiter's weights and the review threshold were chosen: a study over finished runs.

Reads runs of ``cam_sam.segment`` made with ``final_rule=arbiter`` (their records hold every
candidate's label-free signals, ``trust.signals``, and, scored afterwards, each candidate's IoU),
and recomputes offline, without new inference:

* the arbiter's choice for a grid of weights (``quality``, ``rim``, ``outside``), each row's mean
  IoU on every evaluation set, the per-image better-of-two oracle (labelled so) and the paired 95 %
  interval of each row against the teacher's mask (colour);
* the confidence's AUROC for failures (IoU < 0.5), risk-coverage and, for each review threshold,
  the share flagged and the share of failures flagged.

Ground truth is read here only to score: the choice of weights it reports is a development choice
made on the evaluation sets, which the README says. ::

    python -m cam_sam.studies.trust_study \\
        --set runs='{"val": "results/arbiter/val/r4", "train_every18": "results/arbiter/train_every18/r4"}'
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cam_sam.trust import (
    OUTSIDE_WEIGHT,
    QUALITY_WEIGHT,
    RIM_WEIGHT,
    CandidateSignals,
    arbitrate,
    confidence_of,
    signals_among,
)
from common.cli import run_main
from common.config import config_from_argv
from common.io import read_json, write_csv, write_text
from common.metrics import auroc_fail, flag_summary, paired_difference, risk_coverage

# fmt: off
CONFIG: dict[str, Any] = {
    "runs": {"val": "results/arbiter/val/r4", "train_every18": "results/arbiter/train_every18/r4"},
    "reference": "colour",                       # the row every interval is against (the teacher's mask)
    "candidates_alone": ["colour", "student", "student_box", "vote", "colour_region"],
    # candidate sets (as if only they had run) and the pool the arbiter delivers from
    "arbiter_variants": [
        {"label": "colour, student, its box, vote", "candidates": ["colour", "student", "student_box", "vote"],
         "pool": ["colour", "student", "student_box", "vote"]},
        {"label": "+ colour regions in the consensus",
         "candidates": ["colour", "student", "student_box", "vote", "colour_region"],
         "pool": ["colour", "student", "student_box", "vote"]},
    ],
    "grid": {"quality": [0.0, 0.25, 0.5, 1.0], "rim": [0.0, 0.25, 0.5, 1.0], "outside": [1.0]},
    "thresholds": [round(0.3 + 0.025 * k, 3) for k in range(25)],   # 0.3 ... 0.9
    "arbiter_weights": [QUALITY_WEIGHT, RIM_WEIGHT, OUTSIDE_WEIGHT],
    "confidence_setups": [
        {"label": "arbiter", "candidates": ["colour", "student", "student_box", "vote", "colour_region"],
         "pool": ["colour", "student", "student_box", "vote"], "delivered": "arbiter"},
        {"label": "arbiter, agreement of colour, student, colour regions",
         "candidates": ["colour", "student", "colour_region"],
         "pool": ["colour", "student", "student_box", "vote"], "delivered": "arbiter"},
        {"label": "arbiter, agreement of student and colour regions", "candidates": ["student", "colour_region"],
         "pool": ["colour", "student", "student_box", "vote"], "delivered": "arbiter"},
        {"label": "student + colour regions (the default before 0.4.0)", "candidates": ["student", "colour_region"],
         "pool": ["student"], "delivered": "student"},
        {"label": "student alone (the default and fast since 0.4.0)", "candidates": ["student"], "pool": ["student"],
         "delivered": "student"},
    ],
    "confidence_terms": [["agreement"], ["agreement", "stability"], ["agreement", "stability", "student_score"],
                         ["agreement", "stability", "student_score", "zoom"],
                         ["agreement", "stability", "student_score", "zoom", "contrast"],
                         ["agreement", "plausibility"], ["agreement", "stability", "plausibility"]],
    "out": "results/trust_study",
}
# fmt: on


def load_images(run_dir: str | Path) -> dict[str, dict]:
    """image id -> {"iou": {candidate: IoU}, "signals": {candidate: CandidateSignals}, "pairwise",
    "parents", "final": name}; an image that failed keeps no candidate (every row scores it 0)."""
    images = {}
    for path in sorted(Path(run_dir, "records").glob("*.json")):
        record = read_json(path)
        metrics = record.get("metrics", {})
        trust = record.get("trust", {})
        signals = trust.get("signals", {})
        ious = {name: metrics[name]["iou"] for name in signals if name in metrics}
        images[path.stem] = {
            "iou": ious,
            "signals": {k: CandidateSignals(**v) for k, v in signals.items()},
            "pairwise": trust.get("pairwise") or {},
            "parents": trust.get("parents") or {},
            "final": record.get("final_source"),
        }
    return images


def among(image: dict, names: list[str]) -> dict[str, CandidateSignals]:
    """The image's signals with consensus recomputed among ``names`` (:func:`cam_sam.trust.signals_among`)."""
    parents = {k: tuple(v) for k, v in image["parents"].items()}
    return signals_among(image["signals"], image["pairwise"], parents, names)


def choose(
    signals: dict[str, CandidateSignals], weights: tuple[float, float, float], pool: list[str] | None = None
) -> str | None:
    """The arbiter's pick among ``pool`` (default: every candidate) with weights (quality, rim, outside)."""
    names = [n for n in (pool or signals) if n in signals]
    return arbitrate({n: signals[n] for n in names}, weights) if names else None


def rule_ious(images: dict[str, dict], pick) -> dict[str, float]:
    """image id -> IoU of the candidate ``pick(image)`` names (0 when it names none)."""
    return {i: float(im["iou"].get(pick(im), 0.0)) for i, im in images.items()}


def arbiter_table(sets: dict[str, dict], cfg: dict[str, Any]) -> pd.DataFrame:
    """Mean IoU and the paired interval against ``reference`` of each candidate alone, the
    better-of-two oracle, and the arbiter for each candidate set x pool x weights of the grid."""
    ref = {name: rule_ious(images, lambda im: cfg["reference"]) for name, images in sets.items()}
    rules = {f"{c} alone": (lambda c: lambda im: c)(c) for c in cfg["candidates_alone"]}
    rules["oracle: better of colour and student (NOT a result)"] = lambda im: max(
        ("colour", "student"), key=lambda c: im["iou"].get(c, 0.0)
    )
    grid = cfg["grid"]
    for variant in cfg["arbiter_variants"]:
        for w in itertools.product(grid["quality"], grid["rim"], grid["outside"]):
            label = f"arbiter {variant['label']}: quality {w[0]} rim {w[1]} outside {w[2]}"
            rules[label] = (lambda v, w: lambda im: choose(among(im, v["candidates"]), w, v["pool"]))(variant, w)
    rows = []
    for label, pick in rules.items():
        row: dict[str, Any] = {"row": label}
        for name, images in sets.items():
            ious = rule_ious(images, pick)
            d = paired_difference(ious, ref[name])
            row[f"{name} IoU"] = round(float(np.mean(list(ious.values()))), 4)
            row[f"{name} vs {cfg['reference']}"] = f"{d['diff']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"
        row["mean of sets"] = round(float(np.mean([row[f"{n} IoU"] for n in sets])), 4)
        rows.append(row)
    return pd.DataFrame(rows)


def confidence_table(sets: dict[str, dict], cfg: dict[str, Any]) -> pd.DataFrame:
    """For each configuration (the candidates that run, the one delivered: ``"arbiter"`` for the
    arbiter's pick) and each product of confidence terms: AUROC for failures, risk-coverage, and
    the flags at each review threshold, per evaluation set."""
    rows = []
    for setup in cfg["confidence_setups"]:
        for terms in cfg["confidence_terms"]:
            for name, images in sets.items():
                ious, conf = {}, {}
                for i, im in images.items():
                    final = (
                        choose(among(im, setup["pool"]), tuple(cfg["arbiter_weights"]), setup["pool"])
                        if setup["delivered"] == "arbiter"
                        else setup["delivered"]
                    )
                    signals = among(im, list(dict.fromkeys(setup["pool"] + setup["candidates"])))
                    ious[i] = float(im["iou"].get(final, 0.0)) if final else 0.0
                    conf[i] = (
                        confidence_of(signals, im["pairwise"], final, tuple(terms), setup["candidates"])
                        if final in signals
                        else 0.0
                    )
                curve = risk_coverage(conf, ious)
                base = {
                    "setup": setup["label"],
                    "terms": " x ".join(terms),
                    "set": name,
                    "mean IoU": round(float(np.mean(list(ious.values()))), 4),
                    "AUROC (IoU < 0.5)": round(auroc_fail(conf, ious), 3),
                    "top 80 % - all": round(curve["0.8"] - curve["1.0"], 3),
                    **{f"top {k}": round(v, 3) for k, v in curve.items()},
                }
                for threshold in cfg["thresholds"]:
                    flags = flag_summary({i: c < threshold for i, c in conf.items()}, ious)
                    rows.append(
                        {
                            **base,
                            "threshold": threshold,
                            "flagged": round(flags["share_flagged"], 3),
                            "failures flagged": round(flags["failures_flagged"], 3),
                        }
                    )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> dict[str, pd.DataFrame]:
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0])
    sets = {name: load_images(path) for name, path in cfg["runs"].items()}
    tables = {"arbiter": arbiter_table(sets, cfg), "confidence": confidence_table(sets, cfg)}
    for name, table in tables.items():
        write_csv(Path(cfg["out"]) / f"{name}.csv", table)
        write_text(Path(cfg["out"]) / f"{name}.md", table.to_markdown(index=False) + "\n")
        print(table.to_markdown(index=False))
    return tables


if __name__ == "__main__":
    run_main(main)
