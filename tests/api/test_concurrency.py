"""The single-writer warehouse and a long-running service: `train` runs while the service
takes events and answers; both succeed, nothing is lost, and the new champion is served
without a restart."""

import json
import subprocess
import sys
import threading
import time

import httpx
import pytest

from live_server import REPO, LiveServer
from movielens_fixtures import write_ml100k

pytestmark = pytest.mark.slow


def cli(*args):
    return subprocess.run([sys.executable, "cli.py", *args], cwd=REPO, capture_output=True, text=True)


def test_train_while_serving_then_hot_swap(tmp_path):
    home = tmp_path / "home"
    source = write_ml100k(tmp_path / "ml", n_users=60, n_items=40, n_ratings=900)
    assert cli("ingest", "movielens", str(source), "--home", str(home)).returncode == 0
    first = cli("train", "--epochs", "1", "--json", "--home", str(home))
    assert first.returncode == 0, first.stderr
    server = LiveServer(home).start()
    acknowledged, failures = [], []
    stop = threading.Event()

    def traffic():
        with httpx.Client(base_url=server.url, timeout=30) as http:
            n = 0
            while not stop.is_set():
                n += 1
                events = [{"user_id": 1 + n % 50, "item_id": 1 + n % 40, "type": "like"},
                          {"session_id": f"s{n % 7}", "item_id": 1 + (n * 3) % 40, "type": "view"}]
                response = http.post("/v1/events", json={"events": events})
                if response.status_code == 201:
                    acknowledged.extend(response.json()["event_ids"])
                else:
                    failures.append(response.text)
                for body in ({"user_id": 1 + n % 50}, {"age": 30, "gender": "F"}, {"session_id": f"s{n % 7}"}):
                    response = http.post("/v1/recommendations", json=body)
                    if response.status_code != 200:
                        failures.append(response.text)

    client = threading.Thread(target=traffic)
    client.start()
    try:
        while len(acknowledged) < 20:
            time.sleep(0.05)
        second = cli("train", "--epochs", "1", "--promote", "--json", "--home", str(home))
        assert second.returncode == 0, second.stderr
        assert json.loads(second.stdout)["model_version"] == 2
        promoted_at = time.monotonic()
        while httpx.get(f"{server.url}/v1/models/champion").json()["model_version"] != 2:
            assert time.monotonic() - promoted_at < 10, "the new champion was not served within 10 s"
            time.sleep(0.1)
    finally:
        stop.set()
        client.join()
        server.stop()
    assert failures == []
    merged = cli("events", "merge", "--json", "--home", str(home))
    assert merged.returncode == 0, merged.stderr
    from warehouse.connection import connected

    with connected(home, read_only=True) as conn:
        stored = {row[0] for row in conn.sql("SELECT event_id FROM events").fetchall()}
    assert set(acknowledged) <= stored and len(acknowledged) > 20
