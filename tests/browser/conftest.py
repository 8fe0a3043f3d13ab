"""A real `python cli.py serve` on a 24-film home, and headless Chromium (Debian's) driven by
Playwright, with Chromium's fake camera playing a video made from examples/astronaut.jpg.

Screenshots go to $RECSYS_SCREENSHOTS when set, else to a folder under pytest's tmp dir.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from live_server import LiveServer
from tests.browser.shop_home import make_shop_home

ASTRONAUT = Path(__file__).resolve().parents[2] / "examples" / "astronaut.jpg"


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def write_y4m(path: Path, image_bgr: np.ndarray, width: int = 640, height: int = 480, frames: int = 3) -> Path:
    """A short YUV4MPEG2 (4:2:0) video of one photo centred on a grey frame: Chromium's fake
    camera plays it in a loop."""
    canvas = np.full((height, width, 3), 128, dtype=np.uint8)
    side = min(width, height)
    photo = cv2.resize(image_bgr, (side, side), interpolation=cv2.INTER_AREA)
    left, top = (width - side) // 2, (height - side) // 2
    canvas[top:top + side, left:left + side] = photo
    yuv = cv2.cvtColor(canvas, cv2.COLOR_BGR2YUV_I420).tobytes()
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + yuv)
    return path


@pytest.fixture(scope="session")
def shop_server(tmp_path_factory):
    home = make_shop_home(tmp_path_factory.mktemp("shop") / "home")
    with LiveServer(home) as server:
        # The first selfie after a start loads the vision models (seconds); timings are for the
        # visitors after it.
        warm = httpx.post(f"{server.url}/v1/recommendations/selfie", files={"photo": ("a.jpg", ASTRONAUT.read_bytes())}, timeout=60)
        assert warm.status_code == 200, warm.text
        yield server


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:
    folder = os.environ.get("RECSYS_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
    executable = chromium_path()
    if executable is None:
        pytest.skip("Chromium is not installed: run scripts/install.sh as root, or apt-get install chromium")
    video = write_y4m(tmp_path_factory.mktemp("camera") / "astronaut.y4m", cv2.imread(str(ASTRONAUT)))
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                  f"--use-file-for-fake-video-capture={video}", "--no-sandbox"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, shop_server):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=shop_server.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    # Built to last: the page fetches nothing from outside the service (no CDN, no fonts).
    elsewhere: list[str] = []
    page.on("request", lambda r: elsewhere.append(r.url) if not r.url.startswith(shop_server.url) else None)
    page.goto("/")
    yield page
    context.close()
    assert not elsewhere, f"the page fetched from outside the service: {elsewhere}"
    # A failed request the test provoked logs "Failed to load resource"; anything else is a defect.
    unexpected = [p for p in problems if "Failed to load resource" not in p]
    assert not unexpected, unexpected
