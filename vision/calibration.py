"""Calibration of the age network's output.

The pretrained age network regresses toward ~30: it overestimates teenagers and underestimates
people over 40 by 5-14 years. A monotone piecewise-linear map from raw to calibrated years, fitted on
the dev faces by least absolute deviation (we report MAE, so we fit MAE), undoes most of that. With
two knots it is a straight line. The fitted knots live in vision/models/fitted.json, written by
`python -m vision.fitting`; held-out results are in the benchmark (benchmarks/bench_vision.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

MIN_AGE, MAX_AGE = 0.0, 100.0
# The class spread of a confident face is ~2 years; label noise and the network's own error are
# larger than that, so the reported uncertainty never drops below this.
MIN_UNCERTAINTY_YEARS = 2.0


@dataclass(frozen=True)
class AgeCalibration:
    """Monotone piecewise-linear map; linear extrapolation beyond the outer knots."""

    raw_knots: tuple[float, ...]
    calibrated_knots: tuple[float, ...]

    def __post_init__(self):
        raw, cal = np.asarray(self.raw_knots), np.asarray(self.calibrated_knots)
        if len(raw) < 2 or len(raw) != len(cal):
            raise ValueError(f"expected >= 2 knots of each kind, equally many; got {len(raw)} and {len(cal)}")
        if np.any(np.diff(raw) <= 0) or np.any(np.diff(cal) < 0):
            raise ValueError(f"expected increasing knots, got raw {self.raw_knots} -> {self.calibrated_knots}")

    @classmethod
    def identity(cls) -> "AgeCalibration":
        return cls((0.0, 80.0), (0.0, 80.0))

    def slope_at(self, raw_years: float) -> float:
        raw, cal = np.asarray(self.raw_knots), np.asarray(self.calibrated_knots)
        i = int(np.clip(np.searchsorted(raw, raw_years) - 1, 0, len(raw) - 2))
        return float((cal[i + 1] - cal[i]) / (raw[i + 1] - raw[i]))

    def map(self, raw_years: np.ndarray | float) -> np.ndarray:
        raw, cal = np.asarray(self.raw_knots), np.asarray(self.calibrated_knots)
        x = np.asarray(raw_years, dtype=np.float64)
        y = np.interp(x, raw, cal)
        low_slope = (cal[1] - cal[0]) / (raw[1] - raw[0])
        high_slope = (cal[-1] - cal[-2]) / (raw[-1] - raw[-2])
        y = np.where(x < raw[0], cal[0] + (x - raw[0]) * low_slope, y)
        y = np.where(x > raw[-1], cal[-1] + (x - raw[-1]) * high_slope, y)
        return np.clip(y, MIN_AGE, MAX_AGE)

    def apply(self, raw_years: float, spread_years: float) -> tuple[float, float]:
        """Calibrated age and its uncertainty (the class spread stretched by the local slope)."""
        years = float(self.map(raw_years))
        uncertainty = max(MIN_UNCERTAINTY_YEARS, spread_years * self.slope_at(raw_years))
        return years, uncertainty


def fit_calibration(raw: Sequence[float], truth: Sequence[float], knots: int = 2,
                    iterations: int = 200) -> AgeCalibration:
    """Least-absolute-deviation fit of a piecewise-linear map with `knots` knots placed at quantiles of
    `raw` (iteratively reweighted least squares on the hinge basis), made monotone."""
    x = np.asarray(raw, dtype=np.float64)
    y = np.asarray(truth, dtype=np.float64)
    if len(x) != len(y) or len(x) < 2 * knots:
        raise ValueError(f"expected at least {2 * knots} (raw, true) pairs of equal length, got {len(x)} and {len(y)}")
    positions = np.quantile(x, np.linspace(0.05, 0.95, knots))
    basis = np.column_stack([np.ones_like(x), x] + [np.maximum(0, x - k) for k in positions[1:-1]])
    weights = np.ones_like(x)
    coef = np.zeros(basis.shape[1])
    for _ in range(iterations):
        w = np.sqrt(weights)
        coef, *_ = np.linalg.lstsq(basis * w[:, None], y * w, rcond=None)
        residual = np.abs(y - basis @ coef)
        weights = 1.0 / np.maximum(residual, 0.5)  # IRLS for the L1 loss; 0.5 y keeps it stable
    at_knots = np.column_stack(
        [np.ones_like(positions), positions] + [np.maximum(0, positions - k) for k in positions[1:-1]]
    ) @ coef
    at_knots = np.maximum.accumulate(at_knots)  # monotone: an older-looking face is never younger
    return AgeCalibration(tuple(float(v) for v in positions), tuple(float(v) for v in at_knots))


def cross_validated_predictions(raw: Sequence[float], truth: Sequence[float], folds: int = 5,
                                knots: int = 2, random_state: int = 0) -> np.ndarray:
    """Calibrated age of each face from a map fitted without it (k-fold), for honest error estimates."""
    x = np.asarray(raw, dtype=np.float64)
    y = np.asarray(truth, dtype=np.float64)
    order = np.random.default_rng(random_state).permutation(len(x))
    out = np.empty_like(x)
    for fold in range(folds):
        held = order[fold::folds]
        train = np.setdiff1d(order, held)
        out[held] = fit_calibration(x[train], y[train], knots=knots).map(x[held])
    return out
