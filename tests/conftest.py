"""Shared fixtures. Tests make their own small images; the ones that read the real ISIC data in
``../shared`` skip when it is absent.

Two tiers: ``pytest -m "not slow"`` for development, the whole suite (the README's command and
``.ci/run``) before a commit lands. The slow tier is marked here, in one place (:data:`SLOW_MODULES`,
:data:`SLOW_FIXTURES`, and every test on the real data)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

warnings.filterwarnings("ignore", category=FutureWarning)

REPO = Path(__file__).resolve().parents[1]
SHARED_ISIC = REPO.parent / "shared" / "data" / "ISIC2017"

# Whole modules of the slow tier: torchrun processes, ONNX / OpenVINO exports and parity, the notebook.
SLOW_MODULES = {"test_sharded", "test_export", "test_runtime", "test_notebook"}
# Fixtures that train or serve: a 25-epoch student, the page's server, a classifier training run.
SLOW_FIXTURES = {"trained_student", "server", "trained_run"}


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        if module in SLOW_MODULES or SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) \
                or item.get_closest_marker("real_data"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def litemedsam():
    from medsam import create_segmenter

    return create_segmenter("litemedsam", batch_size=16)


@pytest.fixture(scope="session")
def lite0():
    from models import create_classifier

    return create_classifier("efficientnet_lite0")


def ellipse_mask(hw=(200, 300), center=(150, 100), axes=(60, 40)) -> np.ndarray:
    """(H, W) bool ellipse; ``center`` and ``axes`` in xy pixels."""
    yy, xx = np.mgrid[0 : hw[0], 0 : hw[1]]
    return ((xx - center[0]) / axes[0]) ** 2 + ((yy - center[1]) / axes[1]) ** 2 <= 1.0


def requires_isic():
    """Skip without the real data in ``../shared``; with it, the test is in the slow tier."""
    skip = pytest.mark.skipif(not SHARED_ISIC.is_dir(), reason=f"no ISIC data at {SHARED_ISIC}")
    return lambda test: pytest.mark.real_data(skip(test))
