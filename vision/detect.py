"""MTCNN face detection in numpy + onnxruntime, without TensorFlow.

A re-implementation of ipazc/mtcnn 1.0.0's pipeline (image pyramid -> P-Net proposals -> R-Net
refinement -> O-Net boxes and five landmarks), step for step, so that its boxes match the package's
(tests/vision/test_detect_reference.py compares them). The networks are the package's own weights,
rebuilt as ONNX graphs by `vision/mtcnn_export.py` and shipped in `vision/models/`.

Where we knowingly differ from the package:
- the pyramid is computed from `min_face_size` correctly (1.0.0 computes the number of scales as if
  min_face_size were 20, so other values lose faces or crash into its "no faces" fallback);
- the resize uses OpenCV's INTER_AREA instead of TensorFlow's AREA resize (same filter, differences
  of ~1e-3 grey levels from float rounding);
- errors are never turned into "no face": an empty list means the networks found nothing.

Kept on purpose for parity: 1.0.0's NMS drops a box when any higher-scoring box overlaps it, even
one that was itself dropped (stricter than the textbook greedy NMS).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vision.image import DetectionCopy
from vision.types import Box, DetectedFace, Landmarks, Point

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).parent / "models"


@dataclass(frozen=True)
class DetectorConfig:
    """MTCNN settings; the defaults are ipazc/mtcnn 1.0.0's."""

    min_face_size: int = 20  # pixels, in the image the detector sees
    scale_factor: float = 0.709  # ratio between pyramid levels
    threshold_pnet: float = 0.6
    threshold_rnet: float = 0.7
    threshold_onet: float = 0.8
    nms_pnet_scale: float = 0.5  # IoU, within one pyramid level
    nms_pnet_all: float = 0.7  # IoU, across levels
    nms_rnet: float = 0.7
    nms_onet: float = 0.7  # intersection over the smaller box
    threads: int = 0  # onnxruntime intra-op threads; 0 lets onnxruntime choose


_PNET_CELL = 12  # P-Net's receptive field, and the smallest face it sees at a pyramid level
_PNET_STRIDE = 2


class MtcnnDetector:
    """Finds faces and their five landmarks. Sessions are created on first use, then reused."""

    def __init__(self, config: DetectorConfig | None = None, models_dir: Path = MODELS_DIR):
        self.config = config or DetectorConfig()
        self._models_dir = Path(models_dir)
        self._sessions = None
        self._lock = threading.Lock()

    def _ensure_sessions(self):
        with self._lock:
            if self._sessions is None:
                from vision.onnx import onnxruntime
                ort = onnxruntime()

                options = ort.SessionOptions()
                options.intra_op_num_threads = self.config.threads
                options.log_severity_level = 3
                sessions = {}
                for name in ("pnet", "rnet", "onet"):
                    path = self._models_dir / f"{name}.onnx"
                    if not path.is_file():
                        raise FileNotFoundError(
                            f"MTCNN model {path} is missing; expected it to ship with the vision package. "
                            "Rebuild it with `python -m vision.mtcnn_export` (needs mtcnn==1.0.0 installed)"
                        )
                    sessions[name] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                self._sessions = sessions
        return self._sessions

    def detect(self, rgb: np.ndarray) -> list[DetectedFace]:
        """Faces in an H x W x 3 uint8 RGB image, highest confidence first, in that image's pixels."""
        return [_to_face(row) for row in self.detect_array(rgb)]

    def detect_copy(self, copy: DetectionCopy) -> list[DetectedFace]:
        """Faces in a shrunken detection copy, mapped back to the original photo's pixels."""
        rows = self.detect_array(copy.rgb)
        rows[:, [0, 2, 5, 6, 7, 8, 9]] /= copy.scale_x
        rows[:, [1, 3, 10, 11, 12, 13, 14]] /= copy.scale_y
        return [_to_face(row) for row in rows]

    def detect_array(self, rgb: np.ndarray) -> np.ndarray:
        """The raw result: one row per face, columns x1, y1, x2, y2, confidence, five landmark x's,
        five landmark y's (package order: left eye, right eye, nose, mouth left, mouth right).
        Internal to the vision package; other code gets `DetectedFace`s."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an H x W x 3 uint8 RGB image, got {rgb.dtype} {rgb.shape}")
        sessions = self._ensure_sessions()
        cfg = self.config
        height, width = rgb.shape[:2]
        image = (rgb.astype(np.float32) - np.float32(127.5)) / np.float32(128.0)

        boxes = _stage_pnet(sessions["pnet"], image, cfg)
        if len(boxes):
            boxes = _stage_rnet(sessions["rnet"], image, boxes, cfg)
        if len(boxes):
            boxes = _stage_onet(sessions["onet"], image, boxes, cfg)
        if not len(boxes):
            return np.zeros((0, 15))
        # Like the package's fit_to_image: boxes are clipped to the image, landmarks are not.
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width - 1)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height - 1)
        log.debug("detected %d face(s) in a %dx%d image", len(boxes), width, height)
        return boxes


def _to_face(row: np.ndarray) -> DetectedFace:
    x1, y1, x2, y2, confidence = (float(v) for v in row[:5])
    xs, ys = row[5:10], row[10:15]
    points = [Point(float(x), float(y)) for x, y in zip(xs, ys)]
    return DetectedFace(
        box=Box(x=x1, y=y1, width=x2 - x1, height=y2 - y1),
        confidence=confidence,
        landmarks=Landmarks(*points),
    )


def pyramid_scales(width: int, height: int, min_face_size: int, scale_factor: float) -> list[float]:
    """Scales at which a face of `min_face_size` pixels fills P-Net's 12-pixel cell, down to the scale
    where the image's short side is 12 pixels."""
    if min_face_size < 1 or not 0 < scale_factor < 1:
        raise ValueError(
            f"expected min_face_size >= 1 and 0 < scale_factor < 1, got {min_face_size} and {scale_factor}"
        )
    scale = _PNET_CELL / min_face_size
    scales = []
    while min(width, height) * scale >= _PNET_CELL:
        scales.append(scale)
        scale *= scale_factor
    return scales


def _stage_pnet(session, image: np.ndarray, cfg: DetectorConfig) -> np.ndarray:
    height, width = image.shape[:2]
    per_scale = []
    for scale in pyramid_scales(width, height, cfg.min_face_size, cfg.scale_factor):
        # TensorFlow's resize truncates the scaled size; so do we, for parity.
        new_h, new_w = int(height * scale), int(width * scale)
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        scaled = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
        reg, prob = session.run(None, {"input": scaled[None]})
        candidates = _pnet_candidates(reg[0], prob[0, :, :, 1], cfg.threshold_pnet)
        candidates[:, :4] /= scale
        if len(candidates):
            per_scale.append(candidates[_nms(candidates, cfg.nms_pnet_scale, "union")])
    if not per_scale:
        return np.zeros((0, 5))
    boxes = np.concatenate(per_scale)
    boxes = _sort_by_score(boxes)
    return _square(boxes[_nms(boxes, cfg.nms_pnet_all, "union")])


def _pnet_candidates(reg: np.ndarray, score: np.ndarray, threshold: float) -> np.ndarray:
    """Cells of P-Net's output map whose face score passes `threshold`, as boxes x1, y1, x2, y2, score,
    sorted by score. The window of cell (y, x) is the package's [2x + 1, 2x + 12]."""
    ys, xs = np.where(score > threshold)
    dx1, dy1, dx2, dy2 = reg[ys, xs].T
    side = _PNET_CELL - 1
    x1 = xs * _PNET_STRIDE + 1
    y1 = ys * _PNET_STRIDE + 1
    x2 = xs * _PNET_STRIDE + _PNET_CELL
    y2 = ys * _PNET_STRIDE + _PNET_CELL
    boxes = np.stack(
        [x1 + dx1 * side, y1 + dy1 * side, x2 + dx2 * side, y2 + dy2 * side, score[ys, xs]], axis=1
    ).astype(np.float64)
    return _sort_by_score(boxes)


def _stage_rnet(session, image: np.ndarray, boxes: np.ndarray, cfg: DetectorConfig) -> np.ndarray:
    reg, prob = session.run(None, {"input": crop_and_resize(image, boxes, 24)})
    boxes = _regress(boxes, reg, prob[:, 1])
    boxes = boxes[boxes[:, 4] > cfg.threshold_rnet]
    if not len(boxes):
        return boxes
    boxes = _sort_by_score(boxes)
    return _square(boxes[_nms(boxes, cfg.nms_rnet, "union")])


def _stage_onet(session, image: np.ndarray, boxes: np.ndarray, cfg: DetectorConfig) -> np.ndarray:
    reg, landmarks, prob = session.run(None, {"input": crop_and_resize(image, boxes, 48)})
    # Landmarks are relative to the box O-Net looked at, before its own regression moves the box.
    width = boxes[:, 2:3] - boxes[:, 0:1] + 1
    height = boxes[:, 3:4] - boxes[:, 1:2] + 1
    xs = width * landmarks[:, 0:5] + boxes[:, 0:1] - 1
    ys = height * landmarks[:, 5:10] + boxes[:, 1:2] - 1
    boxes = np.concatenate([_regress(boxes, reg, prob[:, 1]), xs, ys], axis=1)
    boxes = boxes[boxes[:, 4] > cfg.threshold_onet]
    if not len(boxes):
        return boxes
    boxes = _sort_by_score(boxes)
    return boxes[_nms(boxes, cfg.nms_onet, "min")]


def _regress(boxes: np.ndarray, offsets: np.ndarray, scores: np.ndarray) -> np.ndarray:
    out = boxes[:, :5].astype(np.float64).copy()
    width = out[:, 2] - out[:, 0] + 1
    height = out[:, 3] - out[:, 1] + 1
    out[:, :4] += offsets * np.stack([width, height, width, height], axis=1)
    out[:, 4] = scores
    return out


def _sort_by_score(boxes: np.ndarray) -> np.ndarray:
    # Same call as the package (argsort reversed), so ties come out in the same order.
    return boxes[np.argsort(boxes[:, 4])[::-1]]


def _square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box's short side to its long side, around the same centre."""
    out = boxes.copy()
    width = out[:, 2] - out[:, 0]
    height = out[:, 3] - out[:, 1]
    side = np.maximum(width, height)
    out[:, 0] += width * 0.5 - side * 0.5
    out[:, 1] += height * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _nms(boxes: np.ndarray, threshold: float, method: str, block: int = 512) -> np.ndarray:
    """Indices of the boxes (sorted by score) that no higher-scoring box overlaps by more than
    `threshold`, as ipazc/mtcnn 1.0.0 does it. Blocked so a few thousand P-Net proposals do not
    need an N x N matrix at once."""
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1) * (y2 - y1)
    n = len(boxes)
    suppressed = np.zeros(n, dtype=bool)
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        inter_w = np.maximum(0, np.minimum(x2[rows, None], x2[None]) - np.maximum(x1[rows, None], x1[None]))
        inter_h = np.maximum(0, np.minimum(y2[rows, None], y2[None]) - np.maximum(y1[rows, None], y1[None]))
        inter = inter_w * inter_h
        if method == "union":
            denominator = area[rows, None] + area[None] - inter
        else:
            denominator = np.minimum(area[rows, None], area[None])
        with np.errstate(divide="ignore", invalid="ignore"):
            overlap = inter / denominator
        row_index = np.arange(rows.start, rows.stop)[:, None]
        later = np.arange(n)[None] > row_index
        suppressed |= ((overlap > threshold) & later).any(axis=0)
    return np.flatnonzero(~suppressed)


def crop_and_resize(image: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Bilinear crops of `image` (H x W x C float32) at boxes x1, y1, x2, y2, resized to size x size,
    exactly like tf.image.crop_and_resize as the package calls it (boxes normalised by W and H, not
    W - 1 and H - 1; samples outside the image are 0)."""
    height, width = image.shape[:2]
    x1n = (boxes[:, 0] / width).astype(np.float32)
    y1n = (boxes[:, 1] / height).astype(np.float32)
    x2n = (boxes[:, 2] / width).astype(np.float32)
    y2n = (boxes[:, 3] / height).astype(np.float32)
    steps = np.arange(size, dtype=np.float32)
    hs, ws = np.float32(height - 1), np.float32(width - 1)
    in_y = y1n[:, None] * hs + steps[None] * ((y2n - y1n) * hs / np.float32(size - 1))[:, None]
    in_x = x1n[:, None] * ws + steps[None] * ((x2n - x1n) * ws / np.float32(size - 1))[:, None]
    valid_y = (in_y >= 0) & (in_y <= hs)
    valid_x = (in_x >= 0) & (in_x <= ws)
    top = np.clip(np.floor(in_y), 0, height - 1).astype(np.intp)
    bottom = np.clip(np.ceil(in_y), 0, height - 1).astype(np.intp)
    left = np.clip(np.floor(in_x), 0, width - 1).astype(np.intp)
    right = np.clip(np.ceil(in_x), 0, width - 1).astype(np.intp)
    y_lerp = (in_y - np.floor(in_y))[:, :, None, None]
    x_lerp = (in_x - np.floor(in_x))[:, None, :, None]
    top_left = image[top[:, :, None], left[:, None, :]]
    top_right = image[top[:, :, None], right[:, None, :]]
    bottom_left = image[bottom[:, :, None], left[:, None, :]]
    bottom_right = image[bottom[:, :, None], right[:, None, :]]
    upper = top_left + (top_right - top_left) * x_lerp
    lower = bottom_left + (bottom_right - bottom_left) * x_lerp
    out = upper + (lower - upper) * y_lerp
    out[~(valid_y[:, :, None] & valid_x[:, None, :])] = 0
    return np.ascontiguousarray(out, dtype=np.float32)
