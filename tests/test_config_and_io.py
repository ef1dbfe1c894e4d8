import pytest

from common.config import apply_overrides, parse_value
from common.errors import RunError, SettingsError
from common.io import read_json, resolve_run_dir, write_json


def test_parse_value():
    assert parse_value("20") == 20
    assert parse_value('["gradcam", "eigencam"]') == ["gradcam", "eigencam"]
    assert parse_value("['a']") == ["a"]
    assert parse_value("None") is None and parse_value("null") is None
    assert parse_value("val") == "val"


def test_overrides_reject_unknown_keys():
    cfg = {"limit": None, "split": "val"}
    assert apply_overrides(cfg, ["limit=3", "split=train"]) == {"limit": 3, "split": "train"}
    assert cfg["limit"] is None  # the original is not modified
    with pytest.raises(SettingsError, match="unknown CONFIG key 'limt'"):
        apply_overrides(cfg, ["limt=3"])
    with pytest.raises(SettingsError, match="key=value"):
        apply_overrides(cfg, ["limit"])


def test_json_nan_and_run_dirs(tmp_path):
    write_json(tmp_path / "a.json", {"x": float("nan"), "y": [1.5]})
    assert read_json(tmp_path / "a.json") == {"x": None, "y": [1.5]}
    first = resolve_run_dir(tmp_path, None, "segment")
    second = resolve_run_dir(tmp_path, None, "segment")
    assert first != second and first.is_dir() and second.is_dir()
    assert resolve_run_dir(tmp_path, str(tmp_path / "mine"), "segment") == tmp_path / "mine"


def test_atomically_written_files_get_the_permissions_of_any_new_file(tmp_path):
    """The temporary file is owner-only; the finished file is not (0o666 less the umask)."""
    import os
    import stat

    from common.io import FILE_MODE

    write_json(tmp_path / "m.json", {"a": 1})
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert stat.S_IMODE(os.stat(tmp_path / "m.json").st_mode) == stat.S_IMODE(os.stat(plain).st_mode) == FILE_MODE


def test_presets_apply_first_and_overrides_win():
    from common.config import config_from_argv

    cfg = {"preset": None, "a": 1, "b": 2}
    presets = {"p": {"a": 10, "b": 20}}
    assert config_from_argv(cfg, ["--set", "b=5", "--set", "preset=p"], presets=presets) == {
        "preset": "p",
        "a": 10,
        "b": 5,
    }
    assert config_from_argv(cfg, [], presets=presets) == cfg
    with pytest.raises(SettingsError, match="unknown preset"):
        config_from_argv(cfg, ["--set", "preset=q"], presets=presets)


def test_dotted_keys_reach_into_groups_and_groups_merge():
    from common.config import config_from_argv, flatten, merge

    cfg = {"preset": None, "colour": {"work_size": 256, "padding": 0.1}, "limit": None}
    out = apply_overrides(cfg, ["colour.work_size=320"])
    assert out["colour"] == {"work_size": 320, "padding": 0.1} and cfg["colour"]["work_size"] == 256
    with pytest.raises(SettingsError, match="unknown CONFIG key 'colour.size' in group 'colour'"):
        apply_overrides(cfg, ["colour.size=1"])
    with pytest.raises(SettingsError, match="unknown CONFIG group 'limit'"):
        apply_overrides(cfg, ["limit.x=1"])
    # a partial group (preset, ablation override) keeps the other fields of the group
    assert merge(cfg, {"colour": {"padding": 0.0}})["colour"] == {"work_size": 256, "padding": 0.0}
    presets = {"p": {"colour": {"padding": 0.3}}}
    got = config_from_argv(cfg, ["--set", "preset=p", "--set", "colour.work_size=128"], presets=presets)
    assert got["colour"] == {"work_size": 128, "padding": 0.3}
    assert flatten(got) == {"preset": "p", "colour.work_size": 128, "colour.padding": 0.3, "limit": None}


def test_pipeline_config_maps_groups_one_to_one():
    from dataclasses import asdict

    from cam_sam.pipeline import PipelineConfig
    from cam_sam.settings import PIPELINE_CONFIG, pipeline_config

    assert asdict(pipeline_config(PIPELINE_CONFIG)) == asdict(PipelineConfig())
    changed = apply_overrides(PIPELINE_CONFIG, ["colour.work_size=320", "prompts.box_padding=0.2"])
    typed = pipeline_config(changed)
    assert typed.colour.work_size == 320 and typed.prompts.box_padding == 0.2


def test_a_run_resumes_after_the_project_adds_a_setting_at_its_default(tmp_path):
    from common.runs import ResumableRun

    ResumableRun(tmp_path, {"a": 1, "group": {"b": 2}})  # started before "new" existed
    defaults = {"a": 0, "group": {"b": 0, "c": "x"}, "new": False}
    ResumableRun(tmp_path, {"a": 1, "group": {"b": 2, "c": "x"}, "new": False}, defaults=defaults)  # accepted
    ResumableRun(tmp_path / "other", {"a": 1})
    with pytest.raises(RunError, match=r"keys \['new'\] differ"):  # a new setting NOT at its default
        ResumableRun(tmp_path / "other", {"a": 1, "new": True}, defaults=defaults)
    with pytest.raises(RunError, match=r"keys \['a'\] differ"):  # an old setting changed
        ResumableRun(tmp_path, {"a": 2, "group": {"b": 2, "c": "x"}, "new": False}, defaults=defaults)


def test_a_run_resumes_after_the_project_removes_a_setting_only_at_the_value_it_kept(tmp_path):
    """A run folder of a version that still had ``prompts.n_negative_points`` resumes when that
    setting was 0 (what the code still does) and is refused at any other value."""
    from common.runs import RETIRED_SETTINGS, ResumableRun

    assert RETIRED_SETTINGS["prompts.n_negative_points"] == 0
    now = {"a": 1, "prompts": {"n_points": 0}}
    ResumableRun(tmp_path / "kept", {**now, "prompts": {"n_points": 0, "n_negative_points": 0}})
    ResumableRun(tmp_path / "kept", now, defaults=now)  # accepted
    ResumableRun(tmp_path / "used", {**now, "prompts": {"n_points": 0, "n_negative_points": 4}})
    with pytest.raises(RunError, match=r"keys \['prompts.n_negative_points'\] differ"):
        ResumableRun(tmp_path / "used", now, defaults=now)


def test_the_student_preset_is_the_default_spelled_out():
    """preset=student pins the default by name: applied to the defaults it changes nothing."""
    from cam_sam.settings import PRESETS, SEGMENT_CONFIG

    assert all(SEGMENT_CONFIG[k] == v for k, v in PRESETS["student"].items())
    fast = PRESETS["fast"]
    assert {k for k in fast if fast[k] != PRESETS["student"][k]} == {"zoom_stability"}


def test_loads_ahead_keep_the_order_and_a_failed_load_fails_only_its_image(tmp_path):
    """``process`` with ``load``: each image's work gets its own loaded item, in order, while the
    next loads run ahead; a load that raises becomes that image's failure record."""
    import threading

    from common.runs import ResumableRun

    loader_threads = set()

    def load(image_id):
        loader_threads.add(threading.get_ident())
        if image_id == "c":
            raise OSError("unreadable c.png")
        return image_id.upper()

    seen = []
    run = ResumableRun(tmp_path, {"a": 1})
    run.process(
        list("abcde"),
        lambda index, image_id, item: seen.append((index, image_id, item)) or {"item": item},
        desc="test",
        load=load,
        ahead=2,
    )
    assert seen == [(0, "a", "A"), (1, "b", "B"), (3, "d", "D"), (4, "e", "E")]
    assert run.load("c") == {"error": "OSError: unreadable c.png"} and run.load("e") == {"item": "E"}
    assert threading.get_ident() not in loader_threads  # the loads ran in a worker thread


def test_deferred_records_are_written_behind_in_a_thread(tmp_path):
    """``work`` may return the rest of an image's work: it runs in the writer thread, at most
    ``write_behind`` images behind; its failure is the image's failure; every record is saved."""
    import threading
    import time

    from common.runs import ResumableRun

    writer_threads, started = set(), []

    def work(index, image_id):
        started.append(image_id)
        if image_id == "b":
            raise ValueError("bad b")

        def finish():
            writer_threads.add(threading.get_ident())
            time.sleep(0.01)
            if image_id == "d":
                raise OSError("disk full writing d")
            return {"id": image_id, "started_before_me": len(started)}

        return finish

    run = ResumableRun(tmp_path, {"a": 1})
    run.process(list("abcdef"), work, desc="test", write_behind=2)
    assert run.load("a")["id"] == "a" and run.load("f")["id"] == "f"
    assert run.load("b") == {"error": "ValueError: bad b"}
    assert run.load("d") == {"error": "OSError: disk full writing d"}
    assert writer_threads and threading.get_ident() not in writer_threads
    # at most 2 images behind: when an image's record is made, at most its own work, the two after it
    # and the one being worked on now have begun
    assert all(run.load(i)["started_before_me"] <= "abcdef".index(i) + 1 + 2 + 1 for i in "acef")
    # without write_behind the deferred part runs at once, on this thread
    inline = ResumableRun(tmp_path / "inline", {"a": 1})
    inline.process(["x"], lambda index, image_id: lambda: {"thread": threading.get_ident()}, desc="test")
    assert inline.load("x") == {"thread": threading.get_ident()}
