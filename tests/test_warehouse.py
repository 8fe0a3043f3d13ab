import subprocess
import sys
import textwrap

import polars as pl
import pytest

from warehouse.catalog import Dataset, counts, read_dataset, replace_dataset
from warehouse.connection import connected, open_warehouse, transaction, warehouse_path
from warehouse.errors import LockedWarehouse, MissingWarehouse
from warehouse.schema import MIGRATIONS


def tiny_dataset(n_ratings: int = 3) -> Dataset:
    return Dataset(
        users=pl.DataFrame({"user_id": [1, 2], "age": [30, 40], "gender": ["F", "M"]}),
        items=pl.DataFrame({"item_id": [7, 8], "title": ["A", "B"], "genres": [["x"], []]}),
        interactions=pl.DataFrame(
            {"user_id": [1, 2, 1][:n_ratings], "item_id": [7, 8, 8][:n_ratings], "rating": [5.0, 3.0, 1.0][:n_ratings],
             "timestamp": [1, 2, 3][:n_ratings]}
        ),
    )


def test_migrations_are_recorded_once_and_in_order(tmp_path):
    with connected(tmp_path) as conn:
        names = [r[0] for r in conn.sql("SELECT name FROM schema_migrations ORDER BY version").fetchall()]
    assert names == [name for name, _ in MIGRATIONS]
    with connected(tmp_path) as conn:  # reopening applies nothing twice
        assert conn.sql("SELECT count(*) FROM schema_migrations").fetchall()[0][0] == len(MIGRATIONS)


def test_read_only_open_of_a_missing_warehouse_says_what_to_do(tmp_path):
    with pytest.raises(MissingWarehouse, match="python cli.py ingest"):
        open_warehouse(tmp_path, read_only=True)
    assert not warehouse_path(tmp_path).exists()


def test_failed_transaction_leaves_previous_data(tmp_path):
    with connected(tmp_path) as conn:
        replace_dataset(conn, tiny_dataset(), source="t", fmt="test")
        with pytest.raises(RuntimeError):
            with transaction(conn):
                conn.execute("DELETE FROM interactions")
                raise RuntimeError("boom")
        assert counts(conn) == {"users": 2, "items": 2, "interactions": 3}


def test_replace_is_idempotent_and_replaces_whole(tmp_path):
    with connected(tmp_path) as conn:
        first = replace_dataset(conn, tiny_dataset(), source="t", fmt="test")
        again = replace_dataset(conn, tiny_dataset(), source="t", fmt="test")
        assert again.unchanged and again.snapshot_id == first.snapshot_id
        smaller = replace_dataset(conn, tiny_dataset(2), source="t", fmt="test")
        assert not smaller.unchanged and smaller.snapshot_id != first.snapshot_id
        data = read_dataset(conn)
    assert data.interactions.height == 2
    assert data.items.filter(pl.col("item_id") == 7)["genres"].to_list() == [["x"]]
    assert data.users["age_is_band"].to_list() == [False, False]


HOLD_LOCK = textwrap.dedent(
    """
    import sys, time
    from warehouse.connection import open_warehouse
    conn = open_warehouse(sys.argv[1])
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    conn.close()
    """
)


def test_locked_warehouse_names_the_holder_after_a_bounded_wait(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path), "30"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockedWarehouse, match=rf"PID {holder.pid}\b"):
            open_warehouse(tmp_path, read_only=True, lock_timeout_s=0.5)
    finally:
        holder.kill()
        holder.wait()


def test_reader_waits_for_a_short_lock_and_then_succeeds(tmp_path):
    with connected(tmp_path) as conn:
        replace_dataset(conn, tiny_dataset(), source="t", fmt="test")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path), "1.5"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with connected(tmp_path, read_only=True, lock_timeout_s=30) as conn:
            assert counts(conn)["interactions"] == 3
    finally:
        holder.kill()
        holder.wait()


def test_one_requests_lookups_return_plain_values(tmp_path):
    from serving_fixtures import make_home
    from warehouse.lookups import ItemInfo, items_by_id, user_ratings

    home = make_home(tmp_path)
    with connected(home, read_only=True) as conn:
        assert items_by_id(conn, [14, 10, 99]) == {10: ItemInfo("Item 10", None, ["Action"]),
                                                   14: ItemInfo("Item 14", None, ["Action", "Romance"])}
        rated = user_ratings(conn, 1)
        assert rated.item_ids.tolist() == [10] and rated.ratings.tolist() == [5.0] and len(rated) == 1
        assert len(user_ratings(conn, 2)) == 0


def test_data_loaded_under_an_older_snapshot_id_reloads_as_unchanged(tmp_path):
    """Before the in-DuckDB hash, ids hashed a CSV copy; the same data must not look new."""
    with connected(tmp_path) as conn:
        replace_dataset(conn, tiny_dataset(), source="t", fmt="test")
        conn.execute("UPDATE dataset_loads SET snapshot_id = 'oldstyle00000000'")
        again = replace_dataset(conn, tiny_dataset(), source="t", fmt="test")
        assert again.unchanged and again.snapshot_id == "oldstyle00000000"
        conn.execute("UPDATE interactions SET rating = 4 WHERE rating = 5")  # same counts, other data
        changed = replace_dataset(conn, tiny_dataset(), source="t", fmt="test")
        assert not changed.unchanged and changed.snapshot_id != "oldstyle00000000"
