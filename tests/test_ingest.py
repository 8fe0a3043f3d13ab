import shutil
import zipfile
from pathlib import Path

import polars as pl
import pytest

from movielens_fixtures import write_generic_csv, write_ml100k, write_ml1m
from pipelines.errors import InputError
from pipelines.ingest import ingest_generic, ingest_movielens
from warehouse.catalog import counts, current_snapshot, read_dataset
from warehouse.connection import connected

REAL_ML100K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ml-100k"


def load(home, path):
    return ingest_movielens(home, path, lock_timeout_s=5)


def state(home):
    with connected(home, read_only=True) as conn:
        return current_snapshot(conn), counts(conn)


def test_ml100k_directory(tmp_path):
    fmt, summary = load(tmp_path, write_ml100k(tmp_path / "ml-100k"))
    assert (fmt, summary.n_users, summary.n_items, summary.n_interactions) == ("ml-100k", 12, 15, 80)
    with connected(tmp_path, read_only=True) as conn:
        data = read_dataset(conn)
    item = data.items.filter(pl.col("item_id") == 3).row(0, named=True)
    assert item["title"] == "Caf\xe9 Film 3 (1953)" and item["year"] == 1953
    assert item["genres"] == ["Animation", "Fantasy"]  # flags at indices 3 % 19 = 3 and 9 % 19 = 9
    assert data.users["age_is_band"].sum() == 0


def test_ml1m_directory_maps_codes(tmp_path):
    fmt, summary = load(tmp_path, write_ml1m(tmp_path / "ml-1m"))
    assert (fmt, summary.n_users, summary.n_items, summary.n_interactions) == ("ml-1m", 10, 12, 60)
    with connected(tmp_path, read_only=True) as conn:
        data = read_dataset(conn)
    assert set(data.users["age"].to_list()) <= {1, 18, 25, 35, 45, 50, 56}
    assert data.users["age_is_band"].all()
    from pipelines.readers import ML1M_OCCUPATIONS

    raw_codes = [int(line.split("::")[3]) for line in (tmp_path / "ml-1m" / "users.dat").read_text().splitlines()]
    assert data.users.sort("user_id")["occupation"].to_list() == [ML1M_OCCUPATIONS[c] for c in raw_codes]
    assert data.items.filter(pl.col("item_id") == 1)["genres"].to_list() == [["Comedy", "Sci-Fi"]]


def test_zip_with_top_folder(tmp_path):
    source = write_ml100k(tmp_path / "src" / "ml-100k")
    archive = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in source.iterdir():
            z.write(f, f"ml-100k/{f.name}")
    fmt, summary = load(tmp_path / "home", archive)
    assert fmt == "ml-100k" and summary.n_interactions == 80


def test_reingest_is_idempotent(tmp_path):
    source = write_ml100k(tmp_path / "ml")
    first = load(tmp_path, source)[1]
    again = load(tmp_path, source)[1]
    assert again.unchanged and again.snapshot_id == first.snapshot_id
    assert state(tmp_path)[1]["interactions"] == 80


def test_several_homes_coexist(tmp_path):
    load(tmp_path / "a", write_ml100k(tmp_path / "ml-100k"))
    load(tmp_path / "b", write_ml1m(tmp_path / "ml-1m"))
    assert state(tmp_path / "a")[1]["users"] == 12 and state(tmp_path / "b")[1]["users"] == 10


def test_generic_csv_with_dates_extra_columns_and_default_rating(tmp_path):
    paths = write_generic_csv(tmp_path / "retail")
    summary = ingest_generic(tmp_path, paths["users"], paths["items"], paths["interactions"], lock_timeout_s=5)
    assert (summary.n_users, summary.n_items, summary.n_interactions) == (3, 3, 4)
    with connected(tmp_path, read_only=True) as conn:
        data = read_dataset(conn)
    assert data.users["gender"].to_list() == ["F", "M", None]
    assert data.interactions["rating"].to_list() == [1.0] * 4
    assert data.interactions["timestamp"][0] == 1709287200  # 2024-03-01T10:00:00 UTC
    kettle = data.items.filter(pl.col("item_id") == 10).row(0, named=True)
    assert kettle["genres"] == ["kitchen", "electric"] and '"brand":"Acme"' in kettle["extra"]


def test_generic_parquet(tmp_path):
    paths = write_generic_csv(tmp_path / "retail")
    for name, path in list(paths.items()):
        parquet = path.with_suffix(".parquet")
        pl.read_csv(path, infer_schema=False).write_parquet(parquet)
        paths[name] = parquet
    summary = ingest_generic(tmp_path, paths["users"], paths["items"], paths["interactions"], lock_timeout_s=5)
    assert summary.n_interactions == 4


@pytest.mark.real_data
@pytest.mark.skipif(not REAL_ML100K.exists(), reason="../shared/data/ml-100k is not present")
def test_real_ml100k(tmp_path):
    fmt, summary = load(tmp_path, REAL_ML100K)
    assert (fmt, summary.n_interactions, summary.n_users, summary.n_items) == ("ml-100k", 100000, 943, 1682)


# ---------------------------------------------------------------- bad input loses nothing


def edit_line(path: Path, line_no: int, new: str, encoding="utf-8") -> None:
    lines = path.read_text(encoding=encoding).splitlines()
    lines[line_no - 1] = new
    path.write_text("\n".join(lines) + "\n", encoding=encoding)


BAD_ML100K = {
    "missing file": (lambda d: (d / "u.user").unlink(), r"u\.user: file not found"),
    "wrong separator": (
        lambda d: (d / "u.data").write_text((d / "u.data").read_text().replace("\t", ",")),
        r"u\.data, line 1: expected 4 fields separated by tabs .*got 1; the line looks separated by commas",
    ),
    "non-numeric rating": (
        lambda d: edit_line(d / "u.data", 3, "1\t2\tfive\t880000000"),
        r"u\.data, line 3, column 'rating': expected an integer rating 1-5, got 'five'",
    ),
    "rating out of range": (
        lambda d: edit_line(d / "u.data", 2, "1\t2\t9\t880000000"),
        r"u\.data, line 2, column 'rating': expected a rating from 1 to 5, got 9",
    ),
    "unknown user": (
        lambda d: edit_line(d / "u.data", 4, "999\t2\t3\t880000000"),
        r"u\.data, line 4, column 'user_id': user_id 999 is not in .*u\.user",
    ),
    "unknown item": (
        lambda d: edit_line(d / "u.data", 5, "1\t777\t3\t880000000"),
        r"u\.data, line 5, column 'item_id': item_id 777 is not in .*u\.item",
    ),
    "duplicate user id": (
        lambda d: edit_line(d / "u.user", 4, "2|30|F|writer|12345"),
        r"u\.user, line 4, column 'user_id': duplicate user_id 2 \(already on line 2\)",
    ),
    "bad gender": (
        lambda d: edit_line(d / "u.user", 2, "2|30|X|writer|12345"),
        r"u\.user, line 2, column 'gender': expected gender M or F .*got 'X'",
    ),
    "age out of range": (
        lambda d: edit_line(d / "u.user", 1, "1|340|F|writer|12345"),
        r"u\.user, line 1, column 'age': expected an age in years \(0-120\), got 340",
    ),
    "empty file": (lambda d: (d / "u.data").write_text(""), r"u\.data: the file is empty"),
    "wrong encoding": (
        lambda d: (d / "u.user").write_bytes((d / "u.user").read_text().encode("utf-16")),
        r"u\.user: the file contains NUL bytes; expected plain text .*not UTF-16",
    ),
    "not movielens": (
        lambda d: [f.unlink() for f in d.iterdir()],
        r"no MovieLens data found; expected the 100K files",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_ML100K))
def test_bad_ml100k_input_is_refused_and_warehouse_unchanged(tmp_path, case):
    home = tmp_path / "home"
    load(home, write_ml1m(tmp_path / "good"))
    before = state(home)
    source = write_ml100k(tmp_path / "bad")
    corrupt, message = BAD_ML100K[case]
    corrupt(source)
    with pytest.raises(InputError, match=message):
        load(home, source)
    assert state(home) == before


def test_ml1m_bad_age_code(tmp_path):
    source = write_ml1m(tmp_path / "ml-1m")
    edit_line(source / "users.dat", 3, "3::F::30::4::12345")
    with pytest.raises(InputError, match=r"users\.dat, line 3, column 'age': expected a MovieLens 1M age code \(1, 18"):
        load(tmp_path / "home", source)


def test_missing_path_and_non_zip_file(tmp_path):
    with pytest.raises(InputError, match="no such file or directory"):
        load(tmp_path, tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="not a directory or a .zip archive"):
        load(tmp_path, tmp_path / "notes.txt")


BAD_GENERIC = {
    "missing column": ("users", "age,gender\n34,F\n", r"users\.csv: missing column 'user_id'; expected columns user_id"),
    "header only": ("interactions", "user_id,item_id,timestamp\n", r"interactions\.csv: the file has a header but no rows"),
    "invalid utf-8": ("items", None, r"items\.csv, line 3: invalid UTF-8 byte"),
    "bad timestamp": (
        "interactions",
        "user_id,item_id,timestamp\n1,10,yesterday\n",
        r"interactions\.csv, line 2, column 'timestamp': expected unix seconds or an ISO date-time, got 'yesterday'",
    ),
    "non-numeric rating": (
        "interactions",
        "user_id,item_id,timestamp,rating\n1,10,5,great\n",
        r"interactions\.csv, line 2, column 'rating': expected a numeric rating, got 'great'",
    ),
    "duplicate item": ("items", "item_id,title\n10,A\n10,B\n", r"items\.csv, line 3, column 'item_id': duplicate item_id 10"),
    "unknown format": ("users", None, r"users\.xlsx: unknown file type '\.xlsx'; expected \.csv or \.parquet"),
}


@pytest.mark.parametrize("case", sorted(BAD_GENERIC))
def test_bad_generic_input_is_refused_and_warehouse_unchanged(tmp_path, case):
    home = tmp_path / "home"
    good = write_generic_csv(tmp_path / "good")
    ingest_generic(home, good["users"], good["items"], good["interactions"], lock_timeout_s=5)
    before = state(home)
    bad = {name: path for name, path in write_generic_csv(tmp_path / "bad").items()}
    which, content, message = BAD_GENERIC[case]
    if case == "invalid utf-8":
        bad["items"].write_bytes(b"item_id,title\n10,Kettle\n11,M\xffg\n12,Lamp\n")
    elif case == "unknown format":
        shutil.copy(bad["users"], bad["users"].with_suffix(".xlsx"))
        bad["users"] = bad["users"].with_suffix(".xlsx")
    else:
        bad[which].write_text(content)
    with pytest.raises(InputError, match=message):
        ingest_generic(home, bad["users"], bad["items"], bad["interactions"], lock_timeout_s=5)
    assert state(home) == before


# ---------------------------------------------------------------- string ids (issue 15)

USER_A, USER_B = "7f3c2b1e-0000-4000-8000-00000000000a", "0a9d8e7f-0000-4000-8000-00000000000b"


def write_sku_catalog(directory: Path, interactions: str | None = None) -> dict[str, Path]:
    """SKU item ids and UUID user ids; the files list them out of sorted order."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {name: directory / f"{name}.csv" for name in ("users", "items", "interactions")}
    paths["users"].write_text(f"user_id,age\n{USER_A},30\n{USER_B},40\n")
    paths["items"].write_text("item_id,title\nSKU-00042,Kettle\nSKU-00007,Mug\nSKU-00100,Lamp\n")
    paths["interactions"].write_text(interactions or (
        f"user_id,item_id,timestamp,rating\n{USER_A},SKU-00042,100,5\n{USER_B},SKU-00007,200,3\n"
        f"{USER_B},SKU-00100,300,4\n"))
    return paths


def test_string_ids_get_keys_in_sorted_order_and_keep_the_source_id(tmp_path):
    paths = write_sku_catalog(tmp_path / "sku")
    summary = ingest_generic(tmp_path / "home", paths["users"], paths["items"], paths["interactions"], lock_timeout_s=5)
    assert (summary.n_users, summary.n_items, summary.n_interactions) == (2, 3, 3)
    with connected(tmp_path / "home", read_only=True) as conn:
        users = conn.sql("SELECT user_id, external_id, age FROM users ORDER BY user_id").fetchall()
        items = conn.sql("SELECT item_id, external_id, title FROM items ORDER BY item_id").fetchall()
        joined = conn.sql("""SELECT u.external_id, i.external_id, r.rating FROM interactions r
                             JOIN users u USING (user_id) JOIN items i USING (item_id) ORDER BY r.timestamp""").fetchall()
    assert users == [(1, USER_B, 40), (2, USER_A, 30)]  # "0a9d..." sorts before "7f3c..."
    assert items == [(1, "SKU-00007", "Mug"), (2, "SKU-00042", "Kettle"), (3, "SKU-00100", "Lamp")]
    assert joined == [(USER_A, "SKU-00042", 5.0), (USER_B, "SKU-00007", 3.0), (USER_B, "SKU-00100", 4.0)]
    again = ingest_generic(tmp_path / "home", paths["users"], paths["items"], paths["interactions"], lock_timeout_s=5)
    assert again.unchanged and again.snapshot_id == summary.snapshot_id


def test_a_reload_keeps_the_keys_of_known_string_ids_and_numbers_new_ones_after_them(tmp_path):
    """Landed events, campaign results and models name items by key: a new SKU that sorts first
    must not shift the others."""
    home = tmp_path / "home"
    first = write_sku_catalog(tmp_path / "first")
    ingest_generic(home, first["users"], first["items"], first["interactions"], lock_timeout_s=5)
    grown = write_sku_catalog(tmp_path / "grown")
    grown["items"].write_text("item_id,title\nSKU-00042,Kettle\nSKU-00001,Tray\nSKU-00100,Lamp\nSKU-00050,Jar\n")
    grown["interactions"].write_text(f"user_id,item_id,timestamp,rating\n{USER_A},SKU-00001,100,5\n{USER_B},SKU-00042,200,3\n")
    ingest_generic(home, grown["users"], grown["items"], grown["interactions"], lock_timeout_s=5)
    with connected(home, read_only=True) as conn:
        items = conn.sql("SELECT item_id, external_id FROM items ORDER BY item_id").fetchall()
        users = conn.sql("SELECT user_id, external_id FROM users ORDER BY user_id").fetchall()
        joined = conn.sql("""SELECT i.external_id FROM interactions r JOIN items i USING (item_id) ORDER BY r.timestamp""").fetchall()
    # SKU-00007 (key 1) is gone; 42 and 100 keep 2 and 3; the new ones follow 3 in sorted order.
    assert items == [(2, "SKU-00042"), (3, "SKU-00100"), (4, "SKU-00001"), (5, "SKU-00050")]
    assert users == [(1, USER_B), (2, USER_A)]
    assert joined == [("SKU-00001",), ("SKU-00042",)]


def test_integer_ids_stay_the_keys_with_no_external_id(tmp_path):
    paths = write_generic_csv(tmp_path / "retail")
    ingest_generic(tmp_path, paths["users"], paths["items"], paths["interactions"], lock_timeout_s=5)
    with connected(tmp_path, read_only=True) as conn:
        assert conn.sql("SELECT item_id, external_id FROM items ORDER BY 1").fetchall() == [(10, None), (11, None), (12, None)]
        assert conn.sql("SELECT count(*) FROM users WHERE external_id IS NOT NULL").fetchall() == [(0,)]


def test_unknown_sku_in_interactions_names_the_line(tmp_path):
    home = tmp_path / "home"
    good = write_sku_catalog(tmp_path / "good")
    ingest_generic(home, good["users"], good["items"], good["interactions"], lock_timeout_s=5)
    before = state(home)
    bad = write_sku_catalog(tmp_path / "bad", f"user_id,item_id,timestamp\n{USER_A},SKU-00042,1\n{USER_B},SKU-99999,2\n")
    with pytest.raises(InputError, match=r"interactions\.csv, line 3, column 'item_id': item_id SKU-99999 is not in "
                                         r".*items\.csv \(1 interaction refer"):
        ingest_generic(home, bad["users"], bad["items"], bad["interactions"], lock_timeout_s=5)
    assert state(home) == before


def test_duplicate_string_id_names_both_lines(tmp_path):
    paths = write_sku_catalog(tmp_path / "sku")
    paths["items"].write_text("item_id,title\nSKU-1,A\nSKU-2,B\n SKU-1 ,C\n")
    with pytest.raises(InputError, match=r"items\.csv, line 4, column 'item_id': duplicate item_id SKU-1 \(already on line 2\)"):
        ingest_generic(tmp_path / "home", paths["users"], paths["items"], paths["interactions"], lock_timeout_s=5)


def test_same_data_in_another_order_and_format_is_unchanged(tmp_path):
    paths = write_generic_csv(tmp_path / "retail")
    first = ingest_generic(tmp_path / "home", paths["users"], paths["items"], paths["interactions"], lock_timeout_s=5)
    lines = paths["interactions"].read_text().splitlines()
    shuffled = tmp_path / "shuffled.parquet"
    (tmp_path / "shuffled.csv").write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    pl.read_csv(tmp_path / "shuffled.csv", infer_schema=False).write_parquet(shuffled)
    again = ingest_generic(tmp_path / "home", paths["users"], paths["items"], shuffled, lock_timeout_s=5)
    assert again.unchanged and again.snapshot_id == first.snapshot_id


BAD_INTERACTIONS = {
    "short line": ("user_id,item_id,timestamp\n1,10,5\n2,11\n", r"line 3: 2 fields, but the header has 3"),
    "too many fields": ("user_id,item_id,timestamp\n1,10,5\n2,11,6,7\n", r"line 3: 4 fields, but the header has 3"),
    "unclosed quote": ('user_id,item_id,timestamp\n1,10,5\n2,"11,6\n3,12,7\n', r"line 3: a quoted field is never closed"),
    "invalid utf-8": (b"user_id,item_id,timestamp\n1,10,5\n2,1\xff1,6\n", r"line 3: invalid UTF-8 byte b'\\xff'"),
    "missing user": ("user_id,item_id,timestamp\n1,10,5\n ,11,6\n", r"line 3, column 'user_id': missing value; expected an integer user id"),
    "unknown user": ("user_id,item_id,timestamp\n1,10,5\n042,11,6\n", r"line 3, column 'user_id': user_id 42 is not in"),
    "non-integer item": ("user_id,item_id,timestamp\n1,10,5\n2,11.5,6\n", r"line 3, column 'item_id': expected an integer item id, got '11\.5'"),
    "infinite rating": ("user_id,item_id,timestamp,rating\n1,10,5,inf\n", r"line 2, column 'rating': expected a finite number"),
    "negative time": ("user_id,item_id,timestamp\n1,10,5\n2,11,-6\n", r"line 3, column 'timestamp': expected unix seconds \(a non-negative integer\), got -6"),
    "NUL bytes": ("user_id,item_id,timestamp\n".encode("utf-16"), r"the file contains NUL bytes"),
}


@pytest.mark.parametrize("case", sorted(BAD_INTERACTIONS))
def test_bad_interactions_name_the_line(tmp_path, case):
    paths = write_generic_csv(tmp_path / "retail")
    content, message = BAD_INTERACTIONS[case]
    paths["interactions"].write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(InputError, match=r"interactions\.csv(: |, )" + message):
        ingest_generic(tmp_path / "home", paths["users"], paths["items"], paths["interactions"], lock_timeout_s=5)
    assert not (tmp_path / "home" / "warehouse" / "recsys.duckdb").exists() or state(tmp_path / "home")[0] is None


def test_interactions_larger_than_the_memory_limit_spill_and_load(tmp_path, monkeypatch):
    import pipelines.ingest

    monkeypatch.setattr(pipelines.ingest, "STAGING_MEMORY_LIMIT", "16MB")
    paths = write_generic_csv(tmp_path / "retail")
    n = 600_000
    rows = "".join(f"{1 + k % 3},{10 + k % 3},{1_700_000_000 + k},{k % 5 + 1}\n" for k in range(n))
    paths["interactions"].write_text("user_id,item_id,timestamp,rating\n" + rows)
    summary = ingest_generic(tmp_path / "home", paths["users"], paths["items"], paths["interactions"], lock_timeout_s=5)
    assert summary.n_interactions == n
    with connected(tmp_path / "home", read_only=True) as conn:
        assert conn.sql("SELECT sum(rating), max(timestamp) FROM interactions").fetchall() == [(3.0 * n, 1_700_000_000 + n - 1)]
    spill = tmp_path / "home" / "warehouse" / "ingest.tmp"
    assert not spill.exists() or not any(spill.iterdir())  # DuckDB removed what it spilled
