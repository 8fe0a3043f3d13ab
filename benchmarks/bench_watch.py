"""`watch` benchmark: frames per second at 640 x 480, and how much averaging over frames improves age error.

1. Speed: a 640 x 480 video (MJPG) of the astronaut photo's face moving a little, run through
   pipelines.watch.watch end to end (decode, detect, age/gender, track, events) on a hand-made
   bundle; frames per second over all frames.
2. Averaging: for every n-th dev face, `--frames` simulated frames: the photo shifted by up to 3% of its
   size, scaled by up to +-3%, with Gaussian pixel noise (sd 4 grey levels). Each frame is profiled
   (detection included, so box jitter counts); single-frame age MAE (mean over frames of |estimate -
   truth|) against the MAE of the mean over the frames, and the same for gender accuracy.

Usage:

    .venv/bin/python benchmarks/bench_watch.py [--faces /work/shared/data/faces] [--every 4] [--frames 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from pipelines.watch import WatchConfig, watch  # noqa: E402
from serving_fixtures import make_home  # noqa: E402  (the hand-made 2-D bundle: scoring cost is not the point)
from vision.devset import DEFAULT_FACES_DIR, load_devset  # noqa: E402
from vision.image import load_rgb  # noqa: E402
from vision.profile import default_profiler  # noqa: E402
from vision.types import NoFaceFound  # noqa: E402


def speed(frames: int) -> None:
    photo = cv2.imread(str(REPO / "examples" / "astronaut.jpg"))[20:260, 100:340]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "shop.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (640, 480))
        for _ in range(frames):
            canvas = np.full((480, 640, 3), 90, dtype=np.uint8)
            x, y = 200 + int(rng.integers(-4, 5)), 120 + int(rng.integers(-4, 5))
            canvas[y:y + 240, x:x + 240] = photo
            writer.write(canvas)
        writer.release()
        home = make_home(Path(tmp) / "home")
        default_profiler().profile(REPO / "examples" / "astronaut.jpg")  # sessions loaded before timing
        for min_face in (40, 20):
            cpu = time.process_time()
            summary = watch(home, str(path), config=WatchConfig(min_face_px=min_face), emit=lambda e: None)
            cpu = time.process_time() - cpu
            print(f"watch at 640x480, faces >= {min_face} px: {summary['frames']} frames in {summary['seconds']:.1f} s = "
                  f"{summary['frames'] / summary['seconds']:.1f} frames/s ({cpu / summary['frames'] * 1000:.0f} ms CPU "
                  f"per frame, all cores); {summary['viewers']} viewer(s), {summary['events']} events")


def jittered(rgb: np.ndarray, rng) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = 1.0 + rng.uniform(-0.03, 0.03)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, scale)
    m[:, 2] += rng.uniform(-0.03, 0.03, size=2) * (w, h)
    moved = cv2.warpAffine(rgb, m, (w, h), borderMode=cv2.BORDER_REFLECT)
    return np.clip(moved + rng.normal(0, 4, size=moved.shape), 0, 255).astype(np.uint8)


def averaging(faces_dir: Path, every: int, frames: int) -> None:
    profiler = default_profiler()
    rng = np.random.default_rng(0)
    single, averaged, single_gender, averaged_gender = [], [], [], []
    for photo in load_devset(faces_dir)[::every]:
        rgb = load_rgb(photo.path)
        ages, female = [], []
        for _ in range(frames):
            try:
                face = profiler.profile(jittered(rgb, rng)).primary
            except NoFaceFound:
                continue
            ages.append(face.age.years)
            female.append(face.gender.probability if face.gender.label == "F" else 1 - face.gender.probability)
        if not ages:
            continue
        single.append(np.mean(np.abs(np.array(ages) - photo.age)))
        averaged.append(abs(np.mean(ages) - photo.age))
        truth_f = photo.gender == "F"
        single_gender.append(np.mean((np.array(female) >= 0.5) == truth_f))
        averaged_gender.append(float((np.mean(female) >= 0.5) == truth_f))
    print(f"averaging over {frames} jittered frames, {len(single)} dev faces (every {every}th):")
    print(f"  age MAE: single frame {np.mean(single):.2f}, averaged {np.mean(averaged):.2f} "
          f"({np.mean(single) - np.mean(averaged):+.2f} years)")
    print(f"  gender accuracy: single frame {np.mean(single_gender):.3f}, averaged {np.mean(averaged_gender):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=DEFAULT_FACES_DIR)
    parser.add_argument("--every", type=int, default=4, help="use every n-th dev face")
    parser.add_argument("--frames", type=int, default=10, help="simulated frames per face")
    parser.add_argument("--speed-frames", type=int, default=60)
    args = parser.parse_args()
    started = time.perf_counter()
    speed(args.speed_frames)
    averaging(args.faces, args.every, args.frames)
    print(f"{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
