"""Shared fixtures. Tests make their own small images; the ones that read the real ISIC data in
``../shared`` skip when it is absent."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

warnings.filterwarnings("ignore", category=FutureWarning)

REPO = Path(__file__).resolve().parents[1]
SHARED_ISIC = REPO.parent / "shared" / "data" / "ISIC2017"


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
    return pytest.mark.skipif(not SHARED_ISIC.is_dir(), reason=f"no ISIC data at {SHARED_ISIC}")
