"""Which terms of the confidence, and which contrast scale, hold when chosen on one evaluation set
and read on the other (leave one set out).

Rebuilds each image's confidence offline from the records of finished ``cam_sam.segment`` runs
(``trust.signals`` and ``trust.pairwise``: no new inference), for every variant: all of
:data:`cam_sam.trust.CONFIDENCE_TERMS`, each term left out, and the contrast term at every scale of
``contrast_scales``. Each variant's AUROC for IoU < 0.5 on each set; then, for each set, the
variant chosen there and its AUROC on the other, by two rules: "best", the highest AUROC; and
"evidence", the shipped confidence ("all terms") unless a variant's paired bootstrap interval of
the AUROC gain over it lies above zero on that set (then the best of those). With a dozen failures
in a set, neighbouring variants differ by a few hundredths by chance, and "best" chooses that
chance (docs/experiments/tr-12). The ground truth only scores. Writes
``confidence_terms.md`` / ``.csv`` into ``out_dir``. ::

    python -m cam_sam.studies.confidence_terms \\
        --set runs='{"val": "results/eval/r4fe_student_val", "train_every18": "results/eval/r4fe_student_e18"}'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cam_sam.trust import CONFIDENCE_TERMS, CONTRAST_SCALE, CandidateSignals, confidence_terms
from common.cli import run_main
from common.config import config_from_argv
from common.errors import SettingsError
from common.io import read_json, write_csv, write_text
from common.metrics import FAIL_IOU, auroc_fail, rank_auroc

# fmt: off
CONFIG: dict[str, Any] = {
    "runs": {},                                  # {set name: run folder of cam_sam.segment}; two for the crossing
    "contrast_scales": [10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 60.0],
    "n_resamples": 2000,                         # "evidence" rule: image resamples of the paired AUROC gain
    "confidence_level": 0.95,                    # ... and the percentile interval's level
    "seed": 0,
    "out_dir": "results/confidence_terms",
}
# fmt: on
SHIPPED = "all terms"  # the variant that is the shipped confidence


def image_terms(run_dir: Path) -> tuple[pd.DataFrame, dict[str, float]]:
    """(one row per image: every term of its delivered mask and its contrast, IoU per image)."""
    metrics = read_json(run_dir / "metrics.json")
    rows = []
    for record_path in sorted((run_dir / "records").glob("*.json")):
        record = read_json(record_path)
        trust = record.get("trust")
        if not trust or record.get("final_source") not in trust.get("signals", {}):
            continue  # no mask, or a fallback for an empty student: no terms to rebuild
        signals = {k: CandidateSignals(**v) for k, v in trust["signals"].items()}
        terms = confidence_terms(signals, trust["pairwise"], record["final_source"])
        rows.append({"id": record_path.stem, **terms, "raw_contrast": signals[record["final_source"]].contrast})
    ious = {i: float(r["final"]["iou"]) for i, r in metrics["per_image"].items() if "iou" in r.get("final", {})}
    return pd.DataFrame(rows).set_index("id"), ious


def variants(scales: list[float]) -> dict[str, tuple[tuple[str, ...], float]]:
    """name -> (terms multiplied, contrast scale)."""
    out = {"all terms": (CONFIDENCE_TERMS, CONTRAST_SCALE)}
    out.update(
        {f"without {t}": (tuple(x for x in CONFIDENCE_TERMS if x != t), CONTRAST_SCALE) for t in CONFIDENCE_TERMS}
    )
    out.update({f"contrast scale {s:g}": (CONFIDENCE_TERMS, s) for s in scales})
    return out


def confidence(frame: pd.DataFrame, terms: tuple[str, ...], scale: float) -> dict[str, float]:
    values = frame.copy()
    if frame["raw_contrast"].notna().any():
        values["contrast"] = np.where(
            frame["raw_contrast"].isna(), 1.0, np.minimum(1.0, frame["raw_contrast"].fillna(0) / scale)
        )
    return dict(zip(values.index, np.clip(values[list(terms)].prod(axis=1), 0, 1)))


def auroc_gain_interval(
    variant: dict[str, float],
    shipped: dict[str, float],
    ious: dict[str, float],
    n_resamples: int,
    level: float,
    seed: int,
) -> tuple[float, float]:
    """Percentile interval of AUROC(``variant``) - AUROC(``shipped``) for IoU < 0.5 over
    ``n_resamples`` resamples of the images (the same images for both: paired); resamples with
    one class only are skipped."""
    ids = sorted(ious)
    failed = np.array([ious[i] < FAIL_IOU for i in ids])
    a = -np.array([variant.get(i, 0.0) for i in ids])
    b = -np.array([shipped.get(i, 0.0) for i in ids])
    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(n_resamples):
        pick = rng.integers(0, len(ids), len(ids))
        if failed[pick].all() or not failed[pick].any():
            continue
        gains.append(rank_auroc(failed[pick], a[pick]) - rank_auroc(failed[pick], b[pick]))
    if not gains:
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(gains, [tail, 100 - tail])
    return float(low), float(high)


def choose(
    report: pd.DataFrame,
    confidences: dict[str, dict[str, dict[str, float]]],
    ious: dict[str, float],
    set_name: str,
    rule: str,
    cfg: dict[str, Any],
) -> str:
    """The variant chosen on ``set_name`` by ``rule`` ("best" or "evidence", module docstring);
    ``confidences[variant][set_name]``: image -> confidence."""
    if rule == "best":
        return str(report.loc[report[set_name].idxmax(), "variant"])
    shipped = confidences[SHIPPED][set_name]
    better = [
        row["variant"]
        for _, row in report.sort_values(set_name, ascending=False).iterrows()
        if row["variant"] != SHIPPED
        and auroc_gain_interval(
            confidences[row["variant"]][set_name],
            shipped,
            ious,
            cfg["n_resamples"],
            cfg["confidence_level"],
            cfg["seed"],
        )[0]
        > 0
    ]
    return better[0] if better else SHIPPED


def main(argv: list[str] | None = None) -> dict[str, Any]:
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0])
    if not cfg["runs"]:
        raise SettingsError("runs: give {set name: run folder} of cam_sam.segment runs with trust records")
    data = {name: image_terms(Path(path)) for name, path in cfg["runs"].items()}
    table, confidences = [], {}
    for name, (terms, scale) in variants(cfg["contrast_scales"]).items():
        row = {"variant": name}
        for set_name, (frame, ious) in data.items():
            conf = confidence(frame, terms, scale)
            conf.update({i: 0.0 for i in ious if i not in conf})  # a failed image: confidence 0
            confidences.setdefault(name, {})[set_name] = conf
            row[set_name] = auroc_fail(conf, ious)
        table.append(row)
    report = pd.DataFrame(table)
    crossing = []
    names = list(cfg["runs"])
    for rule in ("best", "evidence"):
        for chosen_on in names:
            chosen = choose(report, confidences, data[chosen_on][1], chosen_on, rule, cfg)
            row = report.set_index("variant").loc[chosen]
            crossing.append(
                {"rule": rule, "chosen on": chosen_on, "variant": chosen, **{f"AUROC {n}": row[n] for n in names}}
            )
    out = Path(cfg["out_dir"])
    write_csv(out / "confidence_terms.csv", report)
    text = (
        report.to_markdown(index=False, floatfmt=".3f")
        + "\n\n"
        + pd.DataFrame(crossing).to_markdown(index=False, floatfmt=".3f")
        + "\n"
    )
    write_text(out / "confidence_terms.md", text)
    print(text)
    return {"report": table, "crossing": crossing}


if __name__ == "__main__":
    run_main(main)
