"""The web page (cam_sam.serve.app): its request handler on generated images, then the real page in a
headless Chromium (Debian's ``chromium`` driven by playwright; skipped where either is missing)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from cam_sam.serve.app import CONFIG, IMAGENET, make_handler, make_service
from common.config import merge
from common.io import write_png
from data.synthetic import make_synthetic_sample

from .conftest import REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def handler():
    return make_handler(make_service(merge(CONFIG, {"device": "cpu"})))


@pytest.fixture(scope="module")
def lesion_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lesion")
    sample = make_synthetic_sample(3)
    write_png(folder / "lesion.png", sample.image)
    write_png(folder / "lesion_mask.png", sample.mask.astype(np.uint8) * 255)
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    write_png(folder / "constant.png", np.full((64, 64, 3), 128, np.uint8))
    write_png(folder / "tiny.png", np.random.default_rng(0).integers(0, 255, (20, 20, 3), np.uint8))
    return folder


def _iou_shown(status: str) -> float:
    match = re.search(r"IoU\W+([01]\.\d+)", status.split("ground truth")[-1])
    assert match, status
    return float(match.group(1))


def test_handler_segments_scores_and_writes_the_mask(handler, lesion_files):
    status, cam, mask_view, uncertainty, download = handler(
        str(lesion_files / "lesion.png"), str(lesion_files / "lesion_mask.png"), IMAGENET, "gradcam", "LiteMedSAM"
    )
    assert "chosen source" in status and _iou_shown(status) > 0.8
    assert re.search(r"confidence \*\*[01]\.\d\d\*\*: \*\*(looks reliable|please review: .+)\*\*", status), status
    assert re.search(
        r"predicted class: \*\*(melanoma|seborrheic keratosis|nevus)\*\* \(probability \*\*[01]\.\d\d", status
    )
    for picture in (cam, mask_view, uncertainty):
        assert picture.ndim == 3 and picture.shape[2] == 3 and picture.std() > 0
    from data.isic import read_mask

    delivered = read_mask(download)
    truth = read_mask(lesion_files / "lesion_mask.png")
    assert (delivered & truth).sum() / (delivered | truth).sum() == pytest.approx(_iou_shown(status), abs=1e-3)


@pytest.mark.parametrize(
    "name, message", [("corrupt.png", "cannot read image"), ("constant.png", "constant"), ("tiny.png", "too small")]
)
def test_bad_images_get_a_message_and_the_next_request_works(handler, lesion_files, name, message):
    status, *pictures, download = handler(str(lesion_files / name), None, IMAGENET, "gradcam", "LiteMedSAM")
    assert status.startswith("**Could not segment") and message in status and name in status
    assert all(p is None for p in pictures) and download is None
    status, *_ = handler(str(lesion_files / "lesion.png"), None, IMAGENET, "eigencam", "student")
    assert "chosen source: **student**" in status


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "app.log"
    with open(log, "w") as handle:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cam_sam.serve.app",
                "--set",
                f"port={port}",
                "--set",
                "max_upload_mb=1",
                "--set",
                f"examples_dir={log.parent / 'examples'}",
                "--set",
                "device=cpu",
            ],
            cwd=REPO,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ},
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 240
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the app exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(1)
    else:
        proc.kill()
        pytest.fail(f"the app did not answer within 240 s: {log.read_text()[-2000:]}")
    yield url
    proc.terminate()
    proc.wait(30)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (apt-get install chromium; .ci/run does)")
def test_the_server_refuses_uploads_over_the_size_limit(server, tmp_path):
    import httpx

    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + os.urandom(2 * 1024 * 1024))  # 2 MB against a 1 MB limit
    with open(big, "rb") as handle:
        answer = httpx.post(server + "gradio_api/upload", files={"files": ("big.png", handle, "image/png")}, timeout=60)
    assert answer.status_code == 413, answer.text[:200]
    assert urllib.request.urlopen(server, timeout=10).status == 200  # and it keeps serving


def _upload(page, target: str, path: Path) -> None:
    clear = page.locator(f'#{target} button[aria-label="Clear"]')
    if clear.count():
        clear.first.click()
    page.locator(f"#{target} input[type=file]").set_input_files(str(path))
    page.locator(f'#{target} [aria-label="{path.name}"]').wait_for(timeout=30_000)


def _run_and_wait(page, text: str) -> str:
    page.click("#run")
    page.wait_for_function(f"document.querySelector('#status').innerText.includes({text!r})", timeout=120_000)
    return page.locator("#status").inner_text()


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (apt-get install chromium; .ci/run does)")
def test_page_in_a_real_browser(server, lesion_files, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from PIL import Image

    truth = np.asarray(Image.open(lesion_files / "lesion_mask.png")) > 127
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.goto(server)
        _upload(page, "image-upload", lesion_files / "lesion.png")
        page.locator("#preview img").wait_for(timeout=30_000)  # the upload is previewed before segmenting
        _upload(page, "truth-upload", lesion_files / "lesion_mask.png")
        status = _run_and_wait(page, "Dice")
        iou_shown = _iou_shown(status)
        assert iou_shown > 0.8
        # the verdict, with the expected IoU where the student ships a calibration (it does)
        assert re.search(
            r"expected IoU [01]\.\d\d \(confidence [01]\.\d\d[^)]*\): (looks reliable|please review: )", status
        ), status
        assert re.search(r"predicted class: (melanoma|seborrheic keratosis|nevus) \(probability [01]\.\d\d", status)
        assert page.locator("#mask img").count() == 1
        link = page.locator('#download a[download="lesion_mask.png"]')
        link.wait_for(timeout=30_000)
        (tmp_path / "mask.png").write_bytes(page.request.get(link.get_attribute("href")).body())
        delivered = np.asarray(Image.open(tmp_path / "mask.png")) > 127
        assert (delivered & truth).sum() / (delivered | truth).sum() == pytest.approx(iou_shown, abs=1e-3)
        page.screenshot(path=os.environ.get("CAM_SAM_SCREENSHOT", str(tmp_path / "page.png")), full_page=True)

        _upload(page, "image-upload", lesion_files / "corrupt.png")
        assert "cannot read image" in _run_and_wait(page, "Could not segment")
        _upload(page, "image-upload", lesion_files / "lesion.png")
        assert _iou_shown(_run_and_wait(page, "Dice")) == pytest.approx(iou_shown)  # still serving
        browser.close()


def test_the_api_returns_the_mask_and_its_description(server, lesion_files):
    client_module = pytest.importorskip("gradio_client", reason="gradio_client is not installed")
    from data.isic import read_mask

    client = client_module.Client(server, verbose=False)
    mask_file, info = client.predict(client_module.handle_file(str(lesion_files / "lesion.png")), api_name="/segment")
    delivered, truth = read_mask(mask_file), read_mask(lesion_files / "lesion_mask.png")
    assert (delivered & truth).sum() / (delivered | truth).sum() > 0.8
    assert info["source"] and 0 <= info["confidence"] <= 1 and info["verdict"] in ("looks reliable", "please review")
    assert info["mask_area"] == pytest.approx(delivered.mean(), abs=1e-6) and info["seconds"] > 0
    assert info["class"] in ("melanoma", "seborrheic_keratosis", "nevus")
    assert info["class_probability"] == max(info["class_probabilities"].values())
    bad_file, bad = client.predict(client_module.handle_file(str(lesion_files / "corrupt.png")), api_name="/segment")
    assert bad_file is None and "cannot read image" in bad["error"]


def test_a_request_past_its_time_gets_a_message_and_the_next_one_is_served(lesion_files):
    from cam_sam.serve.app import segment_file

    class Slow:
        calls = 0

        def segment(self, image, *args, name="image"):
            Slow.calls += 1
            time.sleep(1.0 if Slow.calls == 1 else 0.0)
            return "done"

    result, *_, error = segment_file(
        Slow(), str(lesion_files / "lesion.png"), None, IMAGENET, "gradcam", "LiteMedSAM", timeout_s=0.2
    )
    assert result is None and "request_timeout_s=0.2" in error and "lesion.png" in error
    result, *_, error = segment_file(
        Slow(), str(lesion_files / "lesion.png"), None, IMAGENET, "gradcam", "LiteMedSAM", timeout_s=5
    )
    assert result == "done" and error is None


def test_four_concurrent_users_get_the_same_masks_as_one_at_a_time(server, tmp_path):
    pytest.importorskip("gradio_client", reason="gradio_client is not installed")
    from cam_sam.serve.loadtest import run_load

    images = []
    for seed in range(2):
        images.append(tmp_path / f"lesion_{seed}.png")
        write_png(images[-1], make_synthetic_sample(seed).image)
    result = run_load(server, images, users=4, per_user=1, max_seconds=300)
    assert result["answered"] == 4 and result["errors"] == [] and result["busy"] == 0
    assert result["masks_differing_from_sequential"] == 0 and result["p95_seconds"] >= result["p50_seconds"] > 0


def test_a_full_queue_answers_busy_at_once(tmp_path):
    pytest.importorskip("gradio_client", reason="gradio_client is not installed")
    from cam_sam.serve import loadtest

    result = loadtest.main(
        [
            "--set",
            "users=6",
            "--set",
            "requests_per_user=1",
            "--set",
            "n_images=1",
            "--set",
            "app_settings=['queue_size=1', 'device=cpu']",
            "--set",
            f"out_dir={tmp_path}",
        ]
    )
    assert result["busy"] >= 1 and result["answered"] + result["busy"] == 6 and result["errors"] == []
    assert result["masks_differing_from_sequential"] == 0 and (tmp_path / "loadtest.json").is_file()
    from common.errors import SettingsError

    with pytest.raises(SettingsError, match="only targets this machine"):
        loadtest.check_loopback("http://10.0.0.1:7860/")
