"""User mistakes end a script with one line naming the file or key, not a traceback."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


def _run(module: str, *sets: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", module] + [x for s in sets for x in ("--set", s)]
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "module, sets, expected",
    [
        ("cam_sam.segment", ["data_root=/nonexistent/isic", "synthetic_if_missing=false"], "/nonexistent/isic"),
        ("cam_sam.segment", ["split=holiday", "data_root=."], "holiday"),
        # a data root the user gave that is not there (a typo) is no reason to segment generated images
        ("cam_sam.segment", ["data_root=/data/ISIC2017_typo"], "/data/ISIC2017_typo"),
        ("cam_sam.segment", ["dataset=ph2", "data_root=/nowhere/ph2", "split=all"], "/nowhere/ph2"),
        (
            "cam_sam.segment",
            [
                "preset=arbiter",
                "segmenter=sam_vit_b",
                "segmenter_checkpoint=/nowhere/sam.pth",
                "image_dir={tmp}/images",
            ],
            "/nowhere/sam.pth",
        ),
        ("classification.test", ["checkpoint=/nowhere/clf.pth"], "/nowhere/clf.pth"),
    ],
)
def test_user_errors_are_one_line(tmp_path, module, sets, expected):
    from common.io import write_png
    from data.synthetic import make_synthetic_sample

    write_png(tmp_path / "images" / "a.png", make_synthetic_sample(0).image)
    result = _run(module, *[s.format(tmp=tmp_path) for s in sets], f"results_root={tmp_path}")
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and expected in lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_a_bug_keeps_its_traceback():
    from common.cli import run_main

    def broken(argv):
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        run_main(broken, [])


def test_a_bug_like_key_error_keeps_its_traceback(capsys):
    """A KeyError inside main is a bug, not a typo: run_main lets it through with its traceback."""
    from common.cli import run_main

    def broken(argv):
        return {}["missing"]

    with pytest.raises(KeyError, match="missing"):
        run_main(broken, [])
    assert "error:" not in capsys.readouterr().err


def test_a_missing_file_is_one_line_and_exit_2(tmp_path, capsys):
    """A DataError (here a missing image) ends the script with one line and exit status 2."""
    from common.cli import run_main
    from data.isic import read_image

    missing = tmp_path / "nowhere.png"
    with pytest.raises(SystemExit) as stop:
        run_main(lambda argv: read_image(missing), [])
    assert stop.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(missing) in lines[0]


def test_a_bug_keeps_its_traceback_in_a_script_process(tmp_path):
    """End to end: a script whose main raises a KeyError exits with a traceback, not one line."""
    script = tmp_path / "buggy.py"
    script.write_text(
        "from common.cli import run_main\n"
        "def main(argv):\n    return {}['missing']\n"
        "if __name__ == '__main__':\n    run_main(main)\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 1 and "Traceback" in result.stderr and "KeyError" in result.stderr
    assert "error: " not in result.stderr
