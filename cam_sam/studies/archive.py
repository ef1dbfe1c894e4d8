"""An archive-sized run, killed part-way and resumed: does it behave?

Makes ``n_images`` images in ``folder`` (the development frames repeated under new names, as
symbolic links: nothing is copied), runs ``cam_sam.segment`` over them (``preset``, no overlays)
in its own process group, kills the whole group (SIGKILL) once ``kill_at`` of the images have a
record, and runs the same command again, which resumes. It reports, from the run folder:

- how many images had a record at the kill, and that none of them was segmented again (their
  records are untouched); the images in flight then (a mask written, no record yet) are the only
  ones redone;
- images per second over each tenth of the images of each start (linear time: the last tenth as
  fast as the first), and the largest memory of the run's processes in each tenth (flat memory:
  the proportional set size of every process of the group, summed, sampled every ``sample_s``);
- the seconds from the last record to ``metrics.json`` (the summary, written once from the records);
- bytes written per image.

Not a test: it takes minutes (about 4 for 10,000 images of 512 px with the ``realtime`` preset on a
2-core CPU, by the rate the README gives). On a shared machine, say so beside the figures.

    python -m cam_sam.studies.archive                                  # 10,000 images, realtime
    python -m cam_sam.studies.archive --set n_images=500 --set folder=/tmp/archive500 --set out_dir=/tmp/archive500_run
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common.cli import run_main
from common.config import config_from_argv
from common.defaults import DATA_ROOT
from common.errors import DataError
from common.io import read_json, write_json
from data.isic import list_images

CONFIG: dict[str, Any] = {
    "n_images": 10_000,
    "source": f"{DATA_ROOT}/ISIC-2017_Training_Data",  # the frames repeated (512 px crops)
    "folder": "/tmp/archive_images",  # where the named links are made (never inside the repository)
    "out_dir": "/tmp/archive_run",  # the run folder (emptied first unless resume_only)
    "preset": "realtime",
    "workers": "auto",
    "kill_at": 0.3,  # share of the images with a record when the run is killed (0: no kill)
    "sample_s": 0.5,  # how often the records and the memory are read
    "settings": [],  # more --set KEY=VALUE for cam_sam.segment
    "report": None,  # where the report goes (None: <out_dir>.report.json)
}


def make_folder(source: Path, folder: Path, n_images: int) -> None:
    """``n_images`` links ``A<nnnnnn><suffix>`` in ``folder`` to the images of ``source``, in turn."""
    if not source.is_dir():
        raise DataError(f"no images to repeat: {source} is not a folder (source)")
    frames = list_images(source)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        frame = frames[i % len(frames)]
        link = folder / f"A{i:06d}{frame.suffix}"
        if not link.is_symlink():
            link.symlink_to(frame.resolve())


def _group_memory(pgid: int) -> int:
    """Bytes of memory of every process of the group ``pgid``: their proportional set sizes (PSS:
    a page shared by several processes, such as torch's libraries, counted once in all)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            with open(f"/proc/{entry.name}/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError):
            continue
    return total


def _count(folder: Path, suffix: str) -> int:
    try:
        return sum(1 for name in os.listdir(folder) if name.endswith(suffix) and not name.startswith("."))
    except FileNotFoundError:
        return 0


def start(command: list[str], out_dir: Path, log: Path, stop_at: int | None, sample_s: float) -> dict[str, Any]:
    """Run ``command`` in its own process group until it ends, or, once ``stop_at`` records exist,
    kill the group. Samples (seconds, records, bytes of memory) every ``sample_s``."""
    began = time.time()
    with open(log, "a") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, process_group=0)
    samples, killed = [], False
    while process.poll() is None:
        time.sleep(sample_s)
        records = _count(out_dir / "records", ".json")
        samples.append((time.time() - began, records, _group_memory(process.pid)))
        if stop_at is not None and records >= stop_at:
            os.killpg(process.pid, signal.SIGKILL)
            killed = True
            break
    process.wait()
    return {
        "returncode": process.returncode,
        "killed": killed,
        "seconds": time.time() - began,
        "started": began,
        "samples": samples,
    }


def tenths(times: list[float], samples: list[tuple[float, int, int]], began: float) -> list[dict[str, float]]:
    """Images per second and the largest memory (PSS) over each tenth of the records written
    (``times``: their modification times)."""
    times = sorted(times)
    rows = []
    for k in range(10):
        lo, hi = k * len(times) // 10, (k + 1) * len(times) // 10 - 1
        if hi <= lo:
            continue
        seconds = times[hi] - times[lo]
        window = [rss for t, _, rss in samples if times[lo] - began <= t <= times[hi] - began]
        rows.append(
            {
                "tenth": k + 1,
                "images_per_second": (hi - lo) / seconds if seconds > 0 else float("nan"),
                "max_memory_gb": max(window) / 2**30 if window else None,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0])
    folder, out_dir = Path(cfg["folder"]), Path(cfg["out_dir"])
    n = cfg["n_images"]
    make_folder(Path(cfg["source"]), folder, n)
    if out_dir.exists():
        subprocess.run(["rm", "-rf", str(out_dir)], check=True)
    settings = [
        f"image_dir={folder}",
        f"out_dir={out_dir}",
        f"preset={cfg['preset']}",
        "n_overlays=0",
        f"workers={cfg['workers']}",
        *cfg["settings"],
    ]
    command = [sys.executable, "-m", "cam_sam.segment"] + [x for s in settings for x in ("--set", s)]
    log = Path(f"{out_dir}.log")
    log.unlink(missing_ok=True)
    report: dict[str, Any] = {"n_images": n, "command": " ".join(command), "log": str(log)}
    records_dir, masks_dir = out_dir / "records", out_dir / "masks"
    starts = []
    kill_at = int(cfg["kill_at"] * n) if cfg["kill_at"] else None
    first = start(command, out_dir, log, kill_at, cfg["sample_s"])
    starts.append(first)
    if first["killed"]:
        at_kill = {p.name: p.stat().st_mtime_ns for p in records_dir.glob("*.json")}
        masks_at_kill = _count(masks_dir, ".png")
        report["kill"] = {
            "records": len(at_kill),
            "masks": masks_at_kill,
            "in_flight_with_a_mask": masks_at_kill - len(at_kill),
        }
        second = start(command, out_dir, log, None, cfg["sample_s"])
        starts.append(second)
        unchanged = sum(1 for p in records_dir.glob("*.json") if at_kill.get(p.name) == p.stat().st_mtime_ns)
        report["kill"].update(
            {
                "records_untouched_by_the_resume": unchanged,
                "segmented_by_the_resume": _count(records_dir, ".json") - unchanged,
            }
        )
    records = {p.name: p.stat().st_mtime for p in records_dir.glob("*.json")}
    report["records"] = len(records)
    report["returncode"] = starts[-1]["returncode"]
    for index, run in enumerate(starts):
        mine = [t for t in records.values() if run["started"] <= t <= run["started"] + run["seconds"]]
        report[f"start_{index + 1}"] = {
            "seconds": run["seconds"],
            "killed": run["killed"],
            "records": len(mine),
            "images_per_second": len(mine) / run["seconds"] if run["seconds"] else None,
            "max_memory_gb": max((s[2] for s in run["samples"]), default=0) / 2**30,
            "tenths": tenths(mine, run["samples"], run["started"]),
        }
    metrics_file = out_dir / "metrics.json"
    if metrics_file.is_file():
        report["seconds_from_last_record_to_metrics"] = metrics_file.stat().st_mtime - max(records.values())
        report["summary_final"] = {
            k: v for k, v in read_json(metrics_file)["summary"].get("final", {}).items() if not isinstance(v, dict)
        }
    written = sum(f.stat().st_size for f in out_dir.rglob("*") if f.is_file())
    report["bytes_written_per_image"] = written / max(1, len(records))
    path = Path(cfg["report"] or f"{out_dir}.report.json")
    write_json(path, report)
    print_report(report)
    print(f"report: {path}; the run's own output (progress bar): {log}")
    return report


def print_report(report: dict[str, Any]) -> None:
    print(f"{report['records']} of {report['n_images']} images have a record (exit {report['returncode']})")
    if "kill" in report:
        k = report["kill"]
        print(
            f"killed with {k['records']} records ({k['in_flight_with_a_mask']} more images in flight with a mask); "
            f"the resume left {k['records_untouched_by_the_resume']} records untouched and segmented "
            f"{k['segmented_by_the_resume']}"
        )
    for key in ("start_1", "start_2"):
        if key in report:
            s = report[key]
            rates = [f"{t['images_per_second']:.1f}" for t in s["tenths"]]
            memory = [f"{t['max_memory_gb']:.2f}" for t in s["tenths"] if t["max_memory_gb"] is not None]
            print(
                f"{key}: {s['records']} images in {s['seconds']:.0f} s ({s['images_per_second']:.1f} images/s), "
                f"peak {s['max_memory_gb']:.2f} GB; images/s by tenth {rates}; GB by tenth {memory}"
            )
    if "seconds_from_last_record_to_metrics" in report:
        print(f"metrics.json written {report['seconds_from_last_record_to_metrics']:.1f} s after the last record")
    print(f"{report['bytes_written_per_image'] / 1024:.1f} KiB written per image")


if __name__ == "__main__":
    run_main(main)
