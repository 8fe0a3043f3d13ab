"""batch-score --engine spark: the same campaign gives the local path's lists, row for row.

Spark runs in local[2] mode; the test is skipped where pyspark (the `spark` or `test` extra) or
Java is missing.
"""

from __future__ import annotations

import shutil

import polars as pl
import pytest

pytest.importorskip("pyspark", reason="pyspark is not installed: pip install -e '.[spark]' (and Java 17)")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java (17) on the PATH", allow_module_level=True)

from pipelines.batch_score import batch_score  # noqa: E402
from pipelines.errors import InputError  # noqa: E402
from pipelines.rules import CampaignRules  # noqa: E402
from pipelines.spark_batch import spark_batch_score, spark_session  # noqa: E402
from serving_fixtures import make_home  # noqa: E402
from string_id_fixtures import SKU, USER, make_string_home  # noqa: E402


@pytest.fixture(scope="module")
def spark():
    session = spark_session("local[2]")
    yield session
    session.stop()


AUDIENCE = pl.DataFrame({
    # known users 1 (saw 10) and 2, user 3 (in the warehouse, newer than the model: F, 30, saw 12),
    # new people, a padded duplicate of 1, a bad age, a row with nothing usable, a blank row
    "user_id": ["1", "new-a", "2", "3", "new-b", "001", "new-c", "new-d", "new-e", None],
    "age": [None, "30", None, None, "45", None, "abc", None, "70", None],
    "gender": [None, "F", None, None, "m", None, "F", None, None, None],
})


def test_spark_lists_equal_the_local_path_row_for_row(tmp_path, spark):
    home = make_home(tmp_path / "home")
    audience = tmp_path / "audience.parquet"
    AUDIENCE.write_parquet(audience)
    rules = CampaignRules(exclude_items=frozenset({13}))
    local = batch_score(home, audience, tmp_path / "local.parquet", k=3, campaign=None, version=None, rules=rules,
                        show_progress=False, lock_timeout_s=5)
    result = spark_batch_score(home, str(audience), str(tmp_path / "spark.parquet"), k=3, version=None, rules=rules,
                               spark=spark, lock_timeout_s=5)
    expected = pl.read_parquet(tmp_path / "local.parquet")
    got = pl.read_parquet(tmp_path / "spark.parquet" / "*.parquet").select(expected.columns)
    assert got.height == expected.height == 3 * 6  # six rows scored: 1, new-a, 2, 3, new-b, new-e
    assert got.to_dicts() == expected.to_dicts()
    assert 13 not in got["item_id"].to_list() and (result.n_scored, result.n_rejected) == (local.n_known + local.n_cold, 3)
    rejects = pl.read_parquet(tmp_path / "spark.parquet_rejects" / "*.parquet").sort("_row")
    local_rejects = pl.read_csv(local.rejects_path).sort("row")
    assert rejects["_row"].to_list() == local_rejects["row"].to_list()
    assert rejects["reason"].to_list() == local_rejects["reason"].to_list()


def test_spark_speaks_the_sources_ids_as_the_local_path_does(tmp_path, spark):
    home = make_string_home(tmp_path / "home")
    audience = tmp_path / "audience.parquet"
    pl.DataFrame({
        # known by UUID (saw SKU[10]), joined after the model, a new person, a liker, an unknown
        # liked SKU, a duplicate, an unknown id without demographics, a key (not an id)
        "user_id": [USER[1], f" {USER[3]}", "new-visitor", "liker", "bad-like", USER[1], "ghost", "1"],
        "age": [None, None, "40", None, "30", None, None, None],
        "gender": [None, None, "M", "F", "F", None, None, None],
        "liked_items": [None, None, None, SKU[12], f"{SKU[12]}|SKU-99999", None, None, None],
    }).write_parquet(audience)
    rules = CampaignRules(exclude_items=frozenset({SKU[11]}))
    local = batch_score(home, audience, tmp_path / "local.parquet", k=2, campaign=None, version=None, rules=rules,
                        show_progress=False, lock_timeout_s=5)
    result = spark_batch_score(home, str(audience), str(tmp_path / "spark.parquet"), k=2, version=None, rules=rules,
                               spark=spark, lock_timeout_s=5)
    expected = pl.read_parquet(tmp_path / "local.parquet")
    got = pl.read_parquet(tmp_path / "spark.parquet" / "*.parquet").select(expected.columns)
    assert got.to_dicts() == expected.to_dicts() and got.height == 2 * 4
    assert got.filter(pl.col("user_id") == USER[1])["item_id"].to_list() == [SKU[14], SKU[12]]  # SKU[11] excluded
    assert got.filter(pl.col("user_id") == "liker")["item_id"][0] == SKU[13]  # liked SKU[12]: its neighbour first
    assert (result.n_scored, result.n_rejected) == (local.n_known + local.n_cold, local.n_rejected) == (4, 4)
    rejects = pl.read_parquet(tmp_path / "spark.parquet_rejects" / "*.parquet").sort("_row")
    local_rejects = pl.read_csv(local.rejects_path).sort("row")
    assert rejects["_row"].to_list() == local_rejects["row"].to_list()
    assert rejects["reason"].to_list() == local_rejects["reason"].to_list()
    assert "liked_items: item 'SKU-99999' is not in the model's catalog" in rejects["reason"].to_list()


def test_spark_refuses_what_needs_one_ordered_pass(tmp_path, spark):
    home = make_home(tmp_path / "home")
    audience = tmp_path / "audience.parquet"
    AUDIENCE.write_parquet(audience)
    with pytest.raises(InputError, match="max-per-item"):
        spark_batch_score(home, str(audience), str(tmp_path / "o"), k=3, version=None,
                          rules=CampaignRules(max_per_item=2), spark=spark)
    AUDIENCE.with_columns(pl.lit("me.jpg").alias("selfie")).write_parquet(audience)
    with pytest.raises(InputError, match="selfie"):
        spark_batch_score(home, str(audience), str(tmp_path / "o"), k=3, version=None, rules=CampaignRules(), spark=spark)
