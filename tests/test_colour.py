"""Colour constancy (Shades of Gray): a colour cast is removed, a grey image is left alone, the
gains do not depend on the image's resolution, the student applies its own setting, and a
fine-tune is trained and saved without one."""

import numpy as np
import pytest
import torch

from common.checkpoints import CheckpointError
from common.colour import colour_gains, shades_of_gray_gains
from data.synthetic import make_synthetic_sample
from models.student import StudentConfig, StudentSegmenter, build_student, read_student, save_student, to_input


def apply_gains(image: np.ndarray, gains: np.ndarray | None) -> np.ndarray:
    """(H, W, 3) uint8 ``image`` with each channel multiplied by ``gains`` and clipped to 0-255
    (unchanged when ``gains`` is None): a colour cast, or its correction, on a test image."""
    if gains is None:
        return image
    return np.clip(image.astype(np.float32) * gains, 0, 255).round().astype(np.uint8)


CAST = np.array([1.0, 0.8, 0.6], np.float32)  # a warm illuminant: blue and green dimmed


def _lesion(size=(256, 320)):
    return make_synthetic_sample(3, size=size).image


def _chroma(x) -> np.ndarray:
    """(3,) each channel's mean over the mean of all: the colour, brightness left out. ``x``: an
    (H, W, 3) image or a (1, 3, S, S) network input (normalised by 0.5 / 0.5)."""
    x = np.asarray(x, np.float64)
    x = (x[0].transpose(1, 2, 0) * 0.5 + 0.5) if x.ndim == 4 else x
    means = x.reshape(-1, 3).mean(0)
    return means / means.mean()


def test_a_colour_cast_is_removed_and_a_grey_image_left_alone():
    image = _lesion()
    cast = apply_gains(image, CAST)
    corrected, original = apply_gains(cast, shades_of_gray_gains(cast)), apply_gains(image, shades_of_gray_gains(image))
    # the same scene under two illuminants has the same colour once each is corrected (its
    # brightness is the illuminant's: Shades of Gray keeps each image's own)
    np.testing.assert_allclose(_chroma(corrected), _chroma(original), atol=0.01)
    assert np.abs(_chroma(cast) - _chroma(image)).max() > 0.1  # while the cast was plain to see
    grey = np.full((64, 64, 3), 120, np.uint8)
    np.testing.assert_allclose(shades_of_gray_gains(grey), 1.0, atol=1e-6)


def test_the_gains_do_not_depend_on_the_resolution():
    import cv2

    image = _lesion((512, 640))
    small = cv2.resize(image, (400, 320), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(shades_of_gray_gains(image), shades_of_gray_gains(small), atol=0.01)


def test_half_the_correction_is_the_square_root_of_the_gains():
    image = apply_gains(_lesion(), CAST)
    full, half = colour_gains(image, "shades_of_gray"), colour_gains(image, "shades_of_gray", 0.5)
    np.testing.assert_allclose(half, np.sqrt(full), rtol=1e-6)
    assert StudentConfig(colour_constancy="shades_of_gray", colour_strength=0.5).colour_gains(image) == pytest.approx(
        half
    )


def test_none_changes_nothing_and_an_unknown_method_is_refused():
    image = _lesion()
    assert colour_gains(image, None) is None and apply_gains(image, None) is image
    with pytest.raises(ValueError, match="unknown colour constancy 'grey_edge'"):
        colour_gains(image, "grey_edge")
    bright = np.full((8, 8, 3), 250, np.uint8)
    assert apply_gains(bright, np.array([1.2, 1.0, 1.0], np.float32))[..., 0].max() == 255  # clipped, not wrapped


def test_the_student_sees_an_image_and_its_colour_cast_alike(tmp_path):
    """With colour constancy in its config the colour of the student's network input does not
    change with the illuminant; without it, it changes as the cast does. The setting travels in the
    checkpoint, and a checkpoint from before the setting loads as None."""
    config = StudentConfig(input_size=64, colour_constancy="shades_of_gray")
    model = build_student(config).eval()
    image = _lesion()
    cast = apply_gains(image, CAST)
    seen = []

    def network(image):  # what the network is given: (B, 3, S, S), one batch a call
        seen.append(image)
        return [np.zeros((len(image), 1, 64, 64), np.float32), np.zeros((len(image), 8), np.float32)]

    def first_view(student, im):
        seen.clear()
        student.predict_with_zoom(im)  # the flipped views and the zoomed-out one, in one batch
        return seen[0][:1]

    constant = StudentSegmenter(None, config, tta=True, runner=network)
    raw = StudentSegmenter(None, StudentConfig(input_size=64), tta=True, runner=network)
    np.testing.assert_allclose(_chroma(first_view(constant, cast)), _chroma(first_view(constant, image)), atol=0.01)
    assert np.abs(_chroma(first_view(raw, cast)) - _chroma(first_view(raw, image))).max() > 0.1
    np.testing.assert_allclose(
        first_view(constant, cast), to_input(cast, 64, shades_of_gray_gains(cast)).numpy(), atol=1e-6
    )
    save_student(tmp_path / "s.pt", model, config)
    assert read_student(tmp_path / "s.pt")[0].colour_constancy == "shades_of_gray"
    payload = torch.load(tmp_path / "s.pt", weights_only=True)
    del payload["config"]["colour_constancy"]
    torch.save(payload, tmp_path / "old.pt")
    assert read_student(tmp_path / "old.pt")[0].colour_constancy is None
    payload["config"]["colour_constancy"] = "retinex"  # a setting this version does not know
    torch.save(payload, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="new.pt asks for the colour constancy 'retinex'"):
        read_student(tmp_path / "new.pt")


def test_a_fine_tune_of_a_colour_corrected_student_is_trained_and_saved_without_the_correction(tmp_path):
    """Training never colour-corrects its images, so the fine-tuned student's config says none
    (average_students gives a student its correction)."""
    from self_training import train_student
    from self_training.training import StudentTraining, make_student

    corrected = StudentConfig(input_size=64, colour_constancy="shades_of_gray", colour_strength=0.5)
    save_student(tmp_path / "s.pt", build_student(corrected), corrected)
    settings = {**train_student.CONFIG, "init_student": str(tmp_path / "s.pt"), "input_size": 64}
    _, config = make_student(StudentTraining.from_config(settings))
    assert config == StudentConfig(input_size=64) and config.colour_gains(np.zeros((8, 8, 3), np.uint8)) is None
