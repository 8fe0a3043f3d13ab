"""Age and gender with face-api.js's AgeGenderNet (vision/models/agegender.onnx, MIT).

The network takes a square face crop resized to 112 x 112 RGB: here a square around the centre of
MTCNN's box, as wide as the box times CROP_SCALE (parts outside the photo black, as face-api.js
pads); it regresses age in
years directly and gives a male/female softmax. The graph itself does the mean subtraction and
scaling (vision/agegender_export.py). One onnxruntime session, created on first use.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vision.agegender_export import INPUT_SIZE, MODELS_DIR, ONNX_NAME
from vision.types import Box

# Side of the square crop over the width of MTCNN's box. MTCNN's boxes are taller than wide (median
# 1.3) and run from the brows to the chin; face-api.js was trained on squarer, wider boxes. On the dev
# faces (raw age MAE / adult gender accuracy): longer side x 1.0: 6.44 / 0.965, x 0.9: 6.28 / 0.965,
# x 1.2: 8.46 / 0.958; width x 1.0: 6.68 / 0.958, x 1.1: 6.10 / 0.965, x 1.2: 6.17 / 0.979.
CROP_SCALE = 1.2


@dataclass(frozen=True)
class AgeSpread:
    """Uncertainty of a calibrated estimate, about one sd in years: intercept + slope x age, at least
    `minimum`. The network gives none, so it is fitted on held-out dev-face errors
    (vision.agegender_fitting); the defaults are only a placeholder until then."""

    intercept: float = 2.0
    slope: float = 0.1
    minimum: float = 2.0

    def at(self, years: float) -> float:
        return max(self.minimum, self.intercept + self.slope * years)


@dataclass(frozen=True)
class FaceApiOutput:
    age_years: float
    female_probability: float


def square_crop(rgb: np.ndarray, box: Box, scale: float = CROP_SCALE, size: int = INPUT_SIZE) -> np.ndarray:
    """A square of side box width x scale around the box's centre, resized to size x size. Pixels
    outside the photo are black. Area averaging when shrinking, bilinear when enlarging."""
    side = box.width * scale
    cx, cy = box.x + box.width / 2, box.y + box.height / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = max(1, int(round(side)))
    height, width = rgb.shape[:2]
    crop = np.zeros((s, s, 3), dtype=rgb.dtype)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(width, x0 + s), min(height, y0 + s)
    if sx1 > sx0 and sy1 > sy0:
        crop[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
    method = cv2.INTER_AREA if s > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=method)


class FaceApiAgeGender:
    """Runs the AgeGenderNet on square face crops (and, by default, their mirror images, averaged)."""

    def __init__(self, path: Path | None = None, crop_scale: float = CROP_SCALE, flip_average: bool = True,
                 threads: int = 0):
        self.path = path or MODELS_DIR / ONNX_NAME
        self.crop_scale = crop_scale
        self.flip_average = flip_average
        self._threads = threads
        self._session = None
        self._lock = threading.Lock()

    def _ensure_session(self):
        with self._lock:
            if self._session is None:
                from vision.onnx import onnxruntime
                ort = onnxruntime()

                if not self.path.is_file():
                    raise FileNotFoundError(f"expected the AgeGenderNet graph at {self.path}; rebuild it with "
                                            "`bash scripts/rebuild_agegender.sh`")
                options = ort.SessionOptions()
                options.intra_op_num_threads = self._threads
                options.log_severity_level = 3
                self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        return self._session

    def crop(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        return square_crop(rgb, box, self.crop_scale)

    def predict_crop(self, crop: np.ndarray) -> FaceApiOutput:
        batch = np.stack([crop, crop[:, ::-1]]) if self.flip_average else crop[None]
        age, gender = self._ensure_session().run(["age", "gender"], {"image": batch.astype(np.float32)})
        return FaceApiOutput(age_years=float(age.mean()), female_probability=float(gender[:, 1].mean()))

    def predict(self, rgb: np.ndarray, box: Box) -> FaceApiOutput:
        return self.predict_crop(self.crop(rgb, box))
