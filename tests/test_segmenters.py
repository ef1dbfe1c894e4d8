import numpy as np
import pytest
import torch

from common.geometry import mask_to_box
from common.metrics import mask_metrics
from data.synthetic import make_synthetic_sample
from medsam import ResizeFrame, create_segmenter
from tests.conftest import ellipse_mask


def test_resize_frame_longest_side_and_stretch():
    frame = ResizeFrame.longest_side((300, 600), 256)
    assert frame.resized_hw == (128, 256) and frame.scale_xy == (256 / 600, 128 / 300)
    assert frame.apply_boxes(np.array([[0, 0, 600, 300]])).tolist() == [[0, 0, 256, 128]]
    stretch = ResizeFrame.stretch((300, 600), 1024)
    assert stretch.apply_coords(np.array([[300.0, 150.0]])).tolist() == [[512.0, 512.0]]
    # logits covering the padded input map back to the original frame, padding cropped away
    logits = torch.full((1, 1, 256, 256), -1.0)
    logits[..., :64, :128] = 1.0  # the top-left quarter of the valid 128x256 region
    out = frame.logits_to_original(logits)
    assert out.shape == (1, 300, 600)
    assert (out[0, :140, :280] > 0).all() and (out[0, 160:, :] < 0).all() and (out[0, :, 320:] < 0).all()


def test_litemedsam_tight_box_on_a_synthetic_lesion(litemedsam):
    sample = make_synthetic_sample(seed=5)
    litemedsam.set_image(sample.image)
    pred = litemedsam.predict(boxes=mask_to_box(sample.mask)[None])
    assert pred.masks.shape == (1,) + sample.mask.shape and pred.masks.dtype == bool
    assert mask_metrics(pred.masks[0], sample.mask)["iou"] > 0.9
    assert pred.scores.shape == (1,)


def test_litemedsam_batches_boxes_and_points(litemedsam):
    image = np.full((180, 240, 3), 200, np.uint8)
    truth = ellipse_mask((180, 240), center=(120, 90), axes=(50, 35))
    image[truth] = (90, 50, 40)
    litemedsam.set_image(image)
    boxes = np.tile(mask_to_box(truth), (20, 1))  # more than one decode batch
    pred = litemedsam.predict(boxes=boxes)
    assert pred.masks.shape == (20, 180, 240)
    assert np.allclose(pred.scores, pred.scores[0], atol=1e-4)  # same prompt, same answer in every batch
    pts = litemedsam.predict(
        boxes=boxes[:2], points=np.array([[[120, 90]], [[120, 90]]]), point_labels=np.array([[1], [1]])
    )
    assert pts.masks.shape == (2, 180, 240)
    alone = litemedsam.predict(points=np.array([[[120, 90]]] * 3), point_labels=np.ones((3, 1)))
    assert alone.masks.shape == (3, 180, 240) and alone.scores.shape == (3,)  # best of three masks each
    with pytest.raises(ValueError, match="point_labels"):
        litemedsam.predict(points=np.zeros((1, 1, 2)))


def test_predict_before_set_image_is_an_error():
    from medsam.lite import LiteMedSAMSegmenter

    seg = LiteMedSAMSegmenter()
    with pytest.raises(RuntimeError, match="set_image"):
        seg.predict(boxes=np.zeros((1, 4)))


@pytest.fixture(scope="module")
def random_vit_b():
    torch.manual_seed(0)
    from medsam.sam import build_sam

    return build_sam("vit_b", None)


def _capture_boxes(segmenter, monkeypatch):
    seen = {}
    original = segmenter.model.prompt_encoder.forward

    def spy(points, boxes, masks):
        seen["boxes"], seen["points"] = boxes, points
        return original(points=points, boxes=boxes, masks=masks)

    monkeypatch.setattr(segmenter.model.prompt_encoder, "forward", spy)
    return seen


@pytest.mark.parametrize("kind", ["sam_vit_b", "medsam"])
def test_sam_family_with_random_weights(kind, random_vit_b, monkeypatch):
    from medsam.sam import MedSAMSegmenter, SAMSegmenter

    # reuse one randomly initialised ViT-B for both (building it twice costs time, not coverage)
    monkeypatch.setattr("medsam.sam.build_sam", lambda model_type, checkpoint: random_vit_b)
    seg = SAMSegmenter("vit_b", None) if kind == "sam_vit_b" else MedSAMSegmenter(None)
    image = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    seg.set_image(image)
    seen = _capture_boxes(seg, monkeypatch)
    pred = seg.predict(
        boxes=np.array([[40.0, 30.0, 200.0, 150.0]]), points=np.array([[[100.0, 75.0]]]), point_labels=np.array([[1]])
    )
    assert pred.masks.shape == (1, 300, 400) and pred.scores.shape == (1,)
    box = seen["boxes"].cpu().numpy()[0]
    point = seen["points"][0].cpu().numpy()[0, 0]
    if kind == "sam_vit_b":  # longest side 400 -> 1024: one scale for x and y
        s = 1024 / 400
        assert np.allclose(box, [40 * s, 30 * s, 200 * s, 150 * s], atol=1e-3)
        assert seg.frame.resized_hw == (768, 1024)
    else:  # MedSAM stretches to 1024x1024: separate x and y scales
        assert np.allclose(box, [40 * 1024 / 400, 30 * 1024 / 300, 200 * 1024 / 400, 150 * 1024 / 300], atol=1e-3)
        assert np.allclose(point, [100 * 1024 / 400, 75 * 1024 / 300], atol=1e-3)


def test_sam_needs_a_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="needs a checkpoint"):
        create_segmenter("sam_vit_h")
    from common.checkpoints import CheckpointError
    from medsam.checkpoints import load_state_dict

    with pytest.raises(CheckpointError, match="missing.pth"):
        load_state_dict(tmp_path / "missing.pth")


def test_gpu_saved_style_checkpoint_loads_on_cpu(tmp_path, random_vit_b):
    from medsam.sam import build_sam

    path = tmp_path / "sam.pth"
    torch.save({"model": random_vit_b.state_dict()}, path)  # wrapped, as some trainers save
    loaded = build_sam("vit_b", path)
    key = "mask_decoder.iou_token.weight"
    assert torch.equal(loaded.state_dict()[key], random_vit_b.state_dict()[key])
