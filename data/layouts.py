"""Other dermoscopy datasets in their official layouts: ISIC 2016 and 2018 (Task 1), PH2,
HAM10000 and Derm7pt. Each layout is a function ``root, split -> [Entry]``; :class:`LayoutDataset` reads the
entries lazily with the same interface as :class:`data.isic.ISICDataset` (``ids``,
``image_paths``, ``labels``, ``mask_path``, samples of (H, W, 3) uint8 and (H, W) bool).

Layouts (``root`` is the folder the archive unzips into)::

    isic2016  ISBI2016_ISIC_Part1_{Training,Test}_Data/ISIC_<id>.jpg
              ISBI2016_ISIC_Part1_{Training,Test}_GroundTruth/ISIC_<id>_Segmentation.png
              ISBI2016_ISIC_Part3_{Training,Test}_GroundTruth.csv   (id, benign|malignant or 0|1; no header)
    isic2018  ISIC2018_Task1-2_{Training,Validation,Test}_Input/ISIC_<id>.jpg
              ISIC2018_Task1_{Training,Validation,Test}_GroundTruth/ISIC_<id>_segmentation.png
    ph2       [PH2Dataset/]PH2 Dataset images/IMD<nnn>/IMD<nnn>_Dermoscopic_Image/IMD<nnn>.bmp
              .../IMD<nnn>_lesion/IMD<nnn>_lesion.bmp                (one split: every image)
    ham10000  HAM10000_metadata.csv (image_id, dx, ...), images in HAM10000_images_part_1/,
              HAM10000_images_part_2/ or HAM10000_images/; masks, where the user has them, in
              HAM10000_segmentations_lesion_tschandl/ISIC_<id>_segmentation.png   (one split)
    derm7pt   [release_v0/]meta/meta.csv (one row per case; columns diagnosis, derm, clinic, ...)
              [release_v0/]meta/{train,valid,test}_indexes.csv   (column "indexes": 0-based rows of meta.csv)
              [release_v0/]images/<derm or clinic path>, e.g. NEL/Nel026.jpg, NEL/NEL025.JPG
              splits train, valid, test and all; ``image`` option "derm" (dermoscopic, the default)
              or "clinic"; no masks (segmented and reported, never scored)

Labels: ``melanoma`` (1.0 / 0.0) where the dataset says (ISIC 2016 Part 3, HAM10000's dx == "mel",
Derm7pt's diagnosis starting with "melanoma").

Masks: every ISIC 2016 / 2018 and PH2 image has one, so a missing mask file is an error naming it
(the image then fails and counts IoU 0, as in ISIC 2017); HAM10000's masks are optional (an image
without one is segmented but not scored); Derm7pt has none. An image file that is missing fails that
image when it is read (a run records it and goes on), naming the file.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import SettingsError
from data.isic import DataError, Sample, list_images, read_sample

log = logging.getLogger(__name__)

SINGLE_SPLIT = "all"  # the split of datasets that have no official splits (PH2, HAM10000)


@dataclass
class Entry:
    image_id: str
    image_path: Path
    mask_path: Path | None
    labels: dict[str, float] = field(default_factory=dict)


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")
    found = list_images(folder)
    if not found:
        raise DataError(f"no images in {folder}")
    return found


def _split_tag(split: str, tags: dict[str, str], dataset: str) -> str:
    if split not in tags:
        raise DataError(f"{dataset} has the splits {sorted(tags)}, not {split!r}")
    return tags[split]


def _isic2016_labels(csv_path: Path) -> dict[str, dict[str, float]]:
    """Part 3 labels: 'malignant'/'benign' (training) or 1/0 (test), one ``id,value`` row each."""
    if not csv_path.is_file():
        return {}
    labels = {}
    with open(csv_path, newline="") as handle:
        for row in csv.reader(handle):
            if len(row) < 2 or not row[0].startswith("ISIC_"):
                continue
            value = row[1].strip().lower()
            try:
                labels[row[0]] = {
                    "melanoma": 1.0 if value == "malignant" else 0.0 if value == "benign" else float(value)
                }
            except ValueError as exc:
                raise DataError(f"bad label value in {csv_path} for {row[0]}: {row[1]!r}") from exc
    return labels


def isic2016_entries(root: Path, split: str) -> list[Entry]:
    tag = _split_tag(split, {"train": "Training", "test": "Test"}, "ISIC 2016")
    masks = root / f"ISBI2016_ISIC_Part1_{tag}_GroundTruth"
    labels = _isic2016_labels(root / f"ISBI2016_ISIC_Part3_{tag}_GroundTruth.csv")
    return [
        Entry(p.stem, p, masks / f"{p.stem}_Segmentation.png", labels.get(p.stem, {}))
        for p in _images(root / f"ISBI2016_ISIC_Part1_{tag}_Data")
    ]


def isic2018_entries(root: Path, split: str) -> list[Entry]:
    tag = _split_tag(split, {"train": "Training", "val": "Validation", "test": "Test"}, "ISIC 2018")
    masks = root / f"ISIC2018_Task1_{tag}_GroundTruth"
    return [
        Entry(p.stem, p, masks / f"{p.stem}_segmentation.png") for p in _images(root / f"ISIC2018_Task1-2_{tag}_Input")
    ]


def ph2_entries(root: Path, split: str) -> list[Entry]:
    _split_tag(split, {SINGLE_SPLIT: ""}, "PH2")
    base = next(
        (p for p in (root / "PH2 Dataset images", root / "PH2Dataset" / "PH2 Dataset images") if p.is_dir()), None
    )
    if base is None:
        raise DataError(f"no 'PH2 Dataset images' folder under {root}")
    entries = []
    for case in sorted(p for p in base.iterdir() if p.is_dir()):
        images = _images(case / f"{case.name}_Dermoscopic_Image")
        masks = sorted((case / f"{case.name}_lesion").glob(f"{case.name}_lesion.*"))
        entries.append(
            Entry(case.name, images[0], masks[0] if masks else case / f"{case.name}_lesion" / f"{case.name}_lesion.bmp")
        )
    if not entries:
        raise DataError(f"no IMD cases in {base}")
    return entries


def ham10000_entries(root: Path, split: str) -> list[Entry]:
    _split_tag(split, {SINGLE_SPLIT: ""}, "HAM10000")
    metadata = root / "HAM10000_metadata.csv"
    if not metadata.is_file():
        raise DataError(f"HAM10000 metadata not found: {metadata}")
    folders = [
        root / f for f in ("HAM10000_images_part_1", "HAM10000_images_part_2", "HAM10000_images") if (root / f).is_dir()
    ]
    located = {p.stem: p for folder in folders for p in _images(folder)}
    masks = root / "HAM10000_segmentations_lesion_tschandl"
    entries = []
    with open(metadata, newline="") as handle:
        for row in csv.DictReader(handle):
            image_id = row.get("image_id", "").strip()
            if image_id not in located:
                raise DataError(
                    f"{metadata} lists {image_id!r} but no image of that name is in {[str(f) for f in folders]}"
                )
            entries.append(
                Entry(
                    image_id,
                    located[image_id],
                    masks / f"{image_id}_segmentation.png",
                    {"melanoma": float(row.get("dx", "").strip() == "mel")},
                )
            )
    return entries


DERM7PT_SPLITS = {
    "train": "train_indexes.csv",
    "valid": "valid_indexes.csv",
    "test": "test_indexes.csv",
    SINGLE_SPLIT: None,
}
DERM7PT_IMAGES = ("derm", "clinic")  # meta.csv's columns: the dermoscopic or the clinical photograph


def _derm7pt_base(root: Path) -> Path:
    """``root`` is ``release_v0/`` itself or the folder that holds it."""
    for base in (root / "release_v0", root):
        if (base / "meta").is_dir():
            return base
    raise DataError(f"no Derm7pt meta/ folder in {root} or {root / 'release_v0'}")


def _read_csv_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise DataError(f"Derm7pt file not found: {path}")
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _split_rows(meta_dir: Path, split: str, n_rows: int) -> list[int]:
    _split_tag(split, {k: k for k in DERM7PT_SPLITS}, "Derm7pt")
    if DERM7PT_SPLITS[split] is None:
        return list(range(n_rows))
    path = meta_dir / DERM7PT_SPLITS[split]
    try:
        rows = [int(row["indexes"]) for row in _read_csv_rows(path)]
    except (KeyError, ValueError) as exc:
        raise DataError(f"{path}: expected one integer column 'indexes' ({exc})") from exc
    if any(not 0 <= r < n_rows for r in rows):
        raise DataError(f"{path} names rows outside meta.csv's {n_rows}")
    return rows


def _case_insensitive(path: Path) -> Path:
    """``path`` itself, or the file of its folder whose name differs only in case (Derm7pt mixes
    ``.jpg`` and ``.JPG``); ``path`` unchanged when there is neither (reading it then names it)."""
    if path.is_file() or not path.parent.is_dir():
        return path
    name = path.name.lower()
    return next((p for p in sorted(path.parent.iterdir()) if p.name.lower() == name), path)


def derm7pt_entries(root: Path, split: str, image: str = "derm") -> list[Entry]:
    if image not in DERM7PT_IMAGES:
        raise DataError(f"derm7pt_image must be one of {DERM7PT_IMAGES}, not {image!r}")
    base = _derm7pt_base(root)
    meta = _read_csv_rows(base / "meta" / "meta.csv")
    entries, seen = [], set()
    for row_index in _split_rows(base / "meta", split, len(meta)):
        row = meta[row_index]
        relative = (row.get(image) or "").strip()
        if not relative:
            raise DataError(f"{base / 'meta' / 'meta.csv'} row {row_index} has no {image!r} image path")
        image_id = Path(relative).stem
        if image_id in seen:  # the same file name in two folders: keep both apart
            image_id = str(Path(relative).with_suffix("")).replace("/", "_")
        seen.add(image_id)
        diagnosis = (row.get("diagnosis") or "").strip().lower()
        entries.append(
            Entry(
                image_id,
                _case_insensitive(base / "images" / relative),
                None,
                {"melanoma": float(diagnosis.startswith("melanoma"))},
            )
        )
    return entries


LAYOUTS: dict[str, Callable[..., list[Entry]]] = {
    "isic2016": isic2016_entries,
    "isic2018": isic2018_entries,
    "ph2": ph2_entries,
    "ham10000": ham10000_entries,
    "derm7pt": derm7pt_entries,
}
MASKS_OPTIONAL = frozenset({"ham10000", "derm7pt"})  # layouts whose images need not all have a mask


class LayoutDataset:
    """One split of a dataset in one of :data:`LAYOUTS`, read lazily. A missing mask raises
    :class:`DataError` naming the file, except in :data:`MASKS_OPTIONAL` layouts, where it gives
    ``mask=None``; ``read_masks=False``: no mask file is ever opened; ``max_side``: images of at least
    twice that longer side are read reduced (:func:`data.isic.working_shape`)."""

    def __init__(
        self,
        layout: str,
        root: str | Path,
        split: str,
        read_masks: bool = True,
        options: dict[str, str] | None = None,
        max_side: int | None = None,
    ) -> None:
        """``options``: keyword arguments of the layout's function (``derm7pt``: ``image``)."""
        if layout not in LAYOUTS:
            raise SettingsError(f"unknown dataset layout {layout!r}; available: isic2017, {', '.join(LAYOUTS)}")
        self.root, self.split, self.read_masks, self.max_side = Path(root), split, read_masks, max_side
        self.require_masks = layout not in MASKS_OPTIONAL
        if not self.root.is_dir():
            raise DataError(f"{layout} data folder not found: {self.root}")
        self.entries = LAYOUTS[layout](self.root, split, **(options or {}))
        self.ids = [e.image_id for e in self.entries]
        self.image_paths = [e.image_path for e in self.entries]
        self.labels = {e.image_id: e.labels for e in self.entries if e.labels}
        self.has_masks = any(e.mask_path is not None for e in self.entries)  # False: nothing to score
        self._index = {e.image_id: e for e in self.entries}

    def __len__(self) -> int:
        return len(self.entries)

    def mask_path(self, image_id: str) -> Path | None:
        return self._index[image_id].mask_path

    def __getitem__(self, index: int) -> Sample:
        entry = self.entries[index]
        mask_path = None
        if self.read_masks and entry.mask_path is not None and (self.require_masks or entry.mask_path.is_file()):
            mask_path = entry.mask_path
        return read_sample(entry.image_id, entry.image_path, mask_path, entry.labels, self.max_side)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]
