"""Campaign batch scoring: top-k lists for a whole audience.

Known users get lists from their own vectors with what they have seen removed; everyone
else gets demographic cold start, computed once per distinct (age band, gender, occupation)
because campaign audiences share few combinations. The audience streams through in chunks;
results go to a temporary Parquet file and reach their final place, and the warehouse, only
when the whole run succeeded, so an interrupted run leaves nothing half-written.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.audience import LIKED, ROW, audience_batches, parse_demographics, parse_liked
from pipelines.errors import InputError
from pipelines.fileio import (
    check_writable_dir,
    fault_point,
    pid_alive,
    sigterm_as_exception,
    signals_held,
    storage_errors,
)
from pipelines.ids import IdMap, keyed_rules
from pipelines.recommend import load_bundle
from pipelines.rules import CampaignRules, apply_item_cap, blocked_items
from recsys.age_bands import AGE_BAND_LOWER_BOUNDS, AGE_BANDS, age_band_indices
from recsys.personalize import History, recommend_many_with_history, taste_dimensions
from recsys.serving import ServingBundle, top_k_from_scores
from warehouse.batch_results import DEFAULT_RETENTION_DAYS, CampaignRun, committed_runs, replace_campaign
from warehouse.catalog import current_snapshot, read_items
from warehouse.connection import connected, warehouse_path
from warehouse.ids import external_ids_of, has_external_ids
from warehouse.model_versions import get_version, require_champion

log = logging.getLogger(__name__)

RESULT_SCHEMA = pa.schema(
    [("user_id", pa.large_string()), ("rank", pa.int32()), ("item_id", pa.int64()), ("score", pa.float32()), ("model_version", pa.int32())]
)
# Bytes of one block of exact scores (users x items float32): the block's height follows the
# catalog's width, so 1M items score 67 users at a time and 100,000 items 671.
SCORE_BLOCK_BYTES = 256 << 20
MAX_BLOCK_ROWS = 16_384
RETRIEVALS = ("auto", "exact", "ann")  # auto: approximate (recsys.ann) for large catalogs only
ANN_MAX_BLOCKED_SHARE = 0.5  # rules blocking more of the catalog than this make ANN miss too often
CAP_SLACK = 50  # extra candidates per user when a per-item cap may skip some
ANN_BLOCK_BYTES = 64 << 20  # candidate vectors gathered at once for exact re-scoring on the ANN path


@dataclass
class BatchSummary:
    campaign: str
    model_version: int
    k: int
    output_path: Path
    rejects_path: Path | None = None
    n_rows: int = 0
    n_known: int = 0
    n_cold: int = 0
    n_selfie: int = 0
    n_rejected: int = 0
    n_short_lists: int = 0
    n_cold_combinations: int = 0
    seconds: float = 0.0
    reject_reasons: dict = field(default_factory=dict)
    retrieval: str = "exact"  # how known users' lists were found: exact or ann (recsys.ann)
    n_exact_fallback: int = 0  # known users the ANN path handed to the exact one (too few candidates left)


def block_rows(n_items: int) -> int:
    """Users per exact scoring block: bounded bytes, whatever the catalog's width."""
    return int(max(1, min(MAX_BLOCK_ROWS, SCORE_BLOCK_BYTES // (4 * max(n_items, 1)))))


class _Scorer:
    """Candidate lists for known users and cold-start combinations, over one bundle.

    The same object scores on one machine and inside Spark's ``mapInPandas``
    (pipelines.spark_batch): both hand it vectors and each row's seen items as CSR.
    """

    def __init__(self, bundle: ServingBundle, blocked: np.ndarray, width: int, retrieval: str = "auto"):
        self.bundle, self.blocked, self.width = bundle, blocked, width
        self.any_blocked = bool(blocked.any())
        self.seen_indptr, self.seen_items = np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64)
        self.combo_cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self.ann = retrieval == "ann" or (
            retrieval == "auto" and bundle.uses_ann and blocked.mean() <= ANN_MAX_BLOCKED_SHARE)
        self.n_exact_fallback = 0

    def use_histories(self, seen: tuple[np.ndarray, np.ndarray]) -> None:
        """Seen items (bundle item indices) as CSR over history rows: the rows ``personal`` refers to."""
        self.seen_indptr, self.seen_items = seen

    def personal(self, vectors: np.ndarray, history_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidates for users scored one by one: their own vector, their own seen items removed."""
        if self.ann:
            return self._personal_ann(vectors, history_rows)
        return self._personal_exact(vectors, history_rows)

    def _personal_exact(self, vectors: np.ndarray, history_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = np.empty((len(vectors), self.width), dtype=np.int64)
        scores = np.empty((len(vectors), self.width), dtype=np.float32)
        items_t = np.asarray(self.bundle.item_vectors).T
        step = block_rows(len(self.bundle.item_ids))
        for start in range(0, len(vectors), step):
            stop = start + step
            matrix = vectors[start:stop] @ items_t
            if self.any_blocked:
                matrix[:, self.blocked] = -np.inf
            r, c = self._seen_pairs(history_rows[start:stop])
            matrix[r, c] = -np.inf
            idx[start:stop], scores[start:stop] = top_k_from_scores(matrix, self.width)
        return idx, scores

    def _personal_ann(self, vectors: np.ndarray, history_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidates from the approximate index, re-scored exactly; ties go to the lower item
        index as on the exact path. Rows left with fewer than ``width`` allowed candidates (many
        seen or blocked items among them) are scored exactly instead."""
        n = len(vectors)
        n_seen = self._seen_counts(history_rows)
        # Ask for room for every seen item; rows are grouped by a power of two of what they need.
        fetch = np.maximum(64, 2 ** np.ceil(np.log2(self.width + n_seen + 1))).astype(np.int64)
        fetch = np.minimum(fetch, len(self.bundle.item_ids))
        idx = np.full((n, self.width), -1, dtype=np.int64)
        scores = np.full((n, self.width), -np.inf, dtype=np.float32)
        short = np.zeros(n, dtype=bool)
        index = self.bundle.ann_index()
        item_vectors = np.asarray(self.bundle.item_vectors)
        for size in np.unique(fetch):
            group = np.flatnonzero(fetch == size)
            # Blocks bound the gathered candidate vectors (rows x candidates x dim) in bytes.
            step = max(1, ANN_BLOCK_BYTES // (int(size) * item_vectors.shape[1] * 4))
            for start in range(0, len(group), step):
                rows = group[start:start + step]
                candidates = np.sort(index.search(vectors[rows], int(size)), axis=1)  # item order: ties to the lower index
                valid = candidates >= 0
                safe_c = np.where(valid, candidates, 0)
                exact = np.einsum("rd,rcd->rc", vectors[rows], item_vectors[safe_c]).astype(np.float32)
                allowed = valid & ~self.blocked[safe_c] & ~self._seen_mask(history_rows[rows], candidates)
                exact[~allowed] = -np.inf
                top, top_scores = top_k_from_scores(exact, self.width)
                found = top >= 0
                idx[rows] = np.where(found, np.take_along_axis(candidates, np.maximum(top, 0), axis=1), -1)
                scores[rows] = top_scores
                short[rows] = ~found[:, -1]
        if short.any():
            self.n_exact_fallback += int(short.sum())
            idx[short], scores[short] = self._personal_exact(vectors[short], history_rows[short])
        return idx, scores

    def _seen_mask(self, rows: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """[len(rows), n_candidates]: whether each candidate is among its row's seen items.

        ``candidates`` are sorted within each row (-1 pads, first), so (row, candidate) keys are
        sorted over the whole block and each seen item is found by one binary search: far
        cheaper than a set test of every candidate.
        """
        mask = np.zeros(candidates.shape, dtype=bool)
        local_row, item = self._seen_pairs(rows)
        if len(item) == 0 or candidates.size == 0:
            return mask
        span = len(self.bundle.item_ids) + 1  # + 1: the -1 pad has a key of its own in each row
        keys = (np.arange(len(rows))[:, None] * span + candidates + 1).reshape(-1)
        seen_keys = local_row * span + item + 1
        at = np.minimum(np.searchsorted(keys, seen_keys), len(keys) - 1)
        mask.reshape(-1)[at[keys[at] == seen_keys]] = True
        return mask

    def _seen_counts(self, rows: np.ndarray) -> np.ndarray:
        if len(self.seen_indptr) < 2:  # nobody in this chunk has a history
            return np.zeros(len(rows), dtype=np.int64)
        has = rows >= 0
        safe = np.where(has, rows, 0)
        return np.where(has, self.seen_indptr[safe + 1] - self.seen_indptr[safe], 0)

    def _seen_pairs(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row in this block, item index) of every seen item; rows of -1 have no history."""
        counts = self._seen_counts(rows)
        starts = self.seen_indptr[np.where(rows >= 0, rows, 0)] if len(self.seen_indptr) > 1 else np.zeros(len(rows), np.int64)
        local_row = np.repeat(np.arange(len(rows)), counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return local_row, self.seen_items[np.repeat(starts, counts) + offsets]

    def cold(self, keys: list[tuple]) -> None:
        """Computes (once) the candidates of each new (band, gender, occupation) combination."""
        new = [key for key in dict.fromkeys(keys) if key not in self.combo_cache]
        if not new:
            return
        vectors = np.stack([_cold_vector(self.bundle, key) for key in new])
        idx, scores = self._personal_exact(vectors, np.full(len(new), -1, dtype=np.int64))
        for key, i, s in zip(new, idx, scores):
            self.combo_cache[key] = (i, s)


def _band_age(band: int) -> float | None:
    return None if band < 0 else float(AGE_BAND_LOWER_BOUNDS[band])


def _cold_vector(bundle: ServingBundle, key: tuple) -> np.ndarray:
    """key: (band index, gender, occupation[, mixture]); a selfie row's mixture (pipelines.selfie.selfie_mixture's
    JSON of band and gender weights) replaces its band and gender."""
    band, gender, occupation, *mixture = key
    if mixture and mixture[0]:
        bands, genders = json.loads(mixture[0])
        return bundle.vector_for_demographic_mixture(dict(bands), dict(genders), occupation)
    return bundle.vector_for_demographics(age=_band_age(band), gender=gender, occupation=occupation)


def batch_score(
    home: Path,
    audience: Path,
    out: Path,
    *,
    k: int,
    campaign: str | None,
    version: int | None,
    rules: CampaignRules,
    chunk_size: int = 200_000,
    show_progress: bool = True,
    lock_timeout_s: float = 30.0,
    selfie_profiler=None,
    store_selfie_results: bool = False,
    retention_days: int = DEFAULT_RETENTION_DAYS,
    retrieval: str = "auto",
) -> BatchSummary:
    started = time.perf_counter()
    out, audience = Path(out), Path(audience)
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise InputError(f"{out}: unknown output format '{out.suffix}'; expected .parquet or .csv")
    if out.is_dir():
        raise InputError(f"{out}: is a directory; expected a file name ending in .parquet or .csv")
    files = CampaignFiles.for_output(out)
    _refuse_overwriting(audience, files)
    campaign = campaign or out.stem
    # Everything that can be checked before the work: where results go, and the warehouse.
    check_writable_dir(out.parent, "campaign output")
    check_writable_dir(warehouse_path(home).parent, "warehouse")
    if retrieval not in RETRIEVALS:
        raise InputError(f"unknown retrieval {retrieval!r}; expected one of {', '.join(RETRIEVALS)}")
    with connected(home, read_only=True, lock_timeout_s=lock_timeout_s) as conn:
        files.recover_stale(conn)
        chosen = get_version(conn, version) if version is not None else require_champion(conn)
        rules = keyed_rules(conn, rules)  # the rules' item ids as the source spells them -> keys
        external = {kind: has_external_ids(conn, kind) for kind in ("user", "item")}
        # The catalog is read only when a rule needs titles or genres (a million items cost seconds).
        items = read_items(conn) if rules.only_items is not None or rules.genres is not None else None
        snapshot = current_snapshot(conn)
    bundle = load_bundle(chosen)
    blocked = blocked_items(rules, bundle.item_ids, items)
    width = min(len(bundle.item_ids), k + CAP_SLACK if rules.max_per_item else k)
    scorer = _Scorer(bundle, blocked, width, retrieval)
    known_index = pl.DataFrame({"match_id": bundle.user_ids.astype(str), "bundle_row": np.arange(len(bundle.user_ids))})
    remaining = np.full(len(bundle.item_ids), rules.max_per_item or 0, dtype=np.int64)
    histories = _AudienceHistories(home, bundle, snapshot, lock_timeout_s)

    summary = BatchSummary(campaign=campaign, model_version=chosen.version, k=k, output_path=out)
    rejects: list[pl.DataFrame] = []
    selfie_ids: list[str] = []
    seen_ids: set[str] = set()
    with sigterm_as_exception():
        try:
            with storage_errors(out.parent), pq.ParquetWriter(files.scratch, RESULT_SCHEMA) as writer, \
                    _progress(audience, show_progress) as bar:
                for chunk in audience_batches(audience, chunk_size):
                    chunk = parse_demographics(chunk)
                    chunk, item_keys = _source_ids(home, chunk, external, lock_timeout_s)
                    users = histories.load(chunk, scorer)
                    chunk = _classify(_mark_duplicates(chunk, seen_ids), known_index, users)
                    chunk = _with_likes(chunk, bundle, item_keys)
                    if chunk.filter(pl.col("kind") == "selfie").height:
                        chunk = _profile_selfies(chunk, selfie_profiler)
                        selfie_ids += chunk.filter(pl.col("from_selfie").fill_null(False))["user_id"].to_list()
                    idx, scores, scored = _candidates(chunk, scorer)
                    if rules.max_per_item:
                        idx, scores = apply_item_cap(idx, scores, k, remaining)
                    else:
                        idx, scores = idx[:, :k], scores[:, :k]
                    writer.write_table(_rows(scored, idx, scores, bundle, chosen.version).to_arrow())
                    _count(summary, chunk, idx)
                    rejects.append(chunk.filter(pl.col("kind") == "rejected").select(ROW, "user_id", "reason"))
                    bar.update(chunk.height)
                    fault_point("batch.chunk_scored")
            summary.n_cold_combinations = len(scorer.combo_cache)
            summary.retrieval = "ann" if scorer.ann else "exact"
            summary.n_exact_fallback = scorer.n_exact_fallback
            rejected = pl.concat(rejects) if rejects else pl.DataFrame()
            summary.reject_reasons = dict(rejected.group_by("reason").len().iter_rows()) if rejected.height else {}
            shown_items = _listed_external_ids(home, files.scratch, lock_timeout_s) if external["item"] else None
            with storage_errors(out.parent):
                files.stage(out, rejected, shown_items)
            fault_point("batch.staged")
            run = CampaignRun(summary.campaign, summary.model_version, summary.k, summary.n_known, summary.n_cold,
                              summary.n_rejected, str(out.resolve()), run_token=files.token,
                              retention_days=retention_days, n_selfie=summary.n_selfie,
                              selfie_lists_stored=store_selfie_results)
            _store(home, run, files, [] if store_selfie_results else selfie_ids, lock_timeout_s)
            summary.rejects_path = files.rejects if rejected.height else None
        finally:
            files.remove_own()
    summary.seconds = time.perf_counter() - started
    return summary


def _refuse_overwriting(audience: Path, files: "CampaignFiles") -> None:
    """The output (or its rejects file) must not be the audience, also not through a link."""
    for target in (files.out, files.rejects):
        same = target.resolve() == audience.resolve()
        if not same and target.exists() and audience.exists():
            same = os.path.samefile(target, audience)
        if same:
            raise InputError(
                f"{target}: is the audience file {audience} itself; writing results there would destroy the "
                "audience. Choose another --out"
            )


def _store(home: Path, run: CampaignRun, files: "CampaignFiles", leave_out: list[str], lock_timeout_s: float) -> None:
    """Commit the campaign, then move its files into place; SIGINT/SIGTERM wait for both, and a
    SIGKILL between them is completed by the next run for this output (recover_stale)."""
    with storage_errors(warehouse_path(home)), connected(home, lock_timeout_s=lock_timeout_s) as conn:
        with signals_held():
            fault_point("batch.before_commit")
            replace_campaign(conn, run, files.scratch, leave_out_user_ids=leave_out,
                             before_commit=lambda: fault_point("batch.in_transaction"))
            fault_point("batch.committed")
            files.finalize(n_rejected=run.n_rejected)
    fault_point("batch.done")


@dataclass(frozen=True)
class CampaignFiles:
    """The output, its rejects file and this run's hidden temporaries beside them.

    Temporaries are named ``.OUT.TOKEN-PID.KIND``: the token ties staged files to the run record
    in the warehouse, the pid tells a dead run's leftovers from a live run's files.
    """

    out: Path
    rejects: Path
    token: str

    @classmethod
    def for_output(cls, out: Path) -> "CampaignFiles":
        return cls(out, out.with_name(f"{out.stem}.rejects.csv"), uuid.uuid4().hex[:12])

    def _temp(self, kind: str) -> Path:
        return self.out.with_name(f".{self.out.name}.{self.token}-{os.getpid()}.{kind}")

    @property
    def scratch(self) -> Path:  # the results as they stream in
        return self._temp("results.parquet")

    @property
    def staged_out(self) -> Path:
        return self._temp("staged")

    @property
    def staged_rejects(self) -> Path:
        return self._temp("rejects")

    def stage(self, out: Path, rejected: pl.DataFrame, shown_items: pl.DataFrame | None = None) -> None:
        """The final files, complete, under hidden names beside their targets; ``shown_items``
        (item_id, external_id) spells the items in the source's ids."""
        results = pl.scan_parquet(self.scratch)
        if shown_items is not None:
            results = results.join(shown_items.lazy(), on="item_id", how="left", maintain_order="left").with_columns(
                pl.coalesce("external_id", pl.col("item_id").cast(pl.Utf8)).alias("item_id")).drop("external_id")
        if out.suffix.lower() == ".csv":
            results.sink_csv(self.staged_out)
        elif shown_items is not None:
            results.sink_parquet(self.staged_out)
        else:
            shutil.copyfile(self.scratch, self.staged_out)
            pl.scan_parquet(self.staged_out).collect_schema()  # fail early on a broken file
        if rejected.height:
            rejected.rename({ROW: "row"}).write_csv(self.staged_rejects)

    def finalize(self, *, n_rejected: int) -> None:
        """Moves staged files into place (idempotent: a recovering run may repeat it)."""
        _finalize(self.out, self.rejects, self.staged_out, self.staged_rejects, n_rejected)

    def remove_own(self) -> None:
        for path in (self.scratch, self.staged_out, self.staged_rejects):
            path.unlink(missing_ok=True)

    def recover_stale(self, conn) -> None:
        """Leftovers of runs for this output that died: completed if their campaign was committed
        (a kill between commit and rename), deleted otherwise."""
        pattern = re.compile(
            rf"^\.{re.escape(self.out.name)}\.(?:(?P<token>[0-9a-f]{{12}})-)?(?P<pid>\d+)\."
            rf"(?P<kind>results\.parquet|staged|rejects|tmp)$"
        )
        stale: dict[str | None, list[tuple[Path, str, int]]] = {}
        try:
            entries = list(self.out.parent.iterdir())
        except OSError:
            return
        for path in entries:
            match = pattern.match(path.name)
            if match and not pid_alive(int(match["pid"])):
                stale.setdefault(match["token"], []).append((path, match["kind"], int(match["pid"])))
        legacy_rejects = self.rejects.with_name(f".{self.rejects.name}.tmp")  # written by earlier versions
        legacy_rejects.unlink(missing_ok=True)
        if not stale:
            return
        committed = committed_runs(conn, [t for t in stale if t])
        for token, leftovers in stale.items():
            if token in committed:
                pid = leftovers[0][2]
                staged = self.out.with_name(f".{self.out.name}.{token}-{pid}.staged")
                staged_rejects = self.out.with_name(f".{self.out.name}.{token}-{pid}.rejects")
                _finalize(self.out, self.rejects, staged, staged_rejects, committed[token])
                log.warning("completed campaign output %s of an interrupted run", self.out)
            for path, _, _ in leftovers:
                path.unlink(missing_ok=True)


def _finalize(out: Path, rejects: Path, staged: Path, staged_rejects: Path, n_rejected: int) -> None:
    # The rejects file first, the results last: a leftover staged results file means "not done".
    if staged_rejects.exists():
        os.replace(staged_rejects, rejects)
    elif n_rejected == 0:
        rejects.unlink(missing_ok=True)  # a rerun must not leave an earlier run's rejects behind
    if staged.exists():
        os.replace(staged, out)


class _AudienceHistories:
    """Each chunk's own users from the warehouse: demographics and seen items, never the whole
    interaction table (a cold-only chunk reads no interactions at all).

    Every chunk opens its own short read-only connection, so a long campaign does not hold the
    warehouse; a new ingest in between would mix two datasets, so the snapshot is checked.
    """

    def __init__(self, home: Path, bundle: ServingBundle, snapshot: str | None, lock_timeout_s: float):
        self.home, self.bundle, self.snapshot, self.lock_timeout_s = home, bundle, snapshot, lock_timeout_s

    def load(self, chunk: pl.DataFrame, scorer: _Scorer) -> pl.DataFrame:
        """The chunk's warehouse users (match_id, history_row, w_age, w_gender, w_occupation); their
        seen items go to the scorer, as CSR over history_row."""
        wanted = chunk.select(pl.col("match_id").drop_nulls().unique())
        with connected(self.home, read_only=True, lock_timeout_s=self.lock_timeout_s) as conn:
            if current_snapshot(conn) != self.snapshot:
                raise InputError(
                    "the warehouse was loaded with new data while the campaign ran; run the campaign again")
            users = conn.sql(
                """SELECT CAST(u.user_id AS VARCHAR) AS match_id, row_number() OVER (ORDER BY u.user_id) - 1 AS history_row,
                          u.age AS w_age, u.gender AS w_gender, u.occupation AS w_occupation, u.user_id AS w_user_id
                   FROM users u JOIN wanted w ON CAST(u.user_id AS VARCHAR) = w.match_id"""
            ).pl()
            found = users.select("w_user_id", "history_row")
            interactions = conn.sql(
                """SELECT f.history_row, i.item_id FROM interactions i JOIN found f ON i.user_id = f.w_user_id"""
            ).pl() if users.height else pl.DataFrame(schema={"history_row": pl.Int64, "item_id": pl.Int64})
        scorer.use_histories(_seen_matrix(self.bundle, interactions, users.height))
        return users.drop("w_user_id")


def _seen_matrix(bundle: ServingBundle, interactions: pl.DataFrame, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """Bundle item indices each history row has interacted with, as CSR over history rows."""
    cols = bundle.item_rows(interactions["item_id"].to_numpy())
    users = interactions["history_row"].to_numpy().astype(np.int64)
    inside = cols >= 0
    n_items = max(len(bundle.item_ids), 1)
    # One sort of (row, item) keys: ordered by row, then item, each pair once.
    keys = np.unique(users[inside] * n_items + cols[inside])
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys // n_items, minlength=n_users), out=indptr[1:])
    return indptr, keys % n_items


def _mark_duplicates(chunk: pl.DataFrame, seen_ids: set[str]) -> pl.DataFrame:
    """duplicate: the id came earlier in this chunk or in an earlier one (the first one counts)."""
    ids = chunk["match_id"].to_list()
    in_earlier_chunk = pl.Series("in_earlier_chunk", [uid in seen_ids for uid in ids])
    seen_ids.update(i for i in ids if i)
    return chunk.with_columns(
        (pl.col("match_id").is_not_null() & (in_earlier_chunk | ~pl.col("match_id").is_first_distinct())).alias("duplicate")
    )


def _classify(chunk: pl.DataFrame, known_index: pl.DataFrame, users: pl.DataFrame) -> pl.DataFrame:
    """kind: known | cold | selfie | rejected, with the demographics cold rows will use (the
    chunk carries its ``duplicate`` flags: see _mark_duplicates, or Spark's window)."""
    chunk = chunk.join(known_index, on="match_id", how="left").join(users, on="match_id", how="left")
    has_demo = pl.col("age_value").is_not_null() | pl.col("gender_value").is_not_null()
    kind = (
        pl.when(pl.col("duplicate")).then(pl.lit("rejected"))
        .when(pl.col("bundle_row").is_not_null()).then(pl.lit("known"))
        .when(pl.col("w_age").is_not_null() | pl.col("w_gender").is_not_null()).then(pl.lit("cold"))
        .when(pl.col("reason").is_not_null()).then(pl.lit("rejected"))
        .when(has_demo).then(pl.lit("cold"))
        .when(pl.col("selfie").is_not_null()).then(pl.lit("selfie"))
        .otherwise(pl.lit("rejected"))
    )
    reason = (
        pl.when(pl.col("duplicate")).then(pl.lit("duplicate user_id in the audience"))
        .when(pl.col("reason").is_not_null()).then(pl.col("reason"))
        .otherwise(pl.lit("not a known user and no usable age, gender or selfie"))
    )
    warehouse_demo = pl.col("w_age").is_not_null() | pl.col("w_gender").is_not_null()
    return chunk.with_columns(kind.alias("kind")).with_columns(
        pl.when(pl.col("kind") == "rejected").then(reason).alias("reason"),
        pl.when(warehouse_demo).then(pl.col("w_age").cast(pl.Float64)).otherwise(pl.col("age_value")).alias("age_value"),
        pl.when(warehouse_demo).then(pl.col("w_gender")).otherwise(pl.col("gender_value")).alias("gender_value"),
        pl.when(warehouse_demo).then(pl.col("w_occupation")).otherwise(pl.col("occupation")).alias("occupation"),
    ).sort(ROW)


def _source_ids(home: Path, chunk: pl.DataFrame, external: dict, lock_timeout_s: float):
    """For a catalog with string ids (pipelines.ids): the chunk with match_id the user's key (a
    string id the warehouse lacks is kept apart from every key), and the liked items' id -> key.
    Reads only this chunk's ids."""
    if not (external["user"] or external["item"]):
        return chunk, None
    liked = {t.strip() for v in chunk[LIKED].drop_nulls().to_list() for t in v.split("|") if t.strip()}
    with connected(home, read_only=True, lock_timeout_s=lock_timeout_s) as conn:
        users = IdMap.for_values(conn, "user", chunk["user_id"].drop_nulls().unique().to_list()) if external["user"] else None
        items = IdMap.for_values(conn, "item", liked) if external["item"] else None
    if users is not None:
        keys = [users.key(u) if u else None for u in chunk["user_id"].to_list()]
        match = [str(k) if k is not None else (f"external:{u}" if u else None) for u, k in zip(chunk["user_id"].to_list(), keys)]
        chunk = chunk.with_columns(pl.Series("match_id", match, dtype=pl.Utf8))
    return chunk, (items.key if items is not None else None)


def _listed_external_ids(home: Path, results: Path, lock_timeout_s: float) -> pl.DataFrame:
    """(item_id, external_id) of the items the campaign's lists hold."""
    listed = pl.scan_parquet(results).select(pl.col("item_id").unique()).collect()["item_id"].to_list()
    with connected(home, read_only=True, lock_timeout_s=lock_timeout_s) as conn:
        shown = external_ids_of(conn, "item", listed)
    return pl.DataFrame({"item_id": list(shown), "external_id": list(shown.values())},
                        schema={"item_id": pl.Int64, "external_id": pl.Utf8})


def _with_likes(chunk: pl.DataFrame, bundle: ServingBundle, item_keys=None) -> pl.DataFrame:
    """liked_rows for rows with liked_items; a row whose liked_items cannot be used is rejected."""
    chunk = parse_liked(chunk, bundle.item_rows, item_keys)
    bad = pl.col("liked_reason").is_not_null() & (pl.col("kind") != "rejected")
    return chunk.with_columns(
        pl.when(bad).then(pl.lit("rejected")).otherwise(pl.col("kind")).alias("kind"),
        pl.when(bad).then(pl.col("liked_reason")).otherwise(pl.col("reason")).alias("reason"),
    ).drop("liked_reason")


def _profile_selfies(chunk: pl.DataFrame, profiler) -> pl.DataFrame:
    """Runs the vision module on each selfie row; the images are read, never stored."""
    if profiler is None:  # returns (age, gender) or (age, gender, mixture JSON)
        from pipelines.selfie import selfie_mixture as profiler
    rows = chunk.filter(pl.col("kind") == "selfie")
    ages, genders, mixtures, reasons = [], [], [], []
    for photo in rows["selfie"].to_list():
        try:
            age, gender, *mixture = profiler(Path(photo))
            ages.append(age), genders.append(gender), mixtures.append(mixture[0] if mixture else None), reasons.append(None)
        except InputError as e:
            ages.append(None), genders.append(None), mixtures.append(None), reasons.append(f"selfie: {e}")
    profiled = pl.DataFrame(
        {ROW: rows[ROW], "s_age": pl.Series(ages, dtype=pl.Float64), "s_gender": pl.Series(genders, dtype=pl.Utf8),
         "mixture": pl.Series(mixtures, dtype=pl.Utf8), "s_reason": pl.Series(reasons, dtype=pl.Utf8)}
    )
    chunk = chunk.join(profiled, on=ROW, how="left")
    return chunk.with_columns(
        pl.when(pl.col("s_reason").is_not_null()).then(pl.lit("rejected"))
        .when(pl.col("kind") == "selfie").then(pl.lit("cold")).otherwise(pl.col("kind")).alias("kind"),
        pl.coalesce("s_reason", "reason").alias("reason"),
        pl.when(pl.col("kind") == "selfie").then(pl.col("s_age")).otherwise(pl.col("age_value")).alias("age_value"),
        pl.when(pl.col("kind") == "selfie").then(pl.col("s_gender")).otherwise(pl.col("gender_value")).alias("gender_value"),
        ((pl.col("kind") == "selfie") & pl.col("s_reason").is_null()).alias("from_selfie"),
    ).drop("s_age", "s_gender", "s_reason")


def _candidates(chunk: pl.DataFrame, scorer: _Scorer) -> tuple[np.ndarray, np.ndarray, pl.DataFrame]:
    """Candidate item indices and scores for every scorable row, in audience order.

    Rows with a history (known to the model, or in the warehouse but newer than the model) are
    scored one by one so their seen items can be removed; all other cold rows share the lists
    of their (age band, gender, occupation) combination.
    """
    scored = chunk.filter(pl.col("kind").is_in(["known", "cold"]))
    idx = np.empty((scored.height, scorer.width), dtype=np.int64)
    scores = np.empty((scored.height, scorer.width), dtype=np.float32)
    bands = age_band_indices(scored["age_value"].fill_null(float("nan")).to_numpy())
    mixtures = scored["mixture"].to_list() if "mixture" in scored.columns else [None] * scored.height
    keys = list(zip(bands.tolist(), scored["gender_value"].to_list(), scored["occupation"].str.to_lowercase().to_list(), mixtures))
    liking = (scored["liked_rows"].is_not_null().to_numpy() if "liked_rows" in scored.columns
              else np.zeros(scored.height, dtype=bool))
    if liking.any():  # what they just liked bends their list (recsys.personalize), seen items removed
        idx[liking], scores[liking] = _with_history(scored.filter(pl.Series(liking)),
                                                    [k for k, like in zip(keys, liking) if like], scorer)
    personal = scored["history_row"].is_not_null().to_numpy() & ~liking
    if personal.any():
        rows = scored.filter(pl.Series(personal))
        vectors = _base_vectors(scorer.bundle, rows["bundle_row"], [k for k, p in zip(keys, personal) if p])
        idx[personal], scores[personal] = scorer.personal(vectors, rows["history_row"].to_numpy())
    shared_rows = ~personal & ~liking
    if shared_rows.any():
        shared = [key for key, s in zip(keys, shared_rows) if s]
        scorer.cold(shared)
        idx[shared_rows] = np.stack([scorer.combo_cache[key][0] for key in shared])
        scores[shared_rows] = np.stack([scorer.combo_cache[key][1] for key in shared])
    return idx, scores, scored


def _base_vectors(bundle: ServingBundle, bundle_rows: pl.Series, keys: list[tuple]) -> np.ndarray:
    """Each row's own vector where the bundle has one (one gather, not a read per row), else its
    cold-start vector (from its key)."""
    rows = bundle_rows.fill_null(-1).to_numpy()
    known = rows >= 0
    out = np.empty((len(rows), bundle.user_vectors.shape[1]),
                   dtype=np.result_type(bundle.user_vectors.dtype, bundle.cold_start_vectors.dtype) if (~known).any()
                   else bundle.user_vectors.dtype)
    out[known] = bundle.user_vectors[rows[known]]
    for i in np.flatnonzero(~known):
        out[i] = _cold_vector(bundle, keys[i])
    return out


def _with_history(rows: pl.DataFrame, keys: list[tuple], scorer: _Scorer) -> tuple[np.ndarray, np.ndarray]:
    """Candidates for rows with liked_items: the same scores as one-person lists (the service's)."""
    bundle = scorer.bundle
    known = rows["bundle_row"].is_not_null().to_numpy()
    vectors = _base_vectors(bundle, rows["bundle_row"], keys)
    history_rows = rows["history_row"].fill_null(-1).to_numpy()
    local, items = scorer._seen_pairs(history_rows)  # local is sorted: split per row
    seen = np.split(items, np.cumsum(np.bincount(local, minlength=rows.height))[:-1])
    histories = [History(liked=tuple(liked), seen=tuple(s.tolist())) for liked, s in zip(rows["liked_rows"].to_list(), seen)]
    return recommend_many_with_history(
        bundle.item_vectors, vectors, histories, k=scorer.width, known_user=known, item_item=bundle.item_item,
        taste_dims=taste_dimensions(bundle.manifest, bundle.item_vectors.shape[1]), blocked=scorer.blocked,
    )


def _rows(scored: pl.DataFrame, idx: np.ndarray, scores: np.ndarray, bundle: ServingBundle, version: int) -> pl.DataFrame:
    k = idx.shape[1]  # less than asked when the catalog is smaller than k
    keep = idx.reshape(-1) >= 0
    flat_idx = np.maximum(idx.reshape(-1), 0)
    return pl.DataFrame(
        {
            "user_id": np.repeat(scored["user_id"].to_numpy(), k)[keep],
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), scored.height)[keep],
            "item_id": bundle.item_ids[flat_idx][keep].astype(np.int64),
            "score": scores.reshape(-1)[keep].astype(np.float32),
            "model_version": np.full(int(keep.sum()), version, dtype=np.int32),
        },
        schema={"user_id": pl.Utf8, "rank": pl.Int32, "item_id": pl.Int64, "score": pl.Float32, "model_version": pl.Int32},
    )


def _count(summary: BatchSummary, chunk: pl.DataFrame, idx: np.ndarray) -> None:
    kinds = dict(chunk.group_by("kind").len().iter_rows())
    summary.n_rows += chunk.height
    summary.n_known += kinds.get("known", 0)
    summary.n_cold += kinds.get("cold", 0)
    summary.n_rejected += kinds.get("rejected", 0)
    if "from_selfie" in chunk.columns:
        summary.n_selfie += int(chunk["from_selfie"].fill_null(False).sum())
    summary.n_short_lists += int((idx[:, -1] < 0).sum()) + (idx.shape[0] if idx.shape[1] < summary.k else 0)


class _NoBar:
    def update(self, n): ...
    def __enter__(self): return self
    def __exit__(self, *exc): return False


def _progress(audience: Path, show: bool):
    if not show:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=_count_rows(Path(audience)), unit=" rows", unit_scale=True, desc="scoring", smoothing=0.1)


def _count_rows(path: Path) -> int | None:
    try:
        if path.suffix.lower() == ".parquet":
            return pq.ParquetFile(path).metadata.num_rows
        with open(path, "rb") as f:
            return max(sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b"")) - 1, 0)
    except OSError:
        return None
