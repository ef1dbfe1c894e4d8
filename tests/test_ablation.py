"""The ablation table from stubbed runs: rows, post-hoc choice and the interval column."""

import json

import pytest

import cam_sam.studies.ablation as ablation
from common.metrics import METRIC_NAMES, summarise


def fake_metrics(ious: dict[str, dict[str, float]], scores: dict[str, dict[str, float]]) -> dict:
    """A run's metrics: per image, per source, IoU (other metrics copied) and selection score."""
    per_image = {
        i: {s: {**{m: v for m in METRIC_NAMES}, "iou": v, "selection_score": scores[i][s]} for s, v in rows.items()}
        for i, rows in ious.items()
    }
    return {"per_image": per_image, "summary": summarise(per_image, ["final", "colour", "gradcam"])}


def test_table_rows_post_hoc_choice_and_interval_against_the_reference(tmp_path, monkeypatch):
    ids = [f"i{k}" for k in range(6)]
    good = fake_metrics(
        {i: {"final": 0.8, "colour": 0.8, "gradcam": 0.5} for i in ids},
        {i: {"final": 0.9, "colour": 0.9, "gradcam": 0.95 if i == "i0" else 0.1} for i in ids},
    )
    worse = fake_metrics(
        {i: {"final": 0.6 + 0.01 * k, "colour": 0.6, "gradcam": 0.5} for k, i in enumerate(ids)},
        {i: {"final": 0.9, "colour": 0.9, "gradcam": 0.1} for i in ids},
    )
    monkeypatch.setattr(ablation, "segment_dataset", lambda run: good if run.out_dir.endswith("default") else worse)
    rows = [
        ["the default", "default", "final"],
        ["other", "other", "final"],
        ["default or gradcam by score (post hoc)", "default", ["colour", "gradcam"]],
    ]
    monkeypatch.setitem(ablation.CONFIG, "runs", {"default": ("d", {}), "other": ("o", {})})
    df = ablation.main(
        [
            "--set",
            f"out_root={tmp_path}",
            "--set",
            f"rows={json.dumps(rows)}",
            "--set",
            'eval_sets=[{"name": "val", "split": "val"}]',
        ]
    )
    assert list(df["variant"]) == [r[0] for r in rows]
    assert df["val IoU"].tolist() == pytest.approx([0.8, 0.625, round((0.5 + 5 * 0.8) / 6, 3)], abs=1e-3)
    assert df["val vs default [95 % CI]"][0] == "+0.000 [+0.000, +0.000]"
    diff, interval = df["val vs default [95 % CI]"][1].split(" ", 1)
    low, high = (float(x) for x in interval.strip("[]").split(","))
    assert float(diff) == pytest.approx(-0.175, abs=1e-3) and low < float(diff) < high < 0
    assert (tmp_path / "ablation.md").read_text().count("\n") == len(rows) + 2


def test_no_interval_column_without_the_reference_run(tmp_path, monkeypatch):
    metrics = fake_metrics(
        {"a": {"final": 0.7, "colour": 0.7, "gradcam": 0.2}}, {"a": {"final": 0.9, "colour": 0.9, "gradcam": 0.1}}
    )
    monkeypatch.setattr(ablation, "segment_dataset", lambda cfg: metrics)
    monkeypatch.setitem(ablation.CONFIG, "runs", {"other": ("o", {})})
    df = ablation.main(
        [
            "--set",
            f"out_root={tmp_path}",
            "--set",
            'eval_sets=[{"name": "val", "split": "val"}]',
            "--set",
            'rows=[["other", "other", "final"]]',
        ]
    )
    assert df["val IoU"].tolist() == [0.7] and not any("CI" in c for c in df.columns)
