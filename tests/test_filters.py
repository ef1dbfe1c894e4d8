"""The wide Gaussian blur as two matrix products equals OpenCV's blur, borders included."""

import cv2
import numpy as np
import pytest

from common.filters import blur_matrix, reflect_101, wide_gaussian_blur


def test_reflect_101_folds_as_opencv_border_interpolate():
    n = 5
    indices = np.arange(-13, 19)
    expected = [cv2.borderInterpolate(int(i), n, cv2.BORDER_REFLECT_101) for i in indices]
    assert reflect_101(indices, n).tolist() == expected
    assert reflect_101(np.array([-3, 0, 4]), 1).tolist() == [0, 0, 0]


@pytest.mark.parametrize("hw", [(192, 256), (256, 171), (37, 5), (1, 9)])
@pytest.mark.parametrize("sigma_fraction", [0.02, 0.25, 0.5, 2.0])
def test_wide_blur_equals_opencv(hw, sigma_fraction):
    """Kernels narrower and far wider than the map (reflected several times) give OpenCV's values
    to float32 rounding, relative to the map's range."""
    rng = np.random.default_rng(hw[0] * 7 + hw[1])
    image = (rng.random(hw) * 255).astype(np.float32)
    sigma = sigma_fraction * max(hw)
    got = wide_gaussian_blur(image, sigma)
    assert got.shape == hw and got.dtype == np.float32
    np.testing.assert_allclose(got, cv2.GaussianBlur(image, (0, 0), sigma), atol=1e-5 * 255 * 4)


def test_blur_matrix_keeps_a_constant_and_is_cached_read_only():
    """Each row of the folded kernel sums to one and a flat map stays exactly flat; the cached
    matrix cannot be changed by a caller."""
    matrix = blur_matrix(64, 40.0)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-5)
    assert blur_matrix(64, 40.0) is matrix
    with pytest.raises(ValueError):
        matrix[0, 0] = 1.0
    flat = np.full((48, 64), 77.3, np.float32)
    assert np.array_equal(wide_gaussian_blur(flat, 30.0), flat)  # exactly flat: nothing to threshold
    with pytest.raises(ValueError, match="2-D"):
        wide_gaussian_blur(np.zeros((4, 4, 3), np.float32), 2.0)
