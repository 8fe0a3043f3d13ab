"""Ingest benchmark: retail-shaped CSV (or Parquet) files through `cli.py ingest csv`, in a fresh
process under ``/usr/bin/time -v`` (``apt-get install -y time``); prints wall seconds and peak RSS.

    nice -n 5 .venv/bin/python benchmarks/bench_ingest.py --interactions 5000000 --users 100000 --items 50000
    nice -n 5 .venv/bin/python benchmarks/bench_ingest.py --interactions 20000000 --users 500000 --items 200000
    nice -n 5 .venv/bin/python benchmarks/bench_ingest.py ... --repo /tmp/other-checkout  # measure another version

The data come from ``bench_scale.generate`` (power-law popularity, clustered histories) and are
kept under ``--work`` between runs, so a second run measures the ingest alone. Each run loads
into a new home; ``--twice`` loads the same files again (the unchanged path: hash only).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_scale import Size, generate, timed  # noqa: E402


def write_data(size: Size, out: Path, fmt: str) -> dict[str, Path]:
    """The three files in ``fmt``; CSVs are converted from bench_scale's Parquet by DuckDB."""
    import duckdb

    paths = {name: out / f"{name}.{fmt}" for name in ("users", "items", "interactions")}
    if all(p.exists() for p in paths.values()):
        return paths
    if not (out / "interactions.parquet").exists():
        generate(size, out)
    if fmt == "csv":
        conn = duckdb.connect()
        for name in paths:
            genres = "array_to_string(genres, '|') AS genres" if name == "items" else None
            select = f"* REPLACE ({genres})" if genres else "*"
            conn.execute(f"COPY (SELECT {select} FROM read_parquet('{out / name}.parquet')) TO '{paths[name]}' (HEADER)")
        conn.close()
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interactions", type=int, default=5_000_000, help="about this many (within a few percent)")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--format", choices=["csv", "parquet"], default="csv")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-ingest"), help="where data and homes go")
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout whose cli.py to run")
    parser.add_argument("--twice", action="store_true", help="also load the same files again (unchanged)")
    args = parser.parse_args()
    if not Path("/usr/bin/time").exists():
        raise SystemExit("/usr/bin/time is missing: apt-get install -y time")

    size = Size("custom", args.users, args.items, args.interactions)
    data = args.work / f"{args.users}u-{args.items}i-{args.interactions}n"
    paths = write_data(size, data, args.format)
    home = args.work / "home"
    shutil.rmtree(home, ignore_errors=True)
    command = [sys.executable, str(args.repo / "cli.py"), "ingest", "csv", "--users", str(paths["users"]),
               "--items", str(paths["items"]), "--interactions", str(paths["interactions"]), "--home", str(home)]
    print(f"{' '.join(command)}", flush=True)
    runs = [timed("ingest csv", command)]
    if args.twice:
        runs.append(timed("ingest csv again (unchanged)", command))
    for run in runs:
        print(run.output.strip())
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
