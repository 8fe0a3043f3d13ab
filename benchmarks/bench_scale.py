"""Scale benchmark: synthetic retail-shaped data through ingest, train, recommend and batch-score.

    nice -n 5 .venv/bin/python benchmarks/bench_scale.py                      # S: ingest, train, serve, batch
    nice -n 5 .venv/bin/python benchmarks/bench_scale.py --sizes S,M,L,C1M    # every size (M, L, C1M: random-vector bundles)
    nice -n 5 .venv/bin/python benchmarks/bench_scale.py --sizes M --train M  # train M too (about half an hour here)
    nice -n 5 .venv/bin/python benchmarks/bench_scale.py --sizes L --train L  # train L (over an hour)

Sizes (users / items / interactions): S 10k / 5k / 0.5M, M 100k / 50k / 5M (a small retailer),
L 500k / 200k / 20M, C1M 50k / 1M / 2.5M (a 1M-item catalog). Item popularity follows a power
law; each user has 5 to 200 interactions (a truncated power law), mostly within one "topic" of
the catalog, so histories and vectors have the clustered structure trained embeddings have.

Each step runs in a fresh process under ``/usr/bin/time -v`` (``apt-get install -y time``) and
prints wall time, peak memory (max RSS) and throughput. Sizes not in ``--train`` get a serving
bundle of synthetic vectors instead (``--synthetic-bundle``: items near their topic's centre
plus a popularity bias column, users near their topic), written like ``recsys.export`` writes
one and recorded as the champion, so serving and batch scoring are measured at sizes where
training would take too long. Batch scoring runs exact and approximate (ANN) retrieval on the
same known users and reports the ANN path's recall@10 against the exact lists.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DAY = 86_400
START = 1_672_531_200  # 2023-01-01
GENRES = ["Grocery", "Home", "Garden", "Toys", "Books", "Beauty", "Sports", "Electronics", "Fashion", "Kids",
          "Pets", "Office", "Music", "Outdoor", "Kitchen", "Health", "Auto", "Tools", "Crafts", "Games"]


@dataclass(frozen=True)
class Size:
    name: str
    n_users: int
    n_items: int
    n_interactions: int  # target; the generator hits it within a few percent

    @property
    def n_topics(self) -> int:
        return max(64, self.n_items // 1000)


SIZES = {
    "S": Size("S", 10_000, 5_000, 500_000),
    "M": Size("M", 100_000, 50_000, 5_000_000),
    "L": Size("L", 500_000, 200_000, 20_000_000),
    "C1M": Size("C1M", 50_000, 1_000_000, 2_500_000),
}
IN_TOPIC = 0.8  # share of a user's interactions within their own topic
RECOMMEND_RUNS = 5  # fresh `recommend` processes per kind; the best one is reported (the machine is shared)


# ---------------------------------------------------------------- data


def _history_lengths(rng, n_users: int, mean: float) -> np.ndarray:
    """5..200 interactions per user, p(c) ~ c^-alpha with alpha chosen so the mean is ``mean``."""
    counts = np.arange(5, 201)
    lo, hi = -3.0, 5.0
    for _ in range(60):
        alpha = (lo + hi) / 2
        p = counts ** -alpha
        p /= p.sum()
        lo, hi = (alpha, hi) if (p * counts).sum() > mean else (lo, alpha)
    return rng.choice(counts, size=n_users, p=p)


def item_topics(item_ids: np.ndarray, n_topics: int) -> tuple[np.ndarray, np.ndarray]:
    """(topic, popularity rank within the topic) of each item id: id - 1 = rank * n_topics + topic."""
    zero = np.asarray(item_ids) - 1
    return zero % n_topics, zero // n_topics


def user_topics(user_ids: np.ndarray, n_topics: int) -> np.ndarray:
    return (np.asarray(user_ids) * 7919) % n_topics  # a fixed scramble, so topics are not id order


def generate(size: Size, out: Path, seed: int = 0) -> dict:
    """users.parquet, items.parquet, interactions.parquet for ``ingest csv``; returns the counts."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    n_topics = size.n_topics
    user_ids = np.arange(1, size.n_users + 1, dtype=np.int64)
    pq.write_table(pa.table({
        "user_id": user_ids,
        "age": rng.integers(16, 80, size.n_users).astype(np.int32),
        "gender": rng.choice(np.array(["M", "F"]), size.n_users),
        # The trainer refuses a user table without any occupation (an empty StringLookup vocabulary).
        "occupation": rng.choice(np.array(["student", "retired", "employed", "self-employed"]), size.n_users),
    }), out / "users.parquet")

    item_ids = np.arange(1, size.n_items + 1, dtype=np.int64)
    topics, _ = item_topics(item_ids, n_topics)
    genre = np.array(GENRES)[topics % len(GENRES)]
    pq.write_table(pa.table({
        "item_id": item_ids,
        "title": pa.array([f"Product {i}" for i in item_ids]),
        "genres": pa.array([[g] for g in genre.tolist()], type=pa.list_(pa.string())),
        "year": rng.integers(2000, 2025, size.n_items).astype(np.int32),
    }), out / "items.parquet")

    lengths = _history_lengths(rng, size.n_users, size.n_interactions / size.n_users)
    users = np.repeat(user_ids, lengths)
    n = len(users)
    per_topic = -(-size.n_items // n_topics)
    # Power law within a topic: rank = floor(per_topic * u^3) puts most mass on the first items.
    rank = np.floor(per_topic * rng.random(n) ** 3).astype(np.int64)
    own = rng.random(n) < IN_TOPIC
    topic = np.where(own, user_topics(users, n_topics), np.floor(n_topics * rng.random(n) ** 2).astype(np.int64))
    items = rank * n_topics + topic + 1
    outside = items > size.n_items  # the last rank is short when topics do not divide the catalog
    items[outside] = (items[outside] - 1) % size.n_items + 1
    pq.write_table(pa.table({
        "user_id": users,
        "item_id": items,
        "rating": rng.integers(1, 6, n).astype(np.float32),
        "timestamp": START + rng.integers(0, 365 * DAY, n),
    }), out / "interactions.parquet")
    return {"users": size.n_users, "items": size.n_items, "interactions": n}


def audiences(size: Size, out: Path, known: int, cold: int, seed: int = 1) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    known_path, cold_path = out / f"audience-known-{known}.parquet", out / f"audience-cold-{cold}.parquet"
    ids = rng.choice(np.arange(1, size.n_users + 1), size=min(known, size.n_users), replace=False)
    pq.write_table(pa.table({"user_id": pa.array([str(i) for i in ids])}), known_path)
    pq.write_table(pa.table({
        "user_id": pa.array([f"new-{i}" for i in range(cold)]),
        "age": rng.integers(13, 80, cold).astype(str),
        "gender": rng.choice(np.array(["M", "F", ""]), cold, p=[0.48, 0.48, 0.04]),
    }), cold_path)
    return known_path, cold_path


# ---------------------------------------------------------------- synthetic bundle


def synthetic_vectors(size: Size, dim: int = 32, seed: int = 0):
    """(item ids, item vectors, user ids, user vectors, cold-start table) with the data's topic structure."""
    from recsys.age_bands import AGE_BANDS

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((size.n_topics, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    item_ids = np.arange(1, size.n_items + 1, dtype=np.int64)
    topic, rank = item_topics(item_ids, size.n_topics)
    taste = centres[topic] + 0.7 / np.sqrt(dim) * rng.standard_normal((size.n_items, dim)).astype(np.float32)
    bias = (-0.3 * np.log1p(rank)).astype(np.float32)[:, None]
    item_vectors = np.hstack([taste, bias]).astype(np.float32)
    user_ids = np.arange(1, size.n_users + 1, dtype=np.int64)
    users = centres[user_topics(user_ids, size.n_topics)] + 0.7 / np.sqrt(dim) * rng.standard_normal(
        (size.n_users, dim)).astype(np.float32)
    user_vectors = np.hstack([3 * users, np.ones((size.n_users, 1), np.float32)]).astype(np.float32)
    cold = rng.standard_normal((len(AGE_BANDS) + 1, 3, 1, dim + 1)).astype(np.float32)  # genders F, M + unknown
    cold[..., -1] = 1.0
    return item_ids, item_vectors, user_ids, user_vectors, cold


def write_synthetic_bundle(home: Path, size: Size, dim: int = 32, seed: int = 0) -> int:
    """A bundle of synthetic vectors shaped like recsys.export's, recorded as the champion.

    Items: their topic's centre plus noise, and a popularity bias column (users hold 1 there,
    as the trained towers do); users: their topic's centre plus noise. Returns the version.
    """
    from recsys import serving
    from recsys.age_bands import AGE_BAND_LOWER_BOUNDS, AGE_BANDS
    from warehouse.catalog import current_snapshot
    from warehouse.connection import connected
    from warehouse.model_versions import list_versions, record_version

    item_ids, item_vectors, user_ids, user_vectors, cold = synthetic_vectors(size, dim, seed)
    genders, occupations = ["F", "M"], []

    with connected(home, read_only=True) as conn:
        version = max([v.version for v in list_versions(conn)], default=0) + 1
        snapshot = current_snapshot(conn)
    out = home / "bundles" / f"v{version}"
    out.mkdir(parents=True)
    np.save(out / serving.ITEM_IDS, item_ids)
    np.save(out / serving.ITEM_VECTORS, item_vectors)
    np.save(out / serving.USER_IDS, user_ids)
    np.save(out / serving.USER_VECTORS, user_vectors)
    np.save(out / serving.COLD_START_VECTORS, cold)
    manifest = {
        "format_version": serving.FORMAT_VERSION, "version": str(version),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "dim": dim + 1, "taste_dims": dim,
        "n_items": size.n_items, "n_users": size.n_users, "trained_on": "synthetic vectors (bench_scale.py)",
        "age_band_lower_bounds": list(AGE_BAND_LOWER_BOUNDS),
        "vocabularies": {"age_bands": list(AGE_BANDS), "genders": genders, "occupations": occupations},
        "cold_start_axes": ["age_band", "gender", "occupation"], "metrics": {},
    }
    (out / serving.MANIFEST).write_text(json.dumps(manifest, indent=2))
    _prepare_bundle(out)
    with connected(home) as conn:
        record_version(conn, version=version, mlflow_run_id=f"synthetic-{size.name}", metrics={"model": {}, "baselines": {}},
                       data_snapshot=snapshot, bundle_path=str(out), champion=True, note="bench_scale synthetic bundle")
    return version


def _prepare_bundle(directory: Path) -> None:
    """What an export does after writing the arrays (the ANN index for large catalogs), if this code has it."""
    from recsys import serving

    prepare = getattr(serving, "prepare_bundle", None)
    if prepare is not None:
        prepare(directory)


# ---------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Measured:
    step: str
    seconds: float
    peak_mib: float
    throughput: str
    output: str


def timed(step: str, args: list[str], *, work: float | None = None, unit: str = "", nice: bool = False) -> Measured:
    """Runs ``args`` under /usr/bin/time -v; wall time and max RSS come from time's report."""
    command = ["/usr/bin/time", "-v", *args]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{step} failed ({' '.join(args)}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", proc.stderr).group(1)
    seconds = sum(float(part) * 60 ** i for i, part in enumerate(reversed(wall.split(":"))))
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1)) / 1024
    rate = f"{work / seconds:,.0f} {unit}/s" if work else ""
    in_process = _reported_seconds(proc.stdout)
    if work and in_process:  # the command's own clock: without interpreter start and imports
        rate += f" ({work / in_process:,.0f} in process)"
    result = Measured(step, seconds, peak, rate, proc.stdout)
    print(f"  {step:<44} {seconds:8.2f} s {peak:8.0f} MiB  {rate}", flush=True)
    return result


def _reported_seconds(stdout: str) -> float | None:
    """The ``seconds`` a --json command reports about itself (batch-score does), if any."""
    try:
        return float(json.loads(stdout.strip().splitlines()[-1])["seconds"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None


def cli(*args: str) -> list[str]:
    return [sys.executable, "cli.py", *args]


def recall_at_k(exact: Path, approximate: Path, k: int = 10) -> float:
    import polars as pl

    a = pl.read_parquet(exact).filter(pl.col("rank") <= k).group_by("user_id").agg(pl.col("item_id"))
    b = pl.read_parquet(approximate).filter(pl.col("rank") <= k).group_by("user_id").agg(pl.col("item_id").alias("ann"))
    joined = a.join(b, on="user_id", how="left")
    hits = [len(set(x) & set(y or [])) / max(len(x), 1) for x, y in zip(joined["item_id"].to_list(), joined["ann"].to_list())]
    return float(np.mean(hits)) if hits else float("nan")


def run_size(size: Size, work: Path, *, train: bool, known: int, cold: int, exact_known: int) -> list[Measured]:
    data, home = work / size.name / "data", work / size.name / "home"
    if home.exists():
        shutil.rmtree(home)
    started = time.perf_counter()
    if not (data / "interactions.parquet").exists():
        counts = generate(size, data)
    else:
        counts = {"interactions": pq.ParquetFile(data / "interactions.parquet").metadata.num_rows}
    print(f"\n{size.name}: {size.n_users:,} users, {size.n_items:,} items, {counts['interactions']:,} interactions "
          f"(data ready in {time.perf_counter() - started:.0f} s: {data})", flush=True)
    h = ["--home", str(home)]
    results = [timed("ingest csv", cli("ingest", "csv", "--users", str(data / "users.parquet"), "--items",
                                       str(data / "items.parquet"), "--interactions", str(data / "interactions.parquet"),
                                       *h, "--json"), work=counts["interactions"], unit="interactions")]
    if train:
        results.append(timed("train (default config)", cli("train", *h, "--json"), work=counts["interactions"], unit="interactions"))
    else:
        results.append(timed("synthetic bundle (+ ANN index if large)",
                             [sys.executable, __file__, "--synthetic-bundle", str(home), "--sizes", size.name]))
    for label, args in (("recommend --user-id (fresh process)", ["--user-id", "1"]),
                        ("recommend --age --gender (fresh process)", ["--age", "30", "--gender", "F"])):
        runs = [timed(f"{label} #{i + 1}", cli("recommend", *args, *h, "--json")) for i in range(RECOMMEND_RUNS)]
        best = min(runs, key=lambda r: r.seconds)
        results.append(Measured(f"{label}, best of {RECOMMEND_RUNS}", best.seconds, max(r.peak_mib for r in runs), "", ""))
    known_path, cold_path = audiences(size, work / size.name, known, cold)
    n_known = min(known, size.n_users)
    for label, retrieval, path, n in (
        ("batch-score known users (auto)", "auto", known_path, n_known),
        ("batch-score cold start", "auto", cold_path, cold),
    ):
        results.append(timed(label, cli("batch-score", str(path), "--out", str(work / size.name / f"{label.split()[2]}.parquet"),
                                        "--retrieval", retrieval, *h, "--json"), work=n, unit="users"))
    # The reference: exact top-k on a sample of the same known users, and ANN on the same sample.
    sample = work / size.name / "audience-sample.parquet"
    pq.write_table(pq.read_table(known_path).slice(0, exact_known), sample)
    exact_out, ann_out = work / size.name / "sample-exact.parquet", work / size.name / "sample-ann.parquet"
    results.append(timed(f"batch-score {exact_known:,} known, exact", cli(
        "batch-score", str(sample), "--out", str(exact_out), "--retrieval", "exact", *h, "--json"), work=exact_known, unit="users"))
    results.append(timed(f"batch-score {exact_known:,} known, ANN", cli(
        "batch-score", str(sample), "--out", str(ann_out), "--retrieval", "ann", *h, "--json"), work=exact_known, unit="users"))
    recall = recall_at_k(exact_out, ann_out)
    print(f"  ANN recall@10 against exact on {exact_known:,} known users: {recall:.4f}", flush=True)
    results.append(Measured("ANN recall@10 vs exact", 0.0, 0.0, f"{recall:.4f}", ""))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="S", help="comma-separated: S, M, L, C1M")
    parser.add_argument("--train", default="S", help="sizes to train (others get a synthetic bundle); '' for none")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-scale"), help="where data and homes go")
    parser.add_argument("--known", type=int, default=20_000, help="known users in the batch audience")
    parser.add_argument("--cold", type=int, default=1_000_000, help="new people in the cold-start audience")
    parser.add_argument("--exact-known", type=int, default=2_000, help="known users scored both exactly and by ANN")
    parser.add_argument("--synthetic-bundle", type=Path, metavar="HOME",
                        help="only write a synthetic bundle for --sizes (one size) into HOME and record it as champion")
    args = parser.parse_args()
    sizes = [SIZES[s.strip()] for s in args.sizes.split(",") if s.strip()]
    args.work = args.work.resolve()  # the home records its bundle's path; a relative one would not resolve
    if args.synthetic_bundle:
        version = write_synthetic_bundle(args.synthetic_bundle, sizes[0])
        print(json.dumps({"version": version}))
        return
    if shutil.which("time") is None and not Path("/usr/bin/time").exists():
        raise SystemExit("/usr/bin/time is missing: apt-get install -y time")
    to_train = {s.strip() for s in args.train.split(",") if s.strip()}
    table = []
    print("load average at the start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()), flush=True)
    for size in sizes:
        for r in run_size(size, args.work, train=size.name in to_train, known=args.known, cold=args.cold,
                          exact_known=args.exact_known):
            table.append((size.name, r))
    print("\n| size | step | wall s | peak MiB | throughput |\n|---|---|---|---|---|")
    for name, r in table:
        print(f"| {name} | {r.step} | {r.seconds:.2f} | {r.peak_mib:.0f} | {r.throughput} |")
    print("load average at the end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
