"""The out-of-depth check: a photograph that is not dermoscopy gets its own verdict, a generated
lesion does not; the statistics ship beside the student (named by its trust sidecar) and load
without pickle."""

from pathlib import Path

import numpy as np
import pytest

from cam_sam.depth import OUT_OF_DEPTH_REASON, fit_depth
from cam_sam.runs.build import build_pipeline
from cam_sam.runs.student_trust import load_depth_check, load_student_trust, save_depth_check
from cam_sam.settings import PIPELINE_CONFIG, resolve_pipeline
from common.errors import CheckpointError
from data.synthetic import make_synthetic_sample

REPO = Path(__file__).resolve().parents[1]
STUDENT = REPO / PIPELINE_CONFIG["student_checkpoint"]


def test_fit_flags_points_far_from_the_training_cloud(tmp_path):
    rng = np.random.default_rng(0)
    train = rng.normal(0, 1, (500, 8))
    check = fit_depth(train)
    fresh = rng.normal(0, 1, (2000, 8))  # new images of the same kind: about 1 % out
    assert np.mean([check.is_out(f) for f in fresh]) < 0.03
    assert check.is_out(np.full(8, 6.0)) and not check.is_out(np.zeros(8))
    save_depth_check(check, tmp_path / "s.depth.npz")
    again = load_depth_check(tmp_path / "s.depth.npz")
    assert type(again) is type(check) and again.threshold == check.threshold
    assert abs(again.distance(np.full(8, 2.0)) - check.distance(np.full(8, 2.0))) < 1e-4


def test_unreadable_or_other_statistics_are_refused_naming_the_file(tmp_path):
    """Statistics of another kind (a Mahalanobis mean and precision, the format before the
    neighbour check) or not an npz at all: one error naming the file and how to refit."""
    np.savez(
        tmp_path / "old.depth.npz",
        mean=np.zeros(3, np.float32),
        precision=np.eye(3, dtype=np.float32),
        threshold=np.float64(2.0),
    )
    with pytest.raises(CheckpointError, match="old.depth.npz.*self_training.ship"):
        load_depth_check(tmp_path / "old.depth.npz")
    (tmp_path / "bad.depth.npz").write_bytes(b"not an npz")
    with pytest.raises(CheckpointError, match="bad.depth.npz"):
        load_depth_check(tmp_path / "bad.depth.npz")


def test_the_shipped_student_has_its_statistics_beside_it():
    check = load_student_trust(STUDENT).depth_check()
    assert check.kind == "neighbours" and check.references.ndim == 2 and check.threshold > 0
    assert check.references.shape[1] == len(check.mean) == len(check.scale)


@pytest.fixture(scope="module")
def pipeline():
    return build_pipeline(*resolve_pipeline(PIPELINE_CONFIG), "cpu")


def test_photographs_are_out_of_depth_and_generated_lesions_are_not(pipeline):
    from skimage import data

    for photo in (data.astronaut(), data.coffee(), data.chelsea()):
        trust = pipeline.segment(np.ascontiguousarray(photo)).trust
        assert trust.out_of_depth and trust.flagged and trust.reason == OUT_OF_DEPTH_REASON
    for seed in (1, 2, 3):
        trust = pipeline.segment(make_synthetic_sample(seed).image).trust
        assert trust.out_of_depth is False and trust.reason != OUT_OF_DEPTH_REASON
