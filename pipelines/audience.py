"""Reading a campaign audience in chunks, and sorting each row into known, cold or rejected.

An audience is CSV or Parquet with ``user_id`` and, for people the warehouse does not know,
``age`` (years or a MovieLens 1M code) and ``gender`` (M/F), optionally ``occupation``, or a
``selfie`` column of image paths. Rows that cannot be scored are rejected with a reason; the
rest of the audience is still scored.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl

from pipelines.errors import InputError
from pipelines.fileio import require_regular_file
from pipelines.tables import csv_problem, header_separator_hint
from recsys.age_bands import MAX_AGE

OPTIONAL_COLUMNS = ("age", "gender", "occupation", "selfie")
LIKED = "liked_items"  # item ids joined by '|' (a list in Parquet): items the person just liked
ROW = "_row"  # 1-based record number in the audience file (CSV line = row + 1 without multi-line fields)


def audience_batches(path: Path, chunk_size: int) -> Iterator[pl.DataFrame]:
    """Chunks with columns _row, user_id, match_id, age, gender, occupation, selfie (strings).

    Blank lines are skipped (as ingest skips them); a file polars cannot parse part-way (a
    ragged row, an unclosed quote, bad UTF-8) ends in one InputError naming the line.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: audience file not found")
    require_regular_file(path, "audience file")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        scan = pl.scan_parquet(path)
    elif suffix == ".csv":
        if path.stat().st_size == 0:
            raise InputError(f"{path}: the audience is empty (0 bytes); expected a header line with user_id")
        scan = pl.scan_csv(path, infer_schema=False)
    else:
        raise InputError(f"{path}: unknown audience format '{suffix}'; expected .csv or .parquet")
    try:
        schema = scan.collect_schema()
    except (pl.exceptions.PolarsError, OSError) as e:
        raise InputError(f"{path}: {_problem(path, suffix, e)}") from e
    columns = schema.names()
    if "user_id" not in columns:
        raise InputError(
            f"{path}: missing column 'user_id'; expected user_id and optionally {', '.join((*OPTIONAL_COLUMNS, LIKED))} "
            f"(found {', '.join(columns) or 'none'}){header_separator_hint(columns)}"
        )
    nested = [c for c in ("user_id", *OPTIONAL_COLUMNS) if c in columns and schema[c].is_nested()]
    if nested:
        raise InputError(
            f"{path}: column '{nested[0]}' holds {schema[nested[0]]} values; expected one plain value per row"
        )
    selected = [
        (pl.col(c).cast(pl.Utf8) if c in columns else pl.lit(None, pl.Utf8)).str.strip_chars().alias(c)
        for c in ("user_id", *OPTIONAL_COLUMNS)
    ] + [_liked_items_column(schema)]
    seen_rows = 0
    batches = scan.select(selected).collect_batches(chunk_size=chunk_size)
    while True:
        try:
            chunk = next(batches)
        except StopIteration:
            break
        except (pl.exceptions.PolarsError, OSError) as e:
            raise InputError(f"{path}: {_problem(path, suffix, e)}") from e
        numbered = chunk.with_row_index(ROW, offset=seen_rows + 1).with_columns(pl.col(ROW).cast(pl.Int64))
        seen_rows += chunk.height
        blank = pl.all_horizontal(pl.col(c).is_null() | (pl.col(c) == "") for c in ("user_id", *OPTIONAL_COLUMNS, LIKED))
        numbered = numbered.filter(~blank)
        if numbered.height:
            yield numbered.with_columns(match_key(pl.col("user_id")).alias("match_id"))
    if seen_rows == 0:
        raise InputError(f"{path}: the audience is empty")


def _liked_items_column(schema) -> pl.Expr:
    """liked_items as one string of ids joined by '|' (CSV as given; a Parquet list joined)."""
    if LIKED not in schema.names():
        return pl.lit(None, pl.Utf8).alias(LIKED)
    column = pl.col(LIKED)
    if isinstance(schema[LIKED], (pl.List, pl.Array)):
        column = column.cast(pl.List(pl.Utf8)).list.join("|")
    return column.cast(pl.Utf8).str.strip_chars().alias(LIKED)


def parse_liked(chunk: pl.DataFrame, item_rows, item_keys=None) -> pl.DataFrame:
    """Adds liked_rows (bundle rows of the liked items, via ``item_rows``: keys -> rows, -1 for
    unknown) and liked_reason for a row naming an unknown item or a non-integer. ``item_keys``
    (ids as the source spells them -> key, None when unknown) reads a catalog's string ids."""
    if item_keys is not None:
        return _parse_liked_strings(chunk, item_rows, item_keys)
    liked_rows, reasons = [], []
    for value in chunk[LIKED].to_list():
        if not value:
            liked_rows.append(None), reasons.append(None)
            continue
        tokens = [t.strip() for t in value.split("|") if t.strip()]
        try:
            ids = [int(t) for t in tokens]
        except ValueError:
            liked_rows.append(None), reasons.append(f"liked_items '{value}' is not item ids joined by '|'")
            continue
        rows = [int(r) for r in item_rows(ids)] if ids else []
        unknown = [i for i, r in zip(ids, rows) if r < 0]
        if unknown:
            liked_rows.append(None), reasons.append(f"liked_items: item {unknown[0]} is not in the model's catalog")
            continue
        liked_rows.append(list(dict.fromkeys(rows)) or None), reasons.append(None)
    return chunk.with_columns(
        pl.Series("liked_rows", liked_rows, dtype=pl.List(pl.Int64)),
        pl.Series("liked_reason", reasons, dtype=pl.Utf8),
    )


def _parse_liked_strings(chunk: pl.DataFrame, item_rows, item_keys) -> pl.DataFrame:
    liked_rows, reasons = [], []
    for value in chunk[LIKED].to_list():
        tokens = [t.strip() for t in (value or "").split("|") if t.strip()]
        keys = [item_keys(t) for t in tokens]
        rows = [int(r) for r in item_rows([k if k is not None else -1 for k in keys])] if tokens else []
        unknown = [t for t, r in zip(tokens, rows) if r < 0]
        if unknown:
            liked_rows.append(None), reasons.append(f"liked_items: item '{unknown[0]}' is not in the model's catalog")
        else:
            liked_rows.append(list(dict.fromkeys(rows)) or None), reasons.append(None)
    return chunk.with_columns(
        pl.Series("liked_rows", liked_rows, dtype=pl.List(pl.Int64)),
        pl.Series("liked_reason", reasons, dtype=pl.Utf8),
    )


def match_key(user_id: pl.Expr) -> pl.Expr:
    """The id used to find a user: '042', '+42' and '42.0' all mean user 42, as ingest reads them."""
    integer = user_id.str.replace(r"^\+", "").str.replace(r"\.0*$", "").cast(pl.Int64, strict=False)
    numeric = user_id.str.contains(r"^[+-]?\d+(\.0*)?$")
    return pl.when(numeric & integer.is_not_null()).then(integer.cast(pl.Utf8)).otherwise(user_id)


def _problem(path: Path, suffix: str, error: Exception) -> str:
    """Says what is wrong with the file, with the line for CSV (found by a slow second pass that
    only runs when polars has already failed)."""
    first = str(error).splitlines()[0] if str(error) else type(error).__name__
    if isinstance(error, pl.exceptions.NoDataError):
        return "the audience is empty; expected a header line with user_id"
    if suffix != ".csv":
        return f"not a readable {suffix[1:]} file ({first})"
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        return (f"line {line}: invalid UTF-8 byte {data[e.start:e.start + 1]!r}; save the audience as UTF-8 "
                "(it looks like latin-1 or Windows-1252)")
    return csv_problem(text, ",", error)


def parse_demographics(chunk: pl.DataFrame) -> pl.DataFrame:
    """Adds age_value (float), gender_value (M/F/null) and reason (why a row cannot be used)."""
    age = pl.col("age").cast(pl.Float64, strict=False)
    gender = pl.col("gender").str.to_uppercase()
    reason = (
        pl.when(pl.col("user_id").is_null() | (pl.col("user_id") == ""))
        .then(pl.lit("missing user_id"))
        .when(pl.col("age").is_not_null() & (pl.col("age") != "") & (age.is_null() | ~age.is_finite()))
        .then(pl.format("age '{}' is not a number", pl.col("age")))
        .when(age.is_not_null() & ((age < 0) | (age > MAX_AGE)))
        .then(pl.format("age {} is outside 0-{}", pl.col("age"), pl.lit(MAX_AGE)))
        .when(pl.col("gender").is_not_null() & (pl.col("gender") != "") & ~gender.is_in(["M", "F"]))
        .then(pl.format("gender '{}' is not M or F", pl.col("gender")))
    )
    return chunk.with_columns(
        pl.when(age.is_finite()).then(age).alias("age_value"),
        pl.when(gender.is_in(["M", "F"])).then(gender).alias("gender_value"),
        pl.when(pl.col("occupation") != "").then(pl.col("occupation")).alias("occupation"),
        pl.when(pl.col("selfie") != "").then(pl.col("selfie")).alias("selfie"),
        reason.alias("reason"),
    )
