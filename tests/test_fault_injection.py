"""Kill `ingest` and `batch-score` at named points and check the home afterwards.

The CLI stops itself at the point named by RECSYS_FAULT_POINT (SIGKILL, or NAME:TERM for
SIGTERM), so each kill lands exactly where the test wants it, with no sleeps. After each kill:
the previous state is intact (or, after the commit, the new one is whole), no stray files are
left, and a rerun succeeds.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from movielens_fixtures import write_generic_csv, write_ml100k, write_ml1m
from pipelines.batch_score import batch_score
from pipelines.errors import InputError
from pipelines.ingest import ingest_generic, ingest_movielens
from pipelines.rules import CampaignRules
from serving_fixtures import make_home
from warehouse.batch_results import campaign_results
from warehouse.catalog import counts, current_snapshot
from warehouse.connection import connected

REPO = Path(__file__).resolve().parents[1]


def cli_killed_at(point: str, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "RECSYS_FAULT_POINT": point}
    return subprocess.run([sys.executable, "cli.py", *map(str, args)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)


def files_under(directory: Path) -> set[str]:
    # DuckDB's own write-ahead log may stay after a kill; it is replayed on the next open.
    return {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file() and not p.name.endswith(".wal")}


def snapshot(home):
    with connected(home, read_only=True) as conn:
        return current_snapshot(conn), counts(conn)


def test_killed_ingest_keeps_the_previous_dataset(tmp_path):
    home = tmp_path / "home"
    ingest_movielens(home, write_ml1m(tmp_path / "ml-1m"), lock_timeout_s=5)
    before, files_before = snapshot(home), files_under(home)
    new = write_ml100k(tmp_path / "ml-100k")
    for point in ("ingest.read", "ingest.before_commit"):
        done = cli_killed_at(point, "ingest", "movielens", new, "--home", home)
        assert done.returncode == -signal.SIGKILL, done.stderr
        assert snapshot(home) == before, point
        assert files_under(home) == files_before, point
    done = cli_killed_at("ingest.committed", "ingest", "movielens", new, "--home", home)
    assert done.returncode == -signal.SIGKILL
    after = snapshot(home)
    assert after[1] == {"users": 12, "items": 15, "interactions": 80}  # committed whole, nothing half-done
    assert ingest_movielens(home, new, lock_timeout_s=5)[1].unchanged  # the rerun finds it loaded


def test_killed_csv_ingest_keeps_the_previous_dataset(tmp_path):
    """The generic ingest stages inside the writing connection (DuckDB reads the files): a kill
    while staged or before the commit leaves the warehouse, and the folder, as they were."""
    home = tmp_path / "home"
    ingest_movielens(home, write_ml1m(tmp_path / "ml-1m"), lock_timeout_s=5)
    before, files_before = snapshot(home), files_under(home)
    paths = write_generic_csv(tmp_path / "retail")
    args = ["ingest", "csv", "--users", paths["users"], "--items", paths["items"], "--interactions", paths["interactions"],
            "--home", home]
    for point in ("ingest.read", "ingest.before_commit"):
        done = cli_killed_at(point, *args)
        assert done.returncode == -signal.SIGKILL, done.stderr
        assert snapshot(home) == before, point
        assert files_under(home) == files_before, point
    summary = ingest_generic(home, paths["users"], paths["items"], paths["interactions"], lock_timeout_s=5)
    assert not summary.unchanged and snapshot(home)[1] == {"users": 3, "items": 3, "interactions": 4}


def campaign_state(home, out: Path):
    with connected(home, read_only=True) as conn:
        stored = campaign_results(conn, "c").sort("user_id", "rank")["item_id"].to_list()
    written = pl.read_parquet(out).sort("user_id", "rank")["item_id"].to_list() if out.exists() else None
    rejects = out.with_name(f"{out.stem}.rejects.csv")
    return stored, written, rejects.read_text() if rejects.exists() else None


def test_killed_batch_score_keeps_file_and_warehouse_together(tmp_path):
    home = make_home(tmp_path / "home")
    work = tmp_path / "work"
    work.mkdir()
    out = work / "o.parquet"
    old = work / "old.csv"
    old.write_text("user_id,age,gender\nx,30,F\nbad,abc,F\n")
    batch_score(home, old, out, k=2, campaign="c", version=None, rules=CampaignRules(), show_progress=False)
    before = campaign_state(home, out)
    new = work / "new.csv"
    new.write_text("user_id,age,gender\nx,30,M\ny,40,M\n")
    args = ["batch-score", new, "--out", out, "--campaign", "c", "-k", "2", "--home", home, "--json"]
    for point in ("batch.chunk_scored", "batch.staged", "batch.in_transaction", "batch.chunk_scored:TERM"):
        done = cli_killed_at(point, *args)
        assert done.returncode in (-signal.SIGKILL, 143), (point, done.stderr)
        assert campaign_state(home, out) == before, point
        if point.endswith(":TERM"):  # SIGTERM cleans up at once; SIGKILL leaves it to the next run
            assert done.returncode == 143 and sorted(p.name for p in work.iterdir()) == ["new.csv", "o.parquet", "o.rejects.csv", "old.csv"]

    # Killed between the commit and moving the files: the warehouse has the new campaign, the
    # staged files wait; the next run for this output completes them before anything else.
    done = cli_killed_at("batch.committed", *args)
    assert done.returncode == -signal.SIGKILL
    with pytest.raises(InputError, match="audience file not found"):
        batch_score(home, work / "missing.csv", out, k=2, campaign="c", version=None, rules=CampaignRules(),
                    show_progress=False)
    stored, written, rejects = campaign_state(home, out)
    assert stored == written == [10, 11, 10, 11] and rejects is None
    assert sorted(p.name for p in work.iterdir()) == ["new.csv", "o.parquet", "old.csv"]  # nothing hidden left

    summary = batch_score(home, old, out, k=2, campaign="c", version=None, rules=CampaignRules(), show_progress=False)
    assert summary.n_rejected == 1 and campaign_state(home, out) == before  # a rerun succeeds


@pytest.mark.slow
def test_killed_train_registers_nothing_and_the_next_train_sweeps_what_it_left(tmp_path):
    from pipelines import tracking
    from warehouse.model_versions import list_versions

    home = tmp_path / "home"
    ingest_movielens(home, write_ml100k(tmp_path / "ml", n_users=40, n_items=30, n_ratings=500), lock_timeout_s=5)
    first = subprocess.run([sys.executable, "cli.py", "train", "--epochs", "1", "--home", str(home)], cwd=REPO,
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    # Killed after MLflow registered the version, before the warehouse recorded it.
    done = cli_killed_at("train.registered", "train", "--epochs", "1", "--promote", "--home", home)
    assert done.returncode == -signal.SIGKILL, done.stderr
    with connected(home, read_only=True) as conn:
        assert [(v.version, v.status) for v in list_versions(conn)] == [(1, "champion")]  # the user sees no change
    assert tracking.registry_versions(home) == [1, 2]  # what the kill left in MLflow
    rerun = subprocess.run([sys.executable, "cli.py", "train", "--epochs", "1", "--promote", "--json", "--home", str(home)],
                           cwd=REPO, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    with connected(home, read_only=True) as conn:
        versions = list_versions(conn)
    assert [v.status for v in versions] == ["retired", "champion"]
    assert sorted(tracking.registry_versions(home)) == sorted(v.version for v in versions)  # no orphan left
    assert sorted(p.name for p in (home / "bundles").iterdir()) == sorted(f"v{v.version}" for v in versions)
    assert tracking.stuck_runs(home) == []
