"""The student exported as ONNX: its masks equal PyTorch's, the README's onnxruntime example
delivers the pipeline's mask, and a missing checkpoint is refused with one line."""

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cam_sam import export
from cam_sam.postprocess import postprocess_mask
from cam_sam.settings import STUDENT_CHECKPOINT
from common.errors import CheckpointError
from common.metrics import mask_metrics
from data.synthetic import make_synthetic_sample
from models.student import StudentSegmenter

REPO = Path(__file__).resolve().parents[1]
STUDENT = REPO / STUDENT_CHECKPOINT


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "student.onnx"
    result = export.main(
        [
            "--set",
            f"student_checkpoint={STUDENT}",
            "--set",
            f"out={out}",
            "--set",
            "n_check=2",
            "--set",
            "data_root=/nonexistent",
        ]
    )
    return out, result


def test_exported_masks_equal_pytorch(exported):
    out, result = exported
    assert out.is_file() and out.with_suffix(".json").is_file()
    assert len(result["ious"]) == 2 and min(result["ious"]) >= 0.999


def test_the_readme_example_gives_the_pipelines_mask(exported, tmp_path, monkeypatch):
    out, _ = exported
    code = re.search(r"<!-- onnx-example -->\n```python\n(.*?)```", (REPO / "README.md").read_text(), re.S).group(1)
    sample = make_synthetic_sample(7)
    Image.fromarray(sample.image).save(tmp_path / "lesion.jpg", quality=98)
    monkeypatch.chdir(tmp_path)
    exec(code.replace("results/export/student.onnx", str(out)), {})
    mask = np.asarray(Image.open(tmp_path / "lesion_mask.png")) > 0
    image = np.asarray(Image.open(tmp_path / "lesion.jpg").convert("RGB"))
    reference = postprocess_mask(StudentSegmenter.from_checkpoint(STUDENT).predict_proba(image) > 0.5)
    assert mask.shape == reference.shape and mask_metrics(mask, reference)["iou"] >= 0.98


def test_a_missing_checkpoint_is_refused_with_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="student checkpoint not found: .*nope.pt"):
        export.main(["--set", f"student_checkpoint={tmp_path / 'nope.pt'}", "--set", f"out={tmp_path / 'x.onnx'}"])
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_the_student_through_a_runtime_gives_the_torch_masks_and_features(backend, tmp_path):
    """The pipeline's student on ONNX Runtime / OpenVINO (exported from its weights, cached):
    masks equal to PyTorch's, the same pooled features (the out-of-depth check reads them)."""
    pytest.importorskip(backend)
    from models.student_runtime import use_student_backend

    reference = StudentSegmenter.from_checkpoint(STUDENT)
    runtime = StudentSegmenter.from_checkpoint(STUDENT)
    assert use_student_backend(runtime, backend, tmp_path) == backend and runtime.runner is not None
    for seed in (11, 12):
        image = make_synthetic_sample(seed).image
        p_ref, agreement_ref, f_ref = reference.predict_with_features(image)
        p_rt, agreement_rt, f_rt = runtime.predict_with_features(image)
        assert mask_metrics(p_rt > 0.5, p_ref > 0.5)["iou"] >= 0.999
        assert abs(agreement_rt - agreement_ref) < 1e-3 and np.abs(f_rt - f_ref).max() < 1e-3
        assert abs(runtime.zoom_agreement(image, p_rt) - reference.zoom_agreement(image, p_ref)) < 1e-3
    assert len(list(tmp_path.glob("student_*.onnx"))) == 1  # exported once, cached


@pytest.mark.parametrize("backend", ["torch", "openvino"])
def test_flips_and_zoom_in_one_batch_give_the_two_passes_outputs(backend, tmp_path):
    """predict_with_zoom (the flipped copies and the zoomed-out view as one batch of four) gives what
    predict_with_features and zoom_agreement give in two passes: the same probability map, flip and
    zoom agreements and features (to rounding here; a validation run through OpenVINO was bit for bit)."""
    pytest.importorskip("openvino") if backend == "openvino" else None
    from models.student_runtime import use_student_backend

    student = StudentSegmenter.from_checkpoint(STUDENT)
    assert use_student_backend(student, backend, tmp_path) == backend
    for seed in (11, 12):
        image = make_synthetic_sample(seed).image
        prob, agreement, features = student.predict_with_features(image)
        zoom = student.zoom_agreement(image, prob)
        prob_1, agreement_1, features_1, zoom_1 = student.predict_with_zoom(image)
        assert np.abs(prob_1 - prob).max() < 1e-5 and np.abs(features_1 - features).max() < 1e-5
        assert agreement_1 == pytest.approx(agreement, abs=1e-6) and zoom_1 == pytest.approx(zoom, abs=1e-6)


def test_a_student_without_an_encoder_stays_on_torch(tmp_path):
    """No encoder, no pooled features for the out-of-depth check: the runtime is not used (decided
    from the model's structure, without running it) and nothing is exported."""
    import torch

    from models.student_runtime import use_student_backend

    pytest.importorskip("onnxruntime")
    student = StudentSegmenter.from_checkpoint(STUDENT)
    bare = StudentSegmenter(torch.nn.Conv2d(3, 1, 3, padding=1), student.config)
    assert not bare.has_features and student.has_features
    assert use_student_backend(bare, "onnxruntime", tmp_path) == "torch" and bare.runner is None
    assert not list(tmp_path.glob("*.onnx"))


def test_a_cached_export_runs_the_student_without_its_torch_network(tmp_path):
    """The export is keyed by the checkpoint's tensors (read as the float32 network holds them):
    the first start builds the network and exports it, a second start finds the file and runs from
    it alone, with the torch student's masks and features; no network and no runner is refused."""
    pytest.importorskip("onnxruntime")
    from medsam.runtime import weights_digest
    from models.student import read_student
    from models.student_runtime import _WithFeatures, exported_weights_digest, runtime_student

    first, backend = runtime_student(STUDENT, "onnxruntime", tmp_path)
    assert backend == "onnxruntime" and first.model is not None and len(list(tmp_path.glob("*.onnx"))) == 1
    assert exported_weights_digest(read_student(STUDENT)[1]) == weights_digest(_WithFeatures(first))
    second, _ = runtime_student(STUDENT, "onnxruntime", tmp_path)
    assert second.model is None and second.runner is not None and second.has_features
    assert len(list(tmp_path.glob("*.onnx"))) == 1  # not exported again
    reference = StudentSegmenter.from_checkpoint(STUDENT)
    image = make_synthetic_sample(13).image
    p_ref, _, f_ref = reference.predict_with_features(image)
    p_rt, _, f_rt = second.predict_with_features(image)
    assert mask_metrics(p_rt > 0.5, p_ref > 0.5)["iou"] >= 0.999 and np.abs(f_rt - f_ref).max() < 1e-3
    assert abs(second.zoom_agreement(image, p_rt) - reference.zoom_agreement(image, p_ref)) < 1e-3
    torch_student, backend = runtime_student(STUDENT, "torch", tmp_path)
    assert backend == "torch" and torch_student.model is not None and torch_student.runner is None
    with pytest.raises(ValueError, match="needs its network or a runner"):
        StudentSegmenter(None, reference.config)


def test_a_cached_export_the_runtime_rejects_is_rebuilt_from_the_checkpoint(tmp_path):
    """A file that matches its manifest but that the runtime cannot load is rebuilt once, the torch
    network built then and only then (the export's builder)."""
    pytest.importorskip("onnxruntime")
    from common.io import read_json, write_json
    from medsam.runtime import file_digest
    from models.student_runtime import runtime_student

    runtime_student(STUDENT, "onnxruntime", tmp_path)
    (onnx,) = tmp_path.glob("*.onnx")
    onnx.write_bytes(b"not an onnx graph")
    manifest = onnx.with_suffix(".json")
    write_json(manifest, {**read_json(manifest), "sha256": file_digest(onnx)})  # the manifest vouches for it
    student, _ = runtime_student(STUDENT, "onnxruntime", tmp_path)
    assert student.model is None and onnx.stat().st_size > 1_000_000  # rebuilt, then run from it
    image = make_synthetic_sample(14).image
    reference = StudentSegmenter.from_checkpoint(STUDENT).predict_proba(image)
    assert mask_metrics(student.predict_proba(image) > 0.5, reference > 0.5)["iou"] >= 0.999


def test_an_unknown_student_backend_is_named_as_the_student_s(tmp_path):
    """The student's own setting is named in the error (int8 backends left in 0.6.0)."""
    from common.errors import SettingsError
    from models.student_runtime import runtime_student

    with pytest.raises(SettingsError, match="unknown student_backend 'openvino_int8'"):
        runtime_student(STUDENT, "openvino_int8", tmp_path)
