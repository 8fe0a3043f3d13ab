"""Offline: fit the age calibration and the age spread of face-api.js's AgeGenderNet on the dev faces;
write them into vision/models/fitted.json under "faceapi". Not on the serving path.

1. Raw outputs: every dev photo's largest MTCNN face, cropped as vision/agegender.py crops, mirror
   averaged.
2. Calibration: each candidate form is refitted fold by fold (5 folds x 10 shuffles). Among the forms
   whose held-out flat MAE is at most 7.0 years and whose held-out mean bias is within +-8 years in
   every decade with at least 5 faces, the one with the lowest traffic-weighted MAE (MovieLens 100K's
   age mix, as for the old model) wins; identity when none qualifies. Refitted on all dev faces.
3. Spread: the network gives no uncertainty, so it is modelled from the held-out errors: the mean
   absolute error grows with the estimated age (about 1 year for children, 8 for the over-60s). A
   least-absolute-deviation line |error| = a + b * estimate, scaled by sqrt(pi / 2) (for a normal
   error, sd = mean |error| x 1.25), is the reported uncertainty (at least 2 years).

The dev faces are UTKFace photos, and face-api.js's age/gender model was partly trained on UTKFace:
its numbers here flatter it.

Usage:

    python -m vision.agegender_fitting [--faces /work/shared/data/faces]
"""

from __future__ import annotations

import argparse
import json
import math
import numpy as np

from vision.agegender import CROP_SCALE, AgeSpread, FaceApiAgeGender
from vision.align import FITTED_PATH
from vision.calibration import (AgeCalibration, CalibrationFit, HingedFit, IdentityFit, QuantileKnotsFit, TrafficMix,
                                cross_validated_predictions, weighted_mae)
from vision.devset import DEFAULT_FACES_DIR, load_devset

FOLDS, REPEATS = 5, 10
MAX_FLAT_MAE = 7.0
MAX_DECADE_BIAS = 8.0
MIN_DECADE_FACES = 5


def calibration_candidates(mix: TrafficMix) -> list[CalibrationFit]:
    """A short list on purpose: 158 faces cannot tell many forms apart. `uniform_share=1` weighs every
    face alike (the dev set's flat mix)."""
    return [
        IdentityFit(),
        QuantileKnotsFit(2, name="linear"),
        HingedFit(mix, (45.0,), 1.0, name="hinged 45, flat weights"),
        HingedFit(mix, (50.0, 70.0), 1.0, name="hinged 50/70, flat weights"),
    ]


def decade_biases(predicted: np.ndarray, truth: np.ndarray) -> dict[int, float]:
    """Mean (predicted - true) per decade with at least MIN_DECADE_FACES faces."""
    out = {}
    for lower in range(0, 100, 10):
        mask = (truth >= lower) & (truth < lower + 10)
        if mask.sum() >= MIN_DECADE_FACES:
            out[lower] = float(np.mean(predicted[mask] - truth[mask]))
    return out


def choose(raw: np.ndarray, truth: np.ndarray, mix: TrafficMix) -> tuple[CalibrationFit, np.ndarray]:
    """The chosen form and its held-out predictions (first shuffle), printing every candidate's numbers."""
    weights = mix.weights(truth)
    print(f"held-out age, {FOLDS} folds x {REPEATS} shuffles")
    print(f"{'form':<30}{'flat MAE':>10}{'traffic MAE':>13}{'worst decade bias':>19}")
    best, best_error, best_held = IdentityFit(), math.inf, raw
    for method in calibration_candidates(mix):
        held = [cross_validated_predictions(raw, truth, folds=FOLDS, random_state=seed, method=method)
                for seed in range(REPEATS)]
        flat = float(np.mean([weighted_mae(h, truth) for h in held]))
        traffic = float(np.mean([weighted_mae(h, truth, weights) for h in held]))
        biases = np.mean([list(decade_biases(h, truth).values()) for h in held], axis=0)
        worst = float(np.abs(biases).max())
        print(f"{method.name:<30}{flat:>10.2f}{traffic:>13.2f}{worst:>19.1f}")
        if flat <= MAX_FLAT_MAE and worst <= MAX_DECADE_BIAS and traffic < best_error:
            best, best_error, best_held = method, traffic, held[0]
    print(f"chosen: {best.name}")
    return best, best_held


def fit_spread(predicted: np.ndarray, truth: np.ndarray) -> AgeSpread:
    """LAD line through |held-out error| against the estimate, scaled from mean |error| to sd."""
    from vision.calibration import _lad

    basis = np.column_stack([np.ones_like(predicted), predicted])
    a, b = _lad(basis, np.abs(predicted - truth), None, 200)
    scale = math.sqrt(math.pi / 2)
    return AgeSpread(round(float(a * scale), 4), round(float(b * scale), 4))


def raw_outputs(faces_dir) -> tuple[np.ndarray, np.ndarray]:
    from vision.detect import MtcnnDetector
    from vision.image import detection_copy, load_rgb

    detector, network = MtcnnDetector(), FaceApiAgeGender()
    raw, truth = [], []
    for photo in load_devset(faces_dir):
        rgb = load_rgb(photo.path)
        faces = detector.detect_copy(detection_copy(rgb))
        if faces:
            raw.append(network.predict(rgb, max(faces, key=lambda f: f.box.area).box).age_years)
            truth.append(photo.age)
    return np.array(raw), np.array(truth, dtype=np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=lambda p: __import__("pathlib").Path(p), default=DEFAULT_FACES_DIR)
    args = parser.parse_args()
    fitted = json.loads(FITTED_PATH.read_text(encoding="utf-8"))
    mix = TrafficMix(tuple(fitted["traffic_mix"]["ages"]), tuple(fitted["traffic_mix"]["counts"]))
    raw, truth = raw_outputs(args.faces)
    method, held = choose(raw, truth, mix)
    calibration: AgeCalibration = method.fit(raw, truth)
    spread = fit_spread(held, truth)
    fitted["faceapi"] = {
        "about": "face-api.js AgeGenderNet (vision/agegender.py): age calibration and spread fitted by "
                 "`python -m vision.agegender_fitting` on the dev faces (UTKFace, partly in the model's training data).",
        "crop_scale": CROP_SCALE,
        "age_calibration": {
            "form": method.name,
            "raw_knots": [round(v, 4) for v in calibration.raw_knots],
            "calibrated_knots": [round(v, 4) for v in calibration.calibrated_knots],
            "faces": int(len(raw)),
        },
        "age_spread": {"intercept": spread.intercept, "slope": spread.slope, "minimum": spread.minimum},
    }
    FITTED_PATH.write_text(json.dumps(fitted, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {FITTED_PATH}: calibration {calibration}, spread {spread}")


if __name__ == "__main__":
    main()
