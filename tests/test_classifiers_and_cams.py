import numpy as np
import pytest
import torch

from common.errors import SettingsError
from explainers import CAM_METHODS, CamExplainer
from models import (
    CheckpointError,
    available_classifiers,
    create_classifier,
    get_spec,
    preprocess_image,
    resolve_preprocessing,
)
from models.pretrained import rename_lite_keys
from tests.conftest import ellipse_mask


def test_lite0_imagenet_weights_load_strictly(lite0):
    from models.pretrained import efficientnet_lite0_state_dict

    state = efficientnet_lite0_state_dict()
    assert set(state) == set(lite0.state_dict())
    cfg = resolve_preprocessing(lite0)
    assert cfg["mean"] == (0.5, 0.5, 0.5) and cfg["input_size"] == (3, 224, 224)


def test_rename_lite_keys_stage_mapping():
    fake = {
        "_blocks.0._depthwise_conv.weight": 0,
        "_blocks.1._expand_conv.weight": 1,
        "_blocks.3._bn2.bias": 2,
        "_blocks.15._project_conv.weight": 3,
        "_fc.bias": 4,
    }
    assert rename_lite_keys(fake) == {
        "blocks.0.0.conv_dw.weight": 0,
        "blocks.1.0.conv_pw.weight": 1,
        "blocks.2.0.bn3.bias": 2,
        "blocks.6.0.conv_pwl.weight": 3,
        "classifier.bias": 4,
    }


def test_preprocess_keeps_the_whole_frame():
    img = np.zeros((100, 300, 3), np.uint8)
    img[:, :150] = 255
    t = preprocess_image(
        img, {"input_size": (3, 224, 224), "interpolation": "bilinear", "mean": (0.5,) * 3, "std": (0.5,) * 3}
    )
    assert t.shape == (1, 3, 224, 224)
    assert t[0, 0, :, :100].min() > 0.9 and t[0, 0, :, 130:].max() < -0.9  # left half white, right black


@pytest.mark.parametrize("name", ["resnet50", "vit_b16", "swin_t", "mobilenetv2", "efficientnet_b0"])
def test_every_architecture_gives_a_cam(name):
    torch.manual_seed(0)
    model = create_classifier(name, num_classes=1)
    image = np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    cams = CamExplainer(model, name).explain(image, ["gradcam", "eigencam"])
    cam = cams["gradcam"]
    assert cam.heatmap.shape == (90, 120) and cam.heatmap.dtype == np.float32
    assert cam.target == "melanoma_logit"
    assert cam.constant or (cam.heatmap.min() == 0.0 and cam.heatmap.max() == pytest.approx(1.0))
    # EigenCAM needs no gradient sign: a flat map here means a wrong layer or reshape (e.g. the
    # head, or a ViT/Swin token grid read as channels), which this test must catch
    eigen = cams["eigencam"]
    assert not eigen.constant and eigen.heatmap.std() > 0.05


def test_binary_target_explains_the_melanoma_logit_or_the_predicted_side():
    from explainers.cams import make_target

    benign, melanoma = torch.tensor([[-2.0]]), torch.tensor([[3.0]])
    target, name = make_target(benign, None)  # the default: the melanoma logit
    assert name == "melanoma_logit" and float(target(benign[0])) == -2.0
    target, name = make_target(benign, None, "predicted")  # a benign call: evidence against melanoma
    assert name == "not_melanoma_logit" and float(target(benign[0])) == 2.0
    target, name = make_target(melanoma, None, "predicted")
    assert name == "melanoma_logit" and float(target(melanoma[0])) == 3.0
    with pytest.raises(ValueError, match="binary_target"):
        make_target(benign, None, "benign")


def test_cam_methods_on_the_imagenet_head(lite0):
    image = np.full((120, 160, 3), 210, np.uint8)
    image[ellipse_mask((120, 160), (80, 60), (30, 20))] = (80, 50, 40)
    explainer = CamExplainer(lite0, "efficientnet_lite0", batch_size=64)
    cams = explainer.explain(image, ["gradcam", "gradcam++", "eigencam", "randomcam"])
    for name, cam in cams.items():
        assert cam.heatmap.shape == (120, 160), name
        assert np.isfinite(cam.heatmap).all() and 0 <= cam.heatmap.min() and cam.heatmap.max() <= 1
        assert not cam.constant and cam.heatmap.std() > 0.05, name  # a spatial map, not a flat one
        assert cam.target.startswith("class_")
    assert set(CAM_METHODS) >= {"gradcam", "gradcam++", "eigencam", "ablationcam", "scorecam", "randomcam"}


def test_flat_cam_is_reported_not_dropped():
    from explainers.cams import to_original_frame

    heatmap, constant = to_original_frame(np.full((7, 7), np.nan), (20, 30))
    assert constant and heatmap.shape == (20, 30) and not heatmap.any()


def test_checkpoint_roundtrip_and_mismatch(tmp_path):
    torch.manual_seed(0)
    model = create_classifier("mobilenetv2", num_classes=1)
    path = tmp_path / "ckpt.pth"
    torch.save({"model": model.state_dict(), "num_classes": 1, "arch": "mobilenetv2"}, path)
    again = create_classifier("mobilenetv2", checkpoint=path)
    x = torch.randn(1, 3, 224, 224)
    assert torch.allclose(model(x), again(x))
    with pytest.raises(CheckpointError, match="does not fit"):
        create_classifier("efficientnet_b0", num_classes=1, checkpoint=path)
    with pytest.raises(CheckpointError, match="not found"):
        create_classifier("mobilenetv2", checkpoint=tmp_path / "nope.pth")


def test_registry_names():
    assert {"efficientnet_lite0", "resnet50", "mobilenetv2", "efficientnet_b0", "vit_b16", "swin_t"} <= set(
        available_classifiers()
    )
    with pytest.raises(SettingsError, match="available"):
        get_spec("alexnet")


def test_lrp_keeps_the_cam_contract_and_finds_a_generated_lesion(lite0):
    import cv2

    from data.synthetic import make_synthetic_sample
    from explainers.lrp import LRP_SMOOTH_SIGMA, lrp_map, relevance_output

    sample = make_synthetic_sample(3)
    explainer = CamExplainer(lite0, "efficientnet_lite0")
    tensor, target, name = explainer.prepare(sample.image)
    before = lite0(tensor)
    cam = explainer.explain(sample.image, ["lrp"], (tensor, target, name))["lrp"]
    assert cam.heatmap.shape == sample.mask.shape and cam.target == name and not cam.constant
    assert 0 <= cam.heatmap.min() and cam.heatmap.max() == pytest.approx(1.0)
    share_in_lesion = (cam.heatmap * sample.mask).sum() / cam.heatmap.sum()
    assert share_in_lesion > 2 * sample.mask.mean()  # relevance concentrates on the lesion
    assert torch.allclose(lite0(tensor), before)  # zennit's hooks were removed on exit
    # the LRP rules change the backward pass: the map differs from the plain gradient's
    x = tensor.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad((lite0(x) * relevance_output(target)(lite0(x))).sum(), x)
    plain = grad[0].sum(0).clamp(min=0).numpy()
    plain = cv2.GaussianBlur(plain, (0, 0), LRP_SMOOTH_SIGMA * plain.shape[0])  # smoothed like LRP's
    lrp = lrp_map(lite0, tensor, target)
    assert np.corrcoef(plain.ravel(), lrp.ravel())[0, 1] < 0.9


def test_ensemble_keeps_the_cam_contract_differs_from_members_and_computes_each_once(lite0, monkeypatch):
    from collections import Counter

    from data.synthetic import make_synthetic_sample
    from explainers.cams import ENSEMBLE, EXPLAIN_METHODS, mean_of_maps

    sample = make_synthetic_sample(5)
    explainer = CamExplainer(
        lite0, "efficientnet_lite0", ensemble_methods=["gradcam", "eigencam", "lrp", "gradcam@stage5"]
    )
    calls = Counter()
    original = explainer._raw_map
    monkeypatch.setattr(explainer, "_raw_map", lambda m, t, g: (calls.update([m]), original(m, t, g))[1])
    cams = explainer.explain(sample.image, ["gradcam", ENSEMBLE, "eigencam"])
    assert list(cams) == ["gradcam", ENSEMBLE, "eigencam"]  # only what was asked for
    assert calls == Counter({"gradcam": 1, "eigencam": 1, "lrp": 1, "gradcam@stage5": 1})  # each member once
    ensemble = cams[ENSEMBLE]
    assert ensemble.heatmap.shape == sample.mask.shape and ensemble.heatmap.dtype == np.float32
    assert not ensemble.constant and ensemble.heatmap.min() == 0.0 and ensemble.heatmap.max() == pytest.approx(1.0)
    assert ensemble.target == cams["gradcam"].target and ENSEMBLE in EXPLAIN_METHODS
    for member in ("gradcam", "eigencam"):
        assert np.abs(ensemble.heatmap - cams[member].heatmap).mean() > 0.01, member
    # the mean of the members' normalised maps, a flat member left out
    a, b = np.array([[0.0, 2.0], [4.0, 4.0]]), np.array([[1.0, 0.0], [0.0, 1.0]])
    mean, constant = mean_of_maps([a, b, np.full((2, 2), 3.0)])
    np.testing.assert_allclose(mean, [[0.5, 0.25], [0.5, 1.0]])
    assert not constant and mean_of_maps([np.zeros((2, 2))])[1]
    with pytest.raises(SettingsError, match="unknown method 'ensemble'"):
        CamExplainer(lite0, "efficientnet_lite0", ensemble_methods=["ensemble"])
    with pytest.raises(SettingsError, match="no CAM layer 'stage9'"):
        CamExplainer(lite0, "efficientnet_lite0", ensemble_methods=["gradcam@stage9"])
