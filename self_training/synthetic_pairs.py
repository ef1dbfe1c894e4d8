"""Synthetic training pairs whose mask is known by construction: a pseudo-labelled lesion (the
donor) pasted into another frame whose own lesion was removed (the background), so the target is
right whatever the teacher could see; no mask file is read (docs/method.md, "Synthetic halo pairs").

Images are (H, W, 3) uint8 RGB and masks (H, W) bool, all at the pair's side ``size``. A pair
(:func:`make_pair`) is:

- **the background** (:func:`remove_lesion`): the frame's pseudo-mask, grown, inpainted at low
  resolution plus the fine texture of shifted patches of the same frame's skin; the frame keeps
  its hair, ink, bubbles, rulers and vignette. With ``unknown_grow`` the removed lesion's
  surroundings are left out of the loss (a teacher that cut a faint lesion short leaves its rim).
- **the lesion**: the donor cut out, turned, stretched to a drawn *area*, placed in the field of
  view, its CIELAB colour kept relative to the skin, blended with a feathered alpha times a drawn
  *strength* (below 1: a faint lesion whose extent is still the whole mask).
- **a halo** (``halo_share`` of the lesions): a faint ring, reddish or of the lesion's rim colour,
  that the target includes, as the ISIC annotators include such a halo.
- **kinds**: one lesion, two (the target is both), or none (an empty target).

Areas and strengths are drawn uniformly among bins, donors uniformly among bins of their colour
contrast with their skin, so faint and small lesions are as common as the easy ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from cam_sam.trust import colour_contrast, contrast_lab, field_and_rim
from common.geometry import largest_component


@dataclass(frozen=True)
class PasteConfig:
    """Every setting that changes a pair. Areas are shares of the frame; strengths are alphas."""

    # fmt: off
    size: int = 256                         # px, side of a pair (the student's input side)
    area_bins: tuple[tuple[float, float], ...] = ((0.01, 0.05), (0.05, 0.15), (0.15, 0.35), (0.35, 0.7))
    strength_bins: tuple[tuple[float, float], ...] = ((0.45, 0.7), (0.7, 0.9), (0.9, 1.0))
    aspect_jitter: float = 0.25             # the lesion's width / height stretched by up to this factor (log-uniform)
    feather: float = 0.08                   # alpha ramp sigma, a share of the lesion's equivalent radius
    two_lesion_share: float = 0.1           # share of pairs with two lesions (each from the two smallest area bins)
    empty_share: float = 0.05               # share of pairs with no lesion (the background alone)
    hole_grow: float = 0.05                 # the removed lesion's mask is grown by this share of the side
    unknown_grow: float = 0.0               # share of the side: the removed lesion's mask grown by this is
                                            # *unknown* in the target (no loss there), since a teacher that cut a
                                            # faint lesion short leaves its rim behind, which would be taught as
                                            # skin (the shipped student's halo pairs: 0.1); 0: every pixel is known
    inpaint_side: int = 48                  # px, the hole is filled smoothly at this resolution
    texture_sigma: float = 8.0              # px, the blur whose residue is the cloned skin texture (pores, hair)
    shift_tries: int = 40                   # random shifts tried for the texture patch
    min_in_field: float = 0.85              # share of a pasted lesion that must lie in the field of view
    place_tries: int = 30                   # random places tried for it
    halo_share: float = 0.0                 # share of pasted lesions given a faint halo that the target includes
    halo_max_area: float = 0.35             # share of the frame: larger lesions get no halo (it would fill the field)
    halo_width_bins: tuple[tuple[float, float], ...] = ((0.15, 0.4), (0.4, 0.8))   # the halo's mean width, a
                                            # share of the lesion's equivalent radius; along the lesion it
    halo_wobble: float = 0.4                # wobbles by this share of the width (smooth noise)
    halo_strength_bins: tuple[tuple[float, float], ...] = ((0.35, 0.7),)   # the halo's alpha, a share of the lesion's
    halo_red_share: float = 0.5             # share of halos that are reddish; the rest take the lesion's rim colour
    halo_red_lab: tuple[float, float, float] = (-6.0, 20.0, 6.0)   # CIELAB shift from the skin of a reddish halo
                                            # at full alpha (darker, redder, a little yellower)
    halo_colour_blur: float = 0.3           # a rim-colour halo's colour is the lesion's edge colour carried outwards,
                                            # blurred by this share of the lesion's equivalent radius (0: not
                                            # blurred, which leaves radial streaks: the pairs
                                            # of the shipped student's halo fine-tune)
    halo_min_contrast: float = 6.0          # CIELAB distance between the halo and the skin around it below which
                                            # the halo is left out (the target is the lesion alone): a halo
                                            # nobody could see is no target
    min_contrast: float = 10.0              # a pasted lesion fainter than this (colour contrast with the skin
                                            # around it) is pasted again at full strength, else left out: a
                                            # target nobody could see would teach the student to guess
    # fmt: on


@dataclass
class Donor:
    """A lesion to paste: ``patch`` (h, w, 3) uint8 around it, ``mask`` (h, w) bool, and the mean
    CIELAB colour (float32, (3,)) of the skin ring around it in its own frame."""

    image_id: str
    patch: np.ndarray
    mask: np.ndarray
    skin_lab: np.ndarray
    contrast: float


def _lab(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 CIELAB (L 0-100) of a uint8 RGB image."""
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def _rgb(lab: np.ndarray) -> np.ndarray:
    return np.clip(cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _ring(mask: np.ndarray, width: int) -> np.ndarray:
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    return cv2.dilate(mask.astype(np.uint8), disc).astype(bool) & ~mask


def mask_contrast(image: np.ndarray, mask: np.ndarray) -> float:
    """The confidence's colour contrast (:func:`cam_sam.trust.colour_contrast`) of ``mask`` in
    ``image``: how much the lesion differs from the skin around it (lightness-weighted CIELAB)."""
    lab = contrast_lab(image)
    small = cv2.resize(mask.astype(np.uint8), lab.shape[1::-1], interpolation=cv2.INTER_NEAREST).astype(bool)
    fov, _ = field_and_rim(image)
    return colour_contrast(lab, small, fov)


def make_donor(image_id: str, image: np.ndarray, mask: np.ndarray) -> Donor | None:
    """The donor cut from a frame and its pseudo-mask (largest component), or None without one."""
    lesion = largest_component(mask)
    if not lesion.any():
        return None
    ring = _ring(lesion, max(2, round(0.03 * max(mask.shape))))
    if ring.sum() < 10:
        return None
    ys, xs = np.nonzero(lesion)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    skin_lab = _lab(image)[ring].mean(0)
    return Donor(
        image_id,
        image[y0:y1, x0:x1].copy(),
        lesion[y0:y1, x0:x1].copy(),
        skin_lab.astype(np.float32),
        mask_contrast(image, lesion),
    )


def _feathered(mask: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W) float32 in [0, 1]: the mask blurred, 0.5 on its edge."""
    if sigma <= 0.3:
        return mask.astype(np.float32)
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma)


def _shift_onto(hole: np.ndarray, valid: np.ndarray, rng: np.random.Generator, tries: int) -> tuple[int, int]:
    """The shift (dy, dx), among ``tries`` random ones, that moves the most of ``hole``'s pixels onto
    ``valid`` skin."""
    h, w = hole.shape
    ys, xs = np.nonzero(hole)
    best, best_count = (0, 0), -1
    for _ in range(tries):
        dy, dx = int(rng.integers(-h // 2, h // 2 + 1)), int(rng.integers(-w // 2, w // 2 + 1))
        ty, tx = ys + dy, xs + dx
        inside = (ty >= 0) & (ty < h) & (tx >= 0) & (tx < w)
        count = int(valid[ty[inside], tx[inside]].sum())
        if count > best_count:
            best, best_count = (dy, dx), count
    return best


def cloned_texture(
    image: np.ndarray,
    hole: np.ndarray,
    valid: np.ndarray,
    rng: np.random.Generator,
    config: PasteConfig,
    patches: int = 3,
) -> np.ndarray:
    """(H, W, 3) float32: inside ``hole``, the fine texture (image minus its blur) of shifted
    patches of ``valid`` skin; up to ``patches`` shifts, each filling the hole pixels the ones
    before left uncovered; 0 elsewhere and where no patch reached."""
    source = image.astype(np.float32)
    texture = source - cv2.GaussianBlur(source, (0, 0), config.texture_sigma)
    h, w = hole.shape
    out = np.zeros_like(texture)
    todo = hole.copy()
    for _ in range(patches):
        if not todo.any():
            break
        dy, dx = _shift_onto(todo, valid, rng, config.shift_tries)
        ys, xs = np.nonzero(todo)
        ty, tx = ys + dy, xs + dx
        ok = (ty >= 0) & (ty < h) & (tx >= 0) & (tx < w)
        ok[ok] = valid[ty[ok], tx[ok]]
        out[ys[ok], xs[ok]] = texture[ty[ok], tx[ok]]
        todo[ys[ok], xs[ok]] = False
    return out


def remove_lesion(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, config: PasteConfig = PasteConfig()
) -> np.ndarray:
    """The frame with the (pseudo-)lesion ``mask`` removed: a smooth low-resolution fill plus the
    texture of a shifted patch of the frame's own skin, feathered in. (H, W, 3) uint8."""
    h, w = mask.shape
    grow = max(1, round(config.hole_grow * max(h, w)))
    hole = cv2.dilate(mask.astype(np.uint8), np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)).astype(bool)
    if not hole.any():
        return image.copy()
    scale = config.inpaint_side / max(h, w)
    small_hw = (max(8, round(w * scale)), max(8, round(h * scale)))
    small = cv2.resize(image, small_hw, interpolation=cv2.INTER_AREA)
    small_hole = cv2.resize(hole.astype(np.uint8), small_hw, interpolation=cv2.INTER_NEAREST)
    small_hole = cv2.dilate(small_hole, np.ones((3, 3), np.uint8))
    smooth = cv2.resize(
        cv2.inpaint(small, small_hole, 3, cv2.INPAINT_TELEA), (w, h), interpolation=cv2.INTER_CUBIC
    ).astype(np.float32)
    fov, _ = field_and_rim(image)
    fov = cv2.resize(fov.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    # the texture is taken from skin at least two texture blurs away from the hole, the field's
    # edge and the image border (their edges would be cloned as lines otherwise)
    margin = max(1, round(2 * config.texture_sigma))
    square = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
    near = cv2.dilate(hole.astype(np.uint8), square).astype(bool)
    inner = cv2.erode(np.pad(fov.astype(np.uint8), margin), square)[margin:-margin, margin:-margin].astype(bool)
    fill = smooth + cloned_texture(image, hole, inner & ~near, rng, config)
    # 1 in the hole, falling linearly to 0 over ``grow`` px outside it: nothing beyond changes
    outside = cv2.distanceTransform((~hole).astype(np.uint8), cv2.DIST_L2, 5)
    alpha = np.clip(1.0 - outside / grow, 0.0, 1.0)[..., None]
    return np.clip(image * (1 - alpha) + fill * alpha + 0.5, 0, 255).astype(np.uint8)


def _shaped(donor: Donor, area: float, rng: np.random.Generator, config: PasteConfig) -> tuple[np.ndarray, np.ndarray]:
    """The donor's (patch float32 CIELAB, mask bool) flipped or turned at random and resized so
    that its mask covers ``area`` of a ``size`` x ``size`` frame (its aspect stretched a little)."""
    patch, mask = _lab(donor.patch), donor.mask
    turns = int(rng.integers(4))
    patch, mask = np.rot90(patch, turns), np.rot90(mask, turns)
    if rng.random() < 0.5:
        patch, mask = patch[:, ::-1], mask[:, ::-1]
    stretch = float(np.exp(rng.uniform(-1, 1) * np.log1p(config.aspect_jitter)))
    scale = np.sqrt(area * config.size**2 / max(mask.sum(), 1))
    new_w = max(2, round(mask.shape[1] * scale * np.sqrt(stretch)))
    new_h = max(2, round(mask.shape[0] * scale / np.sqrt(stretch)))
    patch = cv2.resize(np.ascontiguousarray(patch), (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    mask = (
        cv2.resize(np.ascontiguousarray(mask).astype(np.float32), (new_w, new_h), interpolation=cv2.INTER_LINEAR) >= 0.5
    )
    return patch, mask


def _place(
    mask: np.ndarray, fov: np.ndarray, taken: np.ndarray, rng: np.random.Generator, config: PasteConfig
) -> tuple[int, int] | None:
    """Top-left (y, x) of ``mask`` in the frame: at least ``min_in_field`` of it in the field of
    view and none on ``taken`` (a lesion pasted before); a lesion larger than the frame is clipped.
    None when no place tried fits."""
    size, (h, w) = config.size, mask.shape
    area = mask.sum()
    for _ in range(config.place_tries):
        y = int(rng.integers(min(0, size - h), max(0, size - h) + 1))
        x = int(rng.integers(min(0, size - w), max(0, size - w) + 1))
        ys, xs = slice(max(0, y), min(size, y + h)), slice(max(0, x), min(size, x + w))
        inner = mask[ys.start - y : ys.stop - y, xs.start - x : xs.stop - x]
        if (
            (inner & fov[ys, xs]).sum() >= config.min_in_field * min(area, inner.sum())
            and not (inner & taken[ys, xs]).any()
            and inner.sum() >= 0.6 * area
        ):
            return y, x
    return None


def paste_lesion(
    background: np.ndarray,
    donor: Donor,
    area: float,
    strength: float,
    rng: np.random.Generator,
    fov: np.ndarray,
    taken: np.ndarray | None = None,
    config: PasteConfig = PasteConfig(),
) -> tuple[np.ndarray, np.ndarray] | None:
    """``background`` with ``donor`` pasted at a drawn place; returns (image, the pasted mask), both
    of the background's (size, size) shape, or None when the lesion fits nowhere. The image's
    pixels differ from the background's only under the feathered mask. With a halo (drawn with
    ``halo_share``) the mask is the lesion and its halo."""
    patch, mask = _shaped(donor, area, rng, config)
    taken = np.zeros(fov.shape, bool) if taken is None else taken
    where = _place(mask, fov, taken, rng, config)
    if where is None:
        return None
    y, x = where
    size = config.size
    target = np.zeros((size, size), bool)
    canvas = np.zeros((size, size, 3), np.float32)
    ys, xs = slice(max(0, y), min(size, y + mask.shape[0])), slice(max(0, x), min(size, x + mask.shape[1]))
    inner = (slice(ys.start - y, ys.stop - y), slice(xs.start - x, xs.stop - x))
    target[ys, xs] = mask[inner]
    canvas[ys, xs] = patch[inner]
    background_lab = _lab(background)
    ring = _ring(target, max(2, round(0.03 * size))) & fov
    skin_here = background_lab[ring].mean(0) if ring.sum() >= 10 else background_lab[fov].mean(0)
    lesion_lab = canvas + (skin_here - donor.skin_lab)[None, None]  # the colour relative to the skin kept
    radius = np.sqrt(target.sum() / np.pi)
    fill = _fill_outside(lesion_lab, target)
    out_lab, lesion = background_lab, target
    if config.halo_share > 0 and rng.random() < config.halo_share and lesion.mean() <= config.halo_max_area:
        extent, halo_lab, halo_alpha = _halo(lesion, radius, fov & ~taken, fill, skin_here, rng, config)
        alpha = (strength * halo_alpha * _feathered(extent, config.feather * radius))[..., None]
        with_halo = out_lab * (1 - alpha) + halo_lab * alpha
        skin = _ring(extent, max(2, round(0.03 * size))) & fov
        halo = extent & ~lesion
        if (
            halo.any()
            and skin.sum() >= 10
            and np.linalg.norm(with_halo[halo].mean(0) - with_halo[skin].mean(0)) >= config.halo_min_contrast
        ):
            out_lab, target = with_halo, extent
    # alpha is 0.5 on the lesion's edge; it fades out just outside it and reaches full strength
    # just inside, so the visible extent is the mask
    alpha = (strength * _feathered(lesion, config.feather * radius))[..., None]
    out_lab = out_lab * (1 - alpha) + fill * alpha
    return _rgb(out_lab), target


def _halo(
    lesion: np.ndarray,
    radius: float,
    room: np.ndarray,
    rim_lab: np.ndarray,
    skin_lab: np.ndarray,
    rng: np.random.Generator,
    config: PasteConfig,
) -> tuple[np.ndarray, np.ndarray, float]:
    """A halo around ``lesion`` (size, size) bool: (the lesion and its ring, bool; the ring's CIELAB
    colour (size, size, 3); its alpha, a share of the lesion's). The ring is the pixels within a
    drawn width of the lesion, the width wobbling along it (smooth noise), kept inside ``room``."""
    width = draw_from_bins(config.halo_width_bins, rng) * radius
    outside = cv2.distanceTransform((~lesion).astype(np.uint8), cv2.DIST_L2, 5)
    noise = cv2.GaussianBlur(rng.standard_normal(lesion.shape).astype(np.float32), (0, 0), max(2.0, radius / 2))
    noise /= noise.std() + 1e-6
    reach = width * np.clip(1.0 + config.halo_wobble * noise, 0.3, 1.6)
    extent = lesion | ((outside <= reach) & room)
    if rng.random() < config.halo_red_share:
        colour = np.broadcast_to(skin_lab + np.asarray(config.halo_red_lab, np.float32), rim_lab.shape)
    elif config.halo_colour_blur > 0:
        colour = cv2.GaussianBlur(rim_lab, (0, 0), max(1.0, config.halo_colour_blur * radius))
    else:
        colour = rim_lab
    return extent, colour, draw_from_bins(config.halo_strength_bins, rng)


def _fill_outside(lab: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``lab`` with the pixels outside ``mask`` replaced by the nearest mask pixel's colour, so that
    the feathered edge blends the lesion's own rim colour, not the donor's skin."""
    if not mask.any():
        return lab
    _, labels = cv2.distanceTransformWithLabels(
        (~mask).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    ys, xs = np.nonzero(mask)
    # each zero pixel (a mask pixel) has its own label; map labels to their colours
    lookup = np.zeros((labels.max() + 1, 3), np.float32)
    lookup[labels[ys, xs]] = lab[ys, xs]
    return lookup[labels]


@dataclass
class Background:
    """A frame with its lesion removed: ``image`` (size, size, 3) uint8, ``fov`` (size, size) bool,
    ``unknown`` (size, size) bool: where the removed lesion may have left a trace (``unknown_grow``)."""

    image_id: str
    image: np.ndarray
    fov: np.ndarray
    unknown: np.ndarray | None = None


def make_background(
    image_id: str, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, config: PasteConfig = PasteConfig()
) -> Background:
    """The frame resized to the pair's side, its pseudo-lesion removed (:func:`remove_lesion`),
    with its field of view."""
    side = (config.size, config.size)
    if image.shape[:2] != side:
        image = cv2.resize(image, side, interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask.astype(np.uint8), side, interpolation=cv2.INTER_NEAREST).astype(bool)
    clean = remove_lesion(image, mask, rng, config)
    fov, _ = field_and_rim(clean)
    fov = cv2.resize(fov.astype(np.uint8), side, interpolation=cv2.INTER_NEAREST).astype(bool)
    unknown = None
    if config.unknown_grow > 0 and mask.any():
        grow = max(1, round(config.unknown_grow * config.size))
        unknown = cv2.dilate(
            mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2)
        ).astype(bool)
    return Background(image_id, clean, fov, unknown)


def draw_kind(rng: np.random.Generator, config: PasteConfig = PasteConfig()) -> str:
    """ "empty", "two" or "single", with the configured shares."""
    u = rng.random()
    return (
        "empty" if u < config.empty_share else "two" if u < config.empty_share + config.two_lesion_share else "single"
    )


def draw_from_bins(bins: tuple[tuple[float, float], ...], rng: np.random.Generator) -> float:
    """A value drawn uniformly within a bin drawn uniformly among ``bins`` (stratified)."""
    low, high = bins[int(rng.integers(len(bins)))]
    return float(rng.uniform(low, high))


def paste_visible(
    image: np.ndarray,
    donor: Donor,
    area: float,
    strength: float,
    rng: np.random.Generator,
    fov: np.ndarray,
    taken: np.ndarray,
    config: PasteConfig,
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """:func:`paste_lesion`, again at full strength when the lesion came out fainter than
    ``min_contrast``; (image, mask, the strength used), or None (nowhere to fit, or too faint)."""
    for attempt in (strength, 1.0):
        pasted = paste_lesion(image, donor, area, attempt, rng, fov, taken, config)
        if pasted is None:
            return None
        if mask_contrast(pasted[0], pasted[1]) >= config.min_contrast:
            return pasted[0], pasted[1], attempt
    return None


def make_pair(
    background: Background,
    donors: list[Donor],
    rng: np.random.Generator,
    config: PasteConfig = PasteConfig(),
    kind: str | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """One synthetic pair: (image (size, size, 3) uint8, target (size, size) bool, its record:
    kind, donors, areas, strengths, the pasted lesions' colour contrast). ``donors``: one per lesion
    of the kind (the first one or two are used). A lesion that fits nowhere is left out (a "two"
    may become a "single"; a "single" that fits nowhere becomes "empty": its target stays right)."""
    kind = kind or draw_kind(rng, config)
    image, target = background.image.copy(), np.zeros((config.size,) * 2, bool)
    record: dict = {"kind": kind, "background": background.image_id, "donors": [], "areas": [], "strengths": []}
    n_lesions = {"empty": 0, "single": 1, "two": 2}[kind]
    for donor in donors[:n_lesions]:
        bins = config.area_bins[:2] if n_lesions == 2 else config.area_bins
        area, strength = draw_from_bins(bins, rng), draw_from_bins(config.strength_bins, rng)
        pasted = paste_visible(image, donor, area, strength, rng, background.fov, target, config)
        if pasted is None:
            continue
        image, mask, strength = pasted
        target |= mask
        record["donors"].append(donor.image_id)
        record["areas"].append(float(mask.mean()))
        record["strengths"].append(strength)
    record["kind"] = {0: "empty", 1: "single", 2: "two"}[len(record["donors"])]
    record["contrast"] = mask_contrast(image, target) if target.any() else 0.0
    return image, target, record
