"""The comparison table of segment runs: paired differences, failure kinds, a confidence choice."""

import numpy as np

from common.io import write_json
from common.metrics import mask_metrics
from visualisations import compare_runs


def _run(folder, rows):
    write_json(folder / "metrics.json", {"summary": {}, "per_image": {i: {"final": r} for i, r in rows.items()}})
    return str(folder)


def test_compare_pairs_runs_counts_kinds_and_chooses_by_confidence(tmp_path):
    truth = np.zeros((20, 20), bool)
    truth[5:15, 5:15] = True
    field = np.ones((20, 20), bool)
    good = {**mask_metrics(truth, truth)}
    over = {**mask_metrics(field, truth)}
    a = _run(tmp_path / "a", {"x": {**good, "confidence": 0.9}, "y": {**over, "confidence": 0.2}})
    b = _run(tmp_path / "b", {"x": {**over, "confidence": 0.3}, "y": {**good, "confidence": 0.8}})
    frame = compare_runs.compare({"a": {"val": a}, "b": {"val": b}}, "a", choices={"ab": ["a", "b"]})
    rows = {r.run: r for r in frame.itertuples()}
    assert rows["a"].fail_over == 1 and rows["b"].fail_over == 1 and rows["ab"].failures == 0
    assert rows["ab"].iou == 1.0 and rows["a"].diff == 0.0
    text = compare_runs.to_markdown(frame, "a")
    assert text.count("\n") == 5 and "| ab | val | 2 | 1.000 |" in text
