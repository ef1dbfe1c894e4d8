"""Shared fixtures. Tests make their own small images; the ones that read the real ISIC data in
``../shared`` skip when it is absent.

Two tiers: ``pytest -m "not slow"`` for development, the whole suite (the README's command and
``.ci/run``) before a commit lands. The slow tier is marked here, in one place (:data:`SLOW_MODULES`,
:data:`SLOW_FIXTURES`, :data:`SLOW_TESTS`, and every test on the real data)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

warnings.filterwarnings("ignore", category=FutureWarning)

REPO = Path(__file__).resolve().parents[1]
SHARED_ISIC = REPO.parent / "shared" / "data" / "ISIC2017"

# Whole modules of the slow tier: torchrun processes, ONNX / OpenVINO exports and parity, the notebook.
SLOW_MODULES = {"test_sharded", "test_export", "test_runtime", "test_notebook"}
# Fixtures that train or serve: a 25-epoch student, the page's server, a classifier training run.
SLOW_FIXTURES = {"trained_student", "server", "trained_run"}
# Tests of about 4.5 s or more on the 2-core CPU (pytest --durations): whole script runs, subprocesses,
# ViT-sized random segmenters. tests/test_segment_script.py::test_end_to_end_on_generated_images
# keeps one whole segment run in the fast tier.
SLOW_TESTS = {
    "test_honest_output_does_not_read_the_ground_truth",
    "test_sam_family_with_random_weights",
    "test_overlays_drawn_off_the_main_path_leave_the_records_as_they_were",
    "test_a_full_queue_answers_busy_at_once",
    "test_the_arbiter_preset_runs_teacher_student_and_box_through_litemedsam",
    "test_two_process_gloo_run_splits_the_data",
    "test_flagged_csv_lists_flagged_images_least_confident_first_and_survives_a_resume",
    "test_a_multiclass_run_writes_label_maps_and_class_aware_scores",
    "test_pseudo_labels_never_read_masks",
    "test_interrupted_run_resumes",
    "test_a_bad_image_is_recorded_and_counted_as_zero",
    "test_no_data_falls_back_to_labelled_synthetic_images",
    "test_user_image_folder_without_masks",
    "test_user_errors_are_one_line",
    "test_start_extends_an_earlier_run_in_another_folder",
    "test_the_benchmark_times_every_stage_of_the_realtime_preset",
    "test_the_pipeline_gives_the_expected_iou_in_records_and_flagged_csv",
    "test_generate_cams_writes_heatmaps_quality_and_resumes",
    "test_the_ensemble_is_a_method_of_the_cam_stage_and_of_the_segmentation_script",
}


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        if (
            module in SLOW_MODULES
            or SLOW_FIXTURES & set(getattr(item, "fixturenames", ()))
            or getattr(item, "originalname", item.name) in SLOW_TESTS
            or item.get_closest_marker("real_data")
        ):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="package")
def litemedsam():
    from medsam import create_segmenter

    return create_segmenter("litemedsam", batch_size=16)


@pytest.fixture(scope="package")
def lite0():
    from models import create_classifier

    return create_classifier("efficientnet_lite0")


def ellipse_mask(hw=(200, 300), center=(150, 100), axes=(60, 40)) -> np.ndarray:
    """(H, W) bool ellipse; ``center`` and ``axes`` in xy pixels."""
    yy, xx = np.mgrid[0 : hw[0], 0 : hw[1]]
    return ((xx - center[0]) / axes[0]) ** 2 + ((yy - center[1]) / axes[1]) ** 2 <= 1.0


def requires_isic():
    """Skip without the real data in ``../shared``; with it, the test is in the slow tier."""
    skip = pytest.mark.skipif(not SHARED_ISIC.is_dir(), reason=f"no ISIC data at {SHARED_ISIC}")
    return lambda test: pytest.mark.real_data(skip(test))
