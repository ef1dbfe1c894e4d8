"""User mistakes end a script with one line naming the file or key, not a traceback."""
import subprocess
import sys

import pytest

from tests.conftest import REPO


def _run(module: str, *sets: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", module] + [x for s in sets for x in ("--set", s)]
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("module, sets, expected", [
    ("cam_sam.segment", ["data_root=/nonexistent/isic", "synthetic_if_missing=false"], "/nonexistent/isic"),
    ("cam_sam.segment", ["split=holiday", "data_root=."], "holiday"),
    # a data root the user gave that is not there (a typo) is no reason to segment generated images
    ("cam_sam.segment", ["data_root=/data/ISIC2017_typo"], "/data/ISIC2017_typo"),
    ("cam_sam.segment", ["dataset=ph2", "data_root=/nowhere/ph2", "split=all"], "/nowhere/ph2"),
    ("cam_sam.segment", ["preset=arbiter", "segmenter=sam_vit_b", "segmenter_checkpoint=/nowhere/sam.pth",
                         "image_dir={tmp}/images"], "/nowhere/sam.pth"),
    ("classification.test", ["checkpoint=/nowhere/clf.pth"], "/nowhere/clf.pth"),
])
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
