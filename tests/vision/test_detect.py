"""The numpy/onnxruntime MTCNN: pieces checked by hand, then whole images with known answers."""

import numpy as np
import pytest

from vision.detect import DetectorConfig, MtcnnDetector, _nms, crop_and_resize, pyramid_scales
from tests.vision.conftest import ASTRONAUT_FACE


@pytest.fixture(scope="module")
def detector():
    return MtcnnDetector()


def test_pyramid_stops_at_pnet_cell():
    # 100 px short side, 20 px faces: 12/20 = 0.6, then x 0.709 while 100 * s >= 12:
    # 60, 42.5, 30.2, 21.4, 15.2 px (the next, 10.7 px, is below P-Net's 12 px cell).
    scales = pyramid_scales(200, 100, min_face_size=20, scale_factor=0.709)
    assert scales[0] == pytest.approx(0.6)
    assert all(100 * s >= 12 for s in scales) and 100 * scales[-1] * 0.709 < 12
    assert len(scales) == 5


def test_pyramid_respects_other_min_face_sizes():
    # ipazc/mtcnn 1.0.0 computes the level count as if min_face_size were 20.
    assert len(pyramid_scales(640, 480, 40, 0.709)) < len(pyramid_scales(640, 480, 20, 0.709))
    assert len(pyramid_scales(640, 480, 10, 0.709)) > len(pyramid_scales(640, 480, 20, 0.709))
    with pytest.raises(ValueError, match="min_face_size"):
        pyramid_scales(640, 480, 0, 0.709)


def test_nms_by_hand():
    boxes = np.array([
        [0, 0, 10, 10, 0.9],     # kept: best
        [1, 1, 11, 11, 0.8],     # IoU 81/119 = 0.68 with the first: dropped at 0.5
        [20, 20, 30, 30, 0.7],   # disjoint: kept
    ])
    assert _nms(boxes, 0.5, "union").tolist() == [0, 2]
    assert _nms(boxes, 0.7, "union").tolist() == [0, 1, 2]
    # "min": the small box inside the big one overlaps it completely.
    nested = np.array([[0, 0, 10, 10, 0.9], [2, 2, 4, 4, 0.8]])
    assert _nms(nested, 0.7, "min").tolist() == [0]
    assert _nms(nested, 0.7, "union").tolist() == [0, 1]


def test_crop_and_resize_samples_like_tensorflow():
    # A ramp image: value = x. Box over the whole image normalised by W (not W - 1), as the package does.
    image = np.tile(np.arange(8, dtype=np.float32)[None, :, None], (8, 1, 3))
    out = crop_and_resize(image, np.array([[0.0, 0.0, 8.0, 8.0]]), 2)
    # x samples at 0 and (8/8)*(8-1) = 7, so corners hold 0 and 7.
    assert out[0, 0, 0, 0] == 0 and out[0, 0, 1, 0] == 7
    # Samples that fall outside the image are 0.
    assert crop_and_resize(image, np.array([[8.0, 0.0, 16.0, 8.0]]), 2)[0, 0, 1, 0] == 0


def test_finds_the_astronaut(detector, astronaut_rgb):
    faces = detector.detect(astronaut_rgb)
    assert len(faces) == 1
    face = faces[0]
    assert face.confidence > 0.99
    assert np.allclose([face.box.x, face.box.y, face.box.width, face.box.height], ASTRONAUT_FACE, atol=4)
    lm = face.landmarks
    assert lm.left_eye.x < lm.nose.x < lm.right_eye.x
    assert lm.left_eye.y < lm.nose.y < lm.mouth_left.y


@pytest.mark.parametrize("min_face_size", [12, 40, 60])
def test_other_min_face_sizes_still_find_a_large_face(astronaut_rgb, min_face_size):
    faces = MtcnnDetector(DetectorConfig(min_face_size=min_face_size)).detect(astronaut_rgb)
    assert len(faces) >= 1 and faces[0].box.width > 60


def _negatives():
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 640, dtype=np.float32)
    return {
        "black": np.zeros((480, 640, 3), np.uint8),
        "white": np.full((480, 640, 3), 255, np.uint8),
        "noise": rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
        "gradient": np.repeat(np.tile(ramp, (480, 1))[:, :, None], 3, axis=2).astype(np.uint8),
    }


@pytest.mark.parametrize("name", ["black", "white", "noise", "gradient"])
def test_no_faces_in_generated_images(detector, name):
    assert detector.detect(_negatives()[name]) == []


def test_tiny_images_do_not_crash(detector):
    assert detector.detect(np.zeros((5, 5, 3), np.uint8)) == []
    assert detector.detect(np.zeros((1, 300, 3), np.uint8)) == []


def test_wrong_input_is_refused(detector):
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(np.zeros((10, 10, 3), np.float32))
