"""Confidence -> expected IoU: the map is monotone, ships in the student's trust sidecar with its
review thresholds (no data at run time), reaches the pipeline's trust and flagged.csv, and the
study script fits and checks it from runs' metrics.json alone."""

import json

import numpy as np
import pytest

from cam_sam.calibration import Calibration, Verdicts, confidence_variant
from cam_sam.runs.student_trust import StudentTrust, load_student_trust, trust_path
from cam_sam.settings import ARBITER_STUDENT_CHECKPOINT, STUDENT_CHECKPOINT
from common.errors import CheckpointError
from common.io import write_json


def test_the_fitted_map_is_monotone_and_clipped():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0, 1, 300)
    iou = np.clip(confidence + rng.normal(0, 0.2, 300), 0, 1)
    calibration = Calibration.fit(confidence, iou, "made up")
    grid = np.linspace(-0.5, 1.5, 200)
    expected = calibration(grid)
    assert np.all(np.diff(expected) >= 0) and expected.min() >= 0 and expected.max() <= 1
    assert calibration(0.9) > calibration(0.1) + 0.4  # it follows the data
    assert isinstance(calibration(0.5), float)


def test_the_sidecar_round_trips_per_preset_and_a_bad_one_is_refused_naming_it(tmp_path):
    path = trust_path(tmp_path / "student.pt")
    assert path == tmp_path / "student.trust.json" and load_student_trust(tmp_path / "student.pt") is None
    fast = Calibration(np.array([0.2, 0.8]), np.array([0.3, 0.9]), "val")
    StudentTrust(
        {"fast": Verdicts(0.38, fast, "a rule"), "arbiter": Verdicts(0.55)},
        "student.depth.npz",
        "frames",
        {"val": "split=val"},
    ).save(path, "student.pt")
    loaded = load_student_trust(tmp_path / "student.pt")
    assert loaded.verdicts["fast"].calibration(0.5) == pytest.approx(0.6) and loaded.verdicts["fast"].rule == "a rule"
    assert loaded.verdicts["fast"].review_threshold == 0.38 and loaded.verdicts["fast"].calibration.fitted_on == "val"
    assert loaded.verdicts["arbiter"].calibration is None and "student" not in loaded.verdicts
    assert (loaded.depth, loaded.depth_fitted_on, loaded.data) == ("student.depth.npz", "frames", {"val": "split=val"})
    assert json.loads(path.read_text())["presets"]["fast"]["confidence"] == "no_zoom"
    assert confidence_variant(False, True) == "no_zoom" and confidence_variant(True, False) == "zoom_one_pass"
    write_json(
        path,
        {
            "format": 1,
            "presets": {
                "student": {
                    "review_threshold": 0.3,
                    "expected_iou": {"confidence": [0.5, 0.2], "expected_iou": [0.1, 0.2]},
                }
            },
        },
    )
    with pytest.raises(CheckpointError, match="student.trust.json.*monotone"):
        load_student_trust(tmp_path / "student.pt")
    write_json(path, {"zoom": {"confidence": [0.2, 0.5], "expected_iou": [0.1, 0.2]}})  # the old side file's form
    with pytest.raises(CheckpointError, match="student.trust.json.*format"):
        load_student_trust(tmp_path / "student.pt")


def test_the_shipped_sidecars_hold_the_presets_thresholds_and_maps():
    """The default's student carries its three presets' verdicts and its depth statistics; the
    arbiter's partner the arbiter's threshold (0.55) alone."""
    default = load_student_trust(STUDENT_CHECKPOINT)
    assert {k: v.review_threshold for k, v in default.verdicts.items()} == {
        "student": 0.33,
        "fast": 0.38,
        "realtime": 0.52,
    }
    assert all(
        v.calibration is not None and v.calibration.fitted_on == "val+train_every18" for v in default.verdicts.values()
    )
    assert default.depth_check().threshold > 0
    arbiter = load_student_trust(ARBITER_STUDENT_CHECKPOINT)
    assert {k: v.review_threshold for k, v in arbiter.verdicts.items()} == {"arbiter": 0.55} and arbiter.depth is None


def test_the_pipeline_gives_the_expected_iou_in_records_and_flagged_csv(tmp_path):
    """A student with a calibration file beside it: every record's trust has the expected IoU of
    its confidence, and flagged.csv lists it."""
    import shutil

    import pandas as pd

    from cam_sam import segment
    from data.synthetic import write_synthetic_isic

    student = tmp_path / "student.pt"
    shutil.copy(STUDENT_CHECKPOINT, student)
    StudentTrust({"fast": Verdicts(0.4, Calibration(np.array([0.0, 1.0]), np.array([0.1, 0.9])))}).save(
        trust_path(student)
    )
    root = write_synthetic_isic(tmp_path / "data", n_images=2, split="val")
    metrics = segment.main(
        [
            x
            for a in [
                f"data_root={root}",
                f"out_dir={tmp_path / 'run'}",
                "preset=fast",
                f"student_checkpoint={student}",
                "student_backend=torch",
                "n_overlays=0",
                "review_threshold=1.01",
            ]
            for x in ("--set", a)
        ]
    )
    for rows in metrics["per_image"].values():
        final = rows["final"]
        assert final["expected_iou"] == pytest.approx(0.1 + 0.8 * final["confidence"])
    flagged = pd.read_csv(tmp_path / "run" / "flagged.csv")
    assert len(flagged) == 2 and flagged["expected_iou"].notna().all()
    assert metrics["summary"]["final"]["mean_expected_iou"] == pytest.approx(flagged["expected_iou"].mean(), abs=1e-3)


def test_the_study_fits_on_pooled_runs_and_leaves_each_out(tmp_path):
    from cam_sam.studies import calibration as study

    rng = np.random.default_rng(1)
    runs = {}
    for name in ("a", "b"):
        confidence = rng.uniform(0, 1, 60)
        iou = np.clip(confidence + rng.normal(0, 0.15, 60), 0, 1)
        per_image = {
            f"{name}{i}": {"final": {"iou": float(v), "confidence": float(c)}}
            for i, (c, v) in enumerate(zip(confidence, iou))
        }
        write_json(tmp_path / name / "metrics.json", {"per_image": per_image, "summary": {}})
        runs[name] = str(tmp_path / name)
    result = study.main(
        [
            "--set",
            f"fit={json.dumps(runs)}",
            "--set",
            f"sets={json.dumps(runs)}",
            "--set",
            "variant=zoom",
            "--set",
            f"out_dir={tmp_path / 'report'}",
        ]
    )
    fitted = {(r["fitted_on"], r["set"]) for r in result["report"]}
    assert {("a+b", "a+b"), ("a+b", "a"), ("b", "a"), ("a", "b")} <= fitted
    pooled = next(r for r in result["report"] if r["fitted_on"] == "a+b" and r["set"] == "a+b")
    assert pooled["failures_flagged"] >= 0.8 and pooled["max_decile_gap"] < 0.2
    assert (tmp_path / "report" / "reliability.png").is_file()


def test_the_page_and_the_api_give_the_expected_iou():
    from cam_sam.serve.app import verdict
    from cam_sam.trust import Trust

    trust = Trust(0.42, True, "the student changes its mask when the image is flipped", {}, expected_iou=0.57)
    assert verdict(trust).startswith("expected IoU **0.57**") and "please review" in verdict(trust)
    assert verdict(Trust(0.9, False, "", {})).startswith("confidence **0.90**")


def test_the_terms_study_rebuilds_the_recorded_confidence_and_crosses_the_sets(tmp_path):
    """From records alone: 'all terms' gives back each record's confidence (so its AUROC is the
    run's), and each set's chosen variant is read on the other."""
    from cam_sam.studies import confidence_terms as study
    from cam_sam.trust import CandidateSignals, confidence_of

    rng = np.random.default_rng(2)
    runs = {}
    for name in ("a", "b"):
        per_image = {}
        for i in range(12):
            student = CandidateSignals(
                consensus=0.9,
                quality=float(rng.uniform(0.5, 1)),
                rim=0.0,
                outside=0.0,
                area=0.1,
                solidity=1.0,
                stability=float(rng.uniform(0.6, 1)),
                zoom_stability=float(rng.uniform(0.6, 1)),
                contrast=float(rng.uniform(5, 50)),
            )
            region = CandidateSignals(consensus=0.9, quality=0.9, rim=0.0, outside=0.0, area=0.1, solidity=1.0)
            agree = float(rng.uniform(0.3, 1))
            signals = {"student": student, "colour_region": region}
            pairwise = {"student": {"colour_region": agree}, "colour_region": {"student": agree}}
            conf = confidence_of(signals, pairwise, "student")
            write_json(
                tmp_path / name / "records" / f"{name}{i}.json",
                {
                    "final_source": "student",
                    "trust": {
                        "confidence": conf,
                        "pairwise": pairwise,
                        "signals": {k: vars(v) for k, v in signals.items()},
                    },
                },
            )
            per_image[f"{name}{i}"] = {"final": {"iou": float(np.clip(conf + rng.normal(0, 0.2), 0, 1))}}
        write_json(tmp_path / name / "metrics.json", {"per_image": per_image, "summary": {}})
        runs[name] = str(tmp_path / name)
    result = study.main(["--set", f"runs={json.dumps(runs)}", "--set", f"out_dir={tmp_path / 'out'}"])
    frame, _ = study.image_terms(tmp_path / "a")
    rebuilt = study.confidence(frame, study.CONFIDENCE_TERMS, study.CONTRAST_SCALE)
    recorded = {
        p.stem: json.loads(p.read_text())["trust"]["confidence"] for p in (tmp_path / "a" / "records").glob("*.json")
    }
    assert all(abs(rebuilt[i] - recorded[i]) < 1e-9 for i in recorded)
    assert [(row["rule"], row["chosen on"]) for row in result["crossing"]] == [
        ("best", "a"),
        ("best", "b"),
        ("evidence", "a"),
        ("evidence", "b"),
    ]
    assert (tmp_path / "out" / "confidence_terms.md").is_file()


def test_the_evidence_rule_keeps_the_shipped_confidence_against_a_chance_gain_and_not_against_a_clear_one():
    """120 images, 12 failures. A variant that ranks one failure a little lower than the shipped
    confidence has the highest AUROC ("best" takes it) but no interval clear of zero; a variant
    that separates the failures does."""
    import pandas as pd

    from cam_sam.studies import confidence_terms as study
    from common.metrics import auroc_fail

    rng = np.random.default_rng(0)
    ious = {f"i{k}": (0.2 if k < 12 else 0.8) for k in range(120)}
    shipped = {i: float(rng.uniform(0.0, 0.7) if iou < 0.5 else rng.uniform(0.2, 1.0)) for i, iou in ious.items()}
    worst_failure = max((i for i in ious if ious[i] < 0.5), key=shipped.get)
    chance = {**shipped, worst_failure: shipped[worst_failure] - 0.05}
    clear = {i: (0.1 if iou < 0.5 else 0.9) for i, iou in ious.items()}
    cfg = {"n_resamples": 500, "confidence_level": 0.95, "seed": 0}
    for candidates, evidence in (({"chance": chance}, study.SHIPPED), ({"chance": chance, "clear": clear}, "clear")):
        confidences = {name: {"a": conf} for name, conf in {study.SHIPPED: shipped, **candidates}.items()}
        report = pd.DataFrame([{"variant": n, "a": auroc_fail(c["a"], ious)} for n, c in confidences.items()])
        assert report.set_index("variant").loc["chance", "a"] > report.set_index("variant").loc[study.SHIPPED, "a"]
        assert study.choose(report, confidences, ious, "a", "best", cfg) == (
            "clear" if "clear" in candidates else "chance"
        )
        assert study.choose(report, confidences, ious, "a", "evidence", cfg) == evidence


def test_pooled_failures_keep_one_confident_failure_of_a_small_set_from_setting_the_level():
    """Set a has 10 failures at low confidence, set b 4, one of them confident: each set's 80 %
    needs all of b's, so that one failure sets the level; pooled, 80 % of the 14 leaves it out."""
    import pandas as pd

    from cam_sam.studies.calibration import review_threshold

    def frame(fail_confidence, n_good):
        good = np.linspace(0.5, 1.0, n_good)
        return pd.DataFrame(
            {
                "confidence": np.r_[fail_confidence, good],
                "iou": np.r_[np.full(len(fail_confidence), 0.2), np.full(n_good, 0.9)],
            }
        )

    a, b = frame(np.linspace(0.0, 0.2, 10), 110), frame([0.05, 0.1, 0.15, 0.8], 95)
    identity = Calibration(np.array([0.0, 1.0]), np.array([0.0, 1.0]))
    each, pooled = review_threshold(identity, [a, b], 0.8), review_threshold(identity, [pd.concat([a, b])], 0.8)
    assert each == pytest.approx(0.8, abs=1e-5)
    assert 0.15 < pooled < 0.2
