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
from recsys.age_bands import MAX_AGE

OPTIONAL_COLUMNS = ("age", "gender", "occupation", "selfie")
ROW = "_row"  # 1-based record number in the audience file (CSV line = row + 1)


def audience_batches(path: Path, chunk_size: int) -> Iterator[pl.DataFrame]:
    """Chunks with columns _row, user_id, age, gender, occupation, selfie (all as strings)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: audience file not found")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        scan = pl.scan_parquet(path)
    elif suffix == ".csv":
        scan = pl.scan_csv(path, infer_schema=False)
    else:
        raise InputError(f"{path}: unknown audience format '{suffix}'; expected .csv or .parquet")
    try:
        columns = scan.collect_schema().names()
    except (pl.exceptions.ComputeError, OSError) as e:
        raise InputError(f"{path}: not a readable {suffix[1:]} file ({str(e).splitlines()[0]})") from e
    if "user_id" not in columns:
        raise InputError(
            f"{path}: missing column 'user_id'; expected user_id and optionally {', '.join(OPTIONAL_COLUMNS)} "
            f"(found {', '.join(columns) or 'none'})"
        )
    selected = [
        (pl.col(c).cast(pl.Utf8) if c in columns else pl.lit(None, pl.Utf8)).str.strip_chars().alias(c)
        for c in ("user_id", *OPTIONAL_COLUMNS)
    ]
    seen_rows = 0
    for chunk in scan.select(selected).collect_batches(chunk_size=chunk_size):
        yield chunk.with_row_index(ROW, offset=seen_rows + 1).with_columns(pl.col(ROW).cast(pl.Int64))
        seen_rows += chunk.height
    if seen_rows == 0:
        raise InputError(f"{path}: the audience is empty")


def parse_demographics(chunk: pl.DataFrame) -> pl.DataFrame:
    """Adds age_value (float), gender_value (M/F/null) and reason (why a row cannot be used)."""
    age = pl.col("age").cast(pl.Float64, strict=False)
    gender = pl.col("gender").str.to_uppercase()
    reason = (
        pl.when(pl.col("user_id").is_null() | (pl.col("user_id") == ""))
        .then(pl.lit("missing user_id"))
        .when(pl.col("age").is_not_null() & (pl.col("age") != "") & age.is_null())
        .then(pl.format("age '{}' is not a number", pl.col("age")))
        .when(age.is_not_null() & ((age < 0) | (age > MAX_AGE)))
        .then(pl.format("age {} is outside 0-{}", pl.col("age"), pl.lit(MAX_AGE)))
        .when(pl.col("gender").is_not_null() & (pl.col("gender") != "") & ~gender.is_in(["M", "F"]))
        .then(pl.format("gender '{}' is not M or F", pl.col("gender")))
    )
    return chunk.with_columns(
        age.alias("age_value"),
        pl.when(gender.is_in(["M", "F"])).then(gender).alias("gender_value"),
        pl.when(pl.col("occupation") != "").then(pl.col("occupation")).alias("occupation"),
        pl.when(pl.col("selfie") != "").then(pl.col("selfie")).alias("selfie"),
        reason.alias("reason"),
    )
