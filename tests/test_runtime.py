"""The ONNX Runtime and OpenVINO paths of the segmenter give the PyTorch path's masks, and their
cached exports are rebuilt when stale or corrupt."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cam_sam.proposals import colour_proposals
from common.io import read_json, write_json
from data.synthetic import make_synthetic_sample
from medsam import create_segmenter
from medsam.runtime import OnnxExport, file_digest, load_runner, resolve_backend

from .conftest import SHARED_ISIC

RUNTIMES = ["onnxruntime", "openvino"]


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx")


def _images():
    images = [make_synthetic_sample(seed).image for seed in (1, 2)]
    if SHARED_ISIC.is_dir():
        from data.isic import ISICDataset

        images.append(ISICDataset(SHARED_ISIC, "val")[3].image)
    return images


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


@pytest.mark.parametrize("backend", RUNTIMES)
def test_backend_masks_match_the_torch_path(litemedsam, export_dir, backend):
    pytest.importorskip(backend)
    fast = create_segmenter("litemedsam", batch_size=4)
    assert fast.use_backend(backend, export_dir) == backend
    for image in _images():
        h, w = image.shape[:2]
        boxes = np.concatenate([colour_proposals(image), [[w * 0.2, h * 0.2, w * 0.8, h * 0.8], [0, 0, w / 3, h / 3]]])
        litemedsam.set_image(image)
        fast.set_image(image)
        expected, got = litemedsam.predict(boxes=boxes), fast.predict(boxes=boxes)  # batches of 4: several chunks
        assert got.masks.shape == expected.masks.shape
        assert min(_iou(a, b) for a, b in zip(expected.masks, got.masks)) > 0.99
        np.testing.assert_allclose(got.scores, expected.scores, atol=1e-3)
        points = np.array([[[w / 2, h / 2]]], np.float32)
        same = fast.predict(points=points, point_labels=np.ones((1, 1)))  # points decode in torch
        assert _iou(same.masks[0], litemedsam.predict(points=points, point_labels=np.ones((1, 1))).masks[0]) > 0.99


def _tiny_export(folder, scale: float = 1.0) -> OnnxExport:
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU())
    with torch.no_grad():
        module[0].weight.mul_(scale)
    return OnnxExport(folder, "tiny", module, (torch.zeros(1, 3, 8, 8),), (["x"], ["y"]))


@pytest.mark.parametrize("backend", RUNTIMES)
def test_stale_or_corrupt_exports_are_rebuilt(tmp_path, backend):
    pytest.importorskip(backend)
    export = _tiny_export(tmp_path)
    x = np.random.default_rng(0).random((1, 3, 8, 8), dtype=np.float32)
    expected = export.module(torch.from_numpy(x)).detach().numpy()
    run = load_runner(backend, export)
    np.testing.assert_allclose(run(x=x)[0], expected, atol=1e-5)
    assert export.is_valid()

    export.path.write_bytes(export.path.read_bytes()[:100])  # truncated: corrupt
    assert not export.is_valid()
    np.testing.assert_allclose(load_runner(backend, export)(x=x)[0], expected, atol=1e-5)
    assert export.is_valid()

    manifest = read_json(export.manifest)
    write_json(export.manifest, {**manifest, "key": "written by another exporter"})  # stale
    assert not export.is_valid()
    load_runner(backend, export)
    assert export.is_valid() and read_json(export.manifest)["key"] == export.key

    other = _tiny_export(tmp_path, scale=2.0)  # other weights: another file
    assert other.path != export.path and not other.is_valid()


def test_backend_choice():
    assert resolve_backend("auto", "cpu") in ("openvino", "onnxruntime", "torch")
    assert resolve_backend("auto", "cuda") == "torch"
    assert resolve_backend("torch", "cpu") == "torch"
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        resolve_backend("tensorrt", "cpu")
    with pytest.raises(ValueError, match="CPU only"):
        resolve_backend("onnxruntime", "cuda")


def test_openvino_reuses_its_compiled_network_and_never_a_stale_one(tmp_path):
    """OpenVINO's compiled networks are cached beside the exports; a file rebuilt at the same path
    with other weights gets its own entry, never the old network."""
    pytest.importorskip("openvino")
    from medsam.runtime import OPENVINO_CACHE

    x = np.random.default_rng(1).random((1, 3, 8, 8), dtype=np.float32)
    export = _tiny_export(tmp_path)
    expected = export.module(torch.from_numpy(x)).detach().numpy()
    for _ in range(2):
        np.testing.assert_allclose(load_runner("openvino", export)(x=x)[0], expected, atol=1e-5)
    cache = tmp_path / OPENVINO_CACHE
    assert len(list(cache.iterdir())) == 1  # compiled once, then read
    other = _tiny_export(tmp_path, scale=3.0)
    other.build()
    export.path.write_bytes(other.path.read_bytes())  # other weights, same path
    write_json(export.manifest, {**read_json(export.manifest), "sha256": file_digest(export.path)})
    tripled = other.module(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(load_runner("openvino", export)(x=x)[0], tripled, atol=1e-4)
    assert len(list(cache.iterdir())) == 2
