"""ISIC 2017 loader.

Two layouts are read:

* the official unzip layout::

      ISIC-2017_{Training,Validation,Test_v2}_Data/ISIC_<id>.jpg
      ISIC-2017_{...}_Part1_GroundTruth/ISIC_<id>_segmentation.png
      ISIC-2017_{...}_Part3_GroundTruth.csv       (image_id,melanoma,seborrheic_keratosis)

* a nested layout ``<root>/{train,val,test}/`` holding the images, with the masks either beside
  them or in a ``masks/`` sub-folder (images may also sit in ``images/``) and an optional
  ``labels.csv`` of the same columns as the official Part 3 file.

``*_superpixels.png`` and metadata files are ignored. Images are returned at their original
resolution as (H, W, 3) uint8 RGB; masks as (H, W) bool (any value > 127 is lesion).
"""
from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from common.errors import DataError  # re-exported: ``from data.isic import DataError`` keeps working

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
OFFICIAL_SPLITS = {"train": "Training", "val": "Validation", "test": "Test_v2"}
LABEL_COLUMNS = ("melanoma", "seborrheic_keratosis")


@dataclass
class Sample:
    """One image. ``image``: (H, W, 3) uint8 RGB; ``mask``: (H, W) bool or None."""

    image_id: str
    image: np.ndarray
    mask: np.ndarray | None
    labels: dict[str, float] = field(default_factory=dict)
    image_path: Path | None = None


# PIL modes of one channel wider than 8 bits; their values are rescaled to 0..255 before use
# (PIL's own conversion clips them, turning a 16-bit scan into a white image).
WIDE_MODES = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I": None, "F": None}


def _to_8bit(img: Image.Image) -> Image.Image:
    """A wide single-channel image as 8-bit ``L``: 16-bit by its full range, 32-bit int or float
    by its own min..max."""
    arr = np.asarray(img).astype(np.float64)
    top = WIDE_MODES[img.mode]
    if top is None:
        low, high = float(arr.min()), float(arr.max())
        arr = (arr - low) * (255.0 / max(high - low, 1e-12))
    else:
        arr = arr * (255.0 / top)
    return Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), "L")


def _open(path: Path, kind: str, mode: str) -> tuple[np.ndarray, str]:
    """(pixels converted to ``mode``, the file's own mode); a missing or unreadable file raises
    :class:`DataError` naming it."""
    if not path.is_file():
        raise DataError(f"{kind} file not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            source = _to_8bit(img) if img.mode in WIDE_MODES else img
            return np.asarray(source.convert(mode)).copy(), img.mode
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(f"cannot read {kind} {path}: {exc}") from exc


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB. Grayscale, palette and RGBA are converted
    (with a warning for grayscale); an unreadable file raises :class:`DataError` naming it."""
    path = Path(path)
    rgb, mode = _open(path, "image", "RGB")
    if mode in ("L", "I", "I;16", "F", "1"):
        log.warning("%s is a grayscale image; its channel is repeated to make RGB", path)
    return rgb.astype(np.uint8, copy=False)


def read_mask(path: str | Path, expected_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Read a lesion mask as (H, W) bool (> 127 is lesion). Raises :class:`DataError` naming the
    file when it is missing, unreadable or of another size than ``expected_hw``."""
    path = Path(path)
    arr, _ = _open(path, "mask", "L")
    if expected_hw is not None and arr.shape != tuple(expected_hw):
        raise DataError(f"mask {path} is {arr.shape[1]}x{arr.shape[0]} (WxH) but its image is "
                        f"{expected_hw[1]}x{expected_hw[0]}")
    return arr > 127


def check_image_content(image: np.ndarray, source: str = "image") -> None:
    """Raise :class:`DataError` for an image nothing can be segmented in (constant or empty)."""
    if image.size == 0 or min(image.shape[:2]) < 8:
        raise DataError(f"{source}: image is too small ({image.shape[1]}x{image.shape[0]})")
    if int(image.max()) == int(image.min()):
        raise DataError(f"{source}: image is constant (every pixel is {int(image.max())})")


def _read_labels(csv_path: Path) -> dict[str, dict[str, float]]:
    if not csv_path.is_file():
        return {}
    labels: dict[str, dict[str, float]] = {}
    with open(csv_path, newline="") as handle:
        for row in csv.DictReader(handle):
            image_id = (row.get("image_id") or "").strip()
            if not image_id:
                continue
            try:
                labels[image_id] = {c: float(row[c]) for c in LABEL_COLUMNS if row.get(c) not in (None, "")}
            except ValueError as exc:
                raise DataError(f"bad label value in {csv_path} for {image_id}: {exc}") from exc
    return labels


def list_images(folder: Path) -> list[Path]:
    """The image files of ``folder``, sorted; superpixel and segmentation files (any case) left out."""
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES and not p.stem.lower().endswith(("_superpixels", "_segmentation")))


class ISICDataset:
    """ISIC 2017 images of one split (``train``, ``val`` or ``test``), read lazily.

    ``require_masks``: a missing mask is an error (raised, naming the file, when that sample is
    read); with False, samples without a mask get ``mask=None``. ``read_masks=False``: no mask
    file is ever opened and every sample has ``mask=None`` (pseudo-labelling, self-training).
    """

    def __init__(self, root: str | Path, split: str = "val", require_masks: bool = True,
                 read_masks: bool = True) -> None:
        self.root = Path(root)
        self.split = split
        self.require_masks = require_masks and read_masks
        self.read_masks = read_masks
        if split not in OFFICIAL_SPLITS:
            raise DataError(f"split must be one of {sorted(OFFICIAL_SPLITS)}, got {split!r}")
        if not self.root.is_dir():
            raise DataError(f"ISIC data folder not found: {self.root}")
        official = self.root / f"ISIC-2017_{OFFICIAL_SPLITS[split]}_Data"
        nested = self.root / split
        if official.is_dir():
            tag = OFFICIAL_SPLITS[split]
            self.image_dir = official
            self.mask_dir = self.root / f"ISIC-2017_{tag}_Part1_GroundTruth"
            self.labels = _read_labels(self.root / f"ISIC-2017_{tag}_Part3_GroundTruth.csv")
        elif nested.is_dir():
            self.image_dir = nested / "images" if (nested / "images").is_dir() else nested
            self.mask_dir = nested / "masks" if (nested / "masks").is_dir() else self.image_dir
            self.labels = _read_labels(nested / "labels.csv")
        else:
            raise DataError(f"no {split!r} split under {self.root}: expected {official.name}/ or {split}/")
        self.image_paths = list_images(self.image_dir)
        if not self.image_paths:
            raise DataError(f"no images in {self.image_dir}")
        self.ids = [p.stem for p in self.image_paths]

    def __len__(self) -> int:
        return len(self.image_paths)

    def mask_path(self, image_id: str) -> Path:
        return self.mask_dir / f"{image_id}_segmentation.png"

    def __getitem__(self, index: int) -> Sample:
        path = self.image_paths[index]
        image_id = path.stem
        image = read_image(path)
        mask = None
        if self.read_masks:
            mask_path = self.mask_path(image_id)
            if mask_path.is_file() or self.require_masks:
                mask = read_mask(mask_path, expected_hw=image.shape[:2])
        return Sample(image_id, image, mask, dict(self.labels.get(image_id, {})), path)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]


class ImageFolderDataset:
    """A plain folder of a user's images; masks optional (``<mask_dir>/<stem>_segmentation.png``
    or ``<mask_dir>/<stem>.png``)."""

    def __init__(self, image_dir: str | Path, mask_dir: str | Path | None = None, read_masks: bool = True) -> None:
        self.image_dir = Path(image_dir)
        if not self.image_dir.is_dir():
            raise DataError(f"image folder not found: {self.image_dir}")
        self.mask_dir = Path(mask_dir) if mask_dir and read_masks else None
        self.image_paths = list_images(self.image_dir)
        if not self.image_paths:
            raise DataError(f"no images in {self.image_dir}")
        self.ids = [p.stem for p in self.image_paths]
        self.labels: dict[str, dict[str, float]] = {}

    def __len__(self) -> int:
        return len(self.image_paths)

    def _mask_path(self, stem: str) -> Path | None:
        if self.mask_dir is None:
            return None
        for name in (f"{stem}_segmentation.png", f"{stem}.png"):
            if (self.mask_dir / name).is_file():
                return self.mask_dir / name
        return None

    def __getitem__(self, index: int) -> Sample:
        path = self.image_paths[index]
        image = read_image(path)
        mask_path = self._mask_path(path.stem)
        mask = read_mask(mask_path, expected_hw=image.shape[:2]) if mask_path else None
        return Sample(path.stem, image, mask, {}, path)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]


def subset_ids(dataset: ISICDataset | ImageFolderDataset, every: int = 1,
               limit: int | None = None) -> tuple[list[str], dict[str, int]]:
    """(every ``every``-th id, at most ``limit`` of them; each id's index in ``dataset``)."""
    ids = dataset.ids[:: int(every)][: limit or None]
    return ids, {image_id: i for i, image_id in enumerate(dataset.ids)}
