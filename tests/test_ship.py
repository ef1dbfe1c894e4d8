"""A student carries its own trust: ``self_training.ship`` fits a tiny student's (random weights)
review thresholds, expected-IoU maps and depth statistics on generated development sets and writes
its sidecar and model-card stub; a run of that student then gives its own verdicts. A student
without a sidecar runs uncalibrated, said once; a student that finds no lesion delivers the
fallback, flagged with its reason and counted in the summary."""

import json
import logging

import numpy as np
import pandas as pd
import pytest

from cam_sam import segment
from cam_sam.calibration import Calibration, Verdicts
from cam_sam.runs.student_trust import StudentTrust, load_student_trust, trust_path
from cam_sam.trust import NO_LESION_REASON, UNCALIBRATED_REVIEW_THRESHOLD
from data.synthetic import write_synthetic_isic
from models.student import StudentConfig, build_student, save_student
from self_training import ship

SMALL = 64  # the tiny student's input side


def tiny_student(path, head_bias: float | None = None):
    """A student of random weights; ``head_bias``: its output layer's bias (very negative: it
    finds no lesion anywhere)."""
    config = StudentConfig(input_size=SMALL)
    model = build_student(config)
    if head_bias is not None:
        model.segmentation_head[0].bias.data.fill_(head_bias)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_student(path, model, config)
    return path


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_synthetic_isic(root, 12, "train", seed=0)
    write_synthetic_isic(root, 3, "val", seed=100)
    return root


def run(tmp_path, name, student, root, *extra):
    return segment.main(
        [
            x
            for a in [
                f"data_root={root}",
                f"out_dir={tmp_path / name}",
                f"student_checkpoint={student}",
                "student_backend=torch",
                "device=cpu",
                "n_overlays=0",
                *extra,
            ]
            for x in ("--set", a)
        ]
    )


def test_ship_writes_the_sidecar_and_a_run_uses_the_students_own_verdicts(tmp_path, data_root):
    student = tiny_student(tmp_path / "mine" / "student.pt")
    sets = [
        {"name": "val", "data_root": str(data_root), "split": "val"},
        {"name": "train_every4", "data_root": str(data_root), "split": "train", "every": 4},
    ]
    report = ship.main(
        [
            x
            for a in [
                f"checkpoint={student}",
                f"sets={json.dumps(sets)}",
                'presets=["student", "fast"]',
                f"depth_data_root={data_root}",
                "depth_image_dirs=[]",
                f"out_dir={tmp_path / 'dev'}",
                "student_backend=torch",
                "device=cpu",
            ]
            for x in ("--set", a)
        ]
    )
    trust = load_student_trust(student)
    assert set(trust.verdicts) == {"student", "fast"} and report["sidecar"] == str(trust_path(student))
    assert trust.depth == "student.depth.npz" and trust.depth_check().threshold > 0
    assert set(trust.data) == {"val", "train_every4"} and "training crops" in trust.depth_fitted_on
    for verdicts in trust.verdicts.values():
        assert 0 <= verdicts.review_threshold <= 1 and round(verdicts.review_threshold, 2) == verdicts.review_threshold
        assert verdicts.calibration.fitted_on == "val+train_every4" and "80 %" in verdicts.rule
    card = (tmp_path / "mine" / "student.md").read_text()
    assert "| student | val | 3 |" in card and "student.trust.json" in card

    # the default preset reads the "student" entry: its threshold flags, its map gives the expected IoU
    own = trust.verdicts["student"]
    metrics = run(tmp_path, "default", student, data_root)
    for rows in metrics["per_image"].values():
        final = rows["final"]
        if final.get("no_lesion"):
            continue
        assert final["expected_iou"] == pytest.approx(own.calibration(final["confidence"]), abs=1e-9)
        assert final["flagged"] == (final["confidence"] < own.review_threshold or bool(final["out_of_depth"]))
        assert final["out_of_depth"] is not None  # the shipped depth statistics were read
    # preset fast reads its own entry: a sidecar whose "fast" flags everything at expected IoU 0.123
    StudentTrust(
        {**trust.verdicts, "fast": Verdicts(1.01, Calibration(np.array([0.0]), np.array([0.123])))},
        trust.depth,
        trust.depth_fitted_on,
        trust.data,
    ).save(trust_path(student))
    metrics = run(tmp_path, "fast", student, data_root, "preset=fast")
    finals = [rows["final"] for rows in metrics["per_image"].values()]
    assert all(f["flagged"] for f in finals) and metrics["summary"]["final"]["n_flagged"] == 3
    assert all(f["expected_iou"] == pytest.approx(0.123) for f in finals if not f.get("no_lesion"))


def test_a_student_without_a_sidecar_runs_uncalibrated_and_says_so_once(tmp_path, data_root, caplog):
    student = tiny_student(tmp_path / "bare" / "student.pt")
    with caplog.at_level(logging.WARNING, logger="cam_sam.runs.build"):
        metrics = run(tmp_path, "bare", student, data_root)
    said = [r for r in caplog.records if "uncalibrated" in r.getMessage()]
    assert len(said) == 1 and "no trust sidecar" in said[0].getMessage()
    for rows in metrics["per_image"].values():
        final = rows["final"]
        assert final["expected_iou"] is None and final["out_of_depth"] is None
        if not final.get("no_lesion"):
            assert final["flagged"] == (final["confidence"] < UNCALIBRATED_REVIEW_THRESHOLD)


def test_a_student_that_finds_no_lesion_is_flagged_and_counted_in_the_summary(tmp_path, data_root):
    student = tiny_student(tmp_path / "blind" / "student.pt", head_bias=-50.0)
    metrics = run(tmp_path, "blind", student, data_root)
    final = metrics["summary"]["final"]
    assert final["n_no_lesion"] == 3 and final["n_flagged"] == 3 and final["n_failed"] == 0
    for image_id, rows in metrics["per_image"].items():
        assert rows["final"]["no_lesion"] and rows["final"]["flagged"] and rows["final"]["reason"] == NO_LESION_REASON
        assert rows["final"]["source"] in ("colour_region", "empty") and rows["student"]["failed"]
        assert (tmp_path / "blind" / "masks" / f"{image_id}.png").is_file()
    flagged = pd.read_csv(tmp_path / "blind" / "flagged.csv")
    assert len(flagged) == 3 and set(flagged["reason"]) == {NO_LESION_REASON}
    empty = run(tmp_path, "blind_empty", student, data_root, "no_lesion_fallback=empty")
    assert {rows["final"]["source"] for rows in empty["per_image"].values()} == {"empty"}
    assert all(rows["final"]["iou"] == 0.0 for rows in empty["per_image"].values())
