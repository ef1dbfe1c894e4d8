"""Collect every run under a results folder into one table, like the paper's tables.

Reads only the ``metrics.json`` (and ``config.json``) files of earlier runs, never recomputes.
Writes ``<out>.csv`` and ``<out>.md``. Rows that used the ground truth to choose a mask
(``oracle_*``) or to build a prompt (``gt_*``) are flagged in the ``uses_ground_truth`` column.
``pools`` adds rows ``pool(a, b)``: the mask the pipeline would deliver with ``final_sources =
[a, b]``, chosen per image from the run's records by the same selection score (no ground truth).

    python -m visualisations.collect_table --set results_dir=results/paper_table
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from common.cli import run_main
from common.config import config_from_argv
from common.defaults import RESULTS_ROOT
from common.errors import DataError
from common.io import read_json, write_csv, write_text
from common.metrics import choose_post_hoc, summarise

CONFIG: dict[str, Any] = {
    "results_dir": RESULTS_ROOT,  # a folder, or a list of folders
    "out": None,  # None: <results_dir>/table
    "methods": None,  # keep only these METHOD rows (None: all)
    "pools": [],  # source lists, e.g. [["colour", "eigencam"]]: post-hoc final_sources rows
    "columns": ["precision", "recall", "f1", "iou", "dice", "share_iou_ge_0.65", "n_images", "n_failed"],
}


def ground_truth_flag(method: str, summary: dict[str, Any]) -> str:
    if method.startswith("oracle_"):
        return "oracle (mask chosen with GT)"
    if method.startswith("gt_"):
        return "prompt from GT"
    return ""


def pool_name(sources: list[str]) -> str:
    return f"pool({', '.join(sources)})"


def with_pools(metrics: dict[str, Any], pools: list[list[str]]) -> dict[str, dict]:
    """``metrics["summary"]`` plus a ``pool(...)`` row for each pool whose sources the run has."""
    summary = dict(metrics.get("summary", {}))
    for sources in pools or []:
        if all(s in summary for s in sources):
            summary[pool_name(sources)] = summarise(choose_post_hoc(metrics["per_image"], sources), ["chosen"])[
                "chosen"
            ]
    return summary


def collect(
    results_dir: str | Path | list,
    methods: list[str] | None = None,
    columns: list[str] | None = None,
    pools: list[list[str]] | None = None,
) -> pd.DataFrame:
    """One row per (run, METHOD) for every ``metrics.json`` below ``results_dir`` (or below each
    folder of a list), plus the ``pools`` rows."""
    if isinstance(results_dir, (list, tuple)):
        return pd.concat([collect(d, methods, columns, pools) for d in results_dir], ignore_index=True)
    results_dir = Path(results_dir)
    columns = columns or CONFIG["columns"]
    rows = []
    for path in sorted(results_dir.rglob("metrics.json")):
        metrics = read_json(path)
        config_path = path.parent / "config.json"
        config = read_json(config_path) if config_path.is_file() else {}
        run = str(Path(results_dir.name) / path.parent.relative_to(results_dir))
        for method, summary in with_pools(metrics, pools).items():
            if methods and method not in methods and not method.startswith("pool("):
                continue
            row = {
                "run": run,
                "split": config.get("split"),
                "segmenter": config.get("segmenter"),
                "classifier": config.get("classifier_checkpoint") or config.get("classifier"),
                "cam_target": config.get("binary_target", "melanoma")
                if config.get("classifier_checkpoint")
                else "top-1 class",
                "method": method,
                "uses_ground_truth": ground_truth_flag(method, summary),
            }
            row.update({c: summary.get(c) for c in columns})
            rows.append(row)
    if not rows:
        raise DataError(f"no metrics.json under {results_dir}")
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0])
    table = collect(cfg["results_dir"], cfg["methods"], cfg["columns"], cfg["pools"])
    first = cfg["results_dir"][0] if isinstance(cfg["results_dir"], list) else cfg["results_dir"]
    out = Path(cfg["out"] or Path(first) / "table")
    write_csv(out.with_suffix(".csv"), table)
    markdown = table.to_markdown(index=False, floatfmt=".3f")
    write_text(out.with_suffix(".md"), markdown + "\n")
    print(markdown)
    print(f"\nwritten: {out.with_suffix('.csv')} and {out.with_suffix('.md')}")
    return table


if __name__ == "__main__":
    run_main(main)
