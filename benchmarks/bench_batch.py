"""Campaign batch-scoring throughput and peak memory, in fresh processes.

    .venv/bin/python benchmarks/bench_batch.py [--home HOME] [--cold-rows 1000000] [--known-users 100000]

(a) cold start: an audience of --cold-rows distinct new ids with mixed ages and genders, plus
    every known user of HOME, scored with HOME's champion (train it first: `python cli.py
    train`). Target: under 60 s and 2 GiB peak for 1,000,000 rows against MovieLens 100K.
(b) known users: a synthetic warehouse of --known-users users with histories, loaded with
    `ingest csv`, scored one by one with their seen items removed. Its bundle holds random
    vectors, since only scoring speed is measured. Target: at least 20,000 users/s.
Peak memory is the scoring process's max RSS. The machine is shared: compare within a run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def run_cli(args: list[str]) -> tuple[float, float, dict]:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "cli.py", *args], cwd=REPO, stdout=subprocess.PIPE, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: cli.py {' '.join(args)}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024, json.loads(output) if output.startswith("{") else {}


def cold_audience(path: Path, n: int, known_ids: list[int], seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    cold = pl.DataFrame({
        "user_id": [f"c{i}" for i in range(n)],
        "age": rng.integers(13, 80, n).astype(str),
        "gender": rng.choice(np.array(["M", "F", ""]), n, p=[0.48, 0.48, 0.04]),
    })
    known = pl.DataFrame({"user_id": [str(u) for u in known_ids], "age": [""] * len(known_ids), "gender": [""] * len(known_ids)})
    pl.concat([cold, known]).write_csv(path)


def synthetic_known_home(home: Path, n_users: int, n_items: int, per_user: int, seed: int = 0) -> Path:
    """Warehouse of n_users with histories (loaded with `ingest csv`) and a random-vector bundle."""
    from recsys.age_bands import AGE_BAND_LOWER_BOUNDS, AGE_BANDS
    from warehouse.connection import connected
    from warehouse.model_versions import record_version

    rng = np.random.default_rng(seed)
    data = home / "data"
    data.mkdir(parents=True)
    pl.DataFrame({"user_id": np.arange(1, n_users + 1), "age": rng.integers(13, 80, n_users),
                  "gender": rng.choice(["M", "F"], n_users)}).write_csv(data / "users.csv")
    pl.DataFrame({"item_id": np.arange(1, n_items + 1), "title": [f"item {i}" for i in range(1, n_items + 1)]}).write_csv(data / "items.csv")
    users = np.repeat(np.arange(1, n_users + 1), per_user)
    items = rng.zipf(1.3, n_users * per_user) % n_items + 1
    pl.DataFrame({"user_id": users, "item_id": items, "timestamp": np.arange(len(users))}).write_csv(data / "interactions.csv")
    seconds, _, _ = run_cli(["ingest", "csv", "--users", str(data / "users.csv"), "--items", str(data / "items.csv"),
                             "--interactions", str(data / "interactions.csv"), "--home", str(home), "--json"])
    print(f"(b) ingest csv of {n_users:,} users, {len(users):,} interactions: {seconds:.1f} s")
    bundle = home / "bundles" / "v1"
    bundle.mkdir(parents=True)
    dim = 32
    manifest = {"format_version": 1, "version": "1", "dim": dim, "age_band_lower_bounds": list(AGE_BAND_LOWER_BOUNDS),
                "vocabularies": {"age_bands": list(AGE_BANDS), "genders": ["F", "M"], "occupations": []}}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    np.save(bundle / "item_ids.npy", np.arange(1, n_items + 1))
    np.save(bundle / "item_vectors.npy", rng.normal(size=(n_items, dim)).astype(np.float32))
    np.save(bundle / "user_ids.npy", np.arange(1, n_users + 1))
    np.save(bundle / "user_vectors.npy", rng.normal(size=(n_users, dim)).astype(np.float32))
    np.save(bundle / "cold_start_vectors.npy", rng.normal(size=(len(AGE_BANDS) + 1, 3, 1, dim)).astype(np.float32))
    with connected(home) as conn:
        record_version(conn, version=1, mlflow_run_id="benchmark", metrics={"model": {}, "baselines": {}},
                       data_snapshot="benchmark", bundle_path=str(bundle), champion=True, note="random vectors")
    pl.DataFrame({"user_id": np.arange(1, n_users + 1)}).write_csv(data / "audience.csv")
    return data / "audience.csv"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", type=Path, default=REPO, help="a home with a trained champion, for (a)")
    parser.add_argument("--cold-rows", type=int, default=1_000_000)
    parser.add_argument("--known-users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=1682)
    parser.add_argument("--skip", choices=["a", "b"])
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if opts.skip != "a":
            from warehouse.connection import connected

            with connected(opts.home, read_only=True) as conn:
                known = [r[0] for r in conn.sql("SELECT user_id FROM users").fetchall()]
            audience = tmp / "cold.csv"
            cold_audience(audience, opts.cold_rows, known)
            seconds, peak, summary = run_cli(["batch-score", str(audience), "--out", str(tmp / "cold.parquet"),
                                              "--campaign", "bench-cold", "--home", str(opts.home), "--json"])
            rows = opts.cold_rows + len(known)
            print(f"(a) cold start: {rows:,} rows ({summary['n_known']:,} known, {summary['n_cold']:,} cold, "
                  f"{summary['n_cold_combinations']} combinations) in {seconds:.1f} s = {rows / seconds:,.0f} rows/s, "
                  f"peak {peak:,.0f} MiB")
        if opts.skip != "b":
            home = tmp / "known"
            audience = synthetic_known_home(home, opts.known_users, opts.items, per_user=20)
            seconds, peak, summary = run_cli(["batch-score", str(audience), "--out", str(tmp / "known.parquet"),
                                              "--home", str(home), "--json"])
            print(f"(b) known users: {summary['n_known']:,} users with seen items removed in {seconds:.1f} s "
                  f"(process, incl. start and writing) = {summary['n_known'] / seconds:,.0f} users/s, peak {peak:,.0f} MiB; "
                  f"pipeline alone {summary['seconds']:.1f} s = {summary['n_known'] / summary['seconds']:,.0f} users/s")


if __name__ == "__main__":
    main()
