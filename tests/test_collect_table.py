from common.io import write_json
from visualisations.collect_table import collect, main


def _metrics(iou):
    row = {"iou": iou, "dice": 2 * iou / (1 + iou), "precision": 0.9, "recall": 0.8, "f1": 0.85,
           "share_iou_ge_0.65": 0.5, "n_images": 2, "n_failed": 0}
    return {"summary": {"final": row, "oracle_final": {**row, "iou": 0.9}, "gt_box": row}, "per_image": {}}


def test_collect_reads_every_run_and_flags_ground_truth(tmp_path):
    write_json(tmp_path / "a" / "metrics.json", _metrics(0.5))
    write_json(tmp_path / "a" / "config.json", {"split": "val", "segmenter": "litemedsam", "classifier": "efficientnet_lite0"})
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
