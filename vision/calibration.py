"""Calibration of the age network's output.

The pretrained age network regresses toward ~30: it overestimates teenagers and underestimates
people over 40 by 5-14 years. A monotone piecewise-linear map from raw to calibrated years, fitted on
the dev faces by least absolute deviation (we report MAE, so we fit MAE), undoes part of that.

The dev faces' ages are flat (median 45) while the product's users are young (MovieLens 100K:
median 31), so errors are weighted to a target traffic mix (`TrafficMix`): each face counts as much
as its decade's share of traffic over its share of the dev set. A plain line fitted on the flat set
stretches everyone, which helps the over-40s and hurts the young adults who are most of the traffic.
The shipped form (`HingedFit`) is the identity below raw 30, where the network is already good, and
bends at 30 and 40 above it, fitted on traffic-weighted faces. The fitted knots live in
vision/models/fitted.json, written by `python -m vision.fitting`; held-out results are in the
benchmark (benchmarks/bench_vision.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

MIN_AGE, MAX_AGE = 0.0, 100.0
# The class spread of a confident face is ~2 years; label noise and the network's own error are
# larger than that, so the reported uncertainty never drops below this.
MIN_UNCERTAINTY_YEARS = 2.0
DECADES = tuple(float(v) for v in range(0, 100, 10))  # lower bounds of the bins a mix is matched on


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


@dataclass(frozen=True)
class TrafficMix:
    """The age mix of the traffic errors are weighted to: `counts[i]` users are `ages[i]` years old."""

    ages: tuple[int, ...]
    counts: tuple[int, ...]

    def __post_init__(self):
        if len(self.ages) != len(self.counts) or not self.ages or min(self.counts) < 0 or sum(self.counts) == 0:
            raise ValueError(f"expected equally many ages and non-negative counts, not all zero; "
                             f"got {len(self.ages)} ages and counts {self.counts[:5]}...")

    @classmethod
    def from_ages(cls, ages: Sequence[float]) -> "TrafficMix":
        values, counts = np.unique(np.asarray(ages, dtype=np.int64), return_counts=True)
        return cls(tuple(int(v) for v in values), tuple(int(c) for c in counts))

    def shares(self, lower_bounds: Sequence[float] = DECADES) -> np.ndarray:
        """Share of traffic in each bin [lower_bounds[i], lower_bounds[i + 1]); the last bin is open."""
        index = np.searchsorted(lower_bounds, self.ages, side="right") - 1
        if np.any(index < 0):
            raise ValueError(f"expected bins that start at or below the youngest age {min(self.ages)}, "
                             f"got lower bounds {tuple(lower_bounds)}")
        counts = np.bincount(index, weights=self.counts, minlength=len(lower_bounds))
        return counts / counts.sum()

    def weights(self, truth: Sequence[float], lower_bounds: Sequence[float] = DECADES,
                uniform_share: float = 0.0) -> np.ndarray:
        """Per-face weights (mean 1) that make the faces' weighted age histogram over `lower_bounds`
        match this mix. Traffic in a bin with no face cannot be matched; the other bins carry it.
        `uniform_share` mixes in equal weights, so ages that traffic lacks (80+) still count a little."""
        truth = np.asarray(truth, dtype=np.float64)
        index = np.clip(np.searchsorted(lower_bounds, truth, side="right") - 1, 0, len(lower_bounds) - 1)
        faces = np.bincount(index, minlength=len(lower_bounds))
        weights = self.shares(lower_bounds)[index] / faces[index]
        weights = weights / weights.mean()
        return (1.0 - uniform_share) * weights + uniform_share

    def as_dict(self) -> dict:
        return {"ages": list(self.ages), "counts": list(self.counts)}


def weighted_mae(predicted: Sequence[float], truth: Sequence[float], weights: Sequence[float] | None = None) -> float:
    errors = np.abs(np.asarray(predicted, dtype=np.float64) - np.asarray(truth, dtype=np.float64))
    return float(np.average(errors, weights=weights))


def _lad(basis: np.ndarray, target: np.ndarray, weights: np.ndarray | None, iterations: int) -> np.ndarray:
    """Coefficients minimising sum(weights * |target - basis @ coef|), by iteratively reweighted least
    squares (the 0.5-year floor on the residual keeps it stable)."""
    prior = np.ones_like(target) if weights is None else np.asarray(weights, dtype=np.float64)
    irls = prior.copy()
    coef = np.zeros(basis.shape[1])
    for _ in range(iterations):
        w = np.sqrt(irls)
        coef, *_ = np.linalg.lstsq(basis * w[:, None], target * w, rcond=None)
        irls = prior / np.maximum(np.abs(target - basis @ coef), 0.5)
    return coef


def _check_pairs(x: np.ndarray, y: np.ndarray, needed: int) -> None:
    if len(x) != len(y) or len(x) < needed:
        raise ValueError(f"expected at least {needed} (raw, true) pairs of equal length, got {len(x)} and {len(y)}")


def fit_calibration(raw: Sequence[float], truth: Sequence[float], knots: int = 2,
                    weights: Sequence[float] | None = None, iterations: int = 200) -> AgeCalibration:
    """Least-absolute-deviation fit of a piecewise-linear map with `knots` knots placed at quantiles of
    `raw` (iteratively reweighted least squares on the hinge basis), made monotone."""
    x = np.asarray(raw, dtype=np.float64)
    y = np.asarray(truth, dtype=np.float64)
    _check_pairs(x, y, 2 * knots)
    positions = np.quantile(x, np.linspace(0.05, 0.95, knots))
    basis = np.column_stack([np.ones_like(x), x] + [np.maximum(0, x - k) for k in positions[1:-1]])
    coef = _lad(basis, y, weights, iterations)
    at_knots = np.column_stack(
        [np.ones_like(positions), positions] + [np.maximum(0, positions - k) for k in positions[1:-1]]
    ) @ coef
    at_knots = np.maximum.accumulate(at_knots)  # monotone: an older-looking face is never younger
    return AgeCalibration(tuple(float(v) for v in positions), tuple(float(v) for v in at_knots))


def fit_hinged_calibration(raw: Sequence[float], truth: Sequence[float], hinges: Sequence[float],
                           weights: Sequence[float] | None = None, top: float = 80.0,
                           iterations: int = 200) -> AgeCalibration:
    """Identity up to `hinges[0]`; above it, calibrated - raw = sum_j c_j * max(0, raw - hinges[j]), with
    the c_j fitted by (weighted) least absolute deviation, made monotone. Knots at 0, the hinges, `top`."""
    x = np.asarray(raw, dtype=np.float64)
    y = np.asarray(truth, dtype=np.float64)
    hinges = np.asarray(hinges, dtype=np.float64)
    if len(hinges) == 0 or np.any(np.diff(hinges) <= 0) or hinges[0] <= 0 or hinges[-1] >= top:
        raise ValueError(f"expected increasing hinges between 0 and {top}, got {tuple(hinges)}")
    _check_pairs(x, y, 2 * len(hinges))
    coef = _lad(np.column_stack([np.maximum(0, x - h) for h in hinges]), y - x, weights, iterations)
    positions = np.concatenate([[0.0], hinges, [top]])
    at_knots = positions + np.column_stack([np.maximum(0, positions - h) for h in hinges]) @ coef
    at_knots = np.maximum.accumulate(at_knots)
    return AgeCalibration(tuple(float(v) for v in positions), tuple(float(v) for v in at_knots))


class CalibrationFit(Protocol):
    """A named way to fit a calibration from (raw, true) ages; cross-validation refits it per fold."""

    name: str

    def fit(self, raw: np.ndarray, truth: np.ndarray) -> AgeCalibration: ...


@dataclass(frozen=True)
class IdentityFit:
    name: str = "identity"

    def fit(self, raw: np.ndarray, truth: np.ndarray) -> AgeCalibration:
        return AgeCalibration.identity()


@dataclass(frozen=True)
class QuantileKnotsFit:
    """Unweighted LAD map with knots at quantiles of raw; 2 knots is the straight line shipped before."""

    knots: int = 2
    name: str = "linear"

    def fit(self, raw: np.ndarray, truth: np.ndarray) -> AgeCalibration:
        return fit_calibration(raw, truth, knots=self.knots)


@dataclass(frozen=True)
class HingedFit:
    """Identity below `hinges[0]`, bends at the hinges, fitted on faces weighted to `mix` (by decade;
    `uniform_share` keeps some weight on the ages traffic lacks, so the top of the map stays sane)."""

    mix: TrafficMix
    hinges: tuple[float, ...] = (30.0, 40.0)
    uniform_share: float = 0.1
    name: str = "hinged"

    def fit(self, raw: np.ndarray, truth: np.ndarray) -> AgeCalibration:
        weights = self.mix.weights(truth, uniform_share=self.uniform_share)
        return fit_hinged_calibration(raw, truth, self.hinges, weights)


def cross_validated_predictions(raw: Sequence[float], truth: Sequence[float], folds: int = 5,
                                knots: int = 2, random_state: int = 0,
                                method: CalibrationFit | None = None) -> np.ndarray:
    """Calibrated age of each face from a map fitted without it (k-fold), for honest error estimates.
    `method` defaults to the unweighted quantile-knot fit with `knots` knots; any weights it uses are
    computed from the training folds only."""
    method = method or QuantileKnotsFit(knots)
    x = np.asarray(raw, dtype=np.float64)
    y = np.asarray(truth, dtype=np.float64)
    order = np.random.default_rng(random_state).permutation(len(x))
    out = np.empty_like(x)
    for fold in range(folds):
        held = order[fold::folds]
        train = np.setdiff1d(order, held)
        out[held] = method.fit(x[train], y[train]).map(x[held])
    return out
