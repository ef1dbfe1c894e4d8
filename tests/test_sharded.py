"""The same segmentation run split over two processes (torchrun, gloo, CPU) gives the same
metrics.json as one process, and resumes after a change of the number of processes."""
import json
import subprocess
import sys

from common.io import read_json
from data.synthetic import write_synthetic_isic
from tests.conftest import REPO

SETTINGS = ["methods=[]", "prompts.n_perturbations=2", "n_overlays=0", "save_uncertainty=false"]


def _segment(out, root, processes: int, *extra):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    args = ["-m", "cam_sam.segment"] + [x for s in [f"data_root={root}", f"out_dir={out}", *SETTINGS, *extra]
                                        for x in ("--set", s)]
    result = subprocess.run(launcher + args, cwd=REPO, capture_output=True, text=True, timeout=600,
                            env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    return read_json(out / "metrics.json")


def test_two_processes_give_the_metrics_of_one(tmp_path):
    root = write_synthetic_isic(tmp_path / "data", n_images=4, split="val")
    one = _segment(tmp_path / "one", root, 1)
    two = _segment(tmp_path / "two", root, 2)
    assert json.dumps(one, sort_keys=True) == json.dumps(two, sort_keys=True)
    assert one["summary"]["final"]["n_images"] == 4
    # a run interrupted after some images resumes with another number of processes
    records = sorted((tmp_path / "two" / "records").glob("*.json"))
    records[-1].unlink()
    (tmp_path / "two" / "metrics.json").unlink()
    again = _segment(tmp_path / "two", root, 1)
    assert json.dumps(again, sort_keys=True) == json.dumps(one, sort_keys=True)
