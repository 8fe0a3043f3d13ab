"""Acknowledged means durable: a real uvicorn process, killed with SIGKILL while clients are
sending events, loses none of the events it answered 201 for."""

import threading

import httpx

from live_server import LiveServer
from serving_fixtures import make_home


def test_every_acknowledged_event_survives_kill_9(tmp_path):
    home = make_home(tmp_path / "home")
    acknowledged: list[int] = []
    server = LiveServer(home).start()
    stop = threading.Event()
    enough = threading.Event()

    def send(worker: int):
        with httpx.Client(base_url=server.url, timeout=10) as http:
            n = 0
            while not stop.is_set():
                batch = [{"session_id": f"w{worker}", "item_id": 10 + (n + i) % 5, "type": "view"} for i in range(5)]
                try:
                    response = http.post("/v1/events", json={"events": batch})
                except httpx.TransportError:
                    return  # the server died mid-request: that batch was never acknowledged
                if response.status_code == 201:
                    acknowledged.extend(response.json()["event_ids"])
                    if len(acknowledged) >= 300:
                        enough.set()
                n += 5

    threads = [threading.Thread(target=send, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    assert enough.wait(120), "the service acknowledged too few events"
    server.kill()  # while the four clients are still sending
    stop.set()
    for t in threads:
        t.join()

    restarted = LiveServer(home).start()
    try:
        from warehouse.landing import Landing

        stored = {e.event_id for e in Landing(home).events_after(0)}
        assert set(acknowledged) <= stored, f"{len(set(acknowledged) - stored)} acknowledged events were lost"
        # ... and they count for the sessions' lists after the restart.
        body = httpx.post(f"{restarted.url}/v1/recommendations", json={"session_id": "w0", "k": 5}).json()
        assert body["basis"]["n_seen"] == 5 and body["items"] == []
    finally:
        restarted.stop()
