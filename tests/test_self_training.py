"""Self-training: pseudo-labels never read masks, the student learns, checkpoints are safe, the
student sources segment, the fast preset runs."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from cam_sam import segment
from cam_sam.runs.build import build_pipeline
from cam_sam.settings import PIPELINE_CONFIG, resolve_pipeline
from common.config import merge
from common.errors import DataError, RunError, SettingsError
from common.io import read_json, write_json, write_png
from common.metrics import mask_metrics
from data.holdout import holdout_ids
from data.isic import ISICDataset
from data.synthetic import make_synthetic_sample, write_synthetic_isic
from models.registry import CheckpointError
from models.student import (
    StudentConfig,
    StudentSegmenter,
    build_student,
    load_backbone,
    load_student,
    save_student,
    view_agreement,
)
from self_training import pseudo_label, train_student
from self_training.data import PseudoMaskDataset, collect_pseudo_labels, keep_most_trusted
from self_training.labelling import self_training_ids
from self_training.training import StudentTraining, make_student, training_labels, weighted_bce_dice

SMALL = 128  # student input side in these tests (256 in real runs)


def _args(settings=None, **kw):
    return [x for k, v in {**(settings or {}), **kw}.items() for x in ("--set", f"{k}={v}")]


def _fake_pseudo_run(root, split_dir, out):
    """A pseudo-labelling run folder whose masks are the generated lesions' own masks (a test of
    the training machinery, not of pseudo-labelling)."""
    ds = ISICDataset(root, "train")
    for i, sample in enumerate(ds):
        write_png(out / "masks" / f"{sample.image_id}.png", sample.mask.astype(np.uint8) * 255)
        write_json(
            out / "records" / f"{sample.image_id}.json",
            {"final_source": "colour", "confidence": {"selection_score": 1.0 - 0.01 * i}},
        )
    return out


@pytest.fixture(scope="module")
def trained_student(tmp_path_factory):
    """A student trained briefly on 16 generated lesions (their own masks as pseudo-masks)."""
    tmp = tmp_path_factory.mktemp("student")
    root = write_synthetic_isic(tmp / "data", n_images=16, split="train", seed=100)
    pseudo = _fake_pseudo_run(root, "train", tmp / "pseudo")
    result = train_student.main(
        _args(
            data_root=root,
            pseudo_dirs=f'["{pseudo}"]',
            holdout_every=0,
            input_size=SMALL,
            cache_size=160,
            epochs=25,
            batch_size=8,
            keep_fraction=1.0,
            out_dir=tmp / "run",
            lr=3e-3,
            vignette_p=0.0,
        )
    )
    return tmp / "run" / "student.pt", result


def test_holdout_is_every_18th_and_never_used():
    ids = [f"ISIC_{i:07d}" for i in range(100)]
    held = holdout_ids(ids)
    assert held == ids[::18] and len(held) == 6
    usable = self_training_ids(ids, seed=1)
    assert not set(usable) & set(held) and sorted(usable) == sorted(set(ids) - set(held))
    assert usable == self_training_ids(ids, seed=1) and usable != sorted(usable)  # seeded shuffle


def test_held_out_only_labels_the_development_ids_alone_and_needs_a_holdout():
    """``held_out_only`` labels exactly the held-out ids (a development set training never sees),
    from ``start``, at most ``limit``; without a holdout it is refused before any work."""
    from self_training.labelling import Labelling

    ids = [f"ISIC_{i:07d}" for i in range(100)]
    development = Labelling.from_config({**pseudo_label.CONFIG, "held_out_only": True, "start": 1, "limit": 3})
    assert development.ids(ids) == holdout_ids(ids)[1:4]
    with pytest.raises(SettingsError, match="held_out_only needs holdout_every"):
        Labelling.from_config({**pseudo_label.CONFIG, "held_out_only": True, "holdout_every": 0})


def test_pseudo_labels_never_read_masks(tmp_path):
    root = write_synthetic_isic(tmp_path / "data", n_images=3, split="train")
    common = {"data_root": root, "holdout_every": 0, "prompts.n_perturbations": 2}
    pseudo_label.main(_args(common, out_dir=tmp_path / "a"))
    for mask in (root / "ISIC-2017_Training_Part1_GroundTruth").glob("*.png"):
        mask.write_bytes(b"not a png")  # opening any mask now fails
    pseudo_label.main(_args(common, out_dir=tmp_path / "b"))
    names = sorted(p.name for p in (tmp_path / "a" / "masks").glob("*.png"))
    assert len(names) == 3
    for name in names:
        a = np.asarray(Image.open(tmp_path / "a" / "masks" / name))
        b = np.asarray(Image.open(tmp_path / "b" / "masks" / name))
        assert a.any() and np.array_equal(a, b)


def test_pseudo_labelling_full_frames_never_reads_masks(tmp_path):
    """A folder of whole frames (``image_dir``, as ISIC2017_full_frames) with unreadable masks
    beside it: the pipeline labels every frame anyway (no mask opened), with a confidence record
    each."""
    root = write_synthetic_isic(tmp_path / "data", n_images=3, split="train")
    frames = tmp_path / "frames"
    frames.mkdir()
    for sample in ISICDataset(root, "train"):
        write_png(frames / f"{sample.image_id}.png", sample.image)
        (frames / f"{sample.image_id}_segmentation.png").write_bytes(b"not a png")
    common = {"image_dir": frames, "holdout_every": 0, "prompts.n_perturbations": 0}
    result = pseudo_label.main(_args(common, out_dir=tmp_path / "a"))
    assert result["n_done"] == 3 and result["n_failed"] == 0
    records = sorted((tmp_path / "a" / "records").glob("*.json"))
    assert len(records) == 3 and all("confidence" in read_json(r) for r in records)
    assert len(list((tmp_path / "a" / "masks").glob("*.png"))) == 3


def test_view_agreement():
    same = torch.zeros(3, 8, 8, dtype=torch.bool)
    same[:, 2:6, 2:6] = True
    assert view_agreement(same) == pytest.approx(1.0) and view_agreement(same[:1]) == 1.0
    apart = same.clone()
    apart[1] = False
    apart[1, 0:2, 0:2] = True
    assert view_agreement(apart) == pytest.approx(1 / 3)


class _FollowsTheLesion(torch.nn.Module):
    """Calls lesion the reddest pixels (red minus blue; never the black border or its blend with
    the skin): its mask moves with the image."""

    def forward(self, x):
        return torch.where(x[:, :1] - x[:, 2:] > 0.6, 20.0, -20.0)


class _IgnoresTheImage(torch.nn.Module):
    """Calls lesion a fixed disk of the input frame, whatever the image shows."""

    def forward(self, x):
        size = x.shape[-1]
        yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        disk = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 5) ** 2).float()
        return (40 * disk - 20).expand(len(x), 1, size, size)


def test_zoom_agreement_is_high_for_a_student_that_follows_the_lesion():
    image = np.full((120, 160, 3), (220, 180, 160), np.uint8)  # skin: red - blue 60
    yy, xx = np.mgrid[:120, :160]
    image[(yy - 60) ** 2 + (xx - 80) ** 2 < 30**2] = (120, 60, 20)  # lesion: red - blue 100
    config = StudentConfig(input_size=64)
    follows = StudentSegmenter(_FollowsTheLesion(), config, tta=False)
    ignores = StudentSegmenter(_IgnoresTheImage(), config, tta=False)
    high = follows.zoom_agreement(image, follows.predict_proba(image))
    low = ignores.zoom_agreement(image, ignores.predict_proba(image))
    assert high > 0.85 and low < 0.7, (high, low)
    empty = np.zeros((120, 160), np.float32)
    assert (
        StudentSegmenter(_FollowsTheLesion(), config, tta=False).zoom_agreement(
            np.full((120, 160, 3), (220, 180, 160), np.uint8), empty
        )
        == 1.0
    )  # nothing either way: they agree


def test_start_extends_an_earlier_run_in_another_folder(tmp_path):
    root = write_synthetic_isic(tmp_path / "data", n_images=3, split="train")
    common = {"data_root": root, "holdout_every": 0, "prompts.n_perturbations": 0}
    first = pseudo_label.main(_args(common, out_dir=tmp_path / "a", limit=2))
    rest = pseudo_label.main(_args(common, out_dir=tmp_path / "b", start=2))
    assert (first["n_done"], rest["n_done"]) == (2, 1)
    a = {p.stem for p in (tmp_path / "a" / "records").glob("*.json")}
    b = {p.stem for p in (tmp_path / "b" / "records").glob("*.json")}
    assert not a & b and a | b == set(ISICDataset(root, "train").ids)


def test_keep_most_trusted_drops_the_lowest_scores(tmp_path):
    root = write_synthetic_isic(tmp_path / "data", n_images=5, split="train")
    pseudo = _fake_pseudo_run(root, "train", tmp_path / "pseudo")
    ds = ISICDataset(root, "train", read_masks=False)
    labels = collect_pseudo_labels([pseudo], dict(zip(ds.ids, ds.image_paths)))
    kept = keep_most_trusted(labels, 0.6)
    assert [p.image_id for p in kept] == ds.ids[:3]  # scores fall with the index


def test_a_training_step_lowers_the_loss(tmp_path):
    root = write_synthetic_isic(tmp_path / "data", n_images=4, split="train")
    pseudo = _fake_pseudo_run(root, "train", tmp_path / "pseudo")
    ds = ISICDataset(root, "train", read_masks=False)
    data = PseudoMaskDataset(
        collect_pseudo_labels([pseudo], dict(zip(ds.ids, ds.image_paths))), SMALL, train=False, cache_size=SMALL
    )
    x, y, w = (torch.stack(t) for t in zip(*[data[i] for i in range(len(data))]))
    torch.manual_seed(0)
    model = build_student(StudentConfig(input_size=SMALL))
    load_backbone(model, "efficientnet_lite0", None)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    model.train()
    losses = []
    for _ in range(4):
        loss = weighted_bce_dice(model(x), y, w)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_weighted_loss_ignores_zero_weight_pixels():
    logits = torch.zeros(1, 1, 4, 4)
    target = torch.zeros(1, 1, 4, 4)
    weight = torch.ones(1, 1, 4, 4)
    weight[..., 0, 0] = 0
    base = weighted_bce_dice(logits, target, weight)
    target[..., 0, 0] = 1  # a label change where the weight is 0 changes nothing
    assert torch.isclose(weighted_bce_dice(logits, target, weight), base)
    weight[..., 0, 0] = 1  # ... and does where it is not
    assert not torch.isclose(weighted_bce_dice(logits, target, weight), base)


def test_backbone_comes_from_the_classifier(tmp_path):
    from models.registry import create_classifier

    model = build_student(StudentConfig())
    classifier = create_classifier("efficientnet_lite0", num_classes=1)
    with torch.no_grad():
        classifier.conv_stem.weight.fill_(0.25)
    path = tmp_path / "clf.pth"
    torch.save({"model": classifier.state_dict(), "num_classes": 1}, path)
    assert load_backbone(model, "efficientnet_lite0", path) > 100
    assert torch.all(model.encoder.model.conv_stem.weight == 0.25)
    torch.save({"model": {"conv_stem.weight": torch.zeros(3)}}, path)
    with pytest.raises(CheckpointError, match="clf.pth"):
        load_backbone(model, "efficientnet_lite0", path)


def test_checkpoint_round_trips_with_weights_only(tmp_path):
    config = StudentConfig(input_size=SMALL)
    model = build_student(config).eval()
    save_student(tmp_path / "s.pt", model, config, {"epoch": 3})
    payload = torch.load(tmp_path / "s.pt", weights_only=True)  # nothing but tensors and plain values
    assert payload["epoch"] == 3
    loaded, loaded_config, _ = load_student(tmp_path / "s.pt")
    assert loaded_config == config
    x = torch.randn(1, 3, SMALL, SMALL)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_averaging_students_gives_the_mean_of_their_weights(tmp_path):
    """The script's student holds the weighted mean of every float tensor, the first student's
    integer buffers, and loads like any student; students of two architectures are refused."""
    from self_training import average_students

    config = StudentConfig(input_size=SMALL)
    torch.manual_seed(0)
    a, b = build_student(config), build_student(config)
    save_student(tmp_path / "a.pt", a, config)
    save_student(tmp_path / "b.pt", b, config)
    average_students.main(
        [
            "--set",
            f'students=["{tmp_path / "a.pt"}", "{tmp_path / "b.pt"}"]',
            "--set",
            "weights=[3, 1]",
            "--set",
            f"out={tmp_path / 'mean.pt'}",
        ]
    )
    mean, mean_config, payload = load_student(tmp_path / "mean.pt")
    assert mean_config == config and payload["averaging_weights"] == [3.0, 1.0]
    for key, value in mean.state_dict().items():
        expected = (
            0.75 * a.state_dict()[key].float() + 0.25 * b.state_dict()[key].float()
            if value.is_floating_point()
            else a.state_dict()[key]
        )
        torch.testing.assert_close(value.float(), expected.float())
    other = StudentConfig(input_size=SMALL, decoder_channels=(32, 16, 8, 8, 8))
    save_student(tmp_path / "c.pt", build_student(other), other)
    with pytest.raises(CheckpointError, match="different configs"):
        average_students.main(
            ["--set", f'students=["{tmp_path / "a.pt"}", "{tmp_path / "c.pt"}"]', "--set", f"out={tmp_path / 'x.pt'}"]
        )
    with pytest.raises(SettingsError, match="one per student"):
        average_students.main(["--set", f'students=["{tmp_path / "a.pt"}"]', "--set", "weights=[1, 2]"])
    # students of another colour constancy average when the soup's is given
    save_student(tmp_path / "e.pt", b, StudentConfig(input_size=SMALL, colour_constancy="shades_of_gray"))
    average_students.main(
        [
            "--set",
            f'students=["{tmp_path / "a.pt"}", "{tmp_path / "e.pt"}"]',
            "--set",
            "colour_constancy=shades_of_gray",
            "--set",
            f"out={tmp_path / 'sog.pt'}",
        ]
    )
    assert load_student(tmp_path / "sog.pt")[1] == StudentConfig(input_size=SMALL, colour_constancy="shades_of_gray")
    # one student: its weights kept, its input settings replaced
    average_students.main(
        [
            "--set",
            f'students=["{tmp_path / "a.pt"}"]',
            "--set",
            "colour_constancy=shades_of_gray",
            "--set",
            "colour_strength=0.5",
            "--set",
            f"out={tmp_path / 'half.pt'}",
        ]
    )
    half, half_config, _ = load_student(tmp_path / "half.pt")
    assert half_config == StudentConfig(input_size=SMALL, colour_constancy="shades_of_gray", colour_strength=0.5)
    assert all(torch.equal(v, a.state_dict()[k]) for k, v in half.state_dict().items())


def test_a_student_is_fine_tuned_at_another_input_size(tmp_path):
    """``init_student`` of another input size: every weight kept, the config at the new size (the
    U-Net is fully convolutional); another backbone is refused with one line."""
    config = StudentConfig(input_size=SMALL)
    model = build_student(config)
    save_student(tmp_path / "s.pt", model, config)
    cfg = {**train_student.CONFIG, "init_student": str(tmp_path / "s.pt"), "input_size": 2 * SMALL}
    tuned, tuned_config = make_student(StudentTraining.from_config(cfg))
    assert tuned_config == StudentConfig(input_size=2 * SMALL)
    for key, value in model.state_dict().items():
        assert torch.equal(tuned.state_dict()[key], value)
    with pytest.raises(CheckpointError, match="has the encoder efficientnet_lite0, not efficientnet_lite1"):
        make_student(StudentTraining.from_config({**cfg, "backbone": "efficientnet_lite1"}))


class _Evil:
    def __reduce__(self):
        return (print, ("this ran while loading",))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"model": _Evil(), "config": {}}, handle)
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_student(path)
    from models.registry import read_checkpoint

    with pytest.raises(CheckpointError, match="refusing"):
        read_checkpoint(path)


def test_student_sources_segment_a_generated_lesion(trained_student):
    path, result = trained_student
    assert result["history"][-1]["loss"] < result["history"][0]["loss"]
    cfg = merge(
        PIPELINE_CONFIG,
        {
            "methods": [],
            "proposals": ["student", "student_box"],
            "final_sources": ["student_box"],
            "student_checkpoint": str(path),
            "prompts.n_perturbations": 2,
            "device": "cpu",
        },
    )
    pipeline = build_pipeline(*resolve_pipeline(cfg), "cpu")
    sample = make_synthetic_sample(7)
    out = pipeline.segment(sample.image)
    for source in ("student", "student_box"):
        assert mask_metrics(out.sources[source].mask, sample.mask)["iou"] > 0.8, source
    assert out.final_source == "student_box"


def test_fast_preset_runs_end_to_end(tmp_path, trained_student):
    path, _ = trained_student
    root = write_synthetic_isic(tmp_path / "data", n_images=2, split="val", seed=50)
    metrics = segment.main(
        _args(
            preset="fast",
            data_root=root,
            student_checkpoint=path,
            out_dir=tmp_path / "run",
            results_root=tmp_path,
            n_overlays=1,
        )
    )
    assert metrics["summary"]["final"]["n_images"] == 2 and metrics["summary"]["final"]["n_failed"] == 0
    assert metrics["summary"]["final"]["iou"] > 0.7
    assert set(metrics["summary"]) >= {"student", "final"}


def test_resuming_refuses_a_recipe_key_the_earlier_run_did_not_have(tmp_path):
    earlier = {k: v for k, v in train_student.CONFIG.items() if k != "vignette_p"}  # a run from before it
    write_json(tmp_path / "run" / "config.json", {**earlier, "out_dir": str(tmp_path / "run")})
    with pytest.raises(RunError, match="vignette_p"):
        train_student.main(_args(out_dir=tmp_path / "run", vignette_p=0.5))


def test_training_on_two_folders_whose_ids_repeat_keeps_both(tmp_path):
    """Crops and full frames share image ids: both sets are trained on, told apart by the extra
    set's name, and an id held back in the main set is refused in the extra set too."""
    root = write_synthetic_isic(tmp_path / "crops", n_images=6, split="train", seed=300)
    crops = _fake_pseudo_run(root, "train", tmp_path / "pseudo_crops")
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    frames_pseudo = tmp_path / "pseudo_frames"
    for sample in ISICDataset(root, "train"):  # same ids, other pixels
        write_png(frames_dir / f"{sample.image_id}.png", sample.image[::-1].copy())
        write_png(frames_pseudo / "masks" / f"{sample.image_id}.png", sample.mask[::-1].astype(np.uint8) * 255)
        write_json(frames_pseudo / "records" / f"{sample.image_id}.json", {"confidence": {"selection_score": 1.0}})
    cfg = merge(
        train_student.CONFIG,
        {
            "data_root": str(root),
            "pseudo_dirs": [str(crops)],
            "holdout_every": 3,
            "keep_fraction": 1.0,
            "extra_sets": [{"name": "frames", "image_dir": str(frames_dir), "pseudo_dirs": [str(frames_pseudo)]}],
        },
    )
    labels = training_labels(StudentTraining.from_config(cfg))
    ids = ISICDataset(root, "train").ids
    held = set(ids[::3])
    main = {p.image_id: p for p in labels if ":" not in p.image_id}
    extra = {p.image_id.removeprefix("frames:"): p for p in labels if p.image_id.startswith("frames:")}
    assert set(main) == set(extra) == set(ids) - held and len(labels) == 2 * len(main)
    for image_id in main:
        assert main[image_id].image_path != extra[image_id].image_path
        assert (
            main[image_id].mask_path.parent.parent == crops and extra[image_id].mask_path.parent.parent == frames_pseudo
        )
    dataset = PseudoMaskDataset(labels, SMALL, train=False, cache_size=SMALL)
    assert len(dataset) == len(labels)
    for wrong in (
        [{"image_dir": str(frames_dir), "pseudo_dirs": []}],
        [cfg["extra_sets"][0]] * 2,
        [{**cfg["extra_sets"][0], "shares": 0.5}],
    ):
        with pytest.raises(SettingsError, match="unique 'name'"):
            StudentTraining.from_config({**cfg, "extra_sets": wrong})


def test_uncertain_pixels_weigh_less(tmp_path):
    from common.io import UNCERTAINTY_SCALE
    from self_training.data import PseudoLabel, pixel_weight

    std = np.array([[0.0, 0.1], [0.3, 0.5]])  # per-pixel std of the candidate masks
    write_png(tmp_path / "u.png", np.round(std * UNCERTAINTY_SCALE).astype(np.uint8))
    label = PseudoLabel("a", tmp_path / "a.png", tmp_path / "m.png", tmp_path / "u.png", {})
    np.testing.assert_allclose(pixel_weight(label, (2, 2), 0.5), [[1.0, 0.9], [0.7, 0.5]], atol=0.01)
    no_map = PseudoLabel("b", tmp_path / "b.png", tmp_path / "m.png", None, {})
    np.testing.assert_array_equal(pixel_weight(no_map, (2, 2), 0.5), np.ones((2, 2)))


def test_fewer_pseudo_masks_than_a_batch_is_an_error_not_an_untrained_student(tmp_path):
    """With drop_last, a set smaller than one batch would train nothing and write the initial
    weights as a student: the run stops with a line saying what to change instead."""
    root = write_synthetic_isic(tmp_path / "crops", n_images=4, split="train", seed=310)
    pseudo = _fake_pseudo_run(root, "train", tmp_path / "pseudo")
    args = _args(
        data_root=root,
        pseudo_dirs=f'["{pseudo}"]',
        holdout_every=0,
        input_size=SMALL,
        cache_size=160,
        epochs=1,
        batch_size=16,
        keep_fraction=1.0,
        out_dir=tmp_path / "run",
    )
    with pytest.raises(DataError, match="no full batch of batch_size=16"):
        train_student.main(args)
    assert not (tmp_path / "run" / "student.pt").exists()
