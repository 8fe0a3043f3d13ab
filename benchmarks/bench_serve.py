"""Load benchmark of `python cli.py serve` (and, for the ratio, `mlflow models serve`).

Starts a real uvicorn process on 127.0.0.1 for a trained home, drives it with asyncio httpx
clients at several concurrencies, and prints throughput and p50/p95/p99 latency per scenario
(demographics, known user, liked items, selfie, events) and the server's peak RSS. Then the
same champion under `mlflow models serve --env-manager local` for the demographics case.

    .venv/bin/python benchmarks/bench_serve.py --home HOME [--seconds 5] [--concurrency 1,16,64]
        [--workers 1] [--skip-mlflow]

Numbers are upper bounds on a shared machine: the load generator runs on the same 2 cores.
Only traffic to 127.0.0.1; every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

PHOTO = (REPO / "examples" / "astronaut.jpg").read_bytes()


def _mlflow_scenario(n):
    body = {"dataframe_split": {"columns": ["age", "gender"], "data": [[18 + n % 50, "MF"[n % 2]]]}}
    return ("POST", "/invocations", {"json": body}, 0)


def scenarios(known_users: list[int], items: list[int]):
    """name -> function(n) -> (method, path, kwargs, events_per_request)"""
    return {
        "demographics": lambda n: ("POST", "/v1/recommendations", {"json": {"age": 18 + n % 50, "gender": "MF"[n % 2]}}, 0),
        "known user": lambda n: ("POST", "/v1/recommendations", {"json": {"user_id": known_users[n % len(known_users)]}}, 0),
        "liked items": lambda n: ("POST", "/v1/recommendations",
                                  {"json": {"age": 30, "gender": "F", "liked_items": [items[n % 50], items[(n * 7) % 50], items[(n * 13) % 50]]}}, 0),
        "selfie": lambda n: ("POST", "/v1/recommendations/selfie", {"files": {"photo": ("me.jpg", PHOTO, "image/jpeg")}}, 0),
        "events (1 per request)": lambda n: ("POST", "/v1/events",
                                             {"json": {"events": [{"session_id": f"b{n % 1000}", "item_id": items[n % len(items)], "type": "view"}]}}, 1),
        "events (20 per request)": lambda n: ("POST", "/v1/events", {"json": {"events": [
            {"session_id": f"b{(n + i) % 1000}", "item_id": items[(n + i) % len(items)], "type": "click"} for i in range(20)]}}, 20),
        "mlflow demographics": _mlflow_scenario,
    }


SERVICE_SCENARIOS = ("demographics", "known user", "liked items", "selfie", "events (1 per request)", "events (20 per request)")


async def _drive(url, name, concurrency, seconds, known_users, items, offset):
    make = scenarios(known_users, items)[name]
    latencies, errors, events = [], 0, 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        async def worker(w):
            nonlocal errors, events
            n = offset + w * 100_000
            while time.perf_counter() < deadline:
                method, path, kwargs, n_events = make(n)
                started = time.perf_counter()
                response = await client.request(method, path, **kwargs)
                latencies.append(time.perf_counter() - started)
                if response.status_code >= 300:
                    errors += 1
                else:
                    events += n_events
                n += 1

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return latencies, errors, events


def _client_process(args, queue):
    queue.put(asyncio.run(_drive(*args)))


def run_load(url, name, concurrency, seconds, known_users, items, processes=2):
    """Splits the load over client processes (one Python client cannot saturate a server)."""
    processes = min(processes, concurrency)
    queue = mp.Queue()
    per = [concurrency // processes + (1 if i < concurrency % processes else 0) for i in range(processes)]
    procs = [mp.Process(target=_client_process, args=((url, name, c, seconds, known_users, items, i * 10_000_000), queue))
             for i, c in enumerate(per)]
    started = time.perf_counter()
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - started
    latencies = sorted(x for r in results for x in r[0])
    errors = sum(r[1] for r in results)
    events = sum(r[2] for r in results)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 2 else [float("nan")] * 99
    return {"scenario": name, "concurrency": concurrency, "requests": len(latencies), "errors": errors,
            "req_per_s": len(latencies) / seconds, "events_per_s": events / seconds if events else None,
            "p50_ms": q[49] * 1000, "p95_ms": q[94] * 1000, "p99_ms": q[98] * 1000, "wall_s": elapsed}


def tree_rss_mib(pid: int) -> float:
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs) / 2**20
    except psutil.Error:
        return float("nan")


def worker_rss_mib(pid: int) -> float:
    """RSS of the largest process (one worker: what each worker costs)."""
    root = psutil.Process(pid)
    return max(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 2**20


def print_table(rows, title):
    print(f"\n{title}")
    print(f"{'scenario':26} {'conc':>4} {'req/s':>8} {'events/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for r in rows:
        ev = f"{r['events_per_s']:.0f}" if r["events_per_s"] else "-"
        print(f"{r['scenario']:26} {r['concurrency']:>4} {r['req_per_s']:>8.0f} {ev:>9} {r['p50_ms']:>8.1f} "
              f"{r['p95_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['errors']:>6}")


def bench_service(home: Path, args) -> list[dict]:
    from live_server import LiveServer
    from warehouse.connection import connected

    with connected(home, read_only=True) as conn:
        known = [r[0] for r in conn.sql("SELECT user_id FROM users ORDER BY user_id LIMIT 500").fetchall()]
        items = [r[0] for r in conn.sql(
            "SELECT item_id FROM interactions GROUP BY item_id ORDER BY count(*) DESC LIMIT 200").fetchall()]
    started = time.perf_counter()
    server = LiveServer(home, workers=args.workers, env={"RECSYS_RELOAD_INTERVAL_S": "1.0"}).start()
    print(f"service ready in {time.perf_counter() - started:.2f} s (process start to /readyz 200), workers={args.workers}")
    rows, peak = [], 0.0
    try:
        for name in SERVICE_SCENARIOS:
            for concurrency in args.concurrency:
                if name == "selfie" and concurrency > 16:
                    continue  # CPU-bound at ~0.2 s a photo: 64 waiting uploads only measure the queue
                rows.append(run_load(server.url, name, concurrency, args.seconds, known, items))
                peak = max(peak, worker_rss_mib(server.process.pid))
                print_table(rows[-1:], "") if args.verbose else None
    finally:
        server.stop()
    print_table(rows, f"python cli.py serve ({args.workers} worker(s)), {args.seconds:.0f} s per row")
    print(f"peak RSS of the largest worker process: {peak:.0f} MiB")
    return rows


def bench_mlflow(home: Path, args) -> list[dict]:
    from live_server import free_port
    from pipelines.tracking import REGISTERED_MODEL, tracking_uri

    port = free_port()
    # mlflow serves through uvicorn started by name: the virtualenv's bin must be on PATH.
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri(home), "PYTHONPATH": str(REPO),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    process = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{REGISTERED_MODEL}@champion",
         "--env-manager", "local", "-p", str(port), "-h", "127.0.0.1"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        else:
            print("mlflow models serve did not start; skipped")
            return []
        rows = []
        for concurrency in args.concurrency:
            rows.append(run_load(url, "mlflow demographics", concurrency, args.seconds, [], []))
        print_table(rows, "mlflow models serve (same champion), demographics")
        print(f"peak RSS: {tree_rss_mib(process.pid):.0f} MiB (all processes)")
        return rows
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True, help="A home with a trained champion (after the main job: the repository root).")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16, 64])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument("--json", type=Path, help="Also write the rows here.")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    ours = bench_service(args.home, args)
    theirs = [] if args.skip_mlflow else bench_mlflow(args.home, args)
    if theirs:
        ours_demo = {r["concurrency"]: r for r in ours if r["scenario"] == "demographics"}
        print("\nratio, demographics (ours / mlflow): throughput and p99")
        for r in theirs:
            mine = ours_demo.get(r["concurrency"])
            if mine:
                print(f"  concurrency {r['concurrency']:>3}: {mine['req_per_s'] / max(r['req_per_s'], 1e-9):.1f}x req/s, "
                      f"p99 {mine['p99_ms']:.1f} ms vs {r['p99_ms']:.1f} ms")
    if args.json:
        args.json.write_text(json.dumps({"service": ours, "mlflow": theirs}, indent=2))


if __name__ == "__main__":
    main()
