"""profile_selfie(): decode a photo, find the faces, estimate age and gender for the largest one
(or all of them), and flag faces too small, blurred or uncertain to trust."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from vision.align import fitted_constants, mtcnn_template
from vision.calibration import AgeCalibration
from vision.demographics import DemographicsModel
from vision.detect import DetectorConfig, MtcnnDetector
from vision.image import MAX_PIXELS, ImageSource, detection_copy, load_rgb
from vision.types import DetectedFace, FaceProfile, NoFaceFound, SelfieProfile

log = logging.getLogger(__name__)

# A face box narrower than this (photo pixels) is enlarged to make the 64-pixel age chip, so the
# networks see interpolated, detail-free skin.
MIN_FACE_SIDE_PX = 48
# Variance of the Laplacian of the 64 x 64 age chip (grey levels squared). Sharp dev faces score in
# the hundreds; below this the chip is blurred enough that age estimates scatter widely.
MIN_SHARPNESS = 40.0
# O-Net accepts at 0.8; every dev face scored above 0.91 and 95% above 0.95.
MIN_DETECTION_CONFIDENCE = 0.9


@dataclass(frozen=True)
class ProfilerConfig:
    detector: DetectorConfig = DetectorConfig()
    max_pixels: int = MAX_PIXELS
    flip_average: bool = True  # also run the networks on the mirrored chip, and average


class SelfieProfiler:
    """Holds the loaded models; build once and reuse (sessions are created on first use)."""

    def __init__(self, config: ProfilerConfig | None = None):
        self.config = config or ProfilerConfig()
        self.detector = MtcnnDetector(self.config.detector)
        self._demographics: DemographicsModel | None = None

    @property
    def demographics(self) -> DemographicsModel:
        if self._demographics is None:
            knots = fitted_constants()["age_calibration"]
            calibration = AgeCalibration(tuple(knots["raw_knots"]), tuple(knots["calibrated_knots"]))
            self._demographics = DemographicsModel(mtcnn_template(), calibration,
                                                   flip_average=self.config.flip_average)
        return self._demographics

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
        model = self.demographics
        age_chip, gender_chip = model.chips(rgb, points)
        raw = model.predict_chips(age_chip, gender_chip)
        age, gender = model.calibrated(raw)
        issues = quality_issues(face, age_chip)
        return FaceProfile(face=face, age=age, gender=gender, low_quality=bool(issues), quality_issues=issues)


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
