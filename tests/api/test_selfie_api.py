"""POST /v1/recommendations/selfie: what the camera saw, the list, and every refusal as JSON."""

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ASTRONAUT = Path(__file__).resolve().parents[2] / "examples" / "astronaut.jpg"


def post_photo(client, data: bytes, name="me.jpg", **fields):
    return client.post("/v1/recommendations/selfie", files={"photo": (name, data, "image/jpeg")},
                       data={k: str(v) for k, v in fields.items()})


def test_astronaut_gets_what_the_camera_saw_and_the_womens_list(client):
    response = post_photo(client, ASTRONAUT.read_bytes(), k=2)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["camera"]["gender_for_recommendation"] == "F"
    assert body["camera"]["age_band"] in ("25-34", "35-44", "45-49")
    assert 0.5 <= body["camera"]["gender_confidence"] <= 1
    assert body["other_faces"] == 0
    assert [i["item_id"] for i in body["items"]] == [12, 13]  # women -> romance in the fixture
    assert body["basis"]["gender"] == "F"


def test_the_photo_never_touches_the_disk(client, monkeypatch):
    # A 3 MB upload: Starlette would spool anything over 1 MB to a temporary file.
    big = Image.open(ASTRONAUT).resize((1200, 1200))
    noise = np.random.default_rng(0).integers(0, 40, (1200, 1200, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(big) // 2 + noise).save(buffer, "PNG")
    assert buffer.tell() > 2_000_000

    def refuse(*args, **kwargs):
        raise AssertionError("a temporary file was created for the upload")

    for name in ("TemporaryFile", "NamedTemporaryFile", "mkstemp", "mkdtemp"):
        monkeypatch.setattr(tempfile, name, refuse)
    response = post_photo(client, buffer.getvalue(), name="big.png")
    assert response.status_code == 200, response.text


def _png(width, height, color=(200, 200, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("data, name, status, error", [
    (b"<html>not a photo</html>", "photo.jpg", 415, "unsupported_image"),  # the name says JPEG; the bytes do not
    (b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64, "a.heic", 415, "unsupported_image"),
    (b"", "empty.jpg", 422, "invalid_request"),
    (b"\xff\xd8\xff\xe0" + b"\x00" * 100, "cut.jpg", 422, "unusable_photo"),  # truncated JPEG
])
def test_unusable_uploads_are_refused_with_json(client, data, name, status, error):
    response = post_photo(client, data, name=name)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error


def test_a_photo_without_a_face(client):
    response = post_photo(client, _png(320, 240), name="wall.png")
    assert response.status_code == 422 and response.json()["error"] == "no_face"
    assert "face" in response.json()["detail"]


def test_decompression_bomb_and_size_limit(client):
    bomb = _png(10_000, 10_000)  # 100 megapixels in a few hundred KB
    assert len(bomb) < 1_000_000
    response = post_photo(client, bomb, name="bomb.png")
    assert response.status_code == 413 and "pixels" in response.json()["detail"]
    response = post_photo(client, b"\xff\xd8\xff" + b"\x00" * (13 * 1024 * 1024))
    assert response.status_code == 413 and "limit" in response.json()["detail"]


def test_form_mistakes(client):
    response = client.post("/v1/recommendations/selfie", files={"picture": ("a.jpg", ASTRONAUT.read_bytes())})
    assert response.status_code == 422 and "photo" in response.json()["detail"]
    response = client.post("/v1/recommendations/selfie", json={"photo": "x"})
    assert response.status_code == 415
    response = post_photo(client, ASTRONAUT.read_bytes(), k=0)
    assert response.status_code == 422 and "k" in response.json()["detail"]
