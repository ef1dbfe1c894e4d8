"""ISIC 2016 / 2018, PH2, HAM10000 and Derm7pt read from small folders written here in each official layout."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cam_sam.runs.inputs import open_data
from cam_sam.settings import DATA_CONFIG, DataSettings
from common.config import merge
from data import DataError, open_dataset
from data.synthetic import make_synthetic_sample


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _pair(seed: int):
    sample = make_synthetic_sample(seed, size=(60, 80))
    return sample.image, sample.mask.astype(np.uint8) * 255, sample.mask


def _isic2016(root: Path) -> dict[str, np.ndarray]:
    truth = {}
    for i, (split, label) in enumerate([("Training", "malignant"), ("Training", "benign"), ("Test", "1.0")]):
        image, mask, truth[f"ISIC_000000{i}"] = _pair(i)
        _write(root / f"ISBI2016_ISIC_Part1_{split}_Data" / f"ISIC_000000{i}.jpg", image)
        _write(root / f"ISBI2016_ISIC_Part1_{split}_GroundTruth" / f"ISIC_000000{i}_Segmentation.png", mask)
        with open(root / f"ISBI2016_ISIC_Part3_{split}_GroundTruth.csv", "a", newline="") as handle:
            csv.writer(handle).writerow([f"ISIC_000000{i}", label])
    return truth


def _isic2018(root: Path) -> dict[str, np.ndarray]:
    truth = {}
    for i, split in enumerate(["Training", "Validation", "Validation"]):
        image, mask, truth[f"ISIC_001000{i}"] = _pair(i)
        _write(root / f"ISIC2018_Task1-2_{split}_Input" / f"ISIC_001000{i}.jpg", image)
        _write(root / f"ISIC2018_Task1_{split}_GroundTruth" / f"ISIC_001000{i}_segmentation.png", mask)
    return truth


def _ph2(root: Path) -> dict[str, np.ndarray]:
    truth = {}
    for i, case in enumerate(["IMD002", "IMD003"]):
        image, mask, truth[case] = _pair(i)
        folder = root / "PH2Dataset" / "PH2 Dataset images" / case
        _write(folder / f"{case}_Dermoscopic_Image" / f"{case}.bmp", image)
        _write(folder / f"{case}_lesion" / f"{case}_lesion.bmp", mask)
        _write(folder / f"{case}_roi" / f"{case}_R1_Label1.bmp", mask)  # PH2's extra folders are ignored
    return truth


def _ham10000(root: Path) -> dict[str, np.ndarray]:
    truth = {}
    rows = [("HAM_0000001", "ISIC_0024306", "nv"), ("HAM_0000002", "ISIC_0024307", "mel")]
    for i, (_, image_id, _) in enumerate(rows):
        image, mask, truth[image_id] = _pair(i)
        _write(root / f"HAM10000_images_part_{i + 1}" / f"{image_id}.jpg", image)
        if i == 0:  # masks only where the user has them
            _write(root / "HAM10000_segmentations_lesion_tschandl" / f"{image_id}_segmentation.png", mask)
    with open(root / "HAM10000_metadata.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"])
        writer.writerows([(lesion, image_id, dx, "histo", 50, "male", "back") for lesion, image_id, dx in rows])
    return truth


CASES = {
    "isic2016": (_isic2016, "train", ["ISIC_0000000", "ISIC_0000001"], {"ISIC_0000000": 1.0, "ISIC_0000001": 0.0}),
    "isic2018": (_isic2018, "val", ["ISIC_0010001", "ISIC_0010002"], {}),
    "ph2": (_ph2, "all", ["IMD002", "IMD003"], {}),
    "ham10000": (_ham10000, "all", ["ISIC_0024306", "ISIC_0024307"], {"ISIC_0024306": 0.0, "ISIC_0024307": 1.0}),
}


@pytest.mark.parametrize("name", CASES)
def test_layout_reads_images_masks_and_labels(tmp_path, name):
    write, split, ids, melanoma = CASES[name]
    truth = write(tmp_path)
    dataset = open_dataset(tmp_path, split, dataset=name)
    assert dataset.ids == ids
    for sample in dataset:
        assert sample.image.dtype == np.uint8 and sample.image.shape == (60, 80, 3)
        if name == "ham10000" and sample.image_id == "ISIC_0024307":
            assert sample.mask is None  # no mask file for it: unscored, not an error
        else:
            np.testing.assert_array_equal(sample.mask, truth[sample.image_id])
        if melanoma:
            assert sample.labels["melanoma"] == melanoma[sample.image_id]
    assert all(s.mask is None for s in open_dataset(tmp_path, split, read_masks=False, dataset=name))


def test_wrong_split_missing_folders_and_unknown_dataset_are_named(tmp_path):
    _isic2016(tmp_path)
    with pytest.raises(DataError, match=r"ISIC 2016 has the splits \['test', 'train'\], not 'val'"):
        open_dataset(tmp_path, "val", dataset="isic2016")
    with pytest.raises(DataError, match="ISIC2018_Task1-2_Training_Input"):
        open_dataset(tmp_path, "train", dataset="isic2018")
    with pytest.raises(DataError, match="no 'PH2 Dataset images' folder"):
        open_dataset(tmp_path, "all", dataset="ph2")
    with pytest.raises(DataError, match="HAM10000_metadata.csv"):
        open_dataset(tmp_path, "all", dataset="ham10000")
    with pytest.raises(ValueError, match="available: isic2017, isic2016, isic2018, ph2, ham10000, derm7pt"):
        open_dataset(tmp_path, "all", dataset="derm8pt")


def test_a_missing_mask_fails_the_image_where_every_image_has_one(tmp_path):
    _ph2(tmp_path)
    missing = tmp_path / "PH2Dataset" / "PH2 Dataset images" / "IMD003" / "IMD003_lesion" / "IMD003_lesion.bmp"
    missing.unlink()
    dataset = open_dataset(tmp_path, "all", dataset="ph2")
    assert dataset[0].mask is not None
    with pytest.raises(DataError, match="IMD003_lesion"):
        dataset[1]
    assert open_dataset(tmp_path, "all", read_masks=False, dataset="ph2")[1].mask is None


def test_dataset_config_key_reaches_the_scripts(tmp_path):
    _ph2(tmp_path)
    dataset, synthetic = open_data(
        DataSettings.from_config(merge(DATA_CONFIG, {"dataset": "ph2", "data_root": str(tmp_path), "split": "all"}))
    )
    assert not synthetic and dataset.ids == ["IMD002", "IMD003"]


# Derm7pt's release_v0: meta.csv rows -> images/<derm or clinic path>; the extension's case varies,
# and one listed image (row 4) is missing.
DERM7PT_ROWS = [
    ("melanoma (in situ)", "NEL/Nel026.jpg", "NEL/Nel026c.jpg"),
    ("clark nevus", "NEL/NEL025.JPG", "NEL/NEL025c.JPG"),
    ("seborrheic keratosis", "FBL/Fbl001.jpg", "FBL/Fbl001c.jpg"),  # on disk: Fbl001.JPG
    ("melanoma", "Aal/Aal002.jpg", "Aal/Aal002c.jpg"),
    ("basal cell carcinoma", "Gal/Gal009.jpg", "Gal/Gal009c.jpg"),
]  # not on disk


def _derm7pt(parent: Path) -> Path:
    base = parent / "release_v0"
    for i, (_, derm, clinic) in enumerate(DERM7PT_ROWS[:4]):
        on_disk = derm.replace(".jpg", ".JPG") if derm.startswith("FBL") else derm
        _write(base / "images" / on_disk, _pair(i)[0])
        _write(base / "images" / clinic, _pair(10 + i)[0][:40])  # clinical photographs: another size
    (base / "meta").mkdir(parents=True)
    with open(base / "meta" / "meta.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_num", "diagnosis", "seven_point_score", "clinic", "derm", "case_id"])
        writer.writerows([(i + 1, d, 1, c, m, f"case{i}") for i, (d, m, c) in enumerate(DERM7PT_ROWS)])
    for split, rows in {"train": [0, 1], "valid": [2], "test": [3, 4]}.items():
        with open(base / "meta" / f"{split}_indexes.csv", "w", newline="") as handle:
            csv.writer(handle).writerows([["indexes"], *[[r] for r in rows]])
    return base


def test_derm7pt_reads_splits_both_extension_cases_and_labels(tmp_path):
    base = _derm7pt(tmp_path)
    for root in (tmp_path, base):  # the folder holding release_v0/, or release_v0/ itself
        train = open_dataset(root, "train", dataset="derm7pt")
        assert train.ids == ["Nel026", "NEL025"]
        assert [train.labels[i]["melanoma"] for i in train.ids] == [1.0, 0.0]  # "melanoma (in situ)" counts
    valid = open_dataset(tmp_path, "valid", dataset="derm7pt")
    sample = valid[0]  # meta.csv says .jpg, the file is .JPG
    assert valid.ids == ["Fbl001"] and sample.image_path.name == "Fbl001.JPG"
    assert sample.image.shape == (60, 80, 3) and sample.mask is None and sample.labels == {"melanoma": 0.0}
    clinic = open_dataset(tmp_path, "train", dataset="derm7pt", derm7pt_image="clinic")
    assert clinic.ids == ["Nel026c", "NEL025c"] and clinic[1].image.shape == (40, 80, 3)
    everything = open_dataset(tmp_path, "all", dataset="derm7pt")
    assert len(everything) == 5 and everything.labels["Aal002"] == {"melanoma": 1.0}
    test = open_dataset(tmp_path, "test", dataset="derm7pt")
    assert test[0].image_id == "Aal002"
    with pytest.raises(DataError, match="Gal009.jpg"):  # a listed image that is missing fails when read
        test[1]


def test_derm7pt_missing_files_and_wrong_settings_are_named(tmp_path):
    base = _derm7pt(tmp_path)
    with pytest.raises(DataError, match=r"Derm7pt has the splits .*not 'val'"):
        open_dataset(tmp_path, "val", dataset="derm7pt")
    with pytest.raises(DataError, match="derm7pt_image must be one of"):
        open_dataset(tmp_path, "train", dataset="derm7pt", derm7pt_image="dermoscopic")
    (base / "meta" / "valid_indexes.csv").unlink()
    with pytest.raises(DataError, match="valid_indexes.csv"):
        open_dataset(tmp_path, "valid", dataset="derm7pt")
    (base / "meta" / "meta.csv").unlink()
    with pytest.raises(DataError, match="meta.csv"):
        open_dataset(tmp_path, "train", dataset="derm7pt")
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(DataError, match="no Derm7pt meta/ folder"):
        open_dataset(tmp_path / "elsewhere", "train", dataset="derm7pt")


def test_derm7pt_is_segmented_and_reported_not_scored(tmp_path):
    from cam_sam import segment

    _derm7pt(tmp_path / "data")
    args = {
        "dataset": "derm7pt",
        "data_root": tmp_path / "data",
        "split": "test",
        "preset": "fast",
        "out_dir": tmp_path / "run",
        "results_root": tmp_path,
        "n_overlays": 0,
    }
    metrics = segment.main([x for k, v in args.items() for x in ("--set", f"{k}={v}")])
    assert (tmp_path / "run" / "masks" / "Aal002.png").is_file()
    assert "Gal009.jpg" in metrics["failures"]["Gal009"]  # the missing image: recorded, run went on
    assert metrics["per_image"]["Aal002"]["final"]["confidence"] > 0  # reported: confidence, flag
    assert "iou" not in metrics["summary"].get("final", {})  # nothing scored, no IoU 0 for the failure
