import numpy as np
import pytest

from vision.calibration import (AgeCalibration, IdentityFit, TrafficMix, cross_validated_predictions,
                                fit_calibration, fit_hinged_calibration, weighted_mae)


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


def test_traffic_weights_match_the_mix():
    # Traffic: 3 users in their 20s, 1 in their 60s. Faces: one in their 20s, three in their 60s.
    mix = TrafficMix.from_ages([21, 25, 29, 65])
    truth = np.array([22.0, 61.0, 64.0, 69.0])
    weights = mix.weights(truth)
    assert weights == pytest.approx([3.0, 1 / 3, 1 / 3, 1 / 3])  # 3/4 and 1/4 of the weight, mean 1
    assert mix.weights(truth, uniform_share=1.0) == pytest.approx(np.ones(4))
    assert weighted_mae([22.0, 71.0, 64.0, 69.0], truth, weights) == pytest.approx(10 / 3 / 4)


def test_hinged_fit_is_identity_below_the_first_hinge():
    raw = np.linspace(5, 75, 71)
    truth = np.where(raw < 30, raw, 30 + 1.5 * (raw - 30))
    cal = fit_hinged_calibration(raw, truth, (30.0, 50.0))
    assert cal.map(np.array([10.0, 25.0, 40.0, 60.0])) == pytest.approx([10.0, 25.0, 45.0, 75.0], abs=0.1)
    with pytest.raises(ValueError, match="increasing hinges"):
        fit_hinged_calibration(raw, truth, (50.0, 30.0))


def test_cross_validation_refits_the_given_method():
    raw = np.arange(40, dtype=float)
    held_out = cross_validated_predictions(raw, 2 * raw, folds=4, method=IdentityFit())
    assert held_out == pytest.approx(raw)


def test_shipped_calibration_loads_and_is_sensible():
    """The committed constants (vision/models/fitted.json) load, are monotone, leave young adults near
    their raw age and stretch the over-35s up, where the raw network reads too young."""
    from vision.align import fitted_constants

    fitted = fitted_constants()
    knots = fitted["age_calibration"]
    cal = AgeCalibration(tuple(knots["raw_knots"]), tuple(knots["calibrated_knots"]))
    grid = np.linspace(0, 100, 201)
    assert np.all(np.diff(cal.map(grid)) >= 0)
    assert np.all(np.abs(cal.map(np.array([5.0, 18.0, 25.0])) - [5.0, 18.0, 25.0]) <= 3)
    assert cal.map(40.0) > 40.0
    assert 60 <= cal.map(70.0) <= 90
    mix = TrafficMix(tuple(fitted["traffic_mix"]["ages"]), tuple(fitted["traffic_mix"]["counts"]))
    assert sum(mix.counts) == 943  # MovieLens 100K users
    assert mix.shares().sum() == pytest.approx(1.0)
