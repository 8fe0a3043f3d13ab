"""A real `python cli.py serve` process on 127.0.0.1, for tests that need one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(self, home: Path, port: int | None = None, workers: int = 1, env: dict | None = None):
        self.home, self.port, self.workers = home, port or free_port(), workers
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "RECSYS_RELOAD_INTERVAL_S": "0.2", **(env or {})}
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 90.0) -> "LiveServer":
        self.process = subprocess.Popen(
            [sys.executable, "cli.py", "serve", "--home", str(self.home), "--port", str(self.port),
             "--workers", str(self.workers)],
            cwd=REPO, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited: {self.process.stdout.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("the service did not become ready")

    def kill(self) -> None:
        """SIGKILL, no goodbye: what a crash or the OOM killer does."""
        os.killpg(self.process.pid, 9)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
