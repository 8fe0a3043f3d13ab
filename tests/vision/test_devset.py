"""Floors on the dev faces (skipped without /work/shared). Conservative on purpose: a larger private
set decides; these catch a broken detector, template or model, not small changes."""

import pytest

from vision.devset import DEFAULT_FACES_DIR, load_devset
from vision.types import NoFaceFound

pytestmark = [
    pytest.mark.slow,
    pytest.mark.real_data,
    pytest.mark.skipif(not (DEFAULT_FACES_DIR / "labels.csv").is_file(), reason="dev faces not available"),
]


def test_detection_rate_and_adult_gender_accuracy(profiler):
    photos = load_devset()
    found, adults, adults_right, errors = 0, 0, 0, []
    for photo in photos:
        try:
            face = profiler.profile(photo.path).primary
        except NoFaceFound:
            continue
        found += 1
        errors.append(abs(face.age.years - photo.age))
        if photo.age >= 18:
            adults += 1
            adults_right += face.gender.label == photo.gender
    assert found / len(photos) >= 0.95
    assert adults_right / adults >= 0.90
    assert sum(errors) / len(errors) <= 9.0
