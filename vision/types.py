"""Result types and exceptions of the vision package.

Results cross the package border as small frozen dataclasses with named fields, never as arrays read
by position (ipazc/mtcnn's 16-column box arrays are what we avoid). Coordinates are always in pixels
of the photo as the caller gave it, after EXIF orientation, never of the shrunken detection copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Gender = Literal["F", "M"]

# Below this probability the recommender treats gender as unknown: a wrong gender feature hurts a
# cold-start list more than a missing one. On the dev faces this withholds ~12% of genders and
# lifts accuracy where given from 0.94 to 0.97 (benchmarks/bench_vision.py).
GENDER_CONFIDENCE_THRESHOLD = 0.75
# The gender models are trained on adults; for children their output is close to chance, and
# recommending by a child's guessed gender is not something we want to do anyway.
CHILD_AGE_YEARS = 13.0


class VisionError(Exception):
    """Base class of the errors the vision package raises about a photo."""


class UnreadableImage(VisionError, ValueError):
    """The bytes are not a complete image that Pillow can decode (truncated, not an image, corrupt)."""


class ImageTooLarge(VisionError, ValueError):
    """The image declares more pixels than we agree to decode (a decompression bomb, or a huge scan)."""


class NoFaceFound(VisionError, LookupError):
    """The detector found no face in the photo."""


@dataclass(frozen=True)
class Point:
    x: float
    y: float


@dataclass(frozen=True)
class Box:
    """Face box in photo pixels: top-left corner, width and height."""

    x: float
    y: float
    width: float
    height: float

    @property
    def area(self) -> float:
        return self.width * self.height

    def as_list(self) -> list[int]:
        """[x, y, w, h] rounded to whole pixels, for JSON output."""
        return [round(self.x), round(self.y), round(self.width), round(self.height)]


@dataclass(frozen=True)
class Landmarks:
    """MTCNN's five points. `left_eye` is the eye on the left of the image (the person's right eye),
    as in ipazc/mtcnn; likewise `mouth_left`."""

    left_eye: Point
    right_eye: Point
    nose: Point
    mouth_left: Point
    mouth_right: Point

    def as_pairs(self) -> list[tuple[float, float]]:
        """The five points in the fixed order above, for code that fits transforms."""
        return [(p.x, p.y) for p in (self.left_eye, self.right_eye, self.nose, self.mouth_left, self.mouth_right)]


@dataclass(frozen=True)
class DetectedFace:
    """One face found by the detector."""

    box: Box
    confidence: float  # O-Net face probability, 0..1
    landmarks: Landmarks


@dataclass(frozen=True)
class AgeEstimate:
    years: float  # calibrated estimate
    uncertainty: float  # about one standard deviation, in years
    raw_years: float  # the pretrained model's expected age before calibration


@dataclass(frozen=True)
class GenderEstimate:
    label: Gender
    probability: float  # probability of `label`, 0.5..1


@dataclass(frozen=True)
class FaceProfile:
    """Everything we estimate about one face."""

    face: DetectedFace
    age: AgeEstimate
    gender: GenderEstimate
    low_quality: bool
    quality_issues: tuple[str, ...] = ()  # why it is low quality: "small", "blurred", "uncertain_detection"

    @property
    def gender_for_recommendation(self) -> Gender | None:
        """The gender the recommender may use, or None when it should treat gender as unknown:
        a probability under GENDER_CONFIDENCE_THRESHOLD, or a predicted child (< CHILD_AGE_YEARS)."""
        if self.gender.probability < GENDER_CONFIDENCE_THRESHOLD or self.age.years < CHILD_AGE_YEARS:
            return None
        return self.gender.label


@dataclass(frozen=True)
class SelfieProfile:
    """The result of profiling one photo: the chosen face(s), and how many other faces were seen."""

    faces: tuple[FaceProfile, ...]  # the largest face first; only it unless all faces were asked for
    other_faces: int  # faces seen but not profiled
    image_width: int
    image_height: int

    @property
    def primary(self) -> FaceProfile:
        """The largest face."""
        return self.faces[0]
