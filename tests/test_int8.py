"""The int8 student: calibration never uses an evaluation image, the int8 backends run a tiny random
student and give masks of the image's size (cached: quantized once), and the export command writes
an int8 ONNX file that onnxruntime loads."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.errors import DataError, SettingsError
from data.synthetic import make_synthetic_sample
from models.student import StudentConfig, StudentSegmenter, build_student, save_student
from models.student_quantize import CalibrationSet, calibration_frames, check_calibration, evaluation_ids

pytest.importorskip("nncf")
SIZE = 64
TRAIN_IDS = [f"ISIC_{i:07d}" for i in range(40)]  # every 18th: 0, 18, 36 are evaluation crops
VAL_IDS = [f"ISIC_{i:07d}" for i in range(100, 104)]


def _jpeg(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(make_synthetic_sample(seed, size=(SIZE, SIZE)).image).save(path, quality=90)


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """An ISIC 2017 folder (train and val images only) and a frames folder holding every id."""
    root = tmp_path_factory.mktemp("int8")
    for i, image_id in enumerate(TRAIN_IDS):
        _jpeg(root / "isic" / "train" / "images" / f"{image_id}.jpg", i)
    for i, image_id in enumerate(VAL_IDS):
        _jpeg(root / "isic" / "val" / "images" / f"{image_id}.jpg", 100 + i)
    for i, image_id in enumerate(TRAIN_IDS + VAL_IDS):
        _jpeg(root / "frames" / f"{image_id}.jpg", 200 + i)
    return root


@pytest.fixture(scope="module")
def tiny_student(layout):
    import torch

    torch.manual_seed(0)
    config = StudentConfig(decoder_channels=(16, 8, 8, 8, 8), input_size=SIZE)
    path = layout / "student.pt"
    save_student(path, build_student(config).eval(), config)
    return path, config


def _calibration(layout, n=4) -> CalibrationSet:
    return CalibrationSet(str(layout / "frames"), str(layout / "isic"), n=n, seed=0)


def test_calibration_refuses_an_evaluation_id(layout):
    forbidden = evaluation_ids(layout / "isic")
    assert forbidden == {TRAIN_IDS[0], TRAIN_IDS[18], TRAIN_IDS[36], *VAL_IDS}
    everything = calibration_frames(_calibration(layout, n=len(TRAIN_IDS) - 3))  # every frame that may be used
    assert not {p.stem for p in everything} & forbidden and len(everything) == len(TRAIN_IDS) - 3
    with pytest.raises(DataError, match="evaluation image.*ISIC_0000018"):
        check_calibration([layout / "frames" / "ISIC_0000001.jpg", layout / "frames" / "ISIC_0000018.jpg"], forbidden)
    with pytest.raises(DataError, match="needs 38 frames"):
        calibration_frames(_calibration(layout, n=38))
    with pytest.raises(DataError, match="val split"):
        calibration_frames(CalibrationSet(str(layout / "frames"), str(layout / "nowhere"), n=4))


@pytest.mark.slow  # quantizes (NNCF): the exports' tier
@pytest.mark.parametrize("backend", ["openvino_int8", "onnxruntime_int8"])
def test_the_int8_backend_runs_a_tiny_student(backend, layout, tiny_student, tmp_path):
    pytest.importorskip(backend.removesuffix("_int8"))
    from models.student_runtime import runtime_student, use_student_backend

    checkpoint, config = tiny_student
    student = StudentSegmenter.from_checkpoint(checkpoint)
    assert use_student_backend(student, backend, tmp_path, calibration=_calibration(layout)) == backend
    image = make_synthetic_sample(5, size=(80, 72)).image
    prob, agreement, features = student.predict_with_features(image)
    assert prob.shape == image.shape[:2] and 0 <= agreement <= 1 and features.ndim == 1
    assert len(list(tmp_path.glob("*-int8-*.json"))) == 1
    again, used = runtime_student(checkpoint, backend, tmp_path, calibration=_calibration(layout))
    assert used == backend and again.model is None  # the cached int8 file, no torch network
    assert again.predict_proba(image).shape == image.shape[:2]
    assert len(list(tmp_path.glob("*-int8-*.json"))) == 1  # quantized once


def test_int8_is_for_the_runtimes_only(tmp_path):
    from models.student_runtime import split_backend

    assert split_backend("openvino_int8") == ("openvino", True) and split_backend("auto") == ("auto", False)
    with pytest.raises(SettingsError, match="unknown student_backend 'torch_int8'"):
        split_backend("torch_int8")


@pytest.mark.slow
def test_the_export_command_writes_a_loadable_int8_file(layout, tiny_student, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    from cam_sam import export

    checkpoint, config = tiny_student
    out = tmp_path / "student.onnx"
    result = export.main(
        [
            "--set",
            f"student_checkpoint={checkpoint}",
            "--set",
            f"out={out}",
            "--set",
            "n_check=2",
            "--set",
            "int8=true",
            "--set",
            f"frames_dir={layout / 'frames'}",
            "--set",
            "n_calibration=4",
            "--set",
            f"data_root={layout / 'isic'}",
            "--set",
            "min_iou_int8=0",
        ]
    )
    int8 = tmp_path / "student_int8.onnx"
    assert result["int8"]["out"] == str(int8) and int8.with_suffix(".json").is_file()
    session = onnxruntime.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
    assert any(node.op_type == "QuantizeLinear" for node in __import__("onnx").load(str(int8)).graph.node)
    logits = session.run(None, {"image": np.zeros((2, 3, SIZE, SIZE), np.float32)})[0]
    assert logits.shape == (2, 1, SIZE, SIZE)
