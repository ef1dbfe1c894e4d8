"""The label-free arbiter and confidence (cam_sam.trust) on generated lesions: a candidate that is
clearly wrong (filling the field of view, a box around a ruler at the edge, shifted off the lesion)
loses the choice and gets a lower confidence than the right one."""

import cv2
import numpy as np
import pytest

from cam_sam.proposals import field_of_view
from cam_sam.trust import (
    UNCALIBRATED_REVIEW_THRESHOLD,
    arbitrate,
    candidate_signals,
    colour_contrast,
    confidence_terms,
    contrast_lab,
    field_and_rim,
    mask_trust,
    solidity,
)
from common.errors import DataError
from common.metrics import auroc_fail, flag_summary, risk_coverage
from data.synthetic import make_synthetic_sample


@pytest.fixture(scope="module")
def lesion():
    return make_synthetic_sample(7, (240, 320))


def _with_ruler(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The image with a dark ruler along its bottom edge, and the ruler's box as a mask."""
    out = image.copy()
    h, w = out.shape[:2]
    out[h - 28 : h - 8, 20 : w - 20] = 35
    for x in range(24, w - 24, 12):
        out[h - 28 : h - 18, x : x + 2] = 230
    box = np.zeros((h, w), bool)
    box[h - 32 : h - 4, 16 : w - 16] = True
    return out, box


def _shifted(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``mask`` moved by (dx, dy) >= 0 px, what leaves the image dropped."""
    out = np.zeros_like(mask)
    out[dy:, dx:] = mask[: mask.shape[0] - dy, : mask.shape[1] - dx]
    return out


def test_rim_is_inside_the_field_of_view_and_covers_a_filled_field(lesion):
    fov, rim = field_and_rim(lesion.image)
    assert rim.any() and not (rim & ~fov).any()
    small_fov = cv2.resize(field_of_view(lesion.image).astype(np.uint8), fov.shape[::-1]) > 0
    signals, _ = candidate_signals(
        lesion.image, {"field": small_fov, "lesion": lesion.mask}, {"field": 0.9, "lesion": 0.9}
    )
    assert signals["field"].rim > 0.9 and signals["lesion"].rim == 0.0
    assert solidity(np.ones((20, 20), bool)) > 0.9 and solidity(np.zeros((5, 5), bool)) == 0.0


@pytest.mark.parametrize("wrong", ["fills the field of view", "box around a ruler"])
def test_arbiter_rejects_a_clearly_wrong_candidate(lesion, wrong):
    image, truth = lesion.image, lesion.mask
    if wrong == "box around a ruler":
        image, bad = _with_ruler(image)
    else:
        bad = field_of_view(image) & ~np.zeros_like(truth)
    student = cv2.dilate(truth.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    student_box = cv2.erode(truth.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    masks = {"colour": bad, "student": student, "student_box": student_box}
    quality = {"colour": 0.95, "student": 0.9, "student_box": 0.9}  # the wrong one even scores itself higher
    signals, _ = candidate_signals(image, masks, quality, parents={"student_box": ("student",)})
    assert arbitrate(signals) in ("student", "student_box")
    assert signals["colour"].rim > signals["student"].rim


def test_confidence_drops_when_the_mask_drifts_from_the_lesion(lesion):
    """Teacher and student agree on the lesion; a delivered mask shifted away from it, or grown
    into the vignette, is trusted less, flagged, and the reason says why."""
    image, truth = lesion.image, lesion.mask
    student = cv2.erode(truth.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    grown = cv2.dilate(truth.astype(np.uint8), np.ones((151, 151), np.uint8)).astype(bool)
    cases = {"right": truth, "shifted": _shifted(truth, 90, 60), "grown into the vignette": grown}
    values = {}
    for name, colour in cases.items():
        signals, pairwise = candidate_signals(
            image, {"colour": colour, "student": student}, {"colour": 0.9, "student": 0.9}
        )
        trust = mask_trust(signals, "colour", pairwise=pairwise)
        values[name] = trust
        assert 0.0 <= trust.confidence <= 1.0
    assert not values["right"].flagged and values["right"].confidence > UNCALIBRATED_REVIEW_THRESHOLD
    for name in ("shifted", "grown into the vignette"):
        assert values[name].confidence < values["right"].confidence - 0.2, name
        assert values[name].flagged and "teacher and student disagree" in values[name].reason
    assert (
        "vignette" in values["grown into the vignette"].reason
        or "edge of the field" in values["grown into the vignette"].reason
    )


def test_a_student_that_changes_its_mask_when_zoomed_out_is_trusted_less(lesion):
    masks = {"student": lesion.mask, "colour_region": lesion.mask}
    steady, pairwise = candidate_signals(
        lesion.image, masks, {"student": 0.9, "colour_region": 0.9}, stability={"student": (0.95, 0.95)}
    )
    wobbly, _ = candidate_signals(
        lesion.image, masks, {"student": 0.9, "colour_region": 0.9}, stability={"student": (0.95, 0.3)}
    )
    sure, unsure = mask_trust(steady, "student", pairwise=pairwise), mask_trust(wobbly, "student", pairwise=pairwise)
    assert unsure.confidence < sure.confidence - 0.5 and unsure.flagged and not sure.flagged
    assert "zoomed out" in unsure.reason and wobbly["student"].zoom_stability == 0.3


def test_a_mask_on_plain_skin_is_trusted_less_even_when_the_sources_agree(lesion):
    """Teacher and student both outline a patch of skin beside the lesion (they agree, flips and
    zoom are steady): only its colour contrast with the skin around it gives it away."""
    skin = _shifted(lesion.mask, 90, 60) & ~cv2.dilate(
        lesion.mask.astype(np.uint8), np.ones((15, 15), np.uint8)
    ).astype(bool)
    trusts, contrasts = {}, {}
    for name, mask in {"lesion": lesion.mask, "skin": skin}.items():
        signals, pairwise = candidate_signals(
            lesion.image,
            {"student": mask, "colour_region": mask},
            {"student": 0.9, "colour_region": 0.9},
            stability={"student": (0.95, 0.95)},
        )
        trusts[name], contrasts[name] = mask_trust(signals, "student", pairwise=pairwise), signals["student"].contrast
    assert contrasts["lesion"] > 3 * contrasts["skin"]
    assert trusts["skin"].confidence < trusts["lesion"].confidence - 0.3
    assert trusts["skin"].flagged and not trusts["lesion"].flagged
    assert "barely differs in colour from the skin around it" in trusts["skin"].reason


def test_colour_contrast_of_a_mask_with_no_skin_around_it_is_zero(lesion):
    fov, _ = field_and_rim(lesion.image)
    lab = contrast_lab(lesion.image)
    assert lab.shape[:2] == fov.shape
    assert colour_contrast(lab, fov, fov) == 0.0 and colour_contrast(lab, np.zeros_like(fov), fov) == 0.0
    lesion_small = cv2.resize(lesion.mask.astype(np.uint8), fov.shape[::-1], interpolation=cv2.INTER_NEAREST) > 0
    assert colour_contrast(lab, lesion_small, fov) > 30


def test_a_lone_student_is_trusted_by_its_own_score_counted_once(lesion):
    """The student presets run the student alone: its own score is the student_score term, and
    the agreement term, which has no second mask to compare with, does not count it again."""
    unsure = mask_trust(*_lone(lesion, 0.2))
    sure = mask_trust(*_lone(lesion, 0.95))
    assert unsure.confidence == pytest.approx(0.2) and sure.confidence == pytest.approx(0.95)  # contrast term 1
    assert unsure.flagged and not sure.flagged
    assert unsure.reason == "the student is unsure of the outline"


def test_a_lone_source_other_than_the_student_is_trusted_by_its_own_score(lesion):
    """The zero-shot route (LiteMedSAM on colour proposals) has no student term: its predicted
    IoU stands in for the agreement it cannot measure."""
    for score in (0.4, 0.9):
        signals, pairwise = candidate_signals(lesion.image, {"colour": lesion.mask}, {"colour": score})
        assert confidence_terms(signals, pairwise, "colour")["agreement"] == pytest.approx(score)
        assert mask_trust(signals, "colour", UNCALIBRATED_REVIEW_THRESHOLD, pairwise).confidence == pytest.approx(score)


@pytest.mark.parametrize("seed", range(6))
def test_rank_auroc_equals_scikit_learns(seed):
    from sklearn.metrics import roc_auc_score

    from common.metrics import rank_auroc

    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 300))
    positive = rng.random(n) < rng.uniform(0.05, 0.6)
    positive[:2] = [True, False]  # both classes present
    score = np.round(rng.normal(size=n) + positive * rng.uniform(0, 2), int(rng.integers(0, 3)))  # ties too
    assert rank_auroc(positive, score) == pytest.approx(roc_auc_score(positive, score), abs=1e-12)


def _lone(lesion, score):
    signals, pairwise = candidate_signals(lesion.image, {"student": lesion.mask}, {"student": score})
    return signals, "student", UNCALIBRATED_REVIEW_THRESHOLD, pairwise


def test_trust_metrics():
    confidence = {"a": 0.9, "b": 0.8, "c": 0.2, "d": 0.1}
    ious = {"a": 0.9, "b": 0.7, "c": 0.3, "d": 0.6}
    assert auroc_fail(confidence, ious) == pytest.approx(2 / 3)  # c (failed) below a, b; above d
    curve = risk_coverage(confidence, ious, (0.5, 1.0))
    assert curve["0.5"] == pytest.approx(0.8) and curve["1.0"] == pytest.approx(0.625)
    summary = flag_summary({"a": False, "b": False, "c": True, "d": True}, ious)
    assert summary["n_flagged"] == 2 and summary["share_flagged"] == 0.5 and summary["failures_flagged"] == 1.0
    assert np.isnan(auroc_fail({"a": 1.0}, {"a": 0.9}))


def test_trust_figure_from_a_run(tmp_path):
    from cam_sam.studies import trust_figures
    from common.io import write_json

    rng = np.random.default_rng(0)
    ious = {f"img{i}": float(v) for i, v in enumerate(rng.uniform(0, 1, 30))}
    confidence = {i: min(1.0, max(0.0, v + rng.normal(0, 0.1))) for i, v in ious.items()}
    per_image = {
        i: {"final": {"iou": ious[i], "confidence": confidence[i], "flagged": confidence[i] < 0.3}} for i in ious
    }
    per_image["unscored"] = {"final": {"confidence": 0.5, "flagged": False}}  # no ground truth: left out
    write_json(tmp_path / "run" / "metrics.json", {"per_image": per_image, "summary": {}})
    result = trust_figures.main(
        ["--set", f"runs={{'a': '{tmp_path / 'run'}'}}", "--set", f"out_dir={tmp_path / 'fig'}"]
    )
    assert (tmp_path / "fig" / "trust.png").stat().st_size > 10_000
    row = result["table"].iloc[0]
    expected = risk_coverage(confidence, ious)
    assert row["top 80%"] == pytest.approx(expected["0.8"], abs=1e-3) and row["top 100%"] == pytest.approx(
        expected["1.0"], abs=1e-3
    )
    assert (
        row["n"] == 30
        and 0.5 < row["AUROC (IoU < 0.5)"] <= 1
        and row["flagged"] == pytest.approx(np.mean([c < 0.3 for c in confidence.values()]), abs=1e-3)
    )
    assert row["top 50%"] > row["top 100%"]  # a confidence that tracks IoU ranks the good ones first
    with pytest.raises(DataError, match="no metrics.json"):
        trust_figures.main(["--set", f"runs={{'b': '{tmp_path / 'nowhere'}'}}"])
