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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from common.errors import DataError  # re-exported: ``from data.isic import DataError`` keeps working

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
OFFICIAL_SPLITS = {"train": "Training", "val": "Validation", "test": "Test_v2"}
LABEL_COLUMNS = ("melanoma", "seborrheic_keratosis")


@dataclass
class Sample:
    """One image. ``image``: (h, w, 3) uint8 RGB; ``mask``: (H, W) bool or None, at the image's
    own size (H, W), which is ``image``'s unless the image was reduced on reading (``max_side``
    of the datasets, :func:`open_image`): then ``original_hw`` is (H, W)."""

    image_id: str
    image: np.ndarray
    mask: np.ndarray | None
    labels: dict[str, float] = field(default_factory=dict)
    image_path: Path | None = None
    original_hw: tuple[int, int] | None = None

    @property
    def hw(self) -> tuple[int, int]:
        """(H, W) of the image itself (its file, as a viewer shows it)."""
        return self.original_hw or self.image.shape[:2]


def read_sample(
    image_id: str, image_path: Path, mask_path: Path | None, labels: dict[str, float], max_side: int | None = None
) -> Sample:
    """One :class:`Sample`: the image (reduced when much larger than ``max_side``, :func:`open_image`) and,
    given ``mask_path``, its mask at the image's own size."""
    image, hw = open_image(image_path, max_side)
    mask = read_mask(mask_path, expected_hw=hw) if mask_path is not None else None
    return Sample(image_id, image, mask, dict(labels), image_path, hw if hw != image.shape[:2] else None)


# PIL modes of one channel wider than 8 bits; their values are rescaled to 0..255 before use
# (PIL's own conversion clips them, turning a 16-bit scan into a white image).
WIDE_MODES = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I": None, "F": None}
GREY_MODES = ("L", "LA", "I", "I;16", "I;16B", "I;16L", "F", "1")


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


def reduction(hw: tuple[int, int], max_side: int | None) -> int:
    """The largest power of two k that keeps the longer side of ``hw`` divided by k at least
    ``max_side``: 1 when it is no larger (or ``max_side`` is None or 0)."""
    k = 1
    while max_side and max(hw) >= 2 * k * max_side:
        k *= 2
    return k


def working_shape(hw: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """(H, W) an image of ``hw`` is segmented at: reduced by :func:`reduction` k, (ceil(H / k),
    ceil(W / k)), as a JPEG decoder's 1/k scaling gives it; so its longer side lies between
    ``max_side`` and twice that, and ``hw`` itself when it is no larger than ``max_side``.
    Powers of two, not ``max_side`` exactly: the network sees a 6000 x 4000 photo reduced once,
    as from the photo itself (within the change a JPEG re-encoding makes), not resampled twice."""
    k = reduction(hw, max_side)
    return -(-hw[0] // k), -(-hw[1] // k)


def mask_at_size(mask: np.ndarray | None, hw: tuple[int, int]) -> np.ndarray | None:
    """A (h, w) bool mask of an image read reduced (:func:`open_image`) brought back to the
    image's own (H, W): bilinear on 0/255, split at half, so that its outline is smooth rather
    than in steps of the reduction. A mask already of size ``hw`` (or None) is returned as it is."""
    if mask is None or mask.shape == tuple(hw):
        return mask
    full = cv2.resize(
        np.multiply(mask.view(np.uint8), 255, dtype=np.uint8), (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR
    )
    cv2.threshold(full, 127, 1, cv2.THRESH_BINARY, dst=full)  # in place: one array of H x W bytes
    return full.view(bool)


# EXIF orientations (2-8) that turn the stored pixels by 90 degrees: the viewer shows W x H as H x W.
_TURNED = (5, 6, 7, 8)


def _decode(path: Path, kind: str, max_side: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """(the file's pixels as its viewer shows them: EXIF orientation applied, the (H, W) it shows).
    With ``max_side``, a JPEG of :func:`reduction` k > 1 is decoded reduced (``Image.draft``: 1/2, 1/4 or 1/8
    inside the decoder) to no less than :func:`working_shape`; other formats are decoded whole. A
    missing or unreadable file raises :class:`DataError` naming it."""
    if not path.is_file():
        raise DataError(f"{kind} file not found: {path}")
    try:
        img = Image.open(path)
        try:
            orientation = img.getexif().get(0x0112, 1)
        except Exception:  # noqa: BLE001 - a malformed EXIF block is ignored, as viewers do
            orientation = 1
        w, h = img.size
        shown = (w, h) if orientation in _TURNED else (h, w)
        k = reduction((h, w), max_side)
        if k > 1:
            img.draft("RGB", (w // k, h // k))  # decoded at 1/k (k <= 8); a no-op outside JPEG
        img.load()
        if orientation != 1:
            img = ImageOps.exif_transpose(img)
        return img, shown
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot read {kind} {path}: {exc}") from exc


def open_image(path: str | Path, max_side: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """(the image as (h, w, 3) uint8 RGB, the (H, W) of the image itself), as a viewer shows it
    (EXIF orientation applied). With ``max_side``, an image whose longer side is at least twice
    that comes reduced to :func:`working_shape` (a JPEG decoded reduced inside its decoder, other
    formats decoded whole and area-averaged), so a 6000 x 4000 photo costs little more than a
    small one; else (h, w) == (H, W). Grayscale,
    palette and RGBA are converted (with a warning for grayscale); an unreadable file raises
    :class:`DataError` naming it."""
    path = Path(path)
    img, hw = _decode(path, "image", max_side)
    with img:
        mode = img.mode
        source = _to_8bit(img) if mode in WIDE_MODES else img
        rgb = np.asarray(source.convert("RGB"))
    if mode in GREY_MODES:
        log.warning("%s is a grayscale image; its channel is repeated to make RGB", path)
    work = working_shape(hw, max_side)
    if rgb.shape[:2] != work:
        return cv2.resize(rgb, (work[1], work[0]), interpolation=cv2.INTER_AREA), hw
    return np.array(rgb, dtype=np.uint8), hw  # a writable copy (PIL's array is read-only)


def read_image(path: str | Path, max_side: int | None = None) -> np.ndarray:
    """The image file as (H, W, 3) uint8 RGB, as a viewer shows it (EXIF orientation applied);
    with ``max_side``, reduced to :func:`working_shape` (:func:`open_image`)."""
    return open_image(path, max_side)[0]


# A mask whose values are neither one value on 0 nor two clusters (soft edges from resampling,
# JPEG noise) is refused: at least this share of its pixels must lie within a quarter of its
# range from 0 or from its largest value.
SOFT_MASK_EXTREMES = 0.95


def _mask_values(img: Image.Image, path: Path) -> np.ndarray:
    """One value per pixel of a mask image, 0 for background: grey levels as they are (8, 16 or
    32 bits), a colour's largest channel (after checking the foreground is one colour), or the
    alpha channel where the colour is the same everywhere and only transparency draws the lesion."""
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode == "1":
        img = img.convert("L")
    arr = np.asarray(img)
    if arr.ndim == 2:
        return arr
    colour, alpha = (arr[..., :-1], arr[..., -1]) if img.mode in ("RGBA", "LA", "PA") else (arr, None)
    if alpha is not None and alpha.min() != alpha.max():
        flat = colour.reshape(-1, colour.shape[-1])
        if (flat == flat[0]).all():  # one colour, drawn by its transparency
            return alpha
        colour = np.where((alpha > 0)[..., None], colour, 0)
    value = colour.max(axis=-1)
    if colour.shape[-1] > 1 and np.count_nonzero(np.bincount(value.ravel())) == 2:
        foreground = colour[value > 0]
        if not (foreground == foreground[0]).all():
            raise DataError(
                f"mask {path} is not binary: its foreground has several colours "
                f"(a label map?); save the lesion as one value on a 0 background"
            )
    return value


def _binary(values: np.ndarray, path: Path) -> np.ndarray:
    """The lesion of a mask's values (:func:`_mask_values`): one value on 0 is the lesion, a
    constant mask is all lesion or none, and soft edges split at half the largest value."""
    if values.dtype in (np.uint8, np.uint16):
        counts = np.bincount(values.ravel(), minlength=1)
        present = np.flatnonzero(counts)
    else:
        present = np.unique(values)
        counts = None
    if len(present) == 1:
        return np.full(values.shape, bool(present[0] > 0))
    low, top = present[0], present[-1]
    if len(present) == 2:
        if low != 0:
            raise DataError(
                f"mask {path} is not binary: its two values {low} and {top} include no 0 "
                f"(background); save the lesion as one value on a 0 background"
            )
        return values == top
    if top <= 0 or low < 0:
        raise DataError(f"mask {path} is not binary: values from {low} to {top}")
    if counts is not None:
        edges = np.arange(len(counts))
        extremes = counts[(edges <= top / 4) | (edges >= 3 * top / 4)].sum() / values.size
    else:
        extremes = float(((values <= top / 4) | (values >= 3 * top / 4)).mean())
    if extremes < SOFT_MASK_EXTREMES:
        raise DataError(
            f"mask {path} is not binary: {len(present)} values from {low} to {top}, "
            f"{1 - extremes:.0%} of the pixels between them (a label map or a probability map?); "
            f"save the lesion as one value on a 0 background"
        )
    return values > top / 2


def read_mask(path: str | Path, expected_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Read a lesion mask as (H, W) bool, as a viewer shows it (EXIF orientation applied), from
    any common binary encoding: one value on a 0 background in 8-bit (0/255, 0/1), 16-bit, 1-bit,
    32-bit or float grey, a palette, or RGB(A) of one foreground colour (or one colour drawn by its
    transparency); grey edges (a resampled or JPEG-saved mask) split at half the largest value.
    Raises :class:`DataError` naming the file when it is missing, unreadable, not binary (a label
    map, a probability map) or of another size than ``expected_hw``."""
    path = Path(path)
    img, _ = _decode(path, "mask")
    with img:
        values = _mask_values(img, path)
    if expected_hw is not None and values.shape != tuple(expected_hw):
        raise DataError(
            f"mask {path} is {values.shape[1]}x{values.shape[0]} (WxH) but its image is "
            f"{expected_hw[1]}x{expected_hw[0]}"
        )
    return _binary(values, path)


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
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.stem.lower().endswith(("_superpixels", "_segmentation"))
    )


class ISICDataset:
    """ISIC 2017 images of one split (``train``, ``val`` or ``test``), read lazily.

    ``require_masks``: a missing mask is an error (raised, naming the file, when that sample is
    read); with False, samples without a mask get ``mask=None``. ``read_masks=False``: no mask
    file is ever opened and every sample has ``mask=None`` (pseudo-labelling, self-training).
    ``max_side``: images of at least twice that longer side are read reduced (:func:`working_shape`).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "val",
        require_masks: bool = True,
        read_masks: bool = True,
        max_side: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.max_side = max_side
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
        mask_path = self.mask_path(image_id) if self.read_masks else None
        if mask_path is not None and not (mask_path.is_file() or self.require_masks):
            mask_path = None
        return read_sample(image_id, path, mask_path, self.labels.get(image_id, {}), self.max_side)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]


class ImageFolderDataset:
    """A plain folder of a user's images; masks optional (``<mask_dir>/<stem>_segmentation.png``
    or ``<mask_dir>/<stem>.png``); ``max_side`` as for :class:`ISICDataset`."""

    def __init__(
        self,
        image_dir: str | Path,
        mask_dir: str | Path | None = None,
        read_masks: bool = True,
        max_side: int | None = None,
    ) -> None:
        self.image_dir = Path(image_dir)
        self.max_side = max_side
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
        return read_sample(path.stem, path, self._mask_path(path.stem), {}, self.max_side)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]


def subset_ids(
    dataset: ISICDataset | ImageFolderDataset, every: int = 1, limit: int | None = None
) -> tuple[list[str], dict[str, int]]:
    """(every ``every``-th id, at most ``limit`` of them; each id's index in ``dataset``)."""
    ids = dataset.ids[:: int(every)][: limit or None]
    return ids, {image_id: i for i, image_id in enumerate(dataset.ids)}
