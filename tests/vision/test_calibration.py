import numpy as np
import pytest

from vision.calibration import AgeCalibration, cross_validated_predictions, fit_calibration


def test_identity_and_extrapolation():
    assert AgeCalibration.identity().map(42.0) == pytest.approx(42.0)
    line = AgeCalibration((10.0, 50.0), (5.0, 65.0))  # slope 1.5
    assert line.map(30.0) == pytest.approx(35.0)
    assert line.map(60.0) == pytest.approx(80.0)  # beyond the knots: the same line
    assert line.map(0.0) == pytest.approx(0.0)  # 5 - 15 = -10, clipped at 0
    assert line.apply(30.0, 4.0) == pytest.approx((35.0, 6.0))  # spread stretched by the slope


def test_fit_recovers_a_line_despite_outliers():
    raw = np.linspace(10, 60, 50)
    truth = 1.5 * raw - 5
    truth[::10] += 40  # a few wild labels: a least-absolute-deviation fit ignores them
    cal = fit_calibration(raw, truth, knots=2)
    assert cal.map(np.array([20.0, 50.0])) == pytest.approx([25.0, 70.0], abs=0.5)


def test_fit_is_monotone():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0, 80, 200)
    truth = raw + rng.normal(0, 20, 200)
    cal = fit_calibration(raw, truth, knots=4)
    values = cal.map(np.linspace(0, 80, 100))
    assert np.all(np.diff(values) >= 0)


def test_refuses_bad_knots():
    with pytest.raises(ValueError, match="increasing"):
        AgeCalibration((10.0, 5.0), (1.0, 2.0))
    with pytest.raises(ValueError, match="at least"):
        fit_calibration([1.0], [2.0])


def test_cross_validation_holds_each_face_out():
    raw = np.arange(40, dtype=float)
    truth = 2 * raw
    held_out = cross_validated_predictions(raw, truth, folds=4)
    assert held_out == pytest.approx(truth, abs=0.5)
