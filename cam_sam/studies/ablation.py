"""Ablation of the zero-shot pipeline: one change at a time, on two evaluation sets.

Runs :func:`cam_sam.runs.dataset.segment_dataset` (what ``cam_sam.segment`` runs) once per
(variant, evaluation set) into ``results/ablation/<set>/<variant>/`` (resumable: rerun to continue), then writes
``ablation.csv`` and ``ablation.md``. Rows marked "post hoc" are recomputed from the records of
another run by the same honest rule (highest selection score among the named sources), without
new inference. Ground truth is used only to score.

    python -m cam_sam.studies.ablation
    python -m cam_sam.studies.ablation --set eval_sets='[{"name": "val", "split": "val"}]'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from cam_sam.runs.dataset import segment_dataset
from cam_sam.settings import SEGMENT_CONFIG, resolve_run
from common.cli import run_main
from common.config import config_from_argv, merge
from common.io import write_csv, write_text
from common.metrics import paired_difference, row_ious, row_per_image, summarise

# The flag threshold of every ablation run, with which the stored runs were made (a run resumes only
# with its own settings). The table compares IoU, so it changes no row.
ABLATION_REVIEW_THRESHOLD = 0.6


# The zero-shot colour pipeline: what every colour row changes.
ZERO_SHOT = {
    "methods": [],
    "proposals": ["colour"],
    "final_sources": ["colour"],
    "final_rule": "select",
    "student_checkpoint": None,
}


# fmt: off
CONFIG: dict[str, Any] = {
    "data_root": SEGMENT_CONFIG["data_root"],
    "out_root": "results/ablation",
    # the training crops use no masks in this method: a second honest evaluation set
    "eval_sets": [{"name": "val", "split": "val"}, {"name": "train_every18", "split": "train", "every": 18}],
    "runs": {
        # name: (description, overrides of cam_sam.settings.SEGMENT_CONFIG)
        # the default's delivered mask, with the GradCAM box decoded and reported beside it
        "default": ("GradCAM box + colour proposals; final from colour (the zero-shot default before round 4)",
                    {**ZERO_SHOT, "methods": ["gradcam"]}),
        "colour_raw_no_artefact_removal": (
            "colour: raw lightness only, no artefact removal",
            {**ZERO_SHOT, "colour": {"flatfield_sigmas": [0.0], "channels": ["lightness"], "remove_artefacts": False}}),
        "colour_raw": ("colour: raw lightness only (+ artefact removal)",
                       {**ZERO_SHOT, "colour": {"flatfield_sigmas": [0.0], "channels": ["lightness"]}}),
        "colour_lightness": ("colour: lightness with flat-field variants",
                             {**ZERO_SHOT, "colour": {"channels": ["lightness"]}, "agreement_weight": 0.0}),
        "colour_pred_only": ("colour: lightness and blue, choice by predicted IoU alone",
                             {**ZERO_SHOT, "agreement_weight": 0.0}),
    },
    "only_runs": None,                 # a list of run names: run only these (rows of other runs are left out)
    "review_threshold": ABLATION_REVIEW_THRESHOLD,  # every run's flag threshold (its runs were made with it)
    # every row's per-image IoU minus this (run, source row)'s on the same images, with a 95 % BCa
    # bootstrap interval (the default's delivered mask); only when that run is among the runs;
    # None: no such column
    "reference": ["default", "final"],
    "table_name": "ablation",          # <out_root>/<table_name>.csv and .md
    "embedding_cache": "results/cache/embeddings",   # shared by every run: each image is encoded once
    # rows: (label, run, source row in its metrics, or a list of sources chosen post hoc by predicted IoU)
    "rows": [
        ["GradCAM box (thr 0.5, pad 10 %, 10 perturbations), choice by predicted IoU", "default", "gradcam"],
        ["colour proposal: Otsu on lightness, central component, no artefact removal",
         "colour_raw_no_artefact_removal", "final"],
        ["+ artefact removal (stickers, ink, cloth)", "colour_raw", "final"],
        ["+ flat-field variants (3 proposals), choice by predicted IoU", "colour_lightness", "final"],
        ["+ blue-channel proposals (up to 6)", "colour_pred_only", "final"],
        ["+ agreement among candidates in the choice, weight 0.1 (the zero-shot default before round 4)",
         "default", "final"],
        ["default, GradCAM box also in the final pool (post hoc)", "default", ["colour", "gradcam"]],
        ["oracle: best candidate by ground truth (upper bound, NOT a result)", "default", "oracle_final"],
    ],
}
# fmt: on


def row_summary(metrics: dict[str, Any], source) -> dict[str, Any]:
    if not isinstance(source, list):
        return metrics["summary"][source]
    per_image, key = row_per_image(metrics["per_image"], source)
    return summarise(per_image, [key])[key]


def main(argv: list[str] | None = None) -> pd.DataFrame:
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0])
    out_root = Path(cfg["out_root"])
    results: dict[tuple[str, str], dict] = {}
    runs = {k: v for k, v in cfg["runs"].items() if cfg["only_runs"] is None or k in cfg["only_runs"]}
    for eval_set in cfg["eval_sets"]:
        for run_name, (_, overrides) in runs.items():
            settings = {
                "data_root": cfg["data_root"],
                "split": eval_set["split"],
                "every": eval_set.get("every", 1),
                "limit": eval_set.get("limit"),
                "out_dir": str(out_root / eval_set["name"] / run_name),
                "n_overlays": 0,
                "synthetic_if_missing": False,
                "embedding_cache": cfg["embedding_cache"],
                "review_threshold": cfg["review_threshold"],
                **overrides,
            }
            print(f"== {eval_set['name']} / {run_name}")
            results[(eval_set["name"], run_name)] = segment_dataset(resolve_run(merge(SEGMENT_CONFIG, settings)))
    reference = cfg["reference"] if cfg["reference"] and cfg["reference"][0] in runs else None
    table = []
    for label, run_name, source in cfg["rows"]:
        if run_name not in runs:
            continue
        row: dict[str, Any] = {"variant": label}
        for eval_set in cfg["eval_sets"]:
            name = eval_set["name"]
            s = row_summary(results[(name, run_name)], source)
            row.update(
                {
                    f"{name} IoU": round(s["iou"], 3),
                    f"{name} Dice": round(s["dice"], 3),
                    f"{name} IoU>=0.65": round(s["share_iou_ge_0.65"], 2),
                    f"{name} n": s["n_images"],
                }
            )
            if reference is not None:
                d = paired_difference(
                    row_ious(results[(name, run_name)]["per_image"], source),
                    row_ious(results[(name, reference[0])]["per_image"], reference[1]),
                )
                row[f"{name} vs default [95 % CI]"] = f"{d['diff']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"
        table.append(row)
    df = pd.DataFrame(table)
    write_csv(out_root / f"{cfg['table_name']}.csv", df)
    write_text(out_root / f"{cfg['table_name']}.md", df.to_markdown(index=False) + "\n")
    print(df.to_markdown(index=False))
    return df


if __name__ == "__main__":
    run_main(main)
