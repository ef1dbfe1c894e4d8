from common.io import write_json
from visualisations.collect_table import collect, main


def _metrics(iou):
    row = {
        "iou": iou,
        "dice": 2 * iou / (1 + iou),
        "precision": 0.9,
        "recall": 0.8,
        "f1": 0.85,
        "share_iou_ge_0.65": 0.5,
        "n_images": 2,
        "n_failed": 0,
    }
    return {"summary": {"final": row, "oracle_final": {**row, "iou": 0.9}, "gt_box": row}, "per_image": {}}


def test_collect_reads_every_run_and_flags_ground_truth(tmp_path):
    write_json(tmp_path / "a" / "metrics.json", _metrics(0.5))
    write_json(
        tmp_path / "a" / "config.json", {"split": "val", "segmenter": "litemedsam", "classifier": "efficientnet_lite0"}
    )
    write_json(tmp_path / "b" / "c" / "metrics.json", _metrics(0.7))
    table = collect(tmp_path)
    top = tmp_path.name
    assert sorted(set(table.run)) == [f"{top}/a", f"{top}/b/c"] and len(table) == 6
    rows_a = table[table.run == f"{top}/a"]
    flags = dict(zip(rows_a.method, rows_a.uses_ground_truth))
    assert flags["final"] == "" and "oracle" in flags["oracle_final"] and "GT" in flags["gt_box"]
    assert table[(table.run == f"{top}/b/c") & (table.method == "final")].iou.item() == 0.7
    both = collect([tmp_path / "a", tmp_path / "b"])
    assert len(both) == 6
    only = main(["--set", f"results_dir={tmp_path}", "--set", 'methods=["final"]'])
    assert list(only.method) == ["final", "final"]
    assert (tmp_path / "table.md").read_text().count("final") == 2


def test_pool_rows_choose_per_image_by_selection_score_not_by_iou(tmp_path):
    def row(iou, selection, failed=False):
        return {
            "iou": iou,
            "dice": iou,
            "precision": iou,
            "recall": iou,
            "f1": iou,
            "failed": failed,
            "selection_score": None if failed else selection,
        }

    per_image = {
        "a": {"colour": row(0.8, 0.9), "eigencam": row(0.2, 1.0)},  # the higher score wins: 0.2
        "b": {"colour": row(0.7, 0.9), "eigencam": row(0.9, 0.5)},  # 0.7 (not the better 0.9)
        "c": {"colour": row(0.0, None, True), "eigencam": row(0.6, 0.1)},  # the one that produced
        "d": {"colour": row(0.0, None, True), "eigencam": row(0.0, None, True)},
    }  # failed: 0
    summary = {"colour": {"iou": 0.375}, "eigencam": {"iou": 0.425}}
    write_json(tmp_path / "run" / "metrics.json", {"summary": summary, "per_image": per_image})
    table = collect(tmp_path, columns=["iou", "n_failed"], pools=[["colour", "eigencam"], ["colour", "gradcam"]])
    pooled = table[table.method == "pool(colour, eigencam)"]
    assert abs(pooled.iou.item() - (0.2 + 0.7 + 0.6 + 0.0) / 4) < 1e-9 and pooled.n_failed.item() == 1
    assert "pool(colour, gradcam)" not in set(table.method)  # the run has no gradcam source
