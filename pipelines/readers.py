"""Readers for MovieLens 100K, MovieLens 1M and generic CSV/Parquet catalogs.

Each returns a warehouse ``Dataset`` whose ids are the source's own, so results join back to
the original files. Everything is validated here, before the warehouse is touched.
"""

from __future__ import annotations

import contextlib
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipelines.errors import InputError
from pipelines.tables import (
    LINE,
    SourceTable,
    check_allowed,
    check_known,
    check_range,
    check_unique,
    read_delimited,
    read_table,
    require_columns,
    typed,
)
from warehouse.catalog import Dataset

ML100K_FILES = ("u.data", "u.user", "u.item")
ML1M_FILES = ("ratings.dat", "users.dat", "movies.dat")
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
    "War", "Western",
)
ML1M_AGE_CODES = (1, 18, 25, 35, 45, 50, 56)
# From the ML-1M README: users.dat stores occupations as these codes.
ML1M_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)
_YEAR_IN_TITLE = r"\((\d{4})\)\s*$"


@dataclass(frozen=True)
class MovieLensSource:
    format: str  # "ml-100k" or "ml-1m"
    directory: Path


# ---------------------------------------------------------------- locating the files


@contextlib.contextmanager
def movielens_source(path: Path) -> Iterator[MovieLensSource]:
    """The MovieLens directory in ``path`` (a directory or a .zip), with its format detected."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory (expected a MovieLens directory or .zip)")
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise InputError(f"{path}: not a directory or a .zip archive")
        with tempfile.TemporaryDirectory(prefix="movielens-") as tmp:
            try:
                with zipfile.ZipFile(path) as archive:
                    archive.extractall(tmp)
            except (zipfile.BadZipFile, OSError) as e:
                raise InputError(f"{path}: the archive could not be read ({e})") from e
            yield _detect(Path(tmp), shown_as=path)
        return
    yield _detect(path, shown_as=path)


def _detect(root: Path, shown_as: Path) -> MovieLensSource:
    candidates = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    for directory in candidates:
        if (directory / "u.data").exists():
            return MovieLensSource("ml-100k", directory)
        if (directory / "ratings.dat").exists():
            return MovieLensSource("ml-1m", directory)
    found = sorted(p.name for p in root.iterdir())[:10]
    raise InputError(
        f"{shown_as}: no MovieLens data found; expected the 100K files ({', '.join(ML100K_FILES)}) or "
        f"the 1M files ({', '.join(ML1M_FILES)}); found: {', '.join(found) or 'nothing'}"
    )


def read_movielens(path: Path) -> tuple[str, Dataset]:
    with movielens_source(path) as source:
        reader = read_ml100k if source.format == "ml-100k" else read_ml1m
        return source.format, reader(source.directory)


# ---------------------------------------------------------------- MovieLens 100K


def read_ml100k(directory: Path) -> Dataset:
    users = read_delimited(directory / "u.user", "|", ["user_id", "age", "gender", "occupation", "zip"])
    genres = _ml100k_genres(directory)
    item_columns = ["item_id", "title", "release_date", "video_release_date", "url", *[f"g{i}" for i in range(len(genres))]]
    items = read_delimited(directory / "u.item", "|", item_columns, allow_latin1=True)
    ratings = read_delimited(directory / "u.data", "\t", ["user_id", "item_id", "rating", "timestamp"])

    user_frame = _users(users, age_expected="an age in years (0-120)")
    flags = [typed(items, f"g{i}", pl.Int8, "a genre flag 0 or 1") for i in range(len(genres))]
    for flag in flags:
        check_allowed(items, flag, (0, 1), "a genre flag 0 or 1")
    release_year = items.frame["release_date"].str.extract(r"(\d{4})\s*$").cast(pl.Int32, strict=False)
    title_year = items.frame["title"].str.extract(_YEAR_IN_TITLE).cast(pl.Int32, strict=False)
    item_frame = pl.DataFrame(
        {
            "item_id": typed(items, "item_id", pl.Int64, "an integer item id"),
            "title": items.frame["title"].str.strip_chars(),
            "year": release_year.fill_null(title_year),
        }
    ).with_columns(
        pl.concat_list([pl.when(flag == 1).then(pl.lit(name)) for flag, name in zip(flags, genres)])
        .list.drop_nulls()
        .alias("genres")
    )
    check_unique(items, item_frame["item_id"])
    interactions = _interactions(ratings, user_frame, item_frame, users.path, items.path, rating_scale=(1, 5))
    return Dataset(user_frame, item_frame, interactions)


def _ml100k_genres(directory: Path) -> tuple[str, ...]:
    path = directory / "u.genre"
    if not path.exists():
        return ML100K_GENRES
    table = read_delimited(path, "|", ["genre", "index"])
    index = typed(table, "index", pl.Int64, "a genre index")
    return tuple(table.frame["genre"].gather(index.arg_sort()).to_list())


# ---------------------------------------------------------------- MovieLens 1M


def read_ml1m(directory: Path) -> Dataset:
    users = read_delimited(directory / "users.dat", "::", ["user_id", "gender", "age", "occupation", "zip"])
    items = read_delimited(directory / "movies.dat", "::", ["item_id", "title", "genres"], allow_latin1=True)
    ratings = read_delimited(directory / "ratings.dat", "::", ["user_id", "item_id", "rating", "timestamp"])

    codes = typed(users, "occupation", pl.Int64, "an occupation code 0-20")
    check_range(users, codes, 0, len(ML1M_OCCUPATIONS) - 1, "an occupation code 0-20")
    users = users.with_frame(
        users.frame.with_columns(
            codes.replace_strict(list(range(len(ML1M_OCCUPATIONS))), list(ML1M_OCCUPATIONS)).alias("occupation")
        )
    )
    user_frame = _users(users, age_expected="a MovieLens 1M age code", age_codes=ML1M_AGE_CODES)
    titles = items.frame["title"].str.strip_chars()
    item_frame = pl.DataFrame(
        {
            "item_id": typed(items, "item_id", pl.Int64, "an integer item id"),
            "title": titles,
            "year": titles.str.extract(_YEAR_IN_TITLE).cast(pl.Int32, strict=False),
            "genres": _split_genres(items.frame["genres"]),
        }
    )
    check_unique(items, item_frame["item_id"])
    interactions = _interactions(ratings, user_frame, item_frame, users.path, items.path, rating_scale=(1, 5))
    return Dataset(user_frame, item_frame, interactions)


# ---------------------------------------------------------------- generic catalogs

USER_REQUIRED, USER_OPTIONAL = ["user_id"], ["age", "gender", "occupation", "zip"]
ITEM_REQUIRED, ITEM_OPTIONAL = ["item_id", "title"], ["genres", "year"]
INTERACTION_REQUIRED, INTERACTION_OPTIONAL = ["user_id", "item_id", "timestamp"], ["rating"]


def read_generic(users_path: Path, items_path: Path, interactions_path: Path) -> Dataset:
    """Any catalog in MovieLens' shape, as CSV or Parquet with the documented columns.

    users: user_id, [age (years or a 1M code), gender (M/F), occupation, zip]
    items: item_id, title, [genres ('|'-separated), year, any further columns -> extra]
    interactions: user_id, item_id, timestamp (unix seconds or ISO date-time), [rating, default 1]
    """
    users = read_table(users_path, "users file")
    items = read_table(items_path, "items file")
    events = read_table(interactions_path, "interactions file")
    require_columns(users, USER_REQUIRED, USER_OPTIONAL)
    require_columns(items, ITEM_REQUIRED, ITEM_OPTIONAL)
    require_columns(events, INTERACTION_REQUIRED, INTERACTION_OPTIONAL)

    user_frame = _users(users, age_expected="an age in years (0-120)")
    frame = items.frame
    title = typed(items, "title", pl.Utf8, "a title")
    genres = frame["genres"] if "genres" in frame.columns else pl.Series("genres", [None] * frame.height, pl.Utf8)
    genres = genres if isinstance(genres.dtype, pl.List) else _split_genres(genres)
    year = typed(items, "year", pl.Int32, "a year", required=False) if "year" in frame.columns else None
    extra_columns = [c for c in frame.columns if c not in (LINE, *ITEM_REQUIRED, *ITEM_OPTIONAL)]
    item_frame = pl.DataFrame(
        {
            "item_id": typed(items, "item_id", pl.Int64, "an integer item id"),
            "title": title,
            "year": year if year is not None else pl.Series("year", [None] * frame.height, pl.Int32),
            "genres": genres.fill_null([]),
        }
    )
    if extra_columns:
        item_frame = item_frame.with_columns(frame.select(pl.struct(extra_columns).struct.json_encode().alias("extra")))
    check_unique(items, item_frame["item_id"])
    if "rating" not in events.frame.columns:
        events = events.with_frame(events.frame.with_columns(pl.lit("1").alias("rating")))
    interactions = _interactions(events, user_frame, item_frame, users.path, items.path, rating_scale=None)
    return Dataset(user_frame, item_frame, interactions)


# ---------------------------------------------------------------- shared pieces


def _users(table: SourceTable, *, age_expected: str, age_codes: tuple[int, ...] | None = None) -> pl.DataFrame:
    frame = table.frame
    user_id = typed(table, "user_id", pl.Int64, "an integer user id")
    check_unique(table, user_id)
    columns = {"user_id": user_id}
    if "age" in frame.columns:
        age = typed(table, "age", pl.Int32, age_expected, required=age_codes is not None)
        if age_codes:
            check_allowed(table, age, age_codes, f"{age_expected} ({', '.join(map(str, age_codes))})")
        else:
            check_range(table, age, 0, 120, age_expected)
        columns["age"] = age
        columns["age_is_band"] = pl.Series([age_codes is not None] * frame.height, dtype=pl.Boolean)
    if "gender" in frame.columns:
        gender = frame["gender"].str.strip_chars().str.to_uppercase().replace("", None).alias("gender")
        check_allowed(table, gender, ("M", "F"), "gender M or F (or empty when unknown)")
        columns["gender"] = gender
    for name in ("occupation", "zip"):
        if name in frame.columns:
            columns[name] = frame[name].str.strip_chars().replace("", None).alias(name)
    return pl.DataFrame(columns)


def _split_genres(raw: pl.Series) -> pl.Series:
    return (
        raw.str.strip_chars()
        .str.split("|")
        .list.eval(pl.element().str.strip_chars().filter(pl.element() != ""))
        .alias("genres")
    )


def _interactions(
    table: SourceTable,
    users: pl.DataFrame,
    items: pl.DataFrame,
    users_path: Path,
    items_path: Path,
    *,
    rating_scale: tuple[int, int] | None,
) -> pl.DataFrame:
    user_id = typed(table, "user_id", pl.Int64, "an integer user id")
    item_id = typed(table, "item_id", pl.Int64, "an integer item id")
    if rating_scale:
        low, high = rating_scale
        rating = typed(table, "rating", pl.Int64, f"an integer rating {low}-{high}")
        check_range(table, rating, low, high, f"a rating from {low} to {high}")
    else:
        rating = typed(table, "rating", pl.Float64, "a numeric rating")
        finite = rating.is_finite()
        if not finite.all():
            line = table.frame[LINE].filter(~finite)[0]
            raise InputError(f"{table.where(line, 'rating')}: expected a finite number")
    timestamp = _timestamps(table)
    check_known(table, user_id, users["user_id"], users_path)
    check_known(table, item_id, items["item_id"], items_path)
    return pl.DataFrame(
        {"user_id": user_id, "item_id": item_id, "rating": rating.cast(pl.Float32), "timestamp": timestamp}
    )


def _timestamps(table: SourceTable) -> pl.Series:
    raw = table.frame["timestamp"].str.strip_chars()
    blank = raw.is_null() | (raw == "")
    values = raw.cast(pl.Int64, strict=False).alias("timestamp")
    if (values.is_null() & ~blank).any():
        values = values.fill_null(_parse_datetimes(raw))
    bad = values.is_null() | blank
    if bad.any():
        line, got = table.frame[LINE].filter(bad)[0], raw.filter(bad)[0]
        raise InputError(
            f"{table.where(line, 'timestamp')}: expected unix seconds or an ISO date-time, got {got!r}"
        )
    check_range(table, values, 0, 10**11, "unix seconds (a non-negative integer)")
    return values


def _parse_datetimes(raw: pl.Series) -> pl.Series:
    try:
        return raw.str.to_datetime(strict=False, time_unit="us").dt.epoch("s")
    except pl.exceptions.ComputeError:  # no common date-time format: every value stays missing
        return pl.Series([None] * raw.len(), dtype=pl.Int64)
