"""Campaign batch scoring on Apache Spark: the single-machine scoring code, run in ``mapInPandas``.

The audience and the results are Parquet datasets that Spark reads and writes (local paths, or
any Hadoop-compatible store: ``hdfs://``, ``s3a://``, ``gs://``). The driver reads the bundle
once and broadcasts it (item vectors, known users' vectors, the cold-start table and, for a
large catalog, the serialised ANN index); each executor scores its partitions with
``pipelines.batch_score``'s own functions (``parse_demographics``, ``_classify``,
``_candidates``, ``_rows``), so a campaign's lists equal the local path's, row for row.

What differs from one machine, and why:
- duplicate ids are found by a window over the whole audience (first occurrence kept), as the
  local path does chunk by chunk;
- the warehouse's users and interactions are exported to Parquet once (``--staging``) and
  joined to the audience by Spark, so each partition carries only its own users' histories;
- ``--max-per-item`` (a greedy cap in audience order) and ``selfie`` rows (photos) are refused:
  both need one process walking the audience in order;
- results go to the output dataset only; the warehouse does not store a Spark campaign's lists.

A catalog with string ids (pipelines.ids) is read as the local path reads it: the staged users
and interactions carry the source's user ids as their match id (so audience ids meet them in
Spark's join, matched exactly), ``liked_items`` and the rules name items by the source's ids,
and the output's ``item_id`` is the source's (the bundle's items' ids are broadcast with it).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.audience import LIKED, ROW, match_key, parse_demographics
from pipelines.batch_score import (
    CAP_SLACK, RETRIEVALS, _candidates, _classify, _rows, _Scorer, _seen_matrix, _with_likes,
)
from pipelines.errors import InputError
from pipelines.recommend import load_bundle
from pipelines.ids import IdMap, keyed_rules
from pipelines.rules import CampaignRules, blocked_items
from warehouse.ids import has_external_ids, read_external_ids
from recsys.serving import ServingBundle
from warehouse.catalog import read_items
from warehouse.connection import connected
from warehouse.model_versions import get_version, require_champion

log = logging.getLogger(__name__)

REJECT_DDL = "_row long, user_id string, reason string"
AUDIENCE_COLUMNS = ("user_id", "age", "gender", "occupation", LIKED)


def result_ddl(string_items: bool) -> str:
    item = "string" if string_items else "long"
    return f"user_id string, rank int, item_id {item}, score float, model_version int, _row long"


@dataclass(frozen=True)
class SparkSummary:
    model_version: int
    output_path: str
    rejects_path: str
    n_rows: int
    n_scored: int
    n_rejected: int
    retrieval: str
    seconds: float


def spark_session(master: str | None = None, app_name: str = "selfie-recsys batch-score"):
    """The session spark-submit configured, or a local one (``local[2]``, ...) when master is given."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name).config("spark.sql.execution.arrow.pyspark.enabled", "true")
    if master:  # a local session: executors are this interpreter's Python, small shuffles
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = (builder.master(master).config("spark.pyspark.python", sys.executable)
                   .config("spark.pyspark.driver.python", sys.executable).config("spark.ui.enabled", "false")
                   .config("spark.sql.shuffle.partitions", "2"))
    return builder.getOrCreate()


def spark_batch_score(
    home: Path,
    audience: str,
    out: str,
    *,
    k: int,
    version: int | None,
    rules: CampaignRules,
    retrieval: str = "auto",
    staging: str | None = None,
    spark=None,
    master: str | None = None,
    lock_timeout_s: float = 30.0,
) -> SparkSummary:
    """Scores AUDIENCE (a Parquet dataset) with the champion (or ``version``) into OUT (a Parquet
    dataset, rows ordered by audience row and rank); rejected rows go to ``OUT_rejects``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    started = time.perf_counter()
    if rules.max_per_item:
        raise InputError("--max-per-item needs one process walking the audience in order; run it without --engine spark")
    if retrieval not in RETRIEVALS:
        raise InputError(f"unknown retrieval {retrieval!r}; expected one of {', '.join(RETRIEVALS)}")
    spark = spark or spark_session(master)
    with connected(home, read_only=True, lock_timeout_s=lock_timeout_s) as conn:
        chosen = get_version(conn, version) if version is not None else require_champion(conn)
        external = {kind: has_external_ids(conn, kind) for kind in ("user", "item")}
        item_pairs = read_external_ids(conn, "item") if external["item"] else None
        rules = keyed_rules(conn, rules)  # the rules' item ids as the source spells them -> keys
        items = read_items(conn) if rules.only_items is not None or rules.genres is not None else None
        staged = _export_histories(conn, staging or f"{out.rstrip('/')}_staging")
    bundle = load_bundle(chosen)
    blocked = blocked_items(rules, bundle.item_ids, items)
    width = min(len(bundle.item_ids), k)
    scorer = _Scorer(bundle, blocked, width, retrieval)
    # Only the bundle's items: a liked id outside it is "not in the model's catalog" either way.
    items = (IdMap.from_frame("item", item_pairs.filter(pl.col("key").is_in(bundle.item_ids.tolist())), external=True)
             if item_pairs is not None else None)
    shared = spark.sparkContext.broadcast(_Payload.of(bundle, blocked, width, retrieval, scorer.ann, items))

    frame = spark.read.parquet(audience)
    if "user_id" not in frame.columns:
        raise InputError(f"{audience}: missing column 'user_id'; expected user_id and optionally age, gender, occupation")
    if "selfie" in frame.columns:
        raise InputError(f"{audience}: has a selfie column; photos are profiled on one machine (run without --engine spark)")
    frame = frame.select(*[_audience_column(frame, c).alias(c) for c in AUDIENCE_COLUMNS])
    # The audience's record number, as the local path counts it (1-based, file order); zipWithIndex
    # numbers rows across partitions without pulling the audience into one.
    frame = frame.rdd.zipWithIndex().map(lambda pair: (*pair[0], pair[1] + 1)).toDF(
        ", ".join(f"{c} string" for c in AUDIENCE_COLUMNS) + f", {ROW} long")
    string_users = external["user"]
    parsed = frame.mapInPandas(lambda batches: _parse_partition(batches, string_users),
                               schema=f"{ROW} long, user_id string, match_id string, age string, gender string, "
                               f"occupation string, {LIKED} string, blank boolean").filter(~F.col("blank")).drop("blank")
    first = Window.partitionBy("match_id").orderBy(ROW)
    parsed = parsed.withColumn("duplicate", F.col("match_id").isNotNull() & (F.row_number().over(first) > 1))
    users = spark.read.parquet(staged["users"])
    histories = (spark.read.parquet(staged["interactions"]).join(users.select("match_id"), "match_id")
                 .groupBy("match_id").agg(F.collect_list("item_id").alias("seen_item_ids")))
    joined = (parsed.join(users.select("match_id", "w_age", "w_gender", "w_occupation", "w_user_id"), "match_id", "left")
              .join(histories, "match_id", "left"))
    model_version = chosen.version

    def score(batches):
        yield from _score_partition(batches, shared.value, model_version, k, string_users)

    scored = joined.mapInPandas(score, schema=f"kind string, reason string, {result_ddl(items is not None)}").cache()
    results = scored.filter(F.col("kind") == "result").orderBy(ROW, "rank")
    results.drop("kind", "reason", ROW).write.mode("overwrite").parquet(out)
    rejects_path = f"{out.rstrip('/')}_rejects"
    rejects = scored.filter(F.col("kind") == "rejected").select(ROW, "user_id", "reason").orderBy(ROW)
    rejects.write.mode("overwrite").parquet(rejects_path)
    counts = {row["kind"]: row["n"] for row in scored.groupBy("kind").agg(F.countDistinct(ROW).alias("n")).collect()}
    scored.unpersist()
    if not staging:
        shutil.rmtree(staged["dir"], ignore_errors=True)
    return SparkSummary(model_version, out, rejects_path, counts.get("result", 0) + counts.get("rejected", 0),
                        counts.get("result", 0), counts.get("rejected", 0), "ann" if scorer.ann else "exact",
                        time.perf_counter() - started)


def _export_histories(conn, staging: str) -> dict:
    """The warehouse's users and interactions as Parquet, keyed by the audience's match id (the
    source's id where users have string ids, else the key). On a cluster, point --staging at
    shared storage (or at the lake's own copy of these tables)."""
    directory = Path(staging)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"dir": str(directory), "users": str(directory / "users.parquet"), "interactions": str(directory / "interactions.parquet")}
    match_id = "COALESCE(u.external_id, CAST(u.user_id AS VARCHAR))"
    conn.execute(f"""COPY (SELECT {match_id} AS match_id, age AS w_age, gender AS w_gender,
                                  occupation AS w_occupation, user_id AS w_user_id FROM users u)
                     TO '{paths["users"]}' (FORMAT parquet)""")
    conn.execute(f"""COPY (SELECT {match_id} AS match_id, i.item_id FROM interactions i JOIN users u USING (user_id))
                     TO '{paths["interactions"]}' (FORMAT parquet)""")
    return paths


@dataclass(frozen=True)
class _Payload:
    """What every executor needs, broadcast once: the bundle's arrays and the campaign's mask."""

    manifest: dict
    arrays: dict
    blocked: np.ndarray
    width: int
    retrieval: str
    ann_index: np.ndarray | None  # faiss.serialize_index bytes, when the ANN path is used
    items: IdMap | None  # the bundle's items' source ids, for a catalog with string item ids

    @classmethod
    def of(cls, bundle: ServingBundle, blocked: np.ndarray, width: int, retrieval: str, ann: bool,
           items: IdMap | None = None) -> "_Payload":
        arrays = {name: np.asarray(getattr(bundle, name)) for name in
                  ("item_ids", "item_vectors", "user_ids", "user_vectors", "cold_start_vectors")}
        index = None
        if ann:
            import faiss

            index = faiss.serialize_index(bundle.ann_index()._index)
        return cls(bundle.manifest, arrays, blocked, width, retrieval, index, items)

    def scorer(self) -> _Scorer:
        bundle = ServingBundle(manifest=self.manifest, **self.arrays)
        if self.ann_index is not None:
            import faiss

            from recsys.ann import ItemIndex

            object.__setattr__(bundle, "_ann", ItemIndex(faiss.deserialize_index(self.ann_index)))
        return _Scorer(bundle, self.blocked, self.width, self.retrieval)


def _audience_column(frame, name: str):
    """One audience column as a string; liked_items given as a Parquet list is joined by '|'."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType

    if name not in frame.columns:
        return F.lit(None).cast("string")
    if name == LIKED and isinstance(frame.schema[name].dataType, ArrayType):
        return F.concat_ws("|", F.col(name).cast("array<string>"))
    return F.col(name).cast("string")


def _parse_partition(batches, string_users: bool):
    """Strips values, drops blank rows and computes the match id, as pipelines.audience does
    (a catalog's string user ids are matched exactly: '042' is not 42 there)."""
    for batch in batches:
        chunk = _polars(batch).with_columns(pl.col(c).str.strip_chars() for c in AUDIENCE_COLUMNS)
        blank = pl.all_horizontal(pl.col(c).is_null() | (pl.col(c) == "") for c in AUDIENCE_COLUMNS)
        user_id = pl.col("user_id")
        match_id = pl.when(user_id != "").then(user_id) if string_users else match_key(user_id)
        yield chunk.with_columns(match_id.alias("match_id"), blank.alias("blank")).select(
            ROW, "user_id", "match_id", "age", "gender", "occupation", LIKED, "blank").to_pandas()


def _polars(batch) -> pl.DataFrame:
    import pyarrow as pa

    return pl.from_arrow(pa.Table.from_pandas(batch, preserve_index=False))


_SCORERS: dict[int, _Scorer] = {}  # per executor process: the bundle is rebuilt once, not per batch


def _score_partition(batches, payload: _Payload, model_version: int, k: int, string_users: bool = False):
    scorer = _SCORERS.get(id(payload))
    if scorer is None:
        scorer = _SCORERS[id(payload)] = payload.scorer()
    bundle = scorer.bundle
    known_index = pl.DataFrame({"match_id": bundle.user_ids.astype(str), "bundle_row": np.arange(len(bundle.user_ids))})
    for batch in batches:
        frame = _polars(batch)
        if frame.height == 0:
            continue
        chunk = parse_demographics(frame.with_columns(pl.lit(None, pl.Utf8).alias("selfie")))
        if string_users:  # as the local path keys them: a known user's key, else the id kept apart from every key
            chunk = chunk.with_columns(pl.when(pl.col("w_user_id").is_not_null())
                                       .then(pl.col("w_user_id").cast(pl.Utf8))
                                       .otherwise(pl.lit("external:") + pl.col("match_id")).alias("match_id"))
        users = (chunk.filter(pl.col("w_user_id").is_not_null())
                 .unique("match_id", keep="first", maintain_order=True)
                 .with_row_index("history_row").with_columns(pl.col("history_row").cast(pl.Int64)))
        seen = users.select("history_row", pl.col("seen_item_ids").fill_null([])).explode("seen_item_ids").drop_nulls()
        scorer.use_histories(_seen_matrix(bundle, seen.rename({"seen_item_ids": "item_id"}), users.height))
        chunk = _classify(chunk.drop("w_age", "w_gender", "w_occupation", "w_user_id", "seen_item_ids"), known_index,
                          users.select("match_id", "history_row", "w_age", "w_gender", "w_occupation"))
        chunk = _with_likes(chunk, bundle, payload.items.key if payload.items is not None else None)
        idx, scores, scored = _candidates(chunk, scorer)
        rows = _rows(scored, idx[:, :k], scores[:, :k], bundle, model_version)
        if payload.items is not None:
            rows = rows.with_columns(pl.Series("item_id", payload.items.shown_many(rows["item_id"].to_numpy()),
                                               dtype=pl.Utf8))
        row_numbers = np.repeat(scored[ROW].to_numpy(), idx[:, :k].shape[1])[(idx[:, :k] >= 0).reshape(-1)]
        results = rows.with_columns(pl.Series(ROW, row_numbers, dtype=pl.Int64), pl.lit("result").alias("kind"),
                                    pl.lit(None, pl.Utf8).alias("reason"))
        rejected = chunk.filter(pl.col("kind") == "rejected").select(
            pl.lit("rejected").alias("kind"), "reason", "user_id", pl.lit(None, pl.Int32).alias("rank"),
            pl.lit(None, pl.Utf8 if payload.items is not None else pl.Int64).alias("item_id"),
            pl.lit(None, pl.Float32).alias("score"),
            pl.lit(None, pl.Int32).alias("model_version"), pl.col(ROW).cast(pl.Int64))
        columns = ["kind", "reason", "user_id", "rank", "item_id", "score", "model_version", ROW]
        yield pl.concat([results.select(columns), rejected.select(columns)]).to_pandas()
