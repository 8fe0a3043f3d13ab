import hashlib

import pytest

from movielens_fixtures import write_ml100k
from pipelines.download import Release, download_movielens
from pipelines.errors import InputError
from pipelines.ingest import ingest_movielens


def zipped_fixture(tmp_path):
    import shutil

    source = write_ml100k(tmp_path / "ml-100k")
    archive = shutil.make_archive(str(tmp_path / "ml-100k"), "zip", tmp_path, "ml-100k")
    return archive, hashlib.md5(open(archive, "rb").read()).hexdigest()


def test_download_verifies_checksum_and_ingests(tmp_path):
    archive, md5 = zipped_fixture(tmp_path)
    release = Release(f"file://{archive}", md5)
    path = download_movielens("100k", tmp_path / "downloads", release=release, show_progress=False)
    assert path.read_bytes() == open(archive, "rb").read()
    fmt, summary = ingest_movielens(tmp_path / "home", path, lock_timeout_s=5)
    assert fmt == "ml-100k" and summary.n_interactions == 80


def test_checksum_mismatch_leaves_nothing_behind(tmp_path):
    archive, _ = zipped_fixture(tmp_path)
    release = Release(f"file://{archive}", "0" * 32)
    with pytest.raises(InputError, match="checksum mismatch"):
        download_movielens("100k", tmp_path / "downloads", release=release, show_progress=False)
    assert list((tmp_path / "downloads").iterdir()) == []


def test_unreachable_url_says_what_to_do(tmp_path):
    release = Release(f"file://{tmp_path}/missing.zip", "0" * 32)
    with pytest.raises(InputError, match="download it by hand and pass its path"):
        download_movielens("100k", tmp_path / "downloads", release=release, show_progress=False)
