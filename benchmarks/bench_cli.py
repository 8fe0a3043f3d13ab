"""Wall time and peak memory of CLI commands in fresh processes (ingest, stats, --help).

    .venv/bin/python benchmarks/bench_cli.py [ML100K_DIR] [--repeat N]

Each command runs in a new process; peak memory is that process's max RSS (from wait4).
Machines are shared and noisy: read the median, and compare ratios within one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(args: list[str]) -> tuple[float, float]:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "cli.py", *args], cwd=REPO, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"command failed: cli.py {' '.join(args)}")
    return elapsed, usage.ru_maxrss / 1024  # KiB -> MiB


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("ml100k", nargs="?", default=str(REPO.parent / "shared" / "data" / "ml-100k"))
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        cases = {
            "--help": ["--help"],
            "ingest --help": ["ingest", "movielens", "--help"],
            "ingest ml-100k (fresh home)": None,
            "ingest ml-100k (again, no change)": ["ingest", "movielens", opts.ml100k, "--home", home],
            "stats": ["stats", "--home", home],
        }
        print(f"{'command':38} {'median s':>9} {'min s':>7} {'peak MiB':>9}")
        for name, args in cases.items():
            samples = []
            for i in range(opts.repeat):
                if args is None:  # a new home each time, so every run really loads
                    samples.append(run(["ingest", "movielens", opts.ml100k, "--home", f"{home}/fresh{i}"]))
                else:
                    samples.append(run(args))
            times = [t for t, _ in samples]
            print(f"{name:38} {statistics.median(times):9.3f} {min(times):7.3f} {max(m for _, m in samples):9.0f}")


if __name__ == "__main__":
    main()
