import numpy as np
import pytest

from common.io import write_json
from visualisations.plots import main
from visualisations.stats import bootstrap_interval


def test_bootstrap_interval_brackets_the_mean():
    values = np.random.default_rng(0).uniform(0, 1, 200)
    lo, hi = bootstrap_interval(values, 1000, 0)
    assert lo < values.mean() < hi and hi - lo < 0.2
    assert bootstrap_interval(np.full(10, 0.5), 100, 0) == (0.5, 0.5)


def test_plots_run_on_a_small_metrics_file(tmp_path):
    rng = np.random.default_rng(0)
    per_image = {}
    for i in range(6):
        per_image[f"img{i}"] = {
            m: {
                "iou": float(rng.uniform()),
                "dice": float(rng.uniform()),
                "precision": float(rng.uniform()),
                "recall": float(rng.uniform()),
                "f1": 0.5,
            }
            for m in ("gradcam", "final", "oracle_final")
        }
    summary = {m: {"iou": 0.5} for m in ("gradcam", "final", "oracle_final")}
    write_json(tmp_path / "run" / "metrics.json", {"summary": summary, "per_image": per_image})
    written = main(["--set", f"runs={[str(tmp_path / 'run')]}", "--set", "n_bootstrap=50"])
    assert {p.name for p in written} == {"bars.png", "iou_distribution.png", "precision_recall.png"}
    assert all(p.stat().st_size > 10_000 for p in written)


def test_cam_quality_table_and_figures_from_small_records(tmp_path):
    from explainers.cam_quality import main as cam_quality_main

    run = tmp_path / "cams"
    for i, (peak_inside, box) in enumerate([(1.0, 0.8), (0.0, 0.2), (1.0, 0.5), (0.0, 0.1)]):
        quality = {
            "m/gradcam": {
                "pointing_game": peak_inside,
                "energy_pointing_game": 0.5,
                "iou@0.5": box,
                "iou@0.2": box / 2,
                "box_iou@0.5": box,
                "constant": 0.0,
            },
            "m/randomcam": {
                "pointing_game": 0.0,
                "energy_pointing_game": 0.1,
                "iou@0.5": 0.0,
                "iou@0.2": 0.0,
                "box_iou@0.5": 0.0,
                "constant": float(i == 0),
            },
        }
        write_json(run / "records" / f"img{i}.json", {"quality": quality})
    write_json(run / "records" / "img4.json", {"error": "img4.jpg: cannot identify image file"})  # counts 0
    table = cam_quality_main(["--set", f"runs={[str(run)]}", "--set", "n_bootstrap=100"])
    gradcam = table.set_index("method").loc["gradcam"]
    assert gradcam["pointing_game"] == 0.4 and gradcam["n_images"] == 5 and gradcam["failed"] == 0.2
    assert abs(gradcam["box_iou@0.5"] - 1.6 / 5) < 1e-9
    assert gradcam["pointing_game lo"] <= 0.4 <= gradcam["pointing_game hi"]
    assert table.set_index("method").loc["randomcam", "constant"] == 0.25  # of the 4 images that ran
    figures = run / "figures"
    assert "| m " in (figures / "cam_quality.md").read_text()
    for name in ("cam_quality.png", "cam_iou_by_threshold.png"):
        assert (figures / name).stat().st_size > 10_000


def test_classification_figures_from_a_small_history_and_scores(tmp_path):
    import pandas as pd

    from visualisations.classification_plots import main as classification_main

    train, test = tmp_path / "train", tmp_path / "test"
    train.mkdir()
    test.mkdir()
    (train / "metrics.jsonl").write_text(
        "".join(
            f'{{"epoch": {e}, "train_loss": {1 / e}, "val_auc": {0.5 + e / 10}, "val_balanced_accuracy": 0.6}}\n'
            for e in range(1, 4)
        )
    )
    pd.DataFrame({"image_id": ["a", "b", "c", "d"], "melanoma": [0, 1, 0, 1], "score": [0.1, 0.8, 0.4, 0.3]}).to_csv(
        test / "scores.csv", index=False
    )
    write_json(
        test / "metrics.json",
        {
            "roc_auc": 0.75,
            "sensitivity": 0.5,
            "specificity": 1.0,
            "threshold": 0.8,
            "threshold_split": "val",
            "split": "val",
            "n_images": 4,
        },
    )
    written = classification_main(["--set", f"train_run={train}", "--set", f"test_run={test}"])
    assert [p.name for p in written] == ["learning_curves.png", "roc.png"]
    assert all(p.stat().st_size > 10_000 for p in written)


def test_a_large_image_is_drawn_reduced_with_its_prompts_in_place():
    """overlay_figure draws an image larger than a panel area-reduced, its boxes scaled with it:
    the box sits where it sits on the image, the mask stays a mask of the same share."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from matplotlib.patches import Rectangle

    from visualisations.overlay import OVERLAY_PANEL_PX, overlay_figure, reduce_for_display

    h, w = 900, 1200
    image = np.zeros((h, w, 3), np.uint8)
    mask = np.zeros((h, w), bool)
    mask[225:675, 300:900] = True
    fig = overlay_figure(
        image, None, np.array([[300.0, 225.0, 900.0, 675.0]]), None, None, mask, mask, np.zeros((h, w), np.float16), "t"
    )
    ax = fig.axes[1]
    shown = ax.images[0].get_array()
    assert max(shown.shape[:2]) == OVERLAY_PANEL_PX
    box = next(p for p in ax.patches if isinstance(p, Rectangle))
    assert box.get_x() / shown.shape[1] == pytest.approx(300 / w, abs=1e-3)
    assert box.get_width() / shown.shape[1] == pytest.approx(600 / w, abs=1e-3)
    small = reduce_for_display(mask, OVERLAY_PANEL_PX / w)
    assert small.dtype == bool and small.mean() == pytest.approx(mask.mean(), abs=0.01)
    assert reduce_for_display(None, 0.5) is None
