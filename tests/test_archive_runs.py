"""Archive-sized runs: a large photo segmented at the working size and its mask delivered at the
image's own size, compact outputs."""

import numpy as np
from PIL import Image

from cam_sam import segment
from common.io import UNCERTAINTY_SCALE, read_json, read_uncertainty
from data.isic import read_mask
from data.synthetic import make_synthetic_sample


def _folder(tmp_path, n=2, size=(300, 400)):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for seed in range(n):
        sample = make_synthetic_sample(seed, size=size, image_id=f"photo_{seed}")
        Image.fromarray(sample.image).save(images / f"{sample.image_id}.jpg", quality=95)
        Image.fromarray(sample.mask.astype(np.uint8)).save(masks / f"{sample.image_id}.png")  # a 0/1 mask
    return images, masks


def _run(tmp_path, images, masks, name, *extra):
    args = [
        f"image_dir={images}",
        f"mask_dir={masks}",
        f"out_dir={tmp_path / name}",
        f"results_root={tmp_path}",
        "n_overlays=1",
        "workers=1",
        *extra,
    ]
    return segment.main([x for a in args for x in ("--set", a)])


def test_a_large_photo_is_segmented_reduced_and_delivered_at_its_own_size(tmp_path):
    images, masks = _folder(tmp_path)
    reduced = _run(tmp_path, images, masks, "reduced", "max_side=150")  # 400 px: read at 1/2
    whole = _run(tmp_path, images, masks, "whole", "max_side=0")
    for image_id in ("photo_0", "photo_1"):
        record = read_json(tmp_path / "reduced" / "records" / f"{image_id}.json")
        assert record["image_size"] == [300, 400] and record["working_size"] == [150, 200]
        mask = read_mask(tmp_path / "reduced" / "masks" / f"{image_id}.png")
        assert mask.shape == (300, 400)
        other = read_mask(tmp_path / "whole" / "masks" / f"{image_id}.png")
        assert (mask & other).sum() / (mask | other).sum() > 0.9
        # the uncertainty: 8-bit at the size segmented, std = value / UNCERTAINTY_SCALE
        spread = read_uncertainty(tmp_path / "reduced" / "uncertainty" / f"{image_id}.png")
        assert spread.shape == (150, 200) and 0 <= spread.min() and spread.max() <= 255 / UNCERTAINTY_SCALE
        assert "image_size" not in read_json(tmp_path / "whole" / "records" / f"{image_id}.json")
    # scored at the image's own size against its 0/1 mask
    assert reduced["summary"]["final"]["iou"] > 0.7
    assert abs(reduced["summary"]["final"]["iou"] - whole["summary"]["final"]["iou"]) < 0.03
    assert (tmp_path / "reduced" / "overlays" / "photo_0.png").is_file()


def test_an_image_folder_run_records_only_the_settings_that_applied(tmp_path):
    from cam_sam.runs.dataset import DATASET_KEYS, applied_config
    from cam_sam.settings import SEGMENT_CONFIG
    from common.io import write_json
    from common.runs import fix_run_config

    folder = applied_config({**SEGMENT_CONFIG, "image_dir": "photos"})
    assert folder["image_dir"] == "photos" and "max_side" in folder and not set(DATASET_KEYS) & set(folder)
    isic = applied_config(dict(SEGMENT_CONFIG))
    assert {"data_root", "split"} <= set(isic) and not {"image_dir", "mask_dir", "derm7pt_image"} & set(isic)
    assert "derm7pt_image" in applied_config({**SEGMENT_CONFIG, "dataset": "derm7pt"})
    # a run whose config.json (an earlier version) holds them at their defaults resumes
    write_json(tmp_path / "config.json", {**SEGMENT_CONFIG, "image_dir": "photos"})
    fix_run_config(tmp_path, folder, defaults=SEGMENT_CONFIG)
    assert "data_root" not in read_json(tmp_path / "config.json")
