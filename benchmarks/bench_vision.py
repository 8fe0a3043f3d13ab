"""Vision benchmark on the dev faces: detection rate, age MAE (raw vs the old linear calibration vs
the shipped form, both refitted on held-out folds) overall / by decade / by kind, the same weighted to
the target traffic mix stored in vision/models/fitted.json, accuracy on the recommender's age bands,
gender accuracy (adults, under-18s), latency per photo, and the end-to-end time of profiling one
photo in a fresh process.

Usage:

    .venv/bin/python benchmarks/bench_vision.py [--faces /work/shared/data/faces] [--folds 5] [--repeats 10]
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

from recsys.age_bands import AGE_BAND_LOWER_BOUNDS, age_band_indices  # noqa: E402
from vision.align import fitted_constants  # noqa: E402
from vision.calibration import QuantileKnotsFit, TrafficMix, cross_validated_predictions, weighted_mae  # noqa: E402
from vision.fitting import calibration_candidates  # noqa: E402
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
    parser.add_argument("--repeats", type=int, default=10, help="k-fold shuffles averaged over")
    args = parser.parse_args()
    fitted = fitted_constants()
    mix = TrafficMix(tuple(fitted["traffic_mix"]["ages"]), tuple(fitted["traffic_mix"]["counts"]))
    shipped_form = fitted["age_calibration"]["form"]
    new_method = next(m for m in calibration_candidates(mix) if m.name == shipped_form)

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
    methods = {"old linear": QuantileKnotsFit(2), "new": new_method}
    held_out = {label: [cross_validated_predictions(raw, truth, folds=args.folds, random_state=seed, method=m)
                        for seed in range(args.repeats)]
                for label, m in methods.items()}
    held_out["raw"] = [raw]
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
    def mean_over_repeats(label, score):
        return float(np.mean([score(p) for p in held_out[label]]))

    columns = ("raw", "old linear", "new")
    print(f"age MAE (years); 'old linear' (unweighted LAD line) and 'new' ({shipped_form}) are refitted "
          f"on the other folds ({args.folds}-fold, mean of {args.repeats} shuffles); 'shipped' = the "
          "committed calibration (fitted on all dev faces)")
    print(f"{'group':<22}{'n':>5}{'raw':>12}{'old linear':>12}{'new':>12}{'shipped':>12}{'raw bias':>12}")
    groups = [("all", np.ones_like(adult)), ("wild", kinds == "wild"), ("aligned_chip", kinds == "aligned_chip")]
    for lo in range(0, 100, 10):
        groups.append((f"age {lo}-{lo + 9}", (truth >= lo) & (truth < lo + 10)))
    for label, mask in groups:
        if mask.sum():
            held = [mean_over_repeats(c, lambda p, m=mask: _mae(p[m], truth[m])) for c in columns]
            print(_row(label, int(mask.sum()), *held, _mae(shipped[mask], truth[mask]),
                       float(np.mean(raw[mask] - truth[mask]))))
    print()
    # Weighted to the target traffic: each face counts as its bin's share of traffic over its share of
    # the dev faces, binned by decade (what the calibration is fitted on) or by the recommender's bands.
    by_decade, by_band = mix.weights(truth), mix.weights(truth, AGE_BAND_LOWER_BOUNDS)
    true_band = age_band_indices(truth)

    def band_accuracy(p, weights=None):
        return float(np.average(age_band_indices(np.clip(p, 0, 120)) == true_band, weights=weights))

    def kish(w):
        return w.sum() ** 2 / (w ** 2).sum()

    print(f"traffic mix: {sum(mix.counts)} users (fitted.json), median age {np.median(np.repeat(mix.ages, mix.counts)):.0f}; "
          f"effective faces {kish(by_decade):.0f} by decade, {kish(by_band):.0f} by band")
    print(f"{'held-out summary':<36}" + "".join(f"{c:>12}" for c in columns))
    summary = [
        ("MAE, traffic-weighted by decade", lambda p: weighted_mae(p, truth, by_decade)),
        ("MAE, traffic-weighted by band", lambda p: weighted_mae(p, truth, by_band)),
        ("MAE, unweighted", lambda p: weighted_mae(p, truth)),
        ("band accuracy, traffic-weighted", lambda p: band_accuracy(p, by_band)),
        ("band accuracy, unweighted", band_accuracy),
    ]
    for label, score in summary:
        print(f"{label:<36}" + "".join(f"{mean_over_repeats(c, score):>12.3f}" for c in columns))
    # Sampling noise, which the shuffles do not show: standard error of the new form's paired gain over raw.
    gain = np.abs(held_out["new"][0] - truth) - np.abs(raw - truth)
    mean_gain = np.average(gain, weights=by_decade)
    se = np.sqrt(np.sum(by_decade ** 2 * (gain - mean_gain) ** 2)) / by_decade.sum()
    print(f"new - raw, traffic-weighted by decade (first shuffle): {mean_gain:+.2f} +- {se:.2f} years (1 s.e.)")
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
