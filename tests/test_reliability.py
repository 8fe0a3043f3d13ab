"""Regression tests for issue 14 (input, ingest and batch-score half): one per defect, named
test_dNN_... after the issue's numbering, then the smaller ones."""

import contextlib
import io
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner

from cli import cli
from movielens_fixtures import write_generic_csv, write_ml100k
from pipelines.batch_score import batch_score
from pipelines.errors import InputError
from pipelines.ingest import ingest_generic, ingest_movielens
from pipelines.rules import CampaignRules
from serving_fixtures import make_home
from warehouse.batch_results import campaign_results, campaign_runs
from warehouse.catalog import counts, current_snapshot, read_dataset
from warehouse.connection import connected

REPO = Path(__file__).resolve().parents[1]


def run(home, audience, out, **kwargs):
    return batch_score(home, audience, out, k=2, campaign=kwargs.pop("campaign", None), version=None,
                       rules=CampaignRules(), show_progress=False, chunk_size=1000, **kwargs)


def write(path, text):
    Path(path).write_bytes(text if isinstance(text, bytes) else text.encode())
    return Path(path)


def hidden(directory):
    return sorted(p.name for p in Path(directory).iterdir() if p.name.startswith("."))


def state(home):
    with connected(home, read_only=True) as conn:
        return current_snapshot(conn), counts(conn)


@contextlib.contextmanager
def failing_commit(conn):
    """A transaction whose COMMIT fails as on a full disk: everything inside is rolled back."""
    conn.execute("BEGIN TRANSACTION")
    try:
        yield conn
    finally:
        conn.execute("ROLLBACK")
    raise duckdb.IOException('Could not write file "recsys.duckdb.wal": No space left on device')


# ---------------------------------------------------------------- 3, 12, 15: all or nothing


def test_d03_d12_failed_commit_changes_neither_file_nor_campaign(tmp_path, monkeypatch):
    home = make_home(tmp_path / "home")
    out = tmp_path / "spring.parquet"
    first = write(tmp_path / "a.csv", "user_id,age,gender\nx,30,F\nbad,abc,F\n")
    run(home, first, out, campaign="c")
    before_out, before_rejects = out.read_bytes(), (tmp_path / "spring.rejects.csv").read_bytes()
    import warehouse.batch_results as module

    monkeypatch.setattr(module, "transaction", failing_commit)
    second = write(tmp_path / "b.csv", "user_id,age,gender\nx,30,M\nworse,xyz,M\nworst,,Q\n")
    result = CliRunner().invoke(cli, ["batch-score", str(second), "--out", str(out), "--campaign", "c",
                                      "--home", str(home), "--json"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    # defect 15's message (under --json, as a JSON error object)
    assert __import__("json").loads(result.output)["error"].endswith("recsys.duckdb: No space left on device")
    assert out.read_bytes() == before_out  # defect 3: the file did not change either
    assert (tmp_path / "spring.rejects.csv").read_bytes() == before_rejects  # defect 12
    assert hidden(tmp_path) == []
    with connected(home, read_only=True) as conn:
        assert campaign_results(conn, "c")["item_id"].to_list() == [12, 13]


def test_d12_no_rejects_file_when_the_first_run_is_not_stored(tmp_path, monkeypatch):
    home = make_home(tmp_path / "home")
    import warehouse.batch_results as module

    monkeypatch.setattr(module, "transaction", failing_commit)
    audience = write(tmp_path / "a.csv", "user_id,age,gender\nx,30,F\nbad,abc,F\n")
    with pytest.raises(InputError):
        run(home, audience, tmp_path / "o.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "home"]


# ---------------------------------------------------------------- 4: privacy of selfie rows


def fake_profiler(photo):
    return 30.0, "F"


def test_d04_selfie_lists_are_not_stored_unless_asked(tmp_path):
    home = make_home(tmp_path / "home")
    (tmp_path / "me.jpg").write_bytes(b"not read by the fake profiler")
    audience = write(tmp_path / "a.csv", f"user_id,selfie\ns1,{tmp_path / 'me.jpg'}\n1,\n")
    summary = run(home, audience, tmp_path / "o.parquet", campaign="c", selfie_profiler=fake_profiler)
    assert summary.n_selfie == 1
    assert pl.read_parquet(tmp_path / "o.parquet")["user_id"].unique().sort().to_list() == ["1", "s1"]  # the file has it
    with connected(home, read_only=True) as conn:
        assert campaign_results(conn, "c")["user_id"].unique().to_list() == ["1"]  # the warehouse does not
        run_row = campaign_runs(conn).row(0, named=True)
    assert run_row["n_selfie"] == 1 and run_row["selfie_lists_stored"] is False
    run(home, audience, tmp_path / "o.parquet", campaign="c", selfie_profiler=fake_profiler, store_selfie_results=True)
    with connected(home, read_only=True) as conn:
        assert sorted(campaign_results(conn, "c")["user_id"].unique().to_list()) == ["1", "s1"]


def test_d04_campaigns_expire_and_can_be_purged(tmp_path):
    home = make_home(tmp_path / "home")
    audience = write(tmp_path / "a.csv", "user_id,age,gender\nx,30,F\n")
    for name in ("old", "new"):
        run(home, audience, tmp_path / f"{name}.parquet", campaign=name, retention_days=30)
    with connected(home) as conn:
        conn.execute("UPDATE batch_runs SET created_at = now()::TIMESTAMP - INTERVAL 40 DAY, "
                     "expires_at = now()::TIMESTAMP - INTERVAL 10 DAY WHERE campaign = 'old'")
    runner = CliRunner()
    listed = runner.invoke(cli, ["campaigns", "list", "--json", "--home", str(home)])
    assert listed.exit_code == 0 and {r["campaign"] for r in __import__("json").loads(listed.output)} == {"old", "new"}
    purged = runner.invoke(cli, ["campaigns", "purge", "--home", str(home)])
    assert purged.exit_code == 0 and "purged 1 campaign(s): old" in purged.output
    purged = runner.invoke(cli, ["campaigns", "purge", "--older-than", "0d", "--home", str(home)])
    assert "purged 1 campaign(s): new" in purged.output
    with connected(home, read_only=True) as conn:
        assert campaign_runs(conn).height == 0 and conn.sql("SELECT count(*) FROM batch_results").fetchall()[0][0] == 0
    assert (tmp_path / "old.parquet").exists()  # the files are the user's


# ---------------------------------------------------------------- 5: output over the audience


@pytest.mark.parametrize("via_link", [False, True])
def test_d05_output_that_is_the_audience_is_refused(tmp_path, via_link):
    home = make_home(tmp_path / "home")
    audience = write(tmp_path / "a.csv", "user_id,age,gender\nx,30,F\n")
    out = tmp_path / "a.csv"
    if via_link:
        out = tmp_path / "link.csv"
        out.symlink_to(audience)
    with pytest.raises(InputError, match="is the audience file"):
        run(home, audience, out)
    assert audience.read_text() == "user_id,age,gender\nx,30,F\n"


# ---------------------------------------------------------------- 6: truncated MovieLens


def test_d06_truncated_movielens_is_refused_unless_allowed(tmp_path):
    home = tmp_path / "home"
    source = write_ml100k(tmp_path / "ml-100k")
    (source / "u.info").write_text("12 users\n15 items\n80 ratings\n")
    load_full = ingest_movielens(home, source, lock_timeout_s=5)[1]
    lines = (source / "u.data").read_text().splitlines()
    (source / "u.data").write_text("\n".join(lines[:40]) + "\n")
    with pytest.raises(InputError, match=r"incomplete copy of MovieLens \(40 ratings where .*u\.info has 80\).*--allow-partial"):
        ingest_movielens(home, source, lock_timeout_s=5)
    assert state(home)[0] == load_full.snapshot_id
    result = CliRunner().invoke(cli, ["ingest", "movielens", str(source), "--allow-partial", "--home", str(home)])
    assert result.exit_code == 0 and "40 interactions" in result.output


def test_d06_official_file_counts_without_u_info(tmp_path, monkeypatch):
    import pipelines.readers as readers

    monkeypatch.setitem(readers.OFFICIAL_COUNTS, "ml-100k", {"users": 12, "items": 15, "ratings": 80})
    source = write_ml100k(tmp_path / "ml-100k")
    lines = (source / "u.data").read_text().splitlines()
    (source / "u.data").write_text("\n".join(lines[:79]) + "\n")
    with pytest.raises(InputError, match="79 ratings where the official ml-100k release has 80"):
        ingest_movielens(tmp_path / "home", source, lock_timeout_s=5)


# ---------------------------------------------------------------- 10: photos that block


def finishes(function, timeout_s=20):
    """Runs function in a thread; (finished, result or exception)."""
    box = {}

    def target():
        try:
            box["value"] = function()
        except BaseException as e:
            box["value"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return not thread.is_alive(), box.get("value")


def release_fifo(fifo):
    with contextlib.suppress(OSError):  # a reader stuck before the fix gets EOF
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_d10_a_fifo_photo_is_refused_without_waiting(tmp_path):
    from pipelines.profile import profile_photos
    from pipelines.selfie import selfie_demographics

    fifo = tmp_path / "selfie.jpg"
    os.mkfifo(fifo)
    try:
        done, value = finishes(lambda: selfie_demographics(fifo))
        assert done, "reading a FIFO hung"
        assert isinstance(value, InputError) and "not a regular file" in str(value)
        done, records = finishes(lambda: profile_photos([fifo]))
        assert done and "not a regular file" in records[0]["error"]
    finally:
        release_fifo(fifo)


def test_d10_photo_size_limit_and_read_timeout(tmp_path, monkeypatch):
    import pipelines.fileio as fileio
    from pipelines.fileio import read_regular_file

    big = write(tmp_path / "big.jpg", b"\xff" * 2048)
    with pytest.raises(InputError, match="2,048 bytes; expected the photo to be at most 1,024 bytes"):
        read_regular_file(big, max_bytes=1024, timeout_s=5, what="photo")
    stalled = threading.Event()
    monkeypatch.setattr(fileio, "_read_checked", lambda *a: stalled.wait(30))  # a mount that never answers
    with pytest.raises(InputError, match="reading took longer than 0.2 s"):
        read_regular_file(big, max_bytes=4096, timeout_s=0.2, what="photo")
    stalled.set()


# ---------------------------------------------------------------- 11: SIGTERM and stale temporaries

_TERM_SCRIPT = """
import os, signal, sys
sys.path[:0] = [{repo!r}, {tests!r}]
from pathlib import Path
from pipelines.batch_score import batch_score
from pipelines.rules import CampaignRules
def profiler(photo):
    os.kill(os.getpid(), signal.SIGTERM)  # arrives while the campaign is being scored
    return 30.0, "F"
batch_score(Path({home!r}), Path({audience!r}), Path({out!r}), k=2, campaign=None, version=None,
            rules=CampaignRules(), show_progress=False, selfie_profiler=profiler)
"""


def test_d11_sigterm_removes_temporaries(tmp_path):
    home = make_home(tmp_path / "home")
    (tmp_path / "me.jpg").write_bytes(b"x")
    audience = write(tmp_path / "a.csv", f"user_id,selfie\ns1,{tmp_path / 'me.jpg'}\n")
    script = _TERM_SCRIPT.format(repo=str(REPO), tests=str(REPO / "tests"), home=str(home),
                                 audience=str(audience), out=str(tmp_path / "o.parquet"))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "home", "me.jpg"]


def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_d11_stale_temporaries_of_the_same_output_are_swept(tmp_path):
    home = make_home(tmp_path / "home")
    audience = write(tmp_path / "a.csv", "user_id,age,gender\nx,30,F\n")
    pid = dead_pid()
    stale = [f".o.parquet.{pid}.results.parquet", f".o.parquet.{pid}.tmp", f".o.parquet.0123456789ab-{pid}.staged"]
    for name in stale:
        write(tmp_path / name, b"junk" * 1000)
    write(tmp_path / f".other.parquet.{pid}.tmp", b"not ours")  # another output's file stays
    run(home, audience, tmp_path / "o.parquet")
    assert hidden(tmp_path) == [f".other.parquet.{pid}.tmp"]


# ---------------------------------------------------------------- 15: unwritable places, full disks

_UNSHARE = shutil.which("unshare")


def in_mount_namespace(tmp_path, mount_options, args):
    """Runs the CLI where tmp_path/mnt is a fresh tmpfs mounted with mount_options."""
    mnt = tmp_path / "mnt"
    mnt.mkdir(exist_ok=True)
    command = (f"mount -t tmpfs -o {mount_options} tmpfs {mnt} && "
               f"cd {REPO} && {sys.executable} cli.py " + " ".join(map(str, args)))
    return subprocess.run([_UNSHARE, "-r", "-m", "sh", "-c", command], capture_output=True, text=True, timeout=120)


def can_mount(tmp_path):
    if not _UNSHARE:
        return False
    probe = subprocess.run([_UNSHARE, "-r", "-m", "sh", "-c", f"mount -t tmpfs tmpfs {tmp_path}"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.parametrize("options, cause", [("ro,size=1m", "Read-only file system"), ("size=16k", "No space left on device")])
def test_d15_unwritable_output_is_one_line_before_any_work(tmp_path, options, cause):
    if not can_mount(tmp_path):
        pytest.skip("needs unshare and tmpfs mounts in a user namespace")
    home = make_home(tmp_path / "home")
    audience = write(tmp_path / "a.csv", "user_id,age,gender\nx,30,F\n")
    done = in_mount_namespace(tmp_path, options, ["batch-score", audience, "--out", tmp_path / "mnt" / "o.parquet",
                                                  "--home", home, "--json"])
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert __import__("json").loads(done.stdout)["error"] == f"{tmp_path / 'mnt'}: {cause}"  # --json: a JSON error
    if cause != "Read-only file system":
        return
    ingest = in_mount_namespace(tmp_path, options, ["ingest", "movielens", write_ml100k(tmp_path / "ml"),
                                                    "--home", tmp_path / "mnt" / "h"])
    assert ingest.returncode == 1 and "Traceback" not in ingest.stderr, ingest.stderr
    assert cause in ingest.stderr


def test_d15_full_disk_while_writing_results_is_one_line(tmp_path, monkeypatch):
    import errno

    import pipelines.batch_score as module

    home = make_home(tmp_path / "home")
    audience = write(tmp_path / "a.csv", "user_id,age,gender\nx,30,F\n")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(module.CampaignFiles, "stage", full)
    result = CliRunner().invoke(cli, ["batch-score", str(audience), "--out", str(tmp_path / "o.csv"), "--home", str(home)])
    assert result.exit_code == 1 and result.output.strip().endswith(f"{tmp_path}: No space left on device")
    assert hidden(tmp_path) == []


# ---------------------------------------------------------------- 16: malformed audiences, Parquet columns


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.csv", b"", "the audience is empty"),
        ("latin1.csv", b"user_id,occupation\n1,writer\n2,caf\xe9\n", r"line 3: invalid UTF-8 byte .*latin-1"),
        ("quote.csv", b'user_id,age\n1,30\n2,"30\n3,40\n', "line 3: a quoted field is never closed"),
        ("ragged.csv", b"user_id,age\n1,30\n2,30,F\n", r"line 3: 3 fields, but the header has 2"),
    ],
)
def test_d16_malformed_audience_is_one_clear_error(tmp_path, name, content, message):
    home = make_home(tmp_path / "home")
    with pytest.raises(InputError, match=message):
        run(home, write(tmp_path / name, content), tmp_path / "o.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["home", name])


def test_d16_list_typed_age_in_parquet_audience(tmp_path):
    home = make_home(tmp_path / "home")
    pl.DataFrame({"user_id": ["x"], "age": [[30]]}).write_parquet(tmp_path / "a.parquet")
    with pytest.raises(InputError, match="column 'age' holds List"):
        run(home, tmp_path / "a.parquet", tmp_path / "o.parquet")


def test_d16_struct_and_list_columns_in_items_parquet(tmp_path):
    paths = write_generic_csv(tmp_path / "retail")
    items = pl.DataFrame({"item_id": ["10", "11", "12"], "title": ["Kettle", "Mug", "Lamp"],
                          "genres": [["kitchen"], ["kitchen"], []],
                          "size": [{"w": 1, "h": 2}, {"w": 3, "h": 4}, None], "tags": [["a"], [], ["b", "c"]]})
    items.write_parquet(tmp_path / "items.parquet")
    ingest_generic(tmp_path / "home", paths["users"], tmp_path / "items.parquet", paths["interactions"], lock_timeout_s=5)
    with connected(tmp_path / "home", read_only=True) as conn:
        extra = dict(read_dataset(conn).items.select("item_id", "extra").iter_rows())
    assert extra[10] == '{"size":{"w":1,"h":2},"tags":["a"]}'
    users = pl.DataFrame({"user_id": ["1", "2", "3"], "age": [[34], [51], [1]]})
    users.write_parquet(tmp_path / "users.parquet")
    with pytest.raises(InputError, match=r"users\.parquet, row 1, column 'age': the column holds List"):
        ingest_generic(tmp_path / "home", tmp_path / "users.parquet", tmp_path / "items.parquet", paths["interactions"],
                       lock_timeout_s=5)


# ---------------------------------------------------------------- 17: damaged and oversized zips


def zipped(tmp_path, source, name="ml-100k.zip"):
    archive = tmp_path / name
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        for f in sorted(source.iterdir()):
            z.write(f, f"ml-100k/{f.name}")
    return archive


def test_d17_corrupted_zip_member_is_one_clear_error(tmp_path):
    archive = zipped(tmp_path, write_ml100k(tmp_path / "ml-100k"))
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as z:
        info = z.getinfo("ml-100k/u.data")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for i in range(start + 5, start + 40):
        data[i] ^= 0x5A
    archive.write_bytes(bytes(data))
    with pytest.raises(InputError, match="the archive is damaged"):
        ingest_movielens(tmp_path / "home", archive, lock_timeout_s=5)


def test_d17_zip_bomb_is_refused_before_extracting(tmp_path, monkeypatch):
    source = write_ml100k(tmp_path / "ml-100k")
    (source / "u.data").write_bytes(b"1\t1\t1\t1\n" + b"\0" * 3_000_000)  # inflates about 1000 times
    archive = zipped(tmp_path, source)
    with pytest.raises(InputError, match=r"u\.data would inflate .* times.*zip bomb"):
        ingest_movielens(tmp_path / "home", archive, lock_timeout_s=5)
    import pipelines.readers as readers

    monkeypatch.setattr(readers, "MAX_UNCOMPRESSED_BYTES", 1_000_000)
    with pytest.raises(InputError, match=r"would take .* bytes uncompressed; expected at most 1,000,000"):
        ingest_movielens(tmp_path / "home", archive, lock_timeout_s=5)


# ---------------------------------------------------------------- 18: --age nan


@pytest.mark.parametrize("age", ["nan", "inf", "-nan"])
def test_d18_non_finite_age_is_a_usage_error(tmp_path, age):
    home = make_home(tmp_path / "home")
    result = CliRunner().invoke(cli, ["recommend", "--age", age, "--home", str(home)])
    assert result.exit_code == 2 and "Invalid value for '--age'" in result.output
    assert isinstance(result.exception, SystemExit)  # a usage error, not a traceback


def test_d18_nan_age_in_an_audience_is_rejected(tmp_path):
    home = make_home(tmp_path / "home")
    summary = run(home, write(tmp_path / "a.csv", "user_id,age\nx,nan\n"), tmp_path / "o.parquet")
    assert summary.reject_reasons == {"age 'nan' is not a number": 1}


# ---------------------------------------------------------------- 19: ISO date-times with offsets


def test_d19_iso_times_with_offsets_mixed_with_naive(tmp_path):
    paths = write_generic_csv(tmp_path / "retail")
    write(paths["interactions"], "user_id,item_id,timestamp\n1,10,2024-03-01T10:00:00\n1,11,2024-03-01T12:00:00+02:00\n"
                                 "2,12,2024-03-01T10:00:00Z\n3,10,2024-03-01 10:00:00.5\n")
    ingest_generic(tmp_path / "home", paths["users"], paths["items"], paths["interactions"], lock_timeout_s=5)
    with connected(tmp_path / "home", read_only=True) as conn:
        times = read_dataset(conn).interactions["timestamp"].to_list()
    assert times == [1709287200] * 4  # 10:00 UTC, every way of writing it


# ---------------------------------------------------------------- the smaller ones


def test_a_directory_is_not_reported_as_missing(tmp_path):
    paths = write_generic_csv(tmp_path / "retail")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(InputError, match=r"dir\.csv: is a directory; expected the users file"):
        ingest_generic(tmp_path / "home", tmp_path / "dir.csv", paths["items"], paths["interactions"], lock_timeout_s=5)
    home = make_home(tmp_path / "home")
    with pytest.raises(InputError, match=r"dir\.csv: is a directory; expected the audience file"):
        run(home, tmp_path / "dir.csv", tmp_path / "o.parquet")


def test_semicolon_separated_files_get_a_hint(tmp_path):
    paths = write_generic_csv(tmp_path / "retail")
    write(paths["users"], "user_id;age;gender\n1;34;F\n")
    with pytest.raises(InputError, match="looks separated by semicolons"):
        ingest_generic(tmp_path / "home", paths["users"], paths["items"], paths["interactions"], lock_timeout_s=5)
    home = make_home(tmp_path / "home2")
    with pytest.raises(InputError, match="looks separated by semicolons"):
        run(home, write(tmp_path / "a.csv", "user_id;age\nx;30\n"), tmp_path / "o.parquet")


def test_line_numbers_count_lines_after_a_multi_line_field(tmp_path):
    paths = write_generic_csv(tmp_path / "retail")
    # Ids that are not integers are keyed now (issue 15), so a bad year stands for a bad value.
    write(paths["items"], 'item_id,title,year\n10,"Kettle\nwith a\nlong title",2020\n11,Mug,2021\n12,Lamp,soon\n')
    with pytest.raises(InputError, match=r"items\.csv, line 6, column 'year': expected a year, got 'soon'"):
        ingest_generic(tmp_path / "home", paths["users"], paths["items"], paths["interactions"], lock_timeout_s=5)
    # The interactions file is read by DuckDB; its lines are counted the same way.
    write(paths["items"], 'item_id,title\n10,Kettle\n11,Mug\n12,Lamp\n')
    write(paths["interactions"], 'user_id,item_id,timestamp,note\n1,10,5,"a\nlong\nnote"\n\n2,11,6,\n3,10,soon,\n')
    with pytest.raises(InputError, match=r"interactions\.csv, line 7, column 'timestamp': expected unix seconds .*got 'soon'"):
        ingest_generic(tmp_path / "home", paths["users"], paths["items"], paths["interactions"], lock_timeout_s=5)


def test_blank_audience_lines_are_skipped_not_rejected(tmp_path):
    home = make_home(tmp_path / "home")
    audience = write(tmp_path / "a.csv", "user_id,age,gender\nx,30,F\n" + "\n" * 5000 + ",,\ny,30,M\n")
    summary = run(home, audience, tmp_path / "o.parquet")
    assert (summary.n_rows, summary.n_cold, summary.n_rejected) == (2, 2, 0)


def test_padded_and_float_ids_match_known_users(tmp_path):
    home = make_home(tmp_path / "home")
    summary = run(home, write(tmp_path / "a.csv", "user_id\n001\n2.0\n"), tmp_path / "o.parquet")
    assert (summary.n_known, summary.n_rejected) == (2, 0)
    lists = pl.read_parquet(tmp_path / "o.parquet").group_by("user_id", maintain_order=True).agg("item_id")
    assert lists.rows() == [("001", [11, 14]), ("2.0", [12, 13])]  # ids as given; 1 saw item 10
    summary = run(home, write(tmp_path / "b.csv", "user_id\n1\n01\n"), tmp_path / "p.parquet")
    assert summary.reject_reasons == {"duplicate user_id in the audience": 1}


def test_unknown_occupation_is_not_echoed_as_used(tmp_path):
    home = make_home(tmp_path / "home")
    result = CliRunner().invoke(cli, ["recommend", "--age", "30", "--occupation", "astronaut", "--json", "--home", str(home)])
    assert result.exit_code == 0, result.output
    occupation = __import__("json").loads(result.output)["basis"]["occupation"]
    assert occupation.startswith("unknown ('astronaut' is not an occupation model v1 knows)")
    result = CliRunner().invoke(cli, ["recommend", "--age", "30", "--occupation", "Writer", "--json", "--home", str(home)])
    assert __import__("json").loads(result.output)["basis"]["occupation"] == "writer"
