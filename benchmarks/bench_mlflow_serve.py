"""Serve the champion the MLflow way (`mlflow models serve --env-manager local`), offline, and time it.

Starts the server on the home's store, waits for /ping, checks a valid request (200, k items per
row) and an invalid one (400 naming the row), times requests of 1 and 1,000 rows, and stops it.
Also times ``predict`` in process on 100,000 demographic rows.

    .venv/bin/python benchmarks/bench_mlflow_serve.py --home HOME
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _post(port: int, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", type=Path, default=REPO)
    opts = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from pipelines import tracking

    uri = tracking.tracking_uri(opts.home)
    bin_dir = Path(sys.executable).parent  # uvicorn lives beside this Python
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    port = _free_port()
    started = time.perf_counter()
    server = subprocess.Popen([str(bin_dir / "mlflow"), "models", "serve", "-m", "models:/selfie-recsys@champion",
                               "--env-manager", "local", "-p", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.perf_counter() - started > 300:
                    raise SystemExit("the server did not start (is uvicorn installed beside mlflow?)")
                time.sleep(0.5)
        print(f"server up in {time.perf_counter() - started:.1f} s")
        status, body = _post(port, {"dataframe_records": [{"age": 34, "gender": "F"}], "params": {"k": 10}})
        assert status == 200 and len(body["predictions"][0]["item_ids"]) == 10, body
        status, body = _post(port, {"dataframe_records": [{"age": 34, "gender": "X"}]})
        assert status == 400 and "row 0: gender must be M or F" in body["message"], body
        for rows in (1, 1000):
            records = [{"age": 18 + i % 60, "gender": "MF"[i % 2]} for i in range(rows)]
            t = time.perf_counter()
            for _ in range(5):
                _post(port, {"dataframe_records": records})
            print(f"{rows:>5} rows per request: {(time.perf_counter() - t) / 5 * 1000:.0f} ms")
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)

    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model("models:/selfie-recsys@champion")
    frame = pd.DataFrame({"age": [18 + i % 60 for i in range(100_000)], "gender": ["MF"[i % 2] for i in range(100_000)]})
    t = time.perf_counter()
    model.predict(frame)
    print(f"in-process predict: {100_000 / (time.perf_counter() - t):,.0f} rows/s (100,000 demographic rows)")


if __name__ == "__main__":
    main()
