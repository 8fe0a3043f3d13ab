"""Readers for MovieLens 100K, MovieLens 1M and generic CSV/Parquet catalogs.

The MovieLens readers return a warehouse ``Dataset`` whose ids are the source's own, so results
join back to the original files. Everything is validated here, before the warehouse is touched.
A generic catalog's users and items are read here too; its interactions are read by DuckDB
(pipelines.staging), so their size does not bound what can be loaded.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import polars as pl

from pipelines.errors import InputError
from pipelines.fileio import require_regular_file
from pipelines.tables import (
    LINE,
    SourceTable,
    check_allowed,
    check_known,
    check_range,
    check_unique,
    read_delimited,
    require_columns,
    text_column,
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


# Limits on a MovieLens .zip before anything is extracted: the official 1M archive holds 25 MB
# of text at a ratio of about 4, while a zip bomb packs gigabytes of zeros at ratios of 1000.
MAX_UNCOMPRESSED_BYTES = 512 * 2**20
MAX_COMPRESSION_RATIO = 100
# Files a MovieLens reader may open; nothing else in an archive is extracted.
_WANTED = {*ML100K_FILES, *ML1M_FILES, "u.genre", "u.info", "README"}
# The counts of the official releases (GroupLens' README and u.info), to recognise a short copy.
OFFICIAL_COUNTS = {
    "ml-100k": {"users": 943, "items": 1682, "ratings": 100_000},
    "ml-1m": {"users": 6040, "items": 3883, "ratings": 1_000_209},
}


@dataclass(frozen=True)
class MovieLensSource:
    """The files of one MovieLens release, from a directory or read (in memory) from a .zip."""

    format: str  # "ml-100k" or "ml-1m"
    directory: Path  # where the files are, or (for a zip) the archive path plus the folder inside
    members: dict[str, bytes] | None = None  # a zip's files by name; None for a directory

    def has(self, name: str) -> bool:
        return name in self.members if self.members is not None else (self.directory / name).exists()

    def data(self, name: str) -> bytes | None:
        """The file's bytes when they came from a zip; None means: read the path."""
        return None if self.members is None else self.members.get(name)

    def path(self, name: str) -> Path:
        return self.directory / name


# ---------------------------------------------------------------- locating the files


@contextlib.contextmanager
def movielens_source(path: Path) -> Iterator[MovieLensSource]:
    """The MovieLens files in ``path`` (a directory or a .zip), with their format detected."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory (expected a MovieLens directory or .zip)")
    if path.is_dir():
        yield _detect(path, shown_as=path)
        return
    require_regular_file(path, "MovieLens directory or .zip")
    if not zipfile.is_zipfile(path):
        raise InputError(f"{path}: not a directory or a .zip archive")
    yield _from_zip(path)


def _from_zip(path: Path) -> MovieLensSource:
    try:
        with zipfile.ZipFile(path) as archive:
            infos = [i for i in archive.infolist() if not i.is_dir() and PurePosixPath(i.filename).name in _WANTED]
            _check_archive_sizes(path, infos)
            members = {}
            for info in infos:
                with archive.open(info) as member:
                    data = member.read(info.file_size + 1)
                if len(data) != info.file_size:
                    raise InputError(f"{path}: member {info.filename} is not the size its header declares; the archive is damaged")
                members[info.filename] = data
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
        raise InputError(f"{path}: the archive is damaged or unsupported ({e}); download it again") from e
    except OSError as e:
        raise InputError(f"{path}: the archive could not be read ({e.strerror or e})") from e
    folders = sorted({str(PurePosixPath(name).parent) for name in members}, key=lambda f: (f.count("/"), f))
    for folder in folders:
        inside = {PurePosixPath(n).name: d for n, d in members.items() if str(PurePosixPath(n).parent) == folder}
        fmt = "ml-100k" if "u.data" in inside else "ml-1m" if "ratings.dat" in inside else None
        if fmt:
            shown = path if folder == "." else path / folder
            return MovieLensSource(fmt, shown, inside)
    raise InputError(
        f"{path}: no MovieLens data found; expected the 100K files ({', '.join(ML100K_FILES)}) or "
        f"the 1M files ({', '.join(ML1M_FILES)}) in the archive"
    )


def _check_archive_sizes(path: Path, infos: list[zipfile.ZipInfo]) -> None:
    """Refuses archives that would inflate beyond reason, before a byte is decompressed."""
    total = sum(i.file_size for i in infos)
    if total > MAX_UNCOMPRESSED_BYTES:
        raise InputError(
            f"{path}: the MovieLens files would take {total:,} bytes uncompressed; expected at most "
            f"{MAX_UNCOMPRESSED_BYTES:,} (MovieLens 1M takes 25 MB). Not extracted"
        )
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > MAX_COMPRESSION_RATIO:
            raise InputError(
                f"{path}: member {info.filename} would inflate {ratio:,.0f} times ({info.compress_size:,} -> "
                f"{info.file_size:,} bytes); expected at most {MAX_COMPRESSION_RATIO} for text. Not extracted "
                "(a zip bomb?)"
            )


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


def read_movielens(path: Path, *, allow_partial: bool = False) -> tuple[str, Dataset]:
    with movielens_source(path) as source:
        reader = read_ml100k if source.format == "ml-100k" else read_ml1m
        dataset = reader(source)
        if not allow_partial:
            check_complete(source, dataset)
        return source.format, dataset


def check_complete(source: MovieLensSource, dataset: Dataset) -> None:
    """Refuses a short copy of an official release: counts below what u.info declares, or the
    official users and items files with fewer ratings than the release has."""
    found = {"users": dataset.users.height, "items": dataset.items.height, "ratings": dataset.interactions.height}
    declared = _declared_counts(source)
    official = OFFICIAL_COUNTS[source.format]
    if declared is None and (found["users"], found["items"]) == (official["users"], official["items"]):
        declared, where = official, f"the official {source.format} release"
    else:
        where = f"{source.path('u.info')}"
    if declared is None:
        return
    short = [f"{found[k]:,} {k} where {where} has {declared[k]:,}" for k in declared if found[k] != declared[k]]
    if short:
        raise InputError(
            f"{source.directory}: an incomplete copy of MovieLens ({'; '.join(short)}); the files may have been "
            "cut off while copying. Copy them again, or load them as they are with --allow-partial"
        )


def _declared_counts(source: MovieLensSource) -> dict[str, int] | None:
    """u.info's counts ("943 users", "1682 items", "100000 ratings"), when the copy has one."""
    if source.format != "ml-100k" or not source.has("u.info"):
        return None
    raw = source.data("u.info")
    text = (raw if raw is not None else source.path("u.info").read_bytes()).decode("latin-1")
    counts = {}
    for line in text.splitlines():
        match = re.fullmatch(r"\s*(\d+)\s+(users|items|ratings)\s*", line)
        if match:
            counts[match[2]] = int(match[1])
    return counts if len(counts) == 3 else None


# ---------------------------------------------------------------- MovieLens 100K


def _read(source: MovieLensSource, name: str, separator: str, columns: list[str], **kwargs) -> SourceTable:
    return read_delimited(source.path(name), separator, columns, data=source.data(name), **kwargs)


def read_ml100k(source: MovieLensSource | Path) -> Dataset:
    if not isinstance(source, MovieLensSource):
        source = MovieLensSource("ml-100k", Path(source))
    users = _read(source, "u.user", "|", ["user_id", "age", "gender", "occupation", "zip"])
    genres = _ml100k_genres(source)
    item_columns = ["item_id", "title", "release_date", "video_release_date", "url", *[f"g{i}" for i in range(len(genres))]]
    items = _read(source, "u.item", "|", item_columns, allow_latin1=True)
    ratings = _read(source, "u.data", "\t", ["user_id", "item_id", "rating", "timestamp"])

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


def _ml100k_genres(source: MovieLensSource) -> tuple[str, ...]:
    if not source.has("u.genre"):
        return ML100K_GENRES
    table = _read(source, "u.genre", "|", ["genre", "index"])
    index = typed(table, "index", pl.Int64, "a genre index")
    return tuple(table.frame["genre"].gather(index.arg_sort()).to_list())


# ---------------------------------------------------------------- MovieLens 1M


def read_ml1m(source: MovieLensSource | Path) -> Dataset:
    if not isinstance(source, MovieLensSource):
        source = MovieLensSource("ml-1m", Path(source))
    users = _read(source, "users.dat", "::", ["user_id", "gender", "age", "occupation", "zip"])
    items = _read(source, "movies.dat", "::", ["item_id", "title", "genres"], allow_latin1=True)
    ratings = _read(source, "ratings.dat", "::", ["user_id", "item_id", "rating", "timestamp"])

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


def generic_users(users: SourceTable) -> pl.DataFrame:
    """A generic users file's columns, typed; ``user_id`` stays text (``_line`` beside it): the
    ids are checked, and keyed when they are not integers, in SQL (pipelines.staging)."""
    require_columns(users, USER_REQUIRED, USER_OPTIONAL)
    frame = _users(users, age_expected="an age in years (0-120)", ids_as_text=True)
    return frame.with_columns(users.frame[LINE])


def generic_items(items: SourceTable) -> pl.DataFrame:
    """A generic items file's columns, typed (further columns as JSON in ``extra``); ``item_id``
    stays text, as in ``generic_users``."""
    require_columns(items, ITEM_REQUIRED, ITEM_OPTIONAL)
    frame = items.frame
    title = typed(items, "title", pl.Utf8, "a title")
    genres = frame["genres"] if "genres" in frame.columns else pl.Series("genres", [None] * frame.height, pl.Utf8)
    if isinstance(genres.dtype, pl.List) and not genres.dtype.inner.is_nested():
        genres = genres.cast(pl.List(pl.Utf8))
    elif "genres" not in frame.columns:
        genres = genres.cast(pl.List(pl.Utf8))
    else:
        genres = _split_genres(text_column(items, "genres", "genres as 'a|b|c' or a list of names"))
    year = typed(items, "year", pl.Int32, "a year", required=False) if "year" in frame.columns else None
    extra_columns = [c for c in frame.columns if c not in (LINE, *ITEM_REQUIRED, *ITEM_OPTIONAL)]
    item_frame = pl.DataFrame(
        {
            LINE: frame[LINE],
            "item_id": text_column(items, "item_id", "an item id").str.strip_chars(),
            "title": title,
            "year": year if year is not None else pl.Series("year", [None] * frame.height, pl.Int32),
            "genres": genres.fill_null([]),
        }
    )
    extra = frame.select(pl.struct(extra_columns).struct.json_encode().alias("extra")) if extra_columns else None
    return item_frame.with_columns(extra["extra"] if extra is not None else pl.lit(None, pl.Utf8).alias("extra"))


# ---------------------------------------------------------------- shared pieces


def _users(
    table: SourceTable, *, age_expected: str, age_codes: tuple[int, ...] | None = None, ids_as_text: bool = False
) -> pl.DataFrame:
    frame = table.frame
    if ids_as_text:
        user_id = text_column(table, "user_id", "a user id").str.strip_chars()
    else:
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
        gender = text_column(table, "gender", "gender M or F").str.strip_chars().str.to_uppercase().replace("", None).alias("gender")
        check_allowed(table, gender, ("M", "F"), "gender M or F (or empty when unknown)")
        columns["gender"] = gender
    for name in ("occupation", "zip"):
        if name in frame.columns:
            columns[name] = text_column(table, name, f"an {name}").str.strip_chars().replace("", None).alias(name)
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
    raw = text_column(table, "timestamp", "unix seconds or an ISO date-time").str.strip_chars()
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
    """Unix seconds for ISO date-times; naive ones are taken as UTC, 'Z' and offsets are honoured,
    and a column may mix them (polars infers one format from the first value, so the values that
    format misses are parsed one distinct value at a time)."""
    try:
        fast = raw.str.to_datetime(strict=False, time_unit="us")
        fast = (fast.dt.convert_time_zone("UTC") if fast.dtype.time_zone else fast).dt.epoch("s")
    except pl.exceptions.PolarsError:  # no common date-time format
        fast = pl.Series([None] * raw.len(), dtype=pl.Int64)
    missing = fast.is_null() & raw.is_not_null() & (raw != "")
    if not missing.any():
        return fast
    distinct = raw.filter(missing).unique().to_list()
    parsed = {value: _iso_seconds(value) for value in distinct}
    slow = raw.replace_strict(list(parsed), list(parsed.values()), default=None, return_dtype=pl.Int64)
    return fast.fill_null(slow)


def _iso_seconds(value: str) -> int | None:
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return int(moment.timestamp())
