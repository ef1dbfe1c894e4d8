import numpy as np

from common.io import write_json
from visualisations.plots import bootstrap_interval, main


def test_bootstrap_interval_brackets_the_mean():
    values = np.random.default_rng(0).uniform(0, 1, 200)
    lo, hi = bootstrap_interval(values, 1000, 0)
    assert lo < values.mean() < hi and hi - lo < 0.2
    assert bootstrap_interval(np.full(10, 0.5), 100, 0) == (0.5, 0.5)


def test_plots_run_on_a_small_metrics_file(tmp_path):
    rng = np.random.default_rng(0)
    per_image = {}
    for i in range(6):
        per_image[f"img{i}"] = {m: {"iou": float(rng.uniform()), "dice": float(rng.uniform()),
                                    "precision": float(rng.uniform()), "recall": float(rng.uniform()), "f1": 0.5}
                                for m in ("gradcam", "final", "oracle_final")}
    summary = {m: {"iou": 0.5} for m in ("gradcam", "final", "oracle_final")}
    write_json(tmp_path / "run" / "metrics.json", {"summary": summary, "per_image": per_image})
    written = main(["--set", f"runs={[str(tmp_path / 'run')]}", "--set", "n_bootstrap=50"])
    assert {p.name for p in written} == {"bars.png", "iou_distribution.png", "precision_recall.png"}
    assert all(p.stat().st_size > 10_000 for p in written)
