"""`watch`: viewers followed across frames of a video built from the astronaut photo, their estimates
averaged, and one event per viewer plus one per change of audience. Nothing is written."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from cli import cli
from pipelines.watch import Tracker, VideoUnavailable, WatchConfig, iou, watch
from serving_fixtures import make_home
from vision.types import AgeEstimate, Box, DetectedFace, FaceProfile, GenderEstimate, Landmarks, Point

ASTRONAUT = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"
CONFIG = WatchConfig(stable_frames=4, max_missed_frames=3, max_age_standard_error=5.0, k=2)


def face_at(x, y, age=30.0):
    p = Point(0, 0)
    return FaceProfile(DetectedFace(Box(x, y, 50, 60), 0.99, Landmarks(p, p, p, p, p)),
                       AgeEstimate(age, 4.0, age), GenderEstimate("F", 0.9), low_quality=False)


def test_iou_by_hand():
    assert iou(Box(0, 0, 10, 10), Box(5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou(Box(0, 0, 10, 10), Box(20, 20, 5, 5)) == 0.0


def test_tracker_follows_moving_faces_and_drops_the_absent():
    tracker = Tracker(CONFIG)
    tracker.update([face_at(0, 0, 30), face_at(200, 0, 50)], 1)
    tracker.update([face_at(205, 2, 52), face_at(4, 1, 32)], 2)  # order swapped, both moved a little
    assert {v: t.ages for v, t in tracker.tracks.items()} == {1: [30, 32], 2: [50, 52]}
    for frame in range(3, 7):
        gone = tracker.update([face_at(0, 0, 31)], frame)
    assert [t.viewer for t in gone] == [2] and list(tracker.tracks) == [1]  # unseen for 4 > 3 frames


def write_video(path: Path) -> Path:
    """8 frames of the face at the left, 10 empty frames, 8 frames of it at the right; 2 px jitter."""
    photo = cv2.imread(str(ASTRONAUT))[30:230, 120:320]  # 200 x 200 around the face
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (400, 240))
    rng = np.random.default_rng(0)
    for frame in range(26):
        canvas = np.full((240, 400, 3), 90, dtype=np.uint8)
        if frame < 8 or frame >= 18:
            x = (5 if frame < 8 else 195) + int(rng.integers(-2, 3))
            y = 20 + int(rng.integers(-2, 3))
            canvas[y:y + 200, x:x + 200] = photo
        writer.write(canvas)
    writer.release()
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "shop.avi")


def test_viewers_estimates_and_events(tmp_path, video):
    home = make_home(tmp_path / "home")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    events = []
    summary = watch(home, str(video), config=CONFIG, emit=events.append)
    assert summary["frames"] == 26 and summary["viewers"] == 2
    assert [(e["event"], e.get("viewer"), e.get("viewers")) for e in events] == [
        ("viewer", 1, None), ("audience", None, [1]),  # the face settles: its list, then the audience's
        ("audience", None, []),                        # it left (unseen for more than 3 frames)
        ("viewer", 2, None), ("audience", None, [2]),  # a new viewer on the right
    ]
    viewers = [e for e in events if e["event"] == "viewer"]
    for e in viewers:
        assert e["gender"] == "F" and 25 <= e["age"] <= 45 and e["frames_seen"] >= 4
        assert [row["item_id"] for row in e["items"]] == [12, 13]  # the fixture's women's list
    assert events[0]["frame"] < 8 and events[2]["frame"] < 18 and events[3]["frame"] >= 18
    assert abs(viewers[0]["age"] - viewers[1]["age"]) < 5  # same face, same estimate within noise
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written


def test_cli_prints_json_events_and_refuses_a_missing_video(tmp_path, video):
    home = make_home(tmp_path / "home")
    result = CliRunner().invoke(cli, ["watch", str(video), "--json", "--max-frames", "8", "--home", str(home)])
    assert result.exit_code == 0, result.output
    kinds = [json.loads(line)["event"] for line in result.output.splitlines()]
    assert kinds[:2] == ["viewer", "audience"]
    result = CliRunner().invoke(cli, ["watch", str(tmp_path / "none.mp4"), "--home", str(home)])
    assert result.exit_code == 1 and "none.mp4 not found" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["watch", "--home", str(home)])
    assert result.exit_code == 2


def test_unopenable_camera_is_a_clear_error(tmp_path):
    home = make_home(tmp_path / "home")
    with pytest.raises(VideoUnavailable, match="cannot open camera 99"):
        watch(home, 99, config=CONFIG, emit=lambda e: None)
