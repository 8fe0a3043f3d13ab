"""Vision benchmark on the dev faces: detection rate, age MAE (raw vs calibrated on held-out folds)
overall / by decade / by kind, gender accuracy (adults, under-18s), latency per photo, and the
end-to-end time of profiling one photo in a fresh process.

Usage:

    .venv/bin/python benchmarks/bench_vision.py [--faces /work/shared/data/faces] [--folds 5]
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

from vision.calibration import cross_validated_predictions  # noqa: E402
from vision.devset import DEFAULT_FACES_DIR, load_devset  # noqa: E402
from vision.profile import SelfieProfiler  # noqa: E402
from vision.types import NoFaceFound  # noqa: E402


def _mae(a, b) -> float:
    return float(np.mean(np.abs(np.asarray(a) - np.asarray(b)))) if len(a) else float("nan")


def _row(label: str, n: int, *values) -> str:
    return f"{label:<22}{n:>5}" + "".join(f"{v:>12.2f}" if isinstance(v, float) else f"{v:>12}" for v in values)


def fresh_process_seconds(photo: Path, runs: int = 3) -> list[float]:
    code = ("from pipelines.profile import profile_photos; "
            f"assert profile_photos([{str(photo)!r}])[0]['error'] is None")
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=DEFAULT_FACES_DIR)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()

    photos = load_devset(args.faces)
    profiler = SelfieProfiler()
    profiler.profile(REPO / "examples" / "astronaut.jpg")  # load the sessions before timing

    rows, latencies = [], []
    for photo in photos:
        start = time.perf_counter()
        try:
            face = profiler.profile(photo.path).primary
        except NoFaceFound:
            face = None
        latencies.append(time.perf_counter() - start)
        rows.append((photo, face))

    found = [(p, f) for p, f in rows if f is not None]
    truth = np.array([p.age for p, _ in found], dtype=float)
    raw = np.array([f.age.raw_years for _, f in found])
    shipped = np.array([f.age.years for _, f in found])
    held_out = cross_validated_predictions(raw, truth, folds=args.folds)
    # For comparison: a 3-knot monotone map (bends once), also held out.
    held_out_3 = cross_validated_predictions(raw, truth, folds=args.folds, knots=3)
    kinds = np.array([p.kind for p, _ in found])
    adult = truth >= 18
    gender_ok = np.array([f.gender.label == p.gender for p, f in found])

    print(f"dev faces: {len(photos)} photos in {args.faces}")
    print(f"detection rate: {len(found)}/{len(photos)} = {len(found) / len(photos):.3f}")
    for kind in ("wild", "aligned_chip"):
        n_kind = sum(p.kind == kind for p in photos)
        n_found = sum(p.kind == kind for p, _ in found)
        print(f"  {kind:<13} {n_found}/{n_kind}")
    print()
    print("age MAE (years); 'held-out' = calibration fitted on the other folds "
          f"({args.folds}-fold), 'shipped' = the committed calibration (fitted on all dev faces)")
    print(f"{'group':<22}{'n':>5}{'raw':>12}{'held-out':>12}{'shipped':>12}{'raw bias':>12}{'3-knot h-o':>12}")
    groups = [("all", np.ones_like(adult)), ("wild", kinds == "wild"), ("aligned_chip", kinds == "aligned_chip")]
    for lo in range(0, 100, 10):
        groups.append((f"age {lo}-{lo + 9}", (truth >= lo) & (truth < lo + 10)))
    for label, mask in groups:
        if mask.sum():
            print(_row(label, int(mask.sum()), _mae(raw[mask], truth[mask]), _mae(held_out[mask], truth[mask]),
                       _mae(shipped[mask], truth[mask]), float(np.mean(raw[mask] - truth[mask])),
                       _mae(held_out_3[mask], truth[mask])))
    print()
    print("gender accuracy")
    for label, mask in [("adults (18+)", adult), ("under 18", ~adult), ("adults, wild", adult & (kinds == "wild")),
                        ("aligned_chip", kinds == "aligned_chip")]:
        if mask.sum():
            print(f"  {label:<20}{int(mask.sum()):>5}  {gender_ok[mask].mean():.3f}")
    usable = np.array([f.gender_for_recommendation is not None for _, f in found])
    if usable.sum():
        print(f"  gender_for_recommendation given for {usable.mean():.0%} of faces; "
              f"accuracy where given {gender_ok[usable].mean():.3f}")
    low = np.array([f.low_quality for _, f in found])
    print(f"low-quality flag on {int(low.sum())} of {len(found)} faces")
    print()
    lat = np.array(latencies) * 1000
    print(f"latency per photo (decode + detect + age/gender), warm: median {np.median(lat):.0f} ms, "
          f"p95 {np.percentile(lat, 95):.0f} ms")
    for kind in ("wild", "aligned_chip"):
        k = np.array([p.kind == kind for p, _ in rows])
        print(f"  {kind:<13} median {np.median(lat[k]):.0f} ms, p95 {np.percentile(lat[k], 95):.0f} ms")
    fresh = fresh_process_seconds(REPO / "examples" / "astronaut.jpg")
    print(f"fresh process, profile_photos(['examples/astronaut.jpg']): "
          f"median {np.median(fresh):.2f} s (runs: {', '.join(f'{t:.2f}' for t in fresh)})")


if __name__ == "__main__":
    main()
