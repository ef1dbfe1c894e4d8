"""Compare segment runs with a reference run on the same images: mean IoU, the paired difference
with its 95 % BCa interval, and the failure kinds (over-segmented / under-segmented / other, see
:func:`common.metrics.failure_kind`), per evaluation set.

    python -m visualisations.compare_runs --set reference=r4fe \
        --set runs='{"r4fe": {"val": "results/eval/r4fe_val", "train_every18": "results/eval/r4fe_e18"},
                     "syn": {"val": "results/eval/syn_val", "train_every18": "results/eval/syn_e18"}}'

Reads only each run's ``metrics.json`` (its ``final`` row); writes ``<out>.md`` and ``<out>.csv``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from common.cli import run_main
from common.config import config_from_argv
from common.errors import DataError, SettingsError
from common.io import read_json, write_csv, write_text
from common.metrics import failure_counts, paired_difference

CONFIG: dict[str, Any] = {
    "runs": {},  # name -> {evaluation set -> run folder of cam_sam.segment}
    "reference": None,  # the name whose per-image IoUs the others are paired with
    "choices": {},  # name -> [run, run]: per image, the mask whose confidence (label-free) is higher
    "source": "final",  # the metrics row compared
    "out": "results/compare/table",
    "seed": 0,
}


def _rows(run_dir: str | Path, source: str) -> dict[str, dict]:
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise DataError(f"no metrics.json in {run_dir}: run cam_sam.segment there first")
    per_image = read_json(path)["per_image"]
    return {i: r[source] for i, r in per_image.items() if "iou" in r.get(source, {})}


def choose_by_confidence(first: dict[str, dict], second: dict[str, dict]) -> dict[str, dict]:
    """Per image, the row (``final`` metrics with its ``confidence``) of whichever run is more
    confident in its mask (ties: ``first``); the ground truth only scores the choice."""
    common = sorted(set(first) & set(second))
    return {
        i: second[i] if second[i].get("confidence", 0.0) > first[i].get("confidence", 0.0) else first[i] for i in common
    }


def compare(
    runs: dict[str, dict[str, str]],
    reference: str,
    source: str = "final",
    seed: int = 0,
    choices: dict[str, list[str]] | None = None,
) -> pd.DataFrame:
    """One row per (run, evaluation set): n, mean IoU, the paired difference with ``reference``
    (and its interval), failures by kind. ``choices`` add rows that take, per image, the more
    confident of two runs' masks (:func:`choose_by_confidence`)."""
    if reference not in runs:
        raise SettingsError(f"reference {reference!r} is not among the runs {sorted(runs)}")
    table = []
    rows_of = {name: {s: _rows(d, source) for s, d in sets.items()} for name, sets in runs.items()}
    for name, (a, b) in (choices or {}).items():
        rows_of[name] = {s: choose_by_confidence(rows_of[a][s], rows_of[b][s]) for s in rows_of[a] if s in rows_of[b]}
    for name, sets in rows_of.items():
        for set_name, rows in sets.items():
            ious = {i: float(r["iou"]) for i, r in rows.items()}
            entry = {"run": name, "set": set_name, "n": len(rows), "iou": sum(ious.values()) / max(len(ious), 1)}
            if set_name in rows_of[reference]:
                ref = {i: float(r["iou"]) for i, r in rows_of[reference][set_name].items()}
                d = paired_difference(ious, ref, seed=seed)
                entry.update({"diff": d["diff"], "low": d["low"], "high": d["high"]})
            kinds = failure_counts(list(rows.values()))
            entry.update({"failures": sum(kinds.values()), **{f"fail_{k}": v for k, v in kinds.items()}})
            table.append(entry)
    return pd.DataFrame(table)


def to_markdown(frame: pd.DataFrame, reference: str) -> str:
    lines = [
        f"| run | set | n | IoU | vs {reference} (95 % BCa) | failures | over | under | other |",
        "|---|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in frame.itertuples():
        diff = f"{r.diff:+.3f} [{r.low:+.3f}, {r.high:+.3f}]" if "diff" in frame and pd.notna(r.diff) else "-"
        lines.append(
            f"| {r.run} | {r.set} | {r.n} | {r.iou:.3f} | {diff} | {r.failures} | {r.fail_over} | "
            f"{r.fail_under} | {r.fail_other} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> pd.DataFrame:
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0])
    frame = compare(cfg["runs"], cfg["reference"], cfg["source"], cfg["seed"], cfg["choices"])
    text = to_markdown(frame, cfg["reference"])
    write_text(f"{cfg['out']}.md", text)
    write_csv(f"{cfg['out']}.csv", frame)
    print(text)
    return frame


if __name__ == "__main__":
    run_main(main)
