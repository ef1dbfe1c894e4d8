import numpy as np
import pytest

from explainers.quality import box_iou, cam_quality, energy_pointing_game, pointing_game


def _mask():
    mask = np.zeros((10, 10), bool)
    mask[2:6, 2:6] = True  # 16 px
    return mask


def test_pointing_game_inside_and_outside():
    cam = np.zeros((10, 10))
    cam[3, 3] = 1.0
    assert pointing_game(cam, _mask())
    cam[8, 8] = 2.0
    assert not pointing_game(cam, _mask())


def test_energy_share_hand_computed():
    cam = np.zeros((10, 10))
    cam[3, 3] = 3.0  # inside
    cam[8, 8] = 1.0  # outside
    assert energy_pointing_game(cam, _mask()) == pytest.approx(0.75)
    assert energy_pointing_game(np.zeros((10, 10)), _mask()) == 0.0


def test_threshold_and_box_iou():
    cam = np.zeros((10, 10))
    cam[2:6, 2:10] = 1.0  # 32 px covering the 16 px lesion
    q = cam_quality(cam, _mask(), thresholds=(0.5,))
    assert q["iou@0.5"] == pytest.approx(0.5)
    assert q["box_iou@0.5"] == pytest.approx(0.5)  # boxes 4x8 vs 4x4
    assert box_iou(np.array([0, 0, 9, 9]), None) == 0.0
