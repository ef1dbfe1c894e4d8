"""A Gaussian blur wider than the image, as two small matrix products.

``cv2.GaussianBlur`` convolves each row and column with the whole kernel, so its cost grows with
sigma; the colour proposals' flat-field variants blur a 256 px map with sigmas of a quarter and a
half of its side (kernels of 513 and 1025 taps, wider than the map). The same separable blur,
borders included, is a fixed linear map of each axis: ``B = Ky @ X @ Kx.T``, where ``Ky`` (h, h)
and ``Kx`` (w, w) hold the kernel's weights folded back into the axis by OpenCV's default border
(``BORDER_REFLECT_101``, reflected as often as the kernel needs). Those matrices depend only on
the size and sigma, so they are built once and cached; each blur then costs two products of a
few hundred rows, a tenth of OpenCV's time at these sigmas. The products run on one BLAS thread:
matrices this small gain nothing from more, and BLAS threads that spin while other threads
(OpenVINO's, PyTorch's, another process's) hold the cores made them 50 times slower.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
from threadpoolctl import ThreadpoolController


def opencv_kernel_size(sigma: float) -> int:
    """The kernel size ``cv2.GaussianBlur(image, (0, 0), sigma)`` uses for a float image (4 sigma
    each side, odd)."""
    return int(round(sigma * 4 * 2 + 1)) | 1


def reflect_101(index: np.ndarray, n: int) -> np.ndarray:
    """Indices outside ``[0, n)`` folded back as ``BORDER_REFLECT_101`` does (``dcb|abcd|cba``),
    as often as needed; ``n == 1`` maps everything to 0."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * n - 2
    folded = np.mod(index, period)
    return np.where(folded < n, folded, period - folded)


@lru_cache(maxsize=1)
def _blas() -> ThreadpoolController:
    """The BLAS libraries numpy loaded (inspected once)."""
    return ThreadpoolController()


@lru_cache(maxsize=32)
def blur_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) float32 matrix ``K`` with ``K @ x`` the 1-D Gaussian blur of a length-n signal ``x``
    exactly as OpenCV computes it (its kernel taps, its default border)."""
    size = opencv_kernel_size(sigma)
    taps = cv2.getGaussianKernel(size, sigma, cv2.CV_64F).ravel()
    radius = size // 2
    rows = np.repeat(np.arange(n), size)
    sources = reflect_101(np.arange(n)[:, None] + np.arange(-radius, radius + 1)[None, :], n).ravel()
    matrix = np.zeros((n, n), np.float64)
    np.add.at(matrix, (rows, sources), np.tile(taps, n))
    matrix = matrix.astype(np.float32)
    matrix.setflags(write=False)  # cached: shared by every caller
    return matrix


def wide_gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """``cv2.GaussianBlur(image, (0, 0), sigma)`` of a 2-D float32 (h, w) map, through the cached
    blur matrices (equal to OpenCV's up to float32 rounding, about 1e-5 of the values' range).
    Worth it for sigmas of tens of pixels and more; returns (h, w) float32."""
    if image.ndim != 2:
        raise ValueError(f"wide_gaussian_blur takes a 2-D map, got shape {image.shape}")
    h, w = image.shape
    # The rows of the folded kernel sum to one, so the mean passes through unchanged: blurring the
    # deviations from it keeps a flat map exactly flat (no rounding noise for a threshold to find).
    mean = np.float32(image.mean(dtype=np.float64))
    deviation = image.astype(np.float32, copy=False) - mean
    rows, cols = blur_matrix(h, float(sigma)), blur_matrix(w, float(sigma))
    with _blas().limit(limits=1, user_api="blas"):
        return rows @ deviation @ cols.T + mean
