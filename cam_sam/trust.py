"""How far to trust each candidate mask, from label-free signals only: the arbiter that chooses
the delivered mask among independent sources, and the confidence and review flag of that mask
(docs/method.md, "The arbiter" and "Trust", describes each signal and term).

No function here reads a mask file or a ground truth: the inputs are the image, the candidate
masks the pipeline produced and the scores the sources gave them. A candidate's signals
(:class:`CandidateSignals`, computed on a copy whose longer side is :data:`WORK_SIDE` px):
``consensus`` (mean IoU with the other *independent* candidates: a mask derived from another is
not independent of it; a vote gets the agreement of its parents), ``quality`` (the source's own
score: the segmenter's predicted IoU or the student's soft IoU), ``rim`` (the share of the field
of view's rim band it covers), ``outside`` (its share on the dark vignette), ``area``,
``solidity``, ``stability`` and ``zoom_stability`` (the student's agreement with itself under
flips and zoomed out; 1 where not measured) and ``contrast`` (the lightness-weighted CIELAB
distance between its mean colour and a ring of skin around it, :func:`colour_contrast`; None in
records written before it existed).

The arbiter's score is ``consensus + QUALITY_WEIGHT x quality - RIM_WEIGHT x rim - OUTSIDE_WEIGHT x
outside``. The confidence of the delivered mask (:func:`confidence_of`) is a ranking score in
[0, 1], not a probability: :mod:`cam_sam.calibration` maps it to an expected IoU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import cv2
import numpy as np

from cam_sam.depth import OUT_OF_DEPTH_REASON
from cam_sam.proposals import ColourProposalConfig, field_of_view
from common.geometry import pairwise_iou

# fmt: off
WORK_SIDE = 256            # px: the longer side signals are computed at
RIM_FRACTION = 0.03        # width of the field-of-view rim band, a fraction of the longer side
CONTRAST_RING = 0.05       # width of the ring of skin around a mask for its colour contrast, a fraction of the
                           # longer side
LIGHTNESS_WEIGHT = 2.55    # L (0-100) is stretched to 0-255 before the distance, as in OpenCV's 8-bit CIELAB: a lesion
                           # differs from skin most in lightness (unweighted Delta E 1976: AUROC 0.85 / 0.91 alone,
                           # weighted 0.89 / 0.89, default on validation / train_every18; docs/experiments/tr-04)
MIN_RING_PIXELS = 10       # fewer ring pixels than this (at the work size): no skin around the mask, contrast 0

# The arbiter's weights (chosen on both evaluation sets together, over three students: docs/experiments/tr-01).
QUALITY_WEIGHT = 0.5       # x the source's own score
RIM_WEIGHT = 0.5           # x the share of the field-of-view rim covered
OUTSIDE_WEIGHT = 1.0       # x the share of the mask on the vignette

# The confidence (its terms chosen on both evaluation sets together: docs/method.md) and the
# thresholds behind each plain-words reason. The review threshold belongs to the student and the
# kind of run: its trust sidecar holds it (cam_sam.calibration). Where none does (a student without
# a sidecar, a run without a student), the fallback below: the level the default's student ships
# for its full confidence, a rough guide for another network, whose verdicts are uncalibrated.
UNCALIBRATED_REVIEW_THRESHOLD = 0.33
NO_LESION_REASON = "the student found no lesion"   # the verdict of an image the student finds empty
CONFIDENCE_TERMS = ("agreement", "stability", "student_score", "zoom", "contrast")   # the factors of
                                                                        # confidence_terms multiplied
CONTRAST_SCALE = 30.0      # contrast at and above which the contrast term is 1 (min(1, contrast / this)); chosen
                           # among 10-40 for the best mean AUROC over both sets and the default, fast and
                           # arbiter presets together (docs/experiments/tr-04)
LOW_CONTRAST = 0.5         # contrast term below this (distance < 15): "the mask barely differs in colour from the
                           # skin around it"
LOW_STABILITY = 0.8        # flip (zoom) agreement below this: "the student changes its mask when the image is
                           # flipped" ("... zoomed out")
LOW_AGREEMENT = 0.7        # colour-student IoU (or agreement) below this: "teacher and student disagree"
HIGH_RIM = 0.25            # rim coverage above this is reported as "mask runs along the edge of the field"
HIGH_OUTSIDE = 0.05        # mask share on the vignette above this: "mask touches the vignette"
SMALL_AREA = 0.01          # masks below this share of the image: "very small mask"
LOW_QUALITY = 0.7          # source score below this: "the segmenter is unsure" ("the student is unsure of the outline")
# fmt: on


@dataclass
class CandidateSignals:
    """The label-free signals of one candidate mask (see the module docstring)."""

    consensus: float
    quality: float
    rim: float
    outside: float
    area: float
    solidity: float
    stability: float = 1.0
    zoom_stability: float = 1.0
    contrast: float | None = None


def _small(mask: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if mask.shape == hw:
        return mask.astype(bool)
    return cv2.resize(mask.astype(np.uint8), (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST).astype(bool)


def work_shape(hw: tuple[int, int]) -> tuple[int, int]:
    scale = WORK_SIDE / max(hw)
    return max(1, round(hw[0] * scale)), max(1, round(hw[1] * scale))


def work_image(image: np.ndarray) -> np.ndarray:
    """The (H, W, 3) uint8 image resized (area-averaged) to the work size of :func:`work_shape`;
    an image already at that size is returned as it is (so a caller may resize once and pass the copy on)."""
    hw = work_shape(image.shape[:2])
    if image.shape[:2] == hw:
        return image
    return cv2.resize(image, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)


def contrast_lab(image: np.ndarray) -> np.ndarray:
    """(h, w, 3) float32 CIELAB of the work-size copy of the (H, W, 3) uint8 RGB ``image``, its
    lightness (0-100) multiplied by :data:`LIGHTNESS_WEIGHT`."""
    lab = cv2.cvtColor(work_image(image).astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    lab[..., 0] *= LIGHTNESS_WEIGHT
    return lab


def colour_contrast(lab: np.ndarray, mask: np.ndarray, fov: np.ndarray) -> float:
    """Euclidean distance between the mean colour of ``mask`` and of the ring of field around it.
    ``lab``: (h, w, 3) float32 from :func:`contrast_lab` (the work size); ``mask``, ``fov``: (h, w)
    bool there. The ring is :data:`CONTRAST_RING` x the longer side wide, outside the mask and
    inside the field of view; an empty mask, or one with (almost) no ring (it fills the field), gives 0."""
    width = max(1, round(CONTRAST_RING * max(mask.shape)))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    ring = cv2.dilate(mask.astype(np.uint8), disc).astype(bool) & ~mask & fov
    if not mask.any() or ring.sum() < MIN_RING_PIXELS:
        return 0.0
    return float(np.linalg.norm(lab[mask].mean(0) - lab[ring].mean(0)))


def field_and_rim(image: np.ndarray, colour: ColourProposalConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(field of view, its rim band), both (h, w) bool at the work size. The field of view is
    :func:`cam_sam.proposals.field_of_view` (the dark vignette removed); the rim is the band of
    ``RIM_FRACTION`` of the longer side inside the field's edge (or the image border)."""
    small = work_image(image)
    hw = small.shape[:2]
    colour = colour or ColourProposalConfig()
    fov = field_of_view(cv2.GaussianBlur(small, (0, 0), colour.blur_sigma), colour)
    if fov.sum() < 0.2 * fov.size:  # no plausible field (a dark image): the whole image
        fov = np.ones(hw, bool)
    width = max(1, round(RIM_FRACTION * max(hw)))
    padded = np.pad(fov.astype(np.uint8), width, constant_values=0)
    eroded = cv2.erode(padded, np.ones((2 * width + 1, 2 * width + 1), np.uint8))[width:-width, width:-width]
    return fov, fov & ~eroded.astype(bool)


def solidity(mask: np.ndarray) -> float:
    """Area over the convex hull's area (1 for a convex mask, 0 for an empty one)."""
    if not mask.any():
        return 0.0
    # the hull of the outlines' points is the hull of all the mask's points (the same vertices, on
    # 7,140 development masks), from a few hundred points instead of every pixel
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    hull = cv2.convexHull(np.concatenate(contours))
    return float(min(1.0, mask.sum() / max(cv2.contourArea(hull) + len(hull) / 2 + 1, 1.0)))


def consensus(
    pairwise: dict[str, dict[str, float]],
    parents: dict[str, tuple[str, ...]] | None = None,
    names: list[str] | None = None,
) -> dict[str, float]:
    """Each candidate's ``consensus`` (module docstring) among ``names`` (default: all) from the
    pairwise IoUs ``pairwise[a][b]``: the mean IoU with the candidates unrelated to it by
    ``parents``; for a candidate made from all the others, the mean IoU among its unrelated parents."""
    parents = parents or {}
    names = list(pairwise) if names is None else [n for n in names if n in pairwise]

    def lineage(name: str) -> set[str]:
        return {name, *parents.get(name, ())}

    out = {}
    for name in names:
        others = [o for o in names if o != name and not (lineage(o) & lineage(name))]
        if others:
            out[name] = float(np.mean([pairwise[name][o] for o in others]))
            continue
        mine = [p for p in parents.get(name, ()) if p in names]
        pairs = [(a, b) for i, a in enumerate(mine) for b in mine[i + 1 :] if not (lineage(a) & lineage(b))]
        out[name] = float(np.mean([pairwise[a][b] for a, b in pairs])) if pairs else 0.0
    return out


def candidate_signals(
    image: np.ndarray,
    masks: dict[str, np.ndarray],
    quality: dict[str, float],
    parents: dict[str, tuple[str, ...]] | None = None,
    colour: ColourProposalConfig | None = None,
    stability: dict[str, tuple[float, float]] | None = None,
) -> tuple[dict[str, CandidateSignals], dict[str, dict[str, float]]]:
    """Signals of every candidate in ``masks`` (name -> (H, W) bool, original pixels) of the
    (H, W, 3) uint8 ``image``. ``quality``: each candidate's own score; ``parents``: for a derived
    candidate, the candidates it was made from (they are not independent of it: a parent and its
    child are left out of each other's consensus, as are two children of one parent);
    ``stability``: a candidate's agreement with itself (under flips, zoomed out), where measured (the student).
    Returns (signals per candidate, the pairwise IoUs ``[a][b]`` they were computed from)."""
    small_image = work_image(image)  # resized once for the field of view and the colour contrast
    fov, rim = field_and_rim(small_image, colour)
    lab = contrast_lab(small_image)
    small = {name: _small(m, fov.shape) for name, m in masks.items()}
    names = list(small)
    matrix = pairwise_iou(np.stack([small[n] for n in names]))
    pairwise = {a: {b: float(matrix[i, j]) for j, b in enumerate(names) if b != a} for i, a in enumerate(names)}
    agree = consensus(pairwise, parents)
    signals = {}
    for name, m in small.items():
        flips, zoom = (stability or {}).get(name, (1.0, 1.0))
        signals[name] = CandidateSignals(
            consensus=agree[name],
            quality=float(np.clip(quality.get(name, 0.0), 0, 1)),
            rim=float((m & rim).sum() / max(rim.sum(), 1)),
            outside=float((m & ~fov).sum() / max(m.sum(), 1)),
            area=float(m.mean()),
            solidity=solidity(m),
            stability=float(flips),
            zoom_stability=float(zoom),
            contrast=colour_contrast(lab, m, fov),
        )
    return signals, pairwise


def signals_among(
    signals: dict[str, CandidateSignals],
    pairwise: dict[str, dict[str, float]] | None,
    parents: dict[str, tuple[str, ...]] | None,
    names: list[str],
) -> dict[str, CandidateSignals]:
    """The signals of the candidates ``names`` with ``consensus`` recomputed among them alone (as
    if only they had run); the arbiter chooses on these. Without ``pairwise``, unchanged."""
    names = [n for n in names if n in signals]
    if not pairwise:
        return {n: signals[n] for n in names}
    kept = {k: tuple(p for p in v if p in names) for k, v in (parents or {}).items() if k in names}
    agree = consensus(pairwise, kept, names)
    return {n: replace(signals[n], consensus=agree[n]) for n in names}


def arbiter_score(s: CandidateSignals) -> float:
    """The arbiter's label-free score of one candidate (higher: more likely the lesion)."""
    return s.consensus + QUALITY_WEIGHT * s.quality - RIM_WEIGHT * s.rim - OUTSIDE_WEIGHT * s.outside


def arbitrate(signals: dict[str, CandidateSignals]) -> str:
    """The candidate with the highest :func:`arbiter_score` (ties: the first in ``signals``)."""
    names = list(signals)
    return names[int(np.argmax([arbiter_score(signals[n]) for n in names]))]


@dataclass
class Trust:
    """The delivered mask's confidence in [0, 1] (a ranking score: higher means more likely right;
    not calibrated to IoU), whether it is flagged for review, and why, in plain words."""

    confidence: float
    flagged: bool
    reason: str
    signals: dict[str, dict]  # every candidate's signals, for records and figures
    pairwise: dict[str, dict[str, float]] | None = None  # IoU of every pair of candidates
    parents: dict[str, list[str]] | None = None  # which candidates a derived one was made from
    depth_distance: float | None = None  # the image's distance from the student's training images (cam_sam.depth)
    out_of_depth: bool | None = None  # beyond the check's threshold: flagged, with its own reason
    expected_iou: float | None = None  # the confidence mapped to IoU (cam_sam.calibration), where a map ships
    no_lesion: bool = False  # the student found no lesion: the mask is the pipeline's fallback

    def to_record(self) -> dict:
        record = {
            "confidence": self.confidence,
            "flagged": self.flagged,
            "reason": self.reason,
            "signals": self.signals,
            "pairwise": self.pairwise,
            "parents": self.parents,
            "depth_distance": self.depth_distance,
            "out_of_depth": self.out_of_depth,
            "expected_iou": self.expected_iou,
        }
        return {**record, "no_lesion": True} if self.no_lesion else record


def source_agreement(pairwise: dict[str, dict[str, float]], names: list[str]) -> float:
    """Mean IoU over every pair of the candidates ``names`` (1 - their spread); NaN for fewer than two."""
    pairs = [pairwise[a][b] for i, a in enumerate(names) for b in names[i + 1 :]]
    return float(np.mean(pairs)) if pairs else float("nan")


def confidence_terms(
    signals: dict[str, CandidateSignals],
    pairwise: dict[str, dict[str, float]] | None,
    delivered: str,
) -> dict[str, float]:
    """The factors a confidence may multiply, each in [0, 1]:

    * ``agreement``: mean IoU over every pair of candidates (how much the routes to a mask agree);
      with a single candidate, its own score, except the student's, which is the ``student_score``
      term already (1: counted once). The student presets
      run the student alone, so their confidence has no agreement term: chosen on either evaluation
      set and checked on the other, the confidence ranks failures better without the colour regions'
      second opinion (docs/experiments/tr-12);
    * ``stability``: the student's flip agreement (1 without a student);
    * ``student_score``: the student's own soft IoU (1 without a student);
    * ``zoom``: the student's agreement with itself on the zoomed-out image (1 without a student);
    * ``contrast``: ``min(1, contrast / CONTRAST_SCALE)`` of the delivered mask (1 where not measured)."""
    names = list(signals)
    if len(names) > 1 and pairwise:
        agreement = source_agreement(pairwise, names)
    else:
        agreement = 1.0 if delivered == "student" else signals[delivered].quality
    student = signals.get("student")
    d = signals[delivered]
    return {
        "agreement": float(agreement),
        "stability": student.stability if student else 1.0,
        "student_score": student.quality if student else 1.0,
        "zoom": student.zoom_stability if student else 1.0,
        "contrast": 1.0 if d.contrast is None else float(min(1.0, d.contrast / CONTRAST_SCALE)),
    }


def confidence_of(
    signals: dict[str, CandidateSignals],
    pairwise: dict[str, dict[str, float]] | None,
    delivered: str,
) -> float:
    """The delivered mask's confidence: the product of :data:`CONFIDENCE_TERMS` of
    :func:`confidence_terms`, in [0, 1]. A ranking score, not calibrated to IoU."""
    values = confidence_terms(signals, pairwise, delivered)
    return float(np.clip(np.prod([values[t] for t in CONFIDENCE_TERMS]), 0, 1))


def reasons(
    signals: dict[str, CandidateSignals], pairwise: dict[str, dict[str, float]] | None, delivered: str
) -> list[str]:
    """Plain-words reasons the delivered mask may be wrong (most telling first)."""
    s = signals[delivered]
    terms = confidence_terms(signals, pairwise, delivered)
    found = []
    if pairwise and "colour" in pairwise and "student" in pairwise.get("colour", {}):
        if pairwise["colour"]["student"] < LOW_AGREEMENT:
            found.append("teacher and student disagree")
    elif len(signals) > 1 and terms["agreement"] < LOW_AGREEMENT:
        found.append("candidates spread")
    if terms["stability"] < LOW_STABILITY:
        found.append("the student changes its mask when the image is flipped")
    if terms["zoom"] < LOW_STABILITY:
        found.append("the student changes its mask when the image is zoomed out")
    if "student" in signals and terms["student_score"] < LOW_QUALITY:
        found.append("the student is unsure of the outline")
    if terms["contrast"] < LOW_CONTRAST:
        found.append("the mask barely differs in colour from the skin around it")
    if s.outside > HIGH_OUTSIDE:
        found.append("mask touches the vignette")
    if s.rim > HIGH_RIM:
        found.append("mask runs along the edge of the field")
    if s.quality < LOW_QUALITY and delivered != "student":  # the student's own score is said above
        found.append("the segmenter is unsure")
    if s.area < SMALL_AREA:
        found.append("very small mask")
    return found


def mask_trust(
    signals: dict[str, CandidateSignals],
    delivered: str,
    review_threshold: float = UNCALIBRATED_REVIEW_THRESHOLD,
    pairwise: dict[str, dict[str, float]] | None = None,
    parents: dict[str, tuple[str, ...]] | None = None,
    depth_distance: float | None = None,
    out_of_depth: bool | None = None,
) -> Trust:
    """The :class:`Trust` of candidate ``delivered`` among ``signals`` (every candidate of the
    image, with their ``pairwise`` IoUs; ``parents`` is kept in the record). An image
    ``out_of_depth`` (:mod:`cam_sam.depth`) is flagged with that one reason: the other reasons
    assume a dermoscopy frame like the training images."""
    value = confidence_of(signals, pairwise, delivered)
    why = reasons(signals, pairwise, delivered)
    flagged = value < review_threshold or bool(out_of_depth)
    reason = OUT_OF_DEPTH_REASON if out_of_depth else ("; ".join(why) if why else "low confidence")
    return Trust(
        value,
        flagged,
        reason if flagged else "",
        {k: asdict(v) for k, v in signals.items()},
        pairwise,
        {k: list(v) for k, v in (parents or {}).items()},
        depth_distance,
        out_of_depth,
    )
