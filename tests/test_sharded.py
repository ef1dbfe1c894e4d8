"""The same segmentation run split over two processes (torchrun, gloo, CPU; or the run's own
``workers``) gives the same metrics.json as one process, and resumes after a change of the number
of processes."""

import json
import subprocess
import sys

from common.io import read_json
from data.synthetic import write_synthetic_isic
from tests.conftest import REPO

SETTINGS = ["methods=[]", "prompts.n_perturbations=2", "n_overlays=0", "save_uncertainty=false"]


def _segment(out, root, processes: int, *extra, torchrun: bool = True):
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
        if torchrun
        else [sys.executable]
    )
    extra = extra if torchrun else (f"workers={processes}", *extra)
    args = ["-m", "cam_sam.segment"] + [
        x for s in [f"data_root={root}", f"out_dir={out}", *SETTINGS, *extra] for x in ("--set", s)
    ]
    result = subprocess.run(
        launcher + args,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
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


def test_the_runs_own_workers_give_the_records_and_metrics_of_one_process(tmp_path):
    """``workers=2``: two spawned processes share the images; every record and metrics.json are
    those of ``workers=1``, and a run stopped part-way resumes with the other number."""
    root = write_synthetic_isic(tmp_path / "data", n_images=4, split="val")
    one = _segment(tmp_path / "one", root, 1, torchrun=False)
    two = _segment(tmp_path / "two", root, 2, torchrun=False)
    assert json.dumps(one, sort_keys=True) == json.dumps(two, sort_keys=True)
    records = {p.name: read_json(p) for p in sorted((tmp_path / "one" / "records").glob("*.json"))}
    assert len(records) == 4
    assert records == {p.name: read_json(p) for p in sorted((tmp_path / "two" / "records").glob("*.json"))}
    sorted((tmp_path / "one" / "records").glob("*.json"))[0].unlink()
    again = _segment(tmp_path / "one", root, 2, torchrun=False)
    assert json.dumps(again, sort_keys=True) == json.dumps(one, sort_keys=True)
