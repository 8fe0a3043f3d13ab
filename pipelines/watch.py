"""Watch a camera or a video: follow the faces in front of a screen, average each viewer's age and gender
over the frames they are seen, and emit recommendation events.

- A viewer is a track of face boxes: a face in a new frame continues the track whose last box overlaps
  it most (intersection over union >= `iou_match`); otherwise it starts a new viewer. A track unseen for
  `max_missed_frames` processed frames has left.
- A viewer's estimate is the mean over their frames of the calibrated age and of the female
  probability. Once a viewer has `stable_frames` estimates whose mean age has a standard error of at most
  `max_age_standard_error` years, one "viewer" event gives their list (the mixture over age bands and
  genders of pipelines.selfie.demographic_weights).
- Whenever the set of stable viewers in front of the screen changes (one becomes stable, one leaves),
  an "audience" event gives the viewers present and one list for all of them (the mean of their
  mixture vectors); an empty audience gets an empty list.

Frames are decoded, used and dropped: nothing is written, and events carry only estimates.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from pipelines.errors import InputError
from pipelines.recommend import _version, load_bundle
from pipelines.selfie import demographic_weights
from vision.types import AgeEstimate, Box, FaceProfile, GenderEstimate, NoFaceFound

log = logging.getLogger(__name__)


class VideoUnavailable(InputError):
    """The video file or camera could not be opened or read."""


@dataclass(frozen=True)
class WatchConfig:
    iou_match: float = 0.3  # a face continues the track whose last box overlaps it at least this much
    max_missed_frames: int = 8  # processed frames a track may go unseen before its viewer has left
    stable_frames: int = 5  # estimates a viewer needs before their first event
    max_age_standard_error: float = 1.5  # years: the mean age must be this settled
    every_nth_frame: int = 1  # process one frame in n (a camera gives more frames than are needed)
    k: int = 10
    max_frames: int | None = None  # stop after this many decoded frames (None: until the video ends)
    # Smallest face looked for, in frame pixels. Someone close enough to read a shop screen shows a face
    # of 40+ pixels at 640 x 480; skipping the finer detection levels makes each frame cheaper.
    min_face_px: int = 40


@dataclass
class Track:
    viewer: int
    box: Box
    last_seen: int
    ages: list[float] = field(default_factory=list)
    spreads: list[float] = field(default_factory=list)
    female: list[float] = field(default_factory=list)
    announced: bool = False

    def add(self, face: FaceProfile, frame: int) -> None:
        self.box, self.last_seen = face.face.box, frame
        self.ages.append(face.age.years)
        self.spreads.append(face.age.uncertainty)
        p = face.gender.probability
        self.female.append(p if face.gender.label == "F" else 1.0 - p)

    def age_standard_error(self) -> float:
        n = len(self.ages)
        return float(np.std(self.ages, ddof=1) / np.sqrt(n)) if n > 1 else float("inf")

    def averaged(self) -> FaceProfile:
        """The viewer as one face: mean age (the per-frame spread kept: averaging removes jitter, not
        the model's own error) and mean female probability, on the latest box."""
        from vision.types import DetectedFace, Landmarks, Point

        female = float(np.mean(self.female))
        gender = GenderEstimate("F", female) if female >= 0.5 else GenderEstimate("M", 1.0 - female)
        age = float(np.mean(self.ages))
        p = Point(0.0, 0.0)
        face = DetectedFace(self.box, 1.0, Landmarks(p, p, p, p, p))
        return FaceProfile(face, AgeEstimate(age, float(np.mean(self.spreads)), age), gender, low_quality=False)


def iou(a: Box, b: Box) -> float:
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.width, b.x + b.width), min(a.y + a.height, b.y + b.height)
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


class Tracker:
    """Greedy IoU matching of each frame's faces to the live tracks, best overlaps first."""

    def __init__(self, config: WatchConfig):
        self.config = config
        self.tracks: dict[int, Track] = {}
        self._next = 1

    def update(self, faces: list[FaceProfile], frame: int) -> list[Track]:
        """Adds the frame's faces; returns the tracks that left (unseen for too long)."""
        pairs = sorted(((iou(t.box, f.face.box), vid, i) for vid, t in self.tracks.items() for i, f in enumerate(faces)),
                       reverse=True)
        taken_tracks, taken_faces = set(), set()
        for overlap, vid, i in pairs:
            if overlap < self.config.iou_match:
                break
            if vid in taken_tracks or i in taken_faces:
                continue
            self.tracks[vid].add(faces[i], frame)
            taken_tracks.add(vid), taken_faces.add(i)
        for i, face in enumerate(faces):
            if i not in taken_faces:
                track = Track(self._next, face.face.box, frame)
                track.add(face, frame)
                self.tracks[self._next] = track
                self._next += 1
        gone = [t for t in self.tracks.values() if frame - t.last_seen > self.config.max_missed_frames]
        for track in gone:
            del self.tracks[track.viewer]
        return gone


def frames_from(source: str | int, every_nth: int = 1, max_frames: int | None = None) -> Iterator[tuple[int, float, np.ndarray]]:
    """(frame number, seconds, RGB frame) from a video file or a camera index, one in `every_nth`."""
    import cv2

    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        what = f"camera {source}" if isinstance(source, int) else f"video file {source}"
        raise VideoUnavailable(f"cannot open {what}; expected a readable video (e.g. .mp4, .avi) or a camera index "
                               "that exists (0 is usually the built-in camera)")
    fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    number = 0
    try:
        while max_frames is None or number < max_frames:
            ok, bgr = capture.read()
            if not ok:
                break
            if number % every_nth == 0:
                yield number, (number / fps if fps > 0 else 0.0), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            number += 1
    finally:
        capture.release()


def watch(home: Path | None, source: str | int, *, config: WatchConfig = WatchConfig(), version: int | None = None,
          emit: Callable[[dict], None] = print, profiler=None, lock_timeout_s: float = 30.0) -> dict:
    """Runs until the video ends (or `config.max_frames`); calls `emit` with each event. Returns a summary:
    frames read and processed, viewers seen, events, seconds."""
    import time

    from vision.detect import DetectorConfig
    from vision.profile import ProfilerConfig, SelfieProfiler
    from warehouse.catalog import read_items
    from warehouse.connection import connected

    if isinstance(source, str) and not Path(source).is_file():
        raise VideoUnavailable(f"video file {source} not found; expected a path to a video or --camera N")
    with connected(home, read_only=True, lock_timeout_s=lock_timeout_s) as conn:
        chosen = _version(conn, version)
        items = read_items(conn)
    bundle = load_bundle(chosen)
    titles = dict(zip(items["item_id"].to_list(), items["title"].to_list()))
    profiler = profiler or SelfieProfiler(ProfilerConfig(detector=DetectorConfig(min_face_size=config.min_face_px)))
    tracker = Tracker(config)
    audience: tuple[int, ...] = ()
    summary = {"frames": 0, "processed": 0, "viewers": 0, "events": 0, "seconds": 0.0}
    started = time.perf_counter()

    def ranked(vector: np.ndarray) -> list[dict]:
        ids, scores = bundle.recommend(vector, k=config.k)
        return [{"rank": r + 1, "item_id": int(i), "title": titles.get(int(i)), "score": round(float(s), 4)}
                for r, (i, s) in enumerate(zip(ids[0], scores[0])) if i >= 0]

    def vector_of(track: Track) -> np.ndarray:
        bands, genders = demographic_weights(track.averaged())
        return bundle.vector_for_demographic_mixture(bands, genders)

    def send(event: dict) -> None:
        summary["events"] += 1
        emit({"model_version": chosen.version, **event})

    last_frame = -1
    for number, seconds, rgb in frames_from(source, config.every_nth_frame, config.max_frames):
        last_frame = number
        summary["processed"] += 1
        try:
            faces = list(profiler.profile(rgb, all_faces=True).faces)
        except NoFaceFound:
            faces = []
        tracker.update(faces, summary["processed"])
        for track in tracker.tracks.values():
            if (not track.announced and len(track.ages) >= config.stable_frames
                    and track.age_standard_error() <= config.max_age_standard_error):
                track.announced = True
                summary["viewers"] += 1
                face = track.averaged()
                bands, genders = demographic_weights(face)
                send({"event": "viewer", "frame": number, "time_s": round(seconds, 2), "viewer": track.viewer,
                      "frames_seen": len(track.ages), "age": round(face.age.years, 1),
                      "age_uncertainty": round(face.age.uncertainty, 1), "gender": face.gender.label,
                      "gender_confidence": round(face.gender.probability, 3), "age_band_weights": bands,
                      "gender_weights": {g or "unknown": w for g, w in genders.items()},
                      "items": ranked(vector_of(track))})
        present = tuple(sorted(vid for vid, t in tracker.tracks.items() if t.announced))
        if present != audience:
            audience = present
            vectors = [vector_of(tracker.tracks[v]) for v in present]
            send({"event": "audience", "frame": number, "time_s": round(seconds, 2), "viewers": list(present),
                  "items": ranked(np.mean(vectors, axis=0)) if vectors else []})
    summary["frames"] = last_frame + 1
    summary["seconds"] = round(time.perf_counter() - started, 2)
    return summary
