"""Mask selection in the pipeline, with a fake segmenter whose scores the test controls."""

import numpy as np
import pytest

from cam_sam.pipeline import LesionPipeline, PipelineConfig
from explainers.cams import CamResult
from medsam.base import Prediction


class ScriptedSegmenter:
    """Returns, for each box, the mask of the box and a score = box area (bigger scores higher)."""

    def __init__(self):
        self.encoded = 0

    def set_image(self, image):
        self.encoded += 1
        self.hw = image.shape[:2]

    def predict(self, boxes=None, points=None, point_labels=None):
        masks = np.zeros((len(boxes),) + self.hw, bool)
        for k, (x0, y0, x1, y1) in enumerate(boxes.astype(int)):
            masks[k, y0 : y1 + 1, x0 : x1 + 1] = True
        return Prediction(masks, masks.reshape(len(boxes), -1).mean(1))


def _image():
    image = np.full((120, 160, 3), 220, np.uint8)
    image[40:80, 60:100] = (110, 70, 50)
    return image


def _cam(hw, box):
    heat = np.zeros(hw, np.float32)
    x0, y0, x1, y1 = box
    heat[y0:y1, x0:x1] = 1.0
    return CamResult("gradcam", heat, False, "class_0")


def test_one_encoding_per_image_and_choice_by_predicted_iou():
    seg = ScriptedSegmenter()
    cfg = PipelineConfig(
        methods=["gradcam"], proposals=["colour"], final_sources=["colour", "gradcam"], final_rule="select"
    )
    pipe = LesionPipeline(object(), seg, cfg)
    image = _image()
    out = pipe.segment(image, cams={"gradcam": _cam(image.shape[:2], (0, 0, 150, 110))})
    assert seg.encoded == 1
    # the large CAM box scores higher in this scripted segmenter, so it is delivered
    assert out.final_source == "gradcam"
    grad = out.sources["gradcam"]
    assert grad.chosen == int(np.argmax(grad.candidates.scores))
    assert out.uncertainty.shape == image.shape[:2]


def test_final_sources_restrict_the_choice_and_fall_back():
    image = _image()
    cams = {"gradcam": _cam(image.shape[:2], (0, 0, 150, 110))}
    pipe = LesionPipeline(
        object(),
        ScriptedSegmenter(),
        PipelineConfig(methods=["gradcam"], proposals=["colour"], final_sources=["colour"]),
    )
    assert pipe.segment(image, cams=cams).final_source == "colour"
    # a constant CAM gives no prompt: reported, and the colour source still delivers
    flat = {"gradcam": CamResult("gradcam", np.zeros(image.shape[:2], np.float32), True, "class_0")}
    out = pipe.segment(image, cams=flat)
    assert out.sources["gradcam"].error == "constant CAM" and out.final_source == "colour"
    # final_sources without a mask: the pipeline falls back to any source that produced one
    pipe = LesionPipeline(
        object(),
        ScriptedSegmenter(),
        PipelineConfig(methods=["gradcam"], proposals=["colour"], final_sources=["gradcam"]),
    )
    assert pipe.segment(image, cams=flat).final_source == "colour"


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="final_sources"):
        LesionPipeline(
            object(), ScriptedSegmenter(), PipelineConfig(methods=[], proposals=["colour"], final_sources=["gradcam"])
        )
    with pytest.raises(ValueError, match="unknown proposal"):
        LesionPipeline(object(), ScriptedSegmenter(), PipelineConfig(proposals=["otsu"]))


def test_agreement_and_selection_scores_hand_computed():
    from cam_sam.pipeline import agreement, selection_scores

    masks = np.zeros((3, 4, 4), bool)
    masks[0, :2] = True  # rows 0-1
    masks[1, :2] = True  # identical to 0
    masks[2, 1:3] = True  # overlaps 0 and 1 by one row: IoU 4/12
    agree = agreement(masks)
    assert agree == pytest.approx([(1 + 1 / 3) / 2, (1 + 1 / 3) / 2, 1 / 3])
    assert agreement(masks[:1]).tolist() == [0.0]
    pred = np.array([0.83, 0.79, 0.85])
    assert int(np.argmax(selection_scores(pred, masks, 0.0))) == 2  # predicted IoU alone
    assert int(np.argmax(selection_scores(pred, masks, 0.1))) == 0  # the mask the others agree with


class RecordingSegmenter(ScriptedSegmenter):
    """Keeps the prompts it was given; with points and no box, masks the points' bounding box."""

    def predict(self, boxes=None, points=None, point_labels=None):
        self.last = (boxes, points, point_labels)
        return super().predict(boxes=boxes)


def test_paper_preset_point_prompts_reach_the_segmenter():
    from cam_sam.pipeline import PromptConfig
    from cam_sam.settings import PRESETS

    paper = PRESETS["paper"]["prompts"]
    prompts = PromptConfig(**paper)
    seg = RecordingSegmenter()
    cfg = PipelineConfig(methods=["gradcam"], proposals=[], final_sources=["gradcam"], prompts=prompts)
    image = _image()
    out = LesionPipeline(object(), seg, cfg).segment(image, cams={"gradcam": _cam(image.shape[:2], (60, 40, 100, 80))})
    boxes, points, labels = seg.last
    k = 1 + paper["n_perturbations"]
    assert (
        boxes.shape == (k, 4) and points.shape == (k, paper["n_points"], 2) and labels.shape == (k, paper["n_points"])
    )
    assert (labels == 1).all()
    # the points come from the CAM's hot region (row 0: unperturbed)
    pos = points[0]
    assert ((pos[:, 0] >= 60) & (pos[:, 0] < 100) & (pos[:, 1] >= 40) & (pos[:, 1] < 80)).all()
    assert out.sources["gradcam"].candidates.points.shape == points.shape


class _ScriptedStudent:
    """A student whose ``predict`` a test writes; it never changes its mask when zoomed out."""

    def zoom_agreement(self, image, prob):
        return 1.0

    def predict_with_features(self, image):
        return (*self.predict(image), np.zeros(4, np.float32))  # features: the pipeline has no depth check here

    def predict_with_zoom(self, image):
        return (*self.predict_with_features(image), self.zoom_agreement(image, None))


def test_student_sources_need_a_student_and_skip_the_encoder():
    with pytest.raises(ValueError, match="student"):
        LesionPipeline(None, None, PipelineConfig(methods=[], proposals=["student"], final_sources=["student"]))

    class HalfStudent(_ScriptedStudent):
        def predict(self, image):
            prob = np.zeros(image.shape[:2], np.float32)
            prob[40:80, 60:100] = 0.9
            return prob, 1.0

    pipe = LesionPipeline(
        None, None, PipelineConfig(methods=[], proposals=["student"], final_sources=["student"]), student=HalfStudent()
    )
    out = pipe.segment(_image())
    assert out.final_source == "student" and out.final_mask[40:80, 60:100].all() and out.final_mask.sum() == 40 * 40
    assert out.sources["student"].score == pytest.approx(0.9)  # soft IoU of a 0.9-confident mask
    assert out.uncertainty.max() == pytest.approx(0.3)  # sqrt(0.9 * 0.1)


def test_vote_keeps_pixels_most_final_sources_agree_on():
    class LeftStudent(_ScriptedStudent):
        def predict(self, image):
            prob = np.zeros(image.shape[:2], np.float32)
            prob[40:80, 50:90] = 0.9  # shifted 10 px left of the dark square at [40:80, 60:100]
            return prob, 1.0

    cfg = PipelineConfig(
        methods=[],
        proposals=["colour", "student", "student_box"],
        final_sources=["colour", "student", "student_box"],
        final_rule="vote",
    )
    out = LesionPipeline(None, ScriptedSegmenter(), cfg, student=LeftStudent()).segment(_image())
    assert out.final_source == "vote"
    masks = [out.sources[s].mask for s in ("colour", "student", "student_box")]
    expected = np.sum(masks, axis=0) >= 2
    assert np.array_equal(out.final_mask, expected) and out.final_mask.any()
    with pytest.raises(ValueError, match="final_rule"):
        LesionPipeline(None, ScriptedSegmenter(), PipelineConfig(methods=[], final_rule="mean"))


def test_vote_of_colour_and_student_is_their_intersection():
    class LeftStudent(_ScriptedStudent):
        def predict(self, image):
            prob = np.zeros(image.shape[:2], np.float32)
            prob[40:80, 50:90] = 0.9
            return prob, 1.0

    cfg = PipelineConfig(
        methods=[], proposals=["colour", "student"], final_sources=["colour", "student"], final_rule="vote"
    )
    out = LesionPipeline(None, ScriptedSegmenter(), cfg, student=LeftStudent()).segment(_image())
    colour, student = out.sources["colour"].mask, out.sources["student"].mask
    assert out.final_source == "vote" and not np.array_equal(colour, student)
    assert np.array_equal(out.final_mask, colour & student) and out.final_mask.any()


def test_a_student_that_finds_no_lesion_delivers_the_fallback_flagged_with_its_reason(monkeypatch):
    """The student, the delivered source, finds nothing: the colour regions' mask (the dark square)
    by default, an empty mask on request or where colour finds nothing either; flagged, confidence 0,
    the reason said; any other setting is refused."""
    from cam_sam.trust import NO_LESION_REASON

    class BlindStudent(_ScriptedStudent):
        def predict(self, image):
            return np.zeros(image.shape[:2], np.float32), 1.0

    def run(image, **settings):
        cfg = PipelineConfig(methods=[], proposals=["student"], final_sources=["student"], **settings)
        return LesionPipeline(None, None, cfg, student=BlindStudent()).segment(image)

    out = run(_image())
    assert out.final_source == "colour_region" and out.sources["student"].error == "empty student mask"
    assert out.final_mask[60, 80] and not out.final_mask[5, 5] and out.final_mask.mean() < 0.2
    assert out.trust.flagged and out.trust.reason == NO_LESION_REASON and out.trust.confidence == 0.0
    assert out.trust.no_lesion and out.trust.to_record()["no_lesion"] and out.trust.expected_iou is None
    empty = run(_image(), no_lesion_fallback="empty")
    assert empty.final_source == "empty" and empty.final_mask.shape == (120, 160) and not empty.final_mask.any()
    assert empty.trust.flagged and empty.trust.reason == NO_LESION_REASON
    monkeypatch.setattr("cam_sam.pipeline.colour_components", lambda image, config: [])
    plain = run(_image())  # no colour region either: an empty mask
    assert plain.final_source == "empty" and not plain.final_mask.any() and plain.trust.flagged
    with pytest.raises(ValueError, match="no_lesion_fallback"):
        run(_image(), no_lesion_fallback="nothing")


def test_fill_holes_equals_scipys_on_random_masks():
    """The flood-fill hole filling gives scipy.ndimage.binary_fill_holes's masks, pixel for pixel."""
    from scipy import ndimage

    from common.geometry import fill_holes

    rng = np.random.default_rng(0)
    for trial in range(200):
        h, w = rng.integers(3, 120, 2)
        mask = rng.random((h, w)) < rng.uniform(0.2, 0.8)
        if trial % 2:
            mask = ndimage.binary_opening(mask)
        assert np.array_equal(fill_holes(mask), ndimage.binary_fill_holes(mask))
    assert fill_holes(np.zeros((4, 4), bool)).sum() == 0


def test_largest_component_equals_scipys_labelling_on_random_masks():
    """OpenCV's labelling gives the component scipy.ndimage.label's would (8-connected, the first
    in raster order of equal largest ones), pixel for pixel; empty and single-component masks stay."""
    from scipy import ndimage

    from common.geometry import largest_component

    def by_scipy(mask):
        labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
        return mask if count <= 1 else labels == (int(np.argmax(np.bincount(labels.ravel())[1:])) + 1)

    rng = np.random.default_rng(1)
    for _ in range(200):
        h, w = rng.integers(3, 120, 2)
        mask = rng.random((h, w)) < rng.uniform(0.05, 0.6)
        assert np.array_equal(largest_component(mask), by_scipy(mask))
    ties = np.zeros((9, 9), bool)
    ties[6:8, 0:2] = ties[0:2, 6:8] = True  # two 4-pixel squares: the upper one comes first
    assert np.array_equal(largest_component(ties), ties & (np.arange(9)[:, None] < 3))
    assert largest_component(np.zeros((4, 4), bool)).sum() == 0
