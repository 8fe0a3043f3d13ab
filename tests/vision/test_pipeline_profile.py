"""pipelines.profile.profile_photos: one record per photo, failures as records."""

import json

from pipelines.profile import profile_photos


def test_records(astronaut_path, tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.new("RGB", (320, 240), (200, 200, 200)).save(blank)
    records = profile_photos([astronaut_path, text, blank, tmp_path / "missing.jpg"])
    assert [r["photo"] for r in records] == [str(astronaut_path), str(text), str(blank), str(tmp_path / "missing.jpg")]
    good, unreadable, no_face, missing = records
    assert good["error"] is None and good["other_faces"] == 0
    face = good["faces"][0]
    assert face["gender"] == "F" and face["age_band"] in ("25-34", "35-44", "45-49")
    assert set(face) >= {"age", "age_uncertainty", "age_band", "gender", "gender_confidence", "box",
                         "detection_confidence", "low_quality", "gender_for_recommendation"}
    assert len(face["box"]) == 4
    assert unreadable["error"].startswith("UnreadableImage") and unreadable["faces"] == []
    assert no_face["error"].startswith("NoFaceFound")
    assert missing["error"].startswith("FileNotFoundError")
    json.dumps(records)  # plain JSON, for the CLI's --json


def test_empty_list():
    assert profile_photos([]) == []
