import numpy as np

from cam_sam.runs.work import load_saved_cams
from common.io import read_json
from data.synthetic import write_synthetic_isic
from explainers import generate_cams


def _args(root, out_dir, *settings: str) -> list[str]:
    """generate_cams' --set arguments for the generated data at ``root``, writing into ``out_dir``."""
    return [x for s in (f"data_root={root}", f"out_dir={out_dir}", *settings) for x in ("--set", s)]


def test_generate_cams_writes_heatmaps_quality_and_resumes(tmp_path):
    root = write_synthetic_isic(tmp_path / "data", n_images=2, split="val")
    args = _args(root, tmp_path / "cams", 'methods=["gradcam","randomcam"]', "n_overlays=1", "road_percentiles=[50]")
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


def test_the_ensemble_is_a_method_of_the_cam_stage_and_of_the_segmentation_script(tmp_path):
    from cam_sam import segment

    root = write_synthetic_isic(tmp_path / "data", n_images=2, split="val")
    args = _args(
        root,
        tmp_path / "cams",
        'methods=["gradcam","ensemble"]',
        'ensemble_methods=["gradcam","eigencam"]',
        "n_overlays=0",
        "road_percentiles=[]",
    )
    table = generate_cams.main(args).set_index("method")
    assert set(table.index) == {"gradcam", "ensemble"} and table.loc["ensemble", "constant"] == 0
    assert table.loc["ensemble", "iou@0.5"] != table.loc["gradcam", "iou@0.5"]
    metrics = segment.main(
        [
            x
            for a in [
                f"data_root={root}",
                f"out_dir={tmp_path / 'seg'}",
                f"results_root={tmp_path}",
                'methods=["ensemble"]',
                "proposals=[]",
                'final_sources=["ensemble"]',
                "final_rule=select",
                "prompts.n_perturbations=1",
                "n_overlays=0",
            ]
            for x in ("--set", a)
        ]
    )
    assert metrics["summary"]["ensemble"]["n_images"] == 2 and metrics["summary"]["final"]["n_failed"] == 0
