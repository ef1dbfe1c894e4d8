import numpy as np

from cam_sam.evaluation import load_saved_cams
from common.io import read_json
from data.synthetic import write_synthetic_isic
from explainers import generate_cams


def test_generate_cams_writes_heatmaps_quality_and_resumes(tmp_path):
    root = write_synthetic_isic(tmp_path / "data", n_images=2, split="val")
    args = ["--set", f"data_root={root}", "--set", f"out_dir={tmp_path / 'cams'}", "--set", 'methods=["gradcam","randomcam"]',
            "--set", "n_overlays=1", "--set", "road_percentiles=[50]"]
    table = generate_cams.main(args)
    assert set(table.method) == {"gradcam", "randomcam"} and (table.n_images == 2).all()
    for column in ("pointing_game", "energy_pointing_game", "iou@0.5", "box_iou@0.5", "road"):
        assert column in table.columns
    assert ((table.energy_pointing_game >= 0) & (table.energy_pointing_game <= 1)).all()
    ids = sorted(p.stem for p in (root / "ISIC-2017_Validation_Data").glob("*.png"))
    heat = np.load(tmp_path / "cams" / "heatmaps" / "imagenet_last" / "gradcam" / f"{ids[0]}.npy")
    assert heat.shape == (240, 320) and 0 <= heat.min() and heat.max() <= 1
    assert (tmp_path / "cams" / "metrics.csv").is_file()
    assert read_json(tmp_path / "cams" / "metrics.json")["summary"][0]["model"] == "imagenet_last"
    # the segmentation script reuses the saved heatmaps
    cams = load_saved_cams(str(tmp_path / "cams" / "heatmaps" / "imagenet_last"), ids[0], ["gradcam", "eigencam"])
    assert list(cams) == ["gradcam"] and cams["gradcam"].heatmap.dtype == np.float32
