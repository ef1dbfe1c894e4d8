"""Multi-class segmentation: label maps, class-aware scores, the three-class classifier and the
multiclass run, on generated lesions whose classes are known."""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from cam_sam import segment
from cam_sam.multiclass import label_map, multiclass_summary, pixel_confusion, true_label
from classification import train as train_script
from classification.lesion_classifier import LesionClassifier
from classification.tasks import LABEL_NAMES, LesionClass
from common.checkpoints import CheckpointError, safe_load
from data.synthetic import make_synthetic_sample, write_synthetic_isic
from models import create_classifier
from tests.conftest import REPO
from tests.test_classification import _args

SHIPPED = REPO / "model_checkpoints" / "classifier_3class.pt"


def _lesion(label: int, probability: float = 0.8) -> LesionClass:
    rest = (1 - probability) / 2
    return LesionClass(label, probability, {LABEL_NAMES[k]: probability if k == label else rest for k in (1, 2, 3)})


def test_label_map_values_and_the_class_aware_scores():
    a, b = make_synthetic_sample(1), make_synthetic_sample(2)  # generated lesions, masks known
    hw = a.mask.shape
    right = label_map(a.mask, hw, _lesion(1))  # a melanoma called melanoma
    assert set(np.unique(right)) == {0, 1} and (right == 1).sum() == a.mask.sum()
    wrong = label_map(b.mask, hw, _lesion(3))  # a seborrheic keratosis called nevus
    assert set(np.unique(wrong)) == {0, 3}
    assert not label_map(None, hw, _lesion(2)).any()  # no mask: all background
    assert (
        true_label({"melanoma": 1.0, "seborrheic_keratosis": 0.0}),
        true_label({"melanoma": 0.0, "seborrheic_keratosis": 1.0}),
        true_label({"melanoma": 0.0, "seborrheic_keratosis": 0.0}),
        true_label({"melanoma": 1.0}),
    ) == (1, 2, 3, None)

    only_wrong = multiclass_summary([pixel_confusion(wrong, b.mask, 2)], [(2, 3)])
    assert only_wrong["per_class_iou"]["seborrheic_keratosis"] == 0.0  # the wrong class: IoU 0 for SK ...
    assert only_wrong["per_class_iou"]["nevus"] == 0.0  # ... and for the class it was called
    assert only_wrong["per_class_iou"]["melanoma"] is None  # absent everywhere: undefined, not 0
    assert only_wrong["per_class_iou"]["background"] == pytest.approx(1.0)  # the binary mask itself is exact
    assert only_wrong["image_accuracy"] == 0.0 and only_wrong["image_confusion"][1][2] == 1

    both = multiclass_summary(
        [pixel_confusion(right, a.mask, 1), pixel_confusion(wrong, b.mask, 2)], [(1, 1), (2, 3), (3, None)]
    )  # a third image failed
    assert both["per_class_iou"]["melanoma"] == pytest.approx(1.0)
    assert both["miou"] == pytest.approx(np.mean([1.0, 1.0, 0.0, 0.0]))
    assert both["pixel_accuracy"] == pytest.approx(1 - b.mask.sum() / (2 * b.mask.size))
    assert both["image_accuracy"] == pytest.approx(1 / 3) and both["n_failed"] == 1


def _three_class_root(tmp_path):
    root = tmp_path / "isic"
    write_synthetic_isic(root, 6, "train", seed=0)
    write_synthetic_isic(root, 6, "val", seed=100)
    classes = [(1.0, 0.0), (0.0, 1.0), (0.0, 0.0)]
    for tag in ("Training", "Validation"):
        path = root / f"ISIC-2017_{tag}_Part3_GroundTruth.csv"
        rows = list(csv.reader(path.open()))
        rows = [rows[0]] + [[r[0], *classes[i % 3]] for i, r in enumerate(rows[1:])]
        csv.writer(path.open("w", newline="")).writerows(rows)
    return root


def test_three_class_training_round_trips_with_weights_only(tmp_path):
    root = _three_class_root(tmp_path)
    shipped = tmp_path / "model_checkpoints" / "classifier_3class.pt"
    result = train_script.main(
        _args(root, tmp_path / "run", "task=three_class", "holdout_every=3", f"export={shipped}")
    )
    row = result["history"][0]
    assert {"val_auc_melanoma", "val_auc_seborrheic_keratosis", "val_auc_nevus_or_other", "val_melanoma_auc"} <= set(
        row
    )
    best = tmp_path / "run" / "best.pth"
    state = torch.load(best, map_location="cpu", weights_only=True)  # no pickled objects in it
    assert state["num_classes"] == 3 and state["class_names"] == ["nevus_or_other", "melanoma", "seborrheic_keratosis"]
    classifier = LesionClassifier("efficientnet_lite0", best)
    sample = make_synthetic_sample(7)
    call = classifier.classify(sample.image)
    assert call.label in (1, 2, 3) and sum(call.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    model = create_classifier("efficientnet_lite0", checkpoint=best)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), classifier.model(x), atol=1e-6)
        # the float16 export: no optimiser, its epoch's validation row, the same calls up to rounding
        exported = torch.load(shipped, map_location="cpu", weights_only=True)
        assert "optimizer" not in exported and exported["validation"]["epoch"] == exported["epoch"]
        assert exported["model"]["classifier.weight"].dtype == torch.float16
        half = LesionClassifier("efficientnet_lite0", shipped)
        assert torch.allclose(torch.softmax(half.model(x), 1), torch.softmax(classifier.model(x), 1), atol=5e-3)
    from classification import test as test_script

    report = test_script.main(
        [
            "--set",
            f"checkpoint={best}",
            "--set",
            f"data_root={root}",
            "--set",
            "num_workers=0",
            "--set",
            f"out_dir={tmp_path / 'test'}",
        ]
    )["three_class"]
    assert set(report["per_class_auc"]) == {"nevus_or_other", "melanoma", "seborrheic_keratosis"}
    assert np.asarray(report["confusion_matrix"]).sum() == 6 and 0 <= report["balanced_accuracy"] <= 1
    assert (tmp_path / "test" / "confusion.png").is_file()
    with pytest.raises(CheckpointError, match="not a three-class classifier"):
        torch.save(
            {
                "model": create_classifier("efficientnet_lite0", num_classes=1, pretrained=False).state_dict(),
                "num_classes": 1,
                "config": {"task": "melanoma"},
            },
            tmp_path / "binary.pth",
        )
        LesionClassifier("efficientnet_lite0", tmp_path / "binary.pth")


def test_held_back_crops_never_reach_the_classifier(tmp_path):
    from classification.data import LabelledImages
    from data.holdout import holdout_ids

    root = _three_class_root(tmp_path)
    everything = LabelledImages(str(root), "train", "three_class", lambda image: image)
    kept = LabelledImages(str(root), "train", "three_class", lambda image: image, holdout_every=3)
    assert set(kept.ids) == set(everything.ids) - set(holdout_ids(everything.ids, 3)) and len(kept.ids) == 4


@pytest.mark.skipif(not SHIPPED.is_file(), reason="the shipped three-class checkpoint is not in this checkout")
def test_the_shipped_three_class_classifier_loads_with_weights_only():
    state = safe_load(SHIPPED, "classifier")
    assert state["num_classes"] == 3 and state["config"]["task"] == "three_class"
    assert state["config"]["holdout_every"] == 18  # the train_every18 crops stayed unseen
    assert SHIPPED.stat().st_size < 15 * 2**20
    call = LesionClassifier("efficientnet_lite0", SHIPPED).classify(make_synthetic_sample(3).image)
    assert call.label in (1, 2, 3)


def test_a_multiclass_run_writes_label_maps_and_class_aware_scores(tmp_path):
    root = _three_class_root(tmp_path)
    train_script.main(_args(root, tmp_path / "train", "task=three_class"))
    args = {
        "data_root": root,
        "out_dir": tmp_path / "seg",
        "results_root": tmp_path,
        "preset": "multiclass",
        "classifier_checkpoint": tmp_path / "train" / "best.pth",
        "n_overlays": 1,
        "limit": 3,
        "prompts.n_perturbations": 0,
    }
    metrics = segment.main([x for k, v in args.items() for x in ("--set", f"{k}={v}")])
    multi = metrics["summary"]["multiclass"]
    assert multi["n_images"] == 3 and 0.0 <= multi["miou"] <= 1.0 and multi["per_class_iou"]["background"] > 0.5
    assert sum(map(sum, multi["image_confusion"])) == 3
    for image_id in metrics["per_image"]:
        labels = np.asarray(Image.open(tmp_path / "seg" / "labels" / f"{image_id}.png"))
        record = json.loads((tmp_path / "seg" / "records" / f"{image_id}.json").read_text())
        assert set(np.unique(labels)) <= {0, record["class"]["label"]}  # the mask, filled with the call
        mask = np.asarray(Image.open(tmp_path / "seg" / "masks" / f"{image_id}.png")) > 0
        np.testing.assert_array_equal(labels > 0, mask)
    assert list((tmp_path / "seg" / "overlays").glob("*_labels.png"))
