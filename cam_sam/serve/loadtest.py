"""Load test of the page's ``/segment`` endpoint: N simulated users, M requests each, against a
page on this machine only (127.0.0.1), bounded in count and time; it stops by itself.

Starts ``cam_sam.serve.app`` on a free local port (or uses ``url``, which must be a loopback address),
segments each test image once, one request at a time (the reference masks), then lets ``users``
threads send ``requests_per_user`` requests each through ``gradio_client``; reports requests per
second, p50 / p95 latency, errors and "busy" answers (full queue), and checks that every mask
equals the one-at-a-time mask of the same image. Writes ``loadtest.json`` into ``out_dir``.

    python -m cam_sam.serve.loadtest --set users=4 --set requests_per_user=3
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from common.cli import run_main
from common.config import config_from_argv
from common.errors import RunError, SettingsError
from common.io import write_json, write_png
from data.isic import read_mask
from data.synthetic import make_synthetic_sample

log = logging.getLogger("cam_sam.serve.loadtest")

# fmt: off
CONFIG: dict[str, Any] = {
    "url": None,                 # a running page on 127.0.0.1; None: start one here
    "users": 4,
    "requests_per_user": 3,
    "n_images": 3,               # generated lesions the users cycle through
    "max_seconds": 600,          # the whole test stops after this, finished or not
    "startup_seconds": 300,      # how long a page started here may take to answer
    "app_settings": [],          # --set values for the page started here, e.g. ["queue_size=2"]
    "out_dir": "results/loadtest",
}
# fmt: on
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_page(settings: list[str], startup_seconds: float) -> tuple[subprocess.Popen, str]:
    """Start ``cam_sam.serve.app`` on a free loopback port; (process, url) once it answers."""
    port = free_port()
    args = [sys.executable, "-m", "cam_sam.serve.app", "--set", f"port={port}", "--set", "host=127.0.0.1"]
    for setting in settings:
        args += ["--set", setting]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + startup_seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RunError(f"the page exited with code {proc.returncode} before answering")
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except OSError:
            time.sleep(1)
    proc.kill()
    raise RunError(f"the page did not answer on {url} within {startup_seconds:.0f} s")


def check_loopback(url: str) -> None:
    host = urlparse(url).hostname
    if host not in LOOPBACK:
        raise SettingsError(f"url={url}: the load test only targets this machine ({', '.join(LOOPBACK)})")


def call(client, handle_file, image: Path) -> tuple[np.ndarray | None, dict, float]:
    """(mask or None, the endpoint's answer, seconds) of one request."""
    start = time.perf_counter()
    mask_file, info = client.predict(handle_file(str(image)), api_name="/segment")
    seconds = time.perf_counter() - start
    return (read_mask(mask_file) if mask_file else None), info, seconds


def run_load(url: str, images: list[Path], users: int, per_user: int, max_seconds: float) -> dict[str, Any]:
    """Reference masks one at a time, then ``users`` threads of ``per_user`` requests each."""
    from gradio_client import Client, handle_file

    reference = {}
    client = Client(url, verbose=False)
    for image in images:
        reference[image.name] = call(client, handle_file, image)[0]
    latencies, errors, busy, mismatches = [], [], 0, 0
    lock = threading.Lock()
    deadline = time.time() + max_seconds

    def user(index: int) -> None:
        nonlocal busy, mismatches
        own = Client(url, verbose=False)
        for k in range(per_user):
            if time.time() > deadline:
                return
            image = images[(index + k) % len(images)]
            try:
                mask, info, seconds = call(own, handle_file, image)
            except Exception as exc:  # noqa: BLE001 - a load test counts failures, it does not stop on one
                with lock:
                    if "queue is full" in str(exc).lower():
                        busy += 1
                    else:
                        errors.append(f"{type(exc).__name__}: {exc}")
                continue
            with lock:
                latencies.append(seconds)
                if "error" in info:
                    errors.append(info["error"])
                elif mask is None or reference[image.name] is None or not np.array_equal(mask, reference[image.name]):
                    mismatches += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.time()) + 5)
    wall = time.perf_counter() - started
    done = len(latencies)
    return {
        "users": users,
        "requests": users * per_user,
        "answered": done,
        "busy": busy,
        "errors": errors,
        "masks_differing_from_sequential": mismatches,
        "wall_seconds": wall,
        "requests_per_second": done / wall if wall > 0 else 0.0,
        "p50_seconds": float(np.percentile(latencies, 50)) if latencies else None,
        "p95_seconds": float(np.percentile(latencies, 95)) if latencies else None,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0])
    folder = Path(tempfile.mkdtemp(prefix="cam_sam_load_"))
    images = []
    for seed in range(int(cfg["n_images"])):
        path = folder / f"lesion_{seed}.png"
        write_png(path, make_synthetic_sample(seed).image)
        images.append(path)
    proc = None
    url = cfg["url"]
    if url:
        check_loopback(url)
    else:
        proc, url = start_page(list(cfg["app_settings"]), float(cfg["startup_seconds"]))
    try:
        result = run_load(url, images, int(cfg["users"]), int(cfg["requests_per_user"]), float(cfg["max_seconds"]))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
    write_json(Path(cfg["out_dir"]) / "loadtest.json", {"config": cfg, **result})
    print(
        f"{result['users']} users, {result['answered']}/{result['requests']} answered, {result['busy']} busy, "
        f"{len(result['errors'])} errors, {result['requests_per_second']:.2f} requests/s, "
        f"p50 {result['p50_seconds']} s, p95 {result['p95_seconds']} s, "
        f"{result['masks_differing_from_sequential']} masks differing from the one-at-a-time masks"
    )
    return result


if __name__ == "__main__":
    run_main(main)
