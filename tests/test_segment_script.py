"""The main script end to end on generated images: outputs, failures, resume, honesty."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cam_sam import segment
from cam_sam.pipeline import LesionPipeline
from common.errors import RunError, SettingsError
from common.io import read_json
from data.synthetic import write_synthetic_isic
from tests.conftest import SHARED_ISIC, requires_isic


def _python(code: str):
    """Run ``code`` in a fresh interpreter at the repository root (what a new process imports)."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )


def _run(tmp_path, data_root, *extra):
    args = [
        f"data_root={data_root}",
        f"out_dir={tmp_path / 'run'}",
        f"results_root={tmp_path}",
        "n_overlays=1",
        "prompts.n_perturbations=2",
        *extra,
    ]
    return segment.main([x for a in args for x in ("--set", a)])


@pytest.fixture()
def synthetic_root(tmp_path):
    return write_synthetic_isic(tmp_path / "data", n_images=3, split="val")


def test_end_to_end_on_generated_images(tmp_path, synthetic_root):
    metrics = _run(tmp_path, synthetic_root)
    run = tmp_path / "run"
    ids = sorted(p.stem for p in (synthetic_root / "ISIC-2017_Validation_Data").glob("*.png"))
    assert sorted(metrics["per_image"]) == ids
    sources = ["student"]  # the default: the shipped student alone, no CAM, no segmenter
    assert set(metrics["summary"]) == {*sources, "final", "oracle_final", *(f"oracle_{s}" for s in sources)}
    assert all(rec["final"]["source"] == "student" for rec in metrics["per_image"].values())
    assert read_json(run / "config.json")["student_checkpoint"] == "model_checkpoints/student_soup3h_sog.pt"
    s = metrics["summary"]["final"]
    assert s["n_images"] == 3 and s["n_failed"] == 0 and s["iou"] > 0.7  # generated lesions are easy
    for key in ("iou", "dice", "precision", "recall", "f1", "n_images", "n_failed"):
        assert key in s
    assert read_json(run / "metrics.json")["summary"] == json.loads(json.dumps(metrics["summary"]))
    assert read_json(run / "config.json")["methods"] == []
    mask = np.asarray(Image.open(run / "masks" / f"{ids[0]}.png"))
    assert mask.shape == (240, 320) and set(np.unique(mask)) <= {0, 255}
    assert len(list((run / "overlays").glob("*.png"))) == 1
    # the oracle can only be as good or better than the honest choice among the same candidates
    for image_id in ids:
        rec = metrics["per_image"][image_id]
        assert rec["oracle_final"]["iou"] >= rec["final"]["iou"] - 1e-9
        assert 0.0 <= rec["final"]["confidence"] <= 1.0


def test_the_arbiter_preset_runs_teacher_student_and_box_through_litemedsam(tmp_path, synthetic_root):
    metrics = _run(tmp_path, synthetic_root, "preset=arbiter")
    sources = ["colour", "student", "student_box", "colour_region"]
    assert set(metrics["summary"]) == {*sources, "vote", "final", "oracle_final", *(f"oracle_{s}" for s in sources)}
    assert metrics["summary"]["final"]["iou"] > 0.7
    config = read_json(tmp_path / "run" / "config.json")
    assert config["final_rule"] == "arbiter" and config["student_checkpoint"] == "model_checkpoints/student_r3and.pt"
    for rec in metrics["per_image"].values():
        assert rec["final"]["source"] in (*sources, "vote")
        assert rec["oracle_colour"]["iou"] >= rec["colour"]["iou"] - 1e-9


def test_a_bad_image_is_recorded_and_counted_as_zero(tmp_path, synthetic_root):
    image_dir = synthetic_root / "ISIC-2017_Validation_Data"
    bad_id = sorted(image_dir.glob("*.png"))[1].stem
    (image_dir / f"{bad_id}.png").write_bytes(b"garbage")
    flat_id = sorted(image_dir.glob("*.png"))[2].stem
    Image.fromarray(np.full((240, 320, 3), 128, np.uint8)).save(image_dir / f"{flat_id}.png")
    metrics = _run(tmp_path, synthetic_root)
    assert bad_id in metrics["failures"] and f"{bad_id}.png" in metrics["failures"][bad_id]
    assert "constant" in metrics["failures"][flat_id]
    assert metrics["per_image"][bad_id]["final"]["iou"] == 0.0
    s = metrics["summary"]["final"]
    assert s["n_images"] == 3 and s["n_failed"] == 2
    good = [v["final"]["iou"] for k, v in metrics["per_image"].items() if k not in (bad_id, flat_id)]
    assert s["iou"] == pytest.approx(sum(good) / 3)


class SimulatedKill(BaseException):
    """Stands for Ctrl-C or a killed process: not an ``Exception``, so the run does not record it
    as an image failure. (pytest reserves a real KeyboardInterrupt for itself.)"""


def test_interrupted_run_resumes(tmp_path, synthetic_root, monkeypatch):
    calls = []
    armed = [True]
    original = LesionPipeline.segment

    def flaky(self, image, cams=None, image_id="image"):
        calls.append(image_id)
        if len(calls) == 2 and armed[0]:
            armed[0] = False
            raise SimulatedKill()  # the run dies during the second image
        return original(self, image, cams, image_id)

    monkeypatch.setattr(LesionPipeline, "segment", flaky)
    with pytest.raises(SimulatedKill):
        _run(tmp_path, synthetic_root)
    records = tmp_path / "run" / "records"
    assert len(list(records.glob("*.json"))) == 1
    first = calls[0]
    stamp = (records / f"{first}.json").stat().st_mtime_ns
    calls.clear()
    metrics = _run(tmp_path, synthetic_root)
    assert first not in calls and len(calls) == 2  # only the two unfinished images ran
    assert (records / f"{first}.json").stat().st_mtime_ns == stamp
    assert metrics["summary"]["final"]["n_images"] == 3
    with pytest.raises(RunError, match="another config"):
        _run(tmp_path, synthetic_root, "prompts.box_padding=0.3")


def test_honest_output_does_not_read_the_ground_truth(tmp_path, synthetic_root):
    _run(tmp_path, synthetic_root, "limit=2")
    masks_a = {p.name: p.read_bytes() for p in (tmp_path / "run" / "masks").glob("*.png")}
    # replace every ground-truth mask by another one; the delivered masks must not change
    for p in (synthetic_root / "ISIC-2017_Validation_Part1_GroundTruth").glob("*.png"):
        Image.fromarray(np.zeros((240, 320), np.uint8)).save(p)
    (tmp_path / "run").rename(tmp_path / "first")
    _run(tmp_path, synthetic_root, "limit=2")
    masks_b = {p.name: p.read_bytes() for p in (tmp_path / "run" / "masks").glob("*.png")}
    assert masks_a == masks_b and len(masks_a) == 2
    trust = [
        {i: read_json(run / "records" / f"{i}.json")["trust"] for i in ids}
        for run in (tmp_path / "first", tmp_path / "run")
        for ids in [[n[:-4] for n in masks_a]]
    ]
    assert trust[0] == trust[1]  # the confidence never saw a mask either


def test_flagged_csv_lists_flagged_images_least_confident_first_and_survives_a_resume(
    tmp_path, synthetic_root, monkeypatch
):
    calls = []
    original = LesionPipeline.segment

    def dies_on_the_third(self, image, cams=None, image_id="image"):
        calls.append(image_id)
        if len(calls) == 3:
            raise SimulatedKill()
        return original(self, image, cams, image_id)

    monkeypatch.setattr(LesionPipeline, "segment", dies_on_the_third)
    with pytest.raises(SimulatedKill):
        _run(tmp_path, synthetic_root, "review_threshold=1.01")  # every mask flagged
    monkeypatch.setattr(LesionPipeline, "segment", original)
    metrics = _run(tmp_path, synthetic_root, "review_threshold=1.01")
    flagged = pd.read_csv(tmp_path / "run" / "flagged.csv")
    assert list(flagged.columns) == ["id", "expected_iou", "confidence", "reason", "mask"]
    assert sorted(flagged["id"]) == sorted(metrics["per_image"]) and len(flagged) == 3
    assert list(flagged["confidence"]) == sorted(flagged["confidence"])
    assert all(Path(m).is_file() for m in flagged["mask"]) and flagged["reason"].str.len().min() > 0
    final = metrics["summary"]["final"]
    assert final["n_flagged"] == 3 and set(final["risk_coverage"]) == {"0.5", "0.6", "0.7", "0.8", "0.9", "1.0"}
    assert "auroc_fail" in final and "failures_flagged" in final
    for record in metrics["per_image"].values():
        assert 0 <= record["final"]["confidence"] <= 1 and record["final"]["flagged"] is True
    overlays = sorted(p.name for p in (tmp_path / "run" / "overlays").glob("*.png"))
    assert overlays[0].startswith("0_flagged_")  # flagged overlays sort first


def test_user_image_folder_without_masks(tmp_path, synthetic_root):
    metrics = _run(tmp_path, "unused", f"image_dir={synthetic_root / 'ISIC-2017_Validation_Data'}", "limit=1")
    assert metrics["failures"] == {} and len(metrics["per_image"]) == 1
    ((image_id, record),) = metrics["per_image"].items()
    assert set(record) == {"final"} and "iou" not in record["final"]  # nothing scored ...
    assert 0 <= record["final"]["confidence"] <= 1 and isinstance(record["final"]["flagged"], bool)  # ... but trusted
    assert metrics["summary"]["final"]["n_flagged"] in (0, 1) and "auroc_fail" not in metrics["summary"]["final"]
    assert (tmp_path / "run" / "flagged.csv").is_file()
    assert len(list((tmp_path / "run" / "masks").glob("*.png"))) == 1


def test_no_data_falls_back_to_labelled_synthetic_images(tmp_path, monkeypatch):
    """The default data root missing (a fresh machine): generated images, labelled synthetic. A
    root the user gave that is missing ends the run instead (tests/test_cli.py)."""
    from cam_sam import settings

    monkeypatch.setitem(settings.DATA_CONFIG, "data_root", str(tmp_path / "nowhere"))  # as if it were the default
    metrics = _run(tmp_path, tmp_path / "nowhere", "n_synthetic=1")
    assert read_json(tmp_path / "run" / "config.json")["data_is_synthetic"] is True
    assert metrics["summary"]["final"]["n_images"] == 1


@requires_isic()
def test_smoke_on_real_validation_images(tmp_path):
    metrics = _run(tmp_path, SHARED_ISIC, "limit=3")
    s = metrics["summary"]["final"]
    assert s["n_images"] == 3 and s["n_failed"] == 0


@pytest.mark.parametrize(
    "setting, names",
    [
        ("classifier_checkpoint=my_classifier.pth", ["classifier_checkpoint", "methods"]),
        ("student_checkpoint=model_checkpoints/student_r3and.pt", ["student_checkpoint", "proposals"]),
    ],
)
def test_a_model_file_the_run_would_never_open_is_refused(tmp_path, synthetic_root, setting, names):
    """The default runs no CAM and no student here: a classifier or student file the user names
    would be silently ignored, so the run refuses, naming the setting and the one that makes it unused."""
    with pytest.raises(SettingsError) as stop:
        _run(
            tmp_path,
            synthetic_root,
            setting,
            'proposals=["colour"]',
            'final_sources=["colour"]',
            "final_rule=select",
            "student_checkpoint=null" if "student" not in setting else "methods=[]",
        )
    assert all(name in str(stop.value) for name in names) and "not used" in str(stop.value)


def test_a_segmenter_checkpoint_without_a_segmenter_source_is_refused(tmp_path, synthetic_root):
    with pytest.raises(SettingsError, match="segmenter_checkpoint=medsam_vit_b.pth is not used"):
        _run(tmp_path, synthetic_root, "preset=fast", "segmenter=medsam", "segmenter_checkpoint=medsam_vit_b.pth")


def test_the_fast_preset_delivers_the_default_masks(tmp_path, synthetic_root):
    """The zoom-out pass only feeds the confidence: without it (preset=fast) every mask is the same."""
    default = segment.main(
        [
            "--set",
            f"data_root={synthetic_root}",
            "--set",
            f"out_dir={tmp_path / 'default'}",
            "--set",
            f"results_root={tmp_path}",
            "--set",
            "n_overlays=0",
        ]
    )
    fast = segment.main(
        [
            "--set",
            f"data_root={synthetic_root}",
            "--set",
            f"out_dir={tmp_path / 'fast'}",
            "--set",
            f"results_root={tmp_path}",
            "--set",
            "n_overlays=0",
            "--set",
            "preset=fast",
        ]
    )
    for image_id in default["per_image"]:
        a = np.asarray(Image.open(tmp_path / "default" / "masks" / f"{image_id}.png"))
        b = np.asarray(Image.open(tmp_path / "fast" / "masks" / f"{image_id}.png"))
        assert np.array_equal(a, b)
        zoom = read_json(tmp_path / "default" / "records" / f"{image_id}.json")["trust"]["signals"]["student"]
        assert 0.0 <= zoom["zoom_stability"] <= 1.0
        unzoomed = read_json(tmp_path / "fast" / "records" / f"{image_id}.json")["trust"]["signals"]["student"]
        assert unzoomed["zoom_stability"] == 1.0  # not measured
    assert fast["summary"]["final"]["iou"] == pytest.approx(default["summary"]["final"]["iou"])


def test_an_unscored_run_says_what_it_did(tmp_path, capsys):
    """Images without masks: no empty score table, but how many were segmented and where."""
    from cam_sam.runs.dataset import print_summary

    for i in range(3):
        (tmp_path / "masks").mkdir(exist_ok=True)
        (tmp_path / "masks" / f"im{i}.png").write_bytes(b"")
    metrics = {
        "summary": {"final": {"n_images": 3, "n_flagged": 1, "share_flagged": 1 / 3, "n_out_of_depth": 0}},
        "per_image": {},
        "failures": {},
    }
    print_summary(metrics, tmp_path, synthetic=False)
    out = capsys.readouterr().out
    assert "3 images segmented, no ground truth" in out and str(tmp_path / "masks") in out
    assert "IoU" not in out.splitlines()[2] and "flagged for review: 1 images" in out


def test_overlay_titles_say_only_what_is_drawn():
    from visualisations.overlay import overlay_titles

    assert overlay_titles(False, False, False) == (None, "mask (green)")  # no prompt panel
    assert overlay_titles(True, True, True) == (
        "CAM and prompts (box: solid; perturbed: dashed)",
        "mask (green) vs ground truth (red)",
    )
    assert overlay_titles(False, True, False)[0].startswith("prompts")


def test_overlays_drawn_off_the_main_path_leave_the_records_as_they_were(tmp_path, synthetic_root):
    """The overlay figures come from a worker process: the same records as a run that draws none,
    and every figure there when the run returns."""

    def run(name, n_overlays):
        segment.main(
            [
                x
                for a in [
                    f"data_root={synthetic_root}",
                    f"out_dir={tmp_path / name}",
                    f"results_root={tmp_path}",
                    f"n_overlays={n_overlays}",
                    "preset=fast",
                    "student_backend=torch",
                    "review_threshold=1.01",
                ]
                for x in ("--set", a)
            ]
        )
        return {p.name: read_json(p) for p in sorted((tmp_path / name / "records").glob("*.json"))}

    drawn, plain = run("drawn", 2), run("plain", 0)
    assert drawn == plain and len(drawn) == 3
    overlays = sorted(p.name for p in (tmp_path / "drawn" / "overlays").glob("*.png"))
    assert len(overlays) == 4 and sum(name.startswith("0_flagged_") for name in overlays) == 2  # 2 first + 2 flagged
    assert not (tmp_path / "plain" / "overlays").exists()
    # here the first two images are the flagged ones: each is drawn once (titled flagged) and written twice
    folder = tmp_path / "drawn" / "overlays"
    for flagged in (name for name in overlays if name.startswith("0_flagged_")):
        assert (folder / flagged).read_bytes() == (folder / flagged.removeprefix("0_flagged_")).read_bytes()


@pytest.mark.parametrize(
    "workers, device, world, todo, cores, expected",
    [
        ("auto", "cpu", 1, 400, 2, 2),  # one process per core
        ("auto", "cpu", 1, 2000, 16, 4),  # at most AUTO_WORKERS_MAX
        ("auto", "cpu", 1, 20, 2, 1),  # too few images to pay for a second process
        ("auto", "cpu", 1, 45, 2, 2),
        ("auto", "cuda", 1, 400, 2, 1),  # a GPU: one process
        ("auto", "cpu", 2, 400, 2, 1),  # under torchrun its processes are the workers
        (3, "cpu", 1, 120, 2, 3),  # as set
        (3, "cpu", 1, 2, 2, 2),  # never more than the images left
    ],
)
def test_how_many_local_workers_a_run_starts(monkeypatch, workers, device, world, todo, cores, expected):
    from cam_sam.runs import dataset

    monkeypatch.setattr(dataset.os, "cpu_count", lambda: cores)
    monkeypatch.setattr(dataset, "resolve_device", lambda name: name)
    assert dataset.local_workers(workers, device, world, todo) == expected


@pytest.mark.parametrize("workers", [0, "two", 1.5, True])
def test_a_wrong_number_of_workers_is_refused_with_one_line(workers):
    from cam_sam.runs.dataset import local_workers

    with pytest.raises(SettingsError, match="workers must be"):
        local_workers(workers, "cpu", 1, 100)


def test_the_script_starts_without_torch_or_the_cam_libraries():
    """The script's process plans the run and, with workers, only starts them: torch, pandas and the
    networks' libraries load where images are segmented (cam_sam.runs.work), grad-cam (with matplotlib
    and scikit-learn) and zennit when a CAM is first computed, timm, segmentation-models-pytorch and
    torchvision when a torch network is built. The figure process imports the script too."""

    code = (
        "import sys, cam_sam.segment; "
        "print(sorted(m for m in ('torch', 'pandas', 'pytorch_grad_cam', 'zennit', 'matplotlib', 'sklearn', "
        "'timm', 'segmentation_models_pytorch', 'torchvision', 'openvino', 'onnxruntime') if m in sys.modules))"
    )
    out = _python(code)
    assert out.stdout.strip() == "[]"


def test_auto_device_without_a_gpu_driver_needs_no_torch():
    """Where no GPU driver's device file exists, "auto" is "cpu" without importing torch; either
    way it is the device torch would choose."""

    code = (
        "import sys; from common.devices import gpu_driver_absent, resolve_device; "
        "device = resolve_device('auto'); loaded = 'torch' in sys.modules; import torch; "
        "print(device, 'cuda' if torch.cuda.is_available() else 'cpu', gpu_driver_absent(), loaded)"
    )
    out = _python(code)
    device, torch_device, absent, loaded = out.stdout.split()
    assert device == torch_device
    if absent == "True":
        assert loaded == "False"
