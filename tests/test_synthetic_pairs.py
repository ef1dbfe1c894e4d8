"""Synthetic pairs: the target is exactly the pasted mask, the image changes only where a lesion was
removed or pasted, and the script builds them from pseudo-labelling runs without opening a mask
file of the data; the training set's share of them is a setting."""

import numpy as np
import pytest

from common.config import merge
from common.errors import CheckpointError, SettingsError
from common.io import read_json, write_json, write_png
from data.isic import read_image, read_mask
from data.synthetic import make_synthetic_sample
from self_training import make_synthetic, train_student
from self_training.data import PseudoLabel
from self_training.synthetic_pairs import Background, PasteConfig, make_donor, make_pair, paste_lesion, remove_lesion
from self_training.training import ExtraSet, StudentTraining, make_student, resample_to_share, training_labels
from tests.conftest import ellipse_mask

CONFIG = PasteConfig(size=128, area_bins=((0.05, 0.1),), strength_bins=((1.0, 1.0),), min_contrast=0.0)


def _halo_config(**overrides) -> PasteConfig:
    """One 128-px lesion of 5-10 % of the frame at full strength, always with a halo of half its size."""
    base = dict(size=128, area_bins=((0.05, 0.1),), strength_bins=((1.0, 1.0),), min_contrast=0.0, halo_share=1.0)
    return PasteConfig(**{**base, "halo_width_bins": ((0.5, 0.5),), **overrides})


def _frame(seed: int):
    """A generated 128 x 128 frame and its lesion's mask."""
    sample = make_synthetic_sample(seed, size=(128, 128))
    return sample.image, sample.mask


def test_the_target_is_the_pasted_mask_pixel_for_pixel():
    """A generated lesion cut by its own mask and pasted at full strength: the target equals the
    donor's mask moved to where it went (same area, no rotation of area), and the image differs from
    the background only within the feathered edge around the target."""
    image, mask = _frame(1)
    donor = make_donor("donor", image, mask)
    background_image = np.full((128, 128, 3), (200, 160, 140), np.uint8)
    fov = np.ones((128, 128), bool)
    rng = np.random.default_rng(0)
    pasted, target = paste_lesion(background_image, donor, 0.08, 1.0, rng, fov, None, CONFIG)
    # the target is the donor's mask, flipped/turned and scaled as drawn: rebuild it the same way
    rng = np.random.default_rng(0)
    from self_training.synthetic_pairs import _place, _shaped

    _, shaped = _shaped(donor, 0.08, rng, CONFIG)
    y, x = _place(shaped, fov, np.zeros_like(fov), rng, CONFIG)
    expected = np.zeros((128, 128), bool)
    expected[max(0, y) : y + shaped.shape[0], max(0, x) : x + shaped.shape[1]] = shaped[
        max(0, -y) : 128 - y, max(0, -x) : 128 - x
    ]
    assert np.array_equal(target, expected)
    assert abs(target.mean() - 0.08) < 0.02
    changed = np.abs(pasted.astype(int) - background_image.astype(int)).sum(2) > 3
    halo = np.zeros_like(target)
    from scipy.ndimage import binary_dilation

    halo = binary_dilation(target, iterations=4)
    assert changed[target].mean() > 0.9 and not changed[~halo].any()


def _pasted_without_halo(donor, background_image, fov, seed, config):
    """The lesion alone, pasted with the same draws as a halo run (the halo's draws come after)."""
    from self_training.synthetic_pairs import _place, _shaped

    rng = np.random.default_rng(seed)
    _, shaped = _shaped(donor, 0.08, rng, config)
    y, x = _place(shaped, fov, np.zeros_like(fov), rng, config)
    lesion = np.zeros(fov.shape, bool)
    lesion[max(0, y) : y + shaped.shape[0], max(0, x) : x + shaped.shape[1]] = shaped[
        max(0, -y) : 128 - y, max(0, -x) : 128 - x
    ]
    return lesion


def test_a_halo_is_a_visible_reddish_ring_that_the_target_includes():
    """With a reddish halo drawn for every lesion, the target is the lesion plus a ring around it;
    the ring is redder than the skin beyond it, and nothing changes beyond the target's feathered edge.
    A halo too faint to see is left out: the target is the lesion alone."""
    from scipy.ndimage import binary_dilation

    image, mask = _frame(1)
    donor = make_donor("donor", image, mask)
    background_image = np.full((128, 128, 3), (200, 170, 150), np.uint8)
    fov = np.ones((128, 128), bool)
    config = _halo_config(halo_red_share=1.0)
    pasted, target = paste_lesion(background_image, donor, 0.08, 1.0, np.random.default_rng(0), fov, None, config)
    lesion = _pasted_without_halo(donor, background_image, fov, 0, config)
    halo = target & ~lesion
    assert (target | lesion).sum() == target.sum() and halo.sum() > 0.3 * lesion.sum()
    import cv2

    lab = cv2.cvtColor(pasted.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    beyond = binary_dilation(target, iterations=12) & ~binary_dilation(target, iterations=6)
    assert lab[halo][:, 1].mean() > lab[beyond][:, 1].mean() + 4  # a: redder than the skin
    changed = np.abs(pasted.astype(int) - background_image.astype(int)).sum(2) > 3
    assert not changed[~binary_dilation(target, iterations=4)].any()
    rim = PasteConfig(**{**config.__dict__, "halo_red_share": 0.0})  # the lesion's own (dark) colour
    pasted, target = paste_lesion(background_image, donor, 0.08, 1.0, np.random.default_rng(0), fov, None, rim)
    lab = cv2.cvtColor(pasted.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    assert lab[target & ~lesion][:, 0].mean() < lab[beyond][:, 0].mean() - 4  # L: darker than the skin
    faint = PasteConfig(**{**config.__dict__, "halo_strength_bins": ((0.0, 0.0),)})
    _, target = paste_lesion(background_image, donor, 0.08, 1.0, np.random.default_rng(0), fov, None, faint)
    assert np.array_equal(target, lesion)


def test_an_unblurred_rim_colour_halo_keeps_its_extent_and_is_streakier():
    """``halo_colour_blur=0`` (the pairs of the shipped student's halo fine-tune): the same draws
    give the same target, and the rim-colour halo varies more from pixel to pixel than blurred."""
    import cv2

    image, mask = _frame(1)
    donor = make_donor("donor", image, mask)
    background_image = np.full((128, 128, 3), (200, 170, 150), np.uint8)
    fov = np.ones((128, 128), bool)
    pasted = {}
    for blur in (0.0, 0.3):
        config = _halo_config(halo_red_share=0.0, halo_colour_blur=blur)
        pasted[blur] = paste_lesion(background_image, donor, 0.08, 1.0, np.random.default_rng(0), fov, None, config)
    assert np.array_equal(pasted[0.0][1], pasted[0.3][1])
    halo = (pasted[0.0][1] & ~_pasted_without_halo(donor, background_image, fov, 0, config))[:-1, :-1]

    def roughness(rgb):
        lab = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
        step = np.abs(np.diff(lab, axis=0))[:, :-1].sum(-1) + np.abs(np.diff(lab, axis=1))[:-1].sum(-1)
        return step[halo].mean()

    assert roughness(pasted[0.0][0]) > 1.3 * roughness(pasted[0.3][0])


def test_removing_a_lesion_changes_only_the_grown_hole_and_hides_it():
    image, mask = _frame(2)
    rng = np.random.default_rng(0)
    clean = remove_lesion(image, mask, rng, CONFIG)
    from scipy.ndimage import binary_dilation

    grow = round(CONFIG.hole_grow * 128)
    around = binary_dilation(mask, np.ones((3, 3), bool), iterations=2 * grow + 1)
    assert np.array_equal(clean[~around], image[~around])
    # the lesion (dark) is gone: its pixels now look like the skin around it
    skin = ~binary_dilation(mask, iterations=3 * grow)
    lesion_before = np.abs(image[mask].mean(0) - image[skin].mean(0)).sum()
    lesion_after = np.abs(clean[mask].mean(0) - image[skin].mean(0)).sum()
    assert lesion_after < 0.25 * lesion_before


def test_pair_kinds_and_their_targets():
    image, mask = _frame(3)
    donors = [make_donor("a", *_frame(4)), make_donor("b", *_frame(5))]
    background = Background(
        "bg", remove_lesion(image, mask, np.random.default_rng(0), CONFIG), np.ones((128, 128), bool)
    )
    config = PasteConfig(size=128, area_bins=((0.02, 0.04), (0.04, 0.06)), min_contrast=0.0)
    empty_image, empty_target, record = make_pair(background, donors, np.random.default_rng(1), config, "empty")
    assert not empty_target.any() and np.array_equal(empty_image, background.image) and record["kind"] == "empty"
    two_image, two_target, record = make_pair(background, donors, np.random.default_rng(1), config, "two")
    assert record["kind"] == "two" and record["donors"] == ["a", "b"]
    from scipy.ndimage import label

    assert label(two_target)[1] == 2  # two separate lesions, both in the target
    assert abs(two_target.mean() - sum(record["areas"])) < 1e-9


def test_a_lesion_too_faint_to_see_is_not_a_target():
    """With strength 0 the pasted lesion is invisible: at full strength it is pasted again, and a
    donor that stays invisible (skin-coloured) is left out, so the target stays empty."""
    image, mask = _frame(6)
    background = Background("bg", np.full((128, 128, 3), 180, np.uint8), np.ones((128, 128), bool))
    config = PasteConfig(size=128, area_bins=((0.05, 0.1),), strength_bins=((0.0, 0.0),), min_contrast=10.0)
    visible = make_donor("dark", image, mask)
    _, target, record = make_pair(background, [visible], np.random.default_rng(0), config, "single")
    assert target.any() and record["strengths"] == [1.0]
    flat = np.full((128, 128, 3), 180, np.uint8)
    invisible = make_donor("flat", flat, ellipse_mask((128, 128), (64, 64), (20, 15)))
    _, target, record = make_pair(background, [invisible], np.random.default_rng(0), config, "single")
    assert not target.any() and record["kind"] == "empty"


def test_the_script_builds_pairs_from_pseudo_runs_only(tmp_path):
    """Frames with their pseudo-masks (and ground-truth masks that cannot be read beside them):
    the script writes images, masks, records and a montage; the same seed gives the same pairs."""
    frames, pseudo = tmp_path / "frames", tmp_path / "pseudo"
    for i in range(6):
        image, mask = _frame(10 + i)
        write_png(frames / f"F{i}.png", image)
        (frames / f"F{i}_segmentation.png").write_bytes(b"not a png")
        write_png(pseudo / "masks" / f"F{i}.png", mask.astype(np.uint8) * 255)
        write_json(pseudo / "records" / f"F{i}.json", {"confidence": {"selection_score": 0.9}})
    common = [
        "--set",
        f"image_dir={frames}",
        "--set",
        f'pseudo_dirs=["{pseudo}"]',
        "--set",
        "n_pairs=6",
        "--set",
        "paste.size=128",
        "--set",
        "n_montage=6",
        "--set",
        "paste.min_contrast=0",
    ]
    result = make_synthetic.main(common + ["--set", f"out_dir={tmp_path / 'a'}"])
    make_synthetic.main(common + ["--set", f"out_dir={tmp_path / 'b'}"])
    assert result["n_pairs"] == 6 and (tmp_path / "a" / "montage.png").is_file()
    for i in range(6):
        a = read_image(tmp_path / "a" / "images" / f"syn_{i:05d}.png")
        assert a.shape == (128, 128, 3)
        assert np.array_equal(a, read_image(tmp_path / "b" / "images" / f"syn_{i:05d}.png"))
        record = read_json(tmp_path / "a" / "records" / f"syn_{i:05d}.json")
        target = read_mask(tmp_path / "a" / "masks" / f"syn_{i:05d}.png")
        assert record["synthetic"]["background"] not in record["synthetic"]["donors"]
        assert abs(target.mean() - sum(record["synthetic"]["areas"])) < 1e-9


def test_a_set_share_repeats_or_thins_it_to_that_share():
    labels = [PseudoLabel(f"s{i}", None, None, None, {}) for i in range(10)]
    more = resample_to_share(labels, n_others=60, share=0.25, seed=0)  # 20 items: each twice
    assert len(more) == 20 and all(more.count(p) == 2 for p in labels)
    fewer = resample_to_share(labels, n_others=12, share=0.25, seed=0)  # 4 distinct items
    assert len(fewer) == 4 and len({p.image_id for p in fewer}) == 4
    assert fewer == resample_to_share(labels, n_others=12, share=0.25, seed=0)
    with pytest.raises(SettingsError, match="share must be in"):
        ExtraSet.from_entry({"name": "syn", "pseudo_dirs": [], "image_dir": "syn/images", "share": 1.0})
    for folderless in ({}, {"image_dir": None}, {"image_dir": ""}):  # an extra set is an image folder
        with pytest.raises(SettingsError, match="'pseudo_dirs' and 'image_dir'"):
            ExtraSet.from_entry({"name": "syn", "pseudo_dirs": [], "share": 0.5, **folderless})


def test_an_extra_set_with_a_share_and_its_own_keep_fraction(tmp_path):
    from data.isic import ISICDataset
    from data.synthetic import write_synthetic_isic

    root = write_synthetic_isic(tmp_path / "crops", n_images=8, split="train", seed=7)
    pseudo = tmp_path / "pseudo"
    for i, sample in enumerate(ISICDataset(root, "train")):
        write_png(pseudo / "masks" / f"{sample.image_id}.png", sample.mask.astype(np.uint8) * 255)
        write_json(pseudo / "records" / f"{sample.image_id}.json", {"confidence": {"selection_score": 1 - 0.01 * i}})
    syn = tmp_path / "syn"
    for i in range(3):
        image, mask = _frame(20 + i)
        write_png(syn / "images" / f"syn_{i:05d}.png", image)
        write_png(syn / "masks" / f"syn_{i:05d}.png", mask.astype(np.uint8) * 255)
        write_json(syn / "records" / f"syn_{i:05d}.json", {"confidence": {"selection_score": 1.0}})
    cfg = merge(
        train_student.CONFIG,
        {
            "data_root": str(root),
            "pseudo_dirs": [str(pseudo)],
            "holdout_every": 0,
            "keep_fraction": 0.5,
            "extra_sets": [
                {
                    "name": "syn",
                    "image_dir": str(syn / "images"),
                    "pseudo_dirs": [str(syn)],
                    "keep_fraction": 1.0,
                    "share": 0.5,
                }
            ],
        },
    )
    labels = training_labels(StudentTraining.from_config(cfg))
    real = [p for p in labels if not p.image_id.startswith("syn:")]
    synthetic = [p for p in labels if p.image_id.startswith("syn:")]
    assert len(real) == 4 and len(synthetic) == 4 and len({p.image_id for p in synthetic}) == 3


def test_a_missing_init_student_is_refused_with_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="init_student not found: .*nope.pt"):
        make_student(StudentTraining.from_config({**train_student.CONFIG, "init_student": str(tmp_path / "nope.pt")}))


def test_the_removed_lesions_surroundings_are_unknown_and_weigh_nothing(tmp_path):
    """With ``unknown_grow`` the removed lesion's mask, grown, is unknown (a teacher that cut a
    faint lesion short leaves its rim there); a lesion pasted over it is known; the script writes
    the map beside the pair and the student's pixel weight is 0 there."""
    from scipy.ndimage import binary_dilation

    from self_training.data import pixel_weight
    from self_training.synthetic_pairs import make_background

    image, mask = _frame(7)
    config = PasteConfig(
        size=128, area_bins=((0.05, 0.1),), strength_bins=((1.0, 1.0),), min_contrast=0.0, unknown_grow=0.1
    )
    background = make_background("bg", image, mask, np.random.default_rng(0), config)
    assert background.unknown[mask].all() and background.unknown[binary_dilation(mask, iterations=10)].all()
    assert not background.unknown[~binary_dilation(mask, np.ones((3, 3), bool), iterations=14)].any()
    assert make_background("bg", image, mask, np.random.default_rng(0), CONFIG).unknown is None

    frames, pseudo = tmp_path / "frames", tmp_path / "pseudo"
    for i in range(4):
        frame, lesion = _frame(20 + i)
        write_png(frames / f"F{i}.png", frame)
        write_png(pseudo / "masks" / f"F{i}.png", lesion.astype(np.uint8) * 255)
        write_json(pseudo / "records" / f"F{i}.json", {"confidence": {"selection_score": 0.9}})
    make_synthetic.main(
        [
            "--set",
            f"image_dir={frames}",
            "--set",
            f'pseudo_dirs=["{pseudo}"]',
            "--set",
            "n_pairs=4",
            "--set",
            "paste.size=128",
            "--set",
            "paste.min_contrast=0",
            "--set",
            "paste.unknown_grow=0.1",
            "--set",
            f"out_dir={tmp_path / 'syn'}",
        ]
    )
    from self_training.data import collect_pseudo_labels

    labels = collect_pseudo_labels(
        [tmp_path / "syn"], {f"syn_{i:05d}": tmp_path / "syn" / "images" / f"syn_{i:05d}.png" for i in range(4)}
    )
    assert len(labels) == 4 and all(label.unknown_path is not None for label in labels)
    for label in labels:
        unknown, target = read_mask(label.unknown_path), read_mask(label.mask_path)
        assert unknown.any() and not (unknown & target).any()
        weight = pixel_weight(label, target.shape, 0.5)
        assert (weight[unknown] == 0).all() and (weight[~unknown] == 1).all()
