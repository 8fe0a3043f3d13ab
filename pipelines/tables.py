"""Source tables as strings with their line numbers, and typed columns with precise errors.

Every reader here first turns a file into a frame of string columns plus ``_line`` (the line,
or row, each record came from), then casts column by column. A failed cast is reported with
the first offending line and value, which is what a person fixing the file needs.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipelines.errors import InputError
from pipelines.fileio import require_regular_file

LINE = "_line"
_SEPARATOR_NAMES = {"\t": "tabs", "|": "'|'", "::": "'::'", ",": "commas", ";": "semicolons"}


@dataclass(frozen=True)
class SourceTable:
    """A frame of string columns plus ``_line``, and where it came from."""

    frame: pl.DataFrame
    path: Path
    unit: str = "line"  # "line" for text files, "row" for Parquet

    def where(self, line: int, column: str | None = None) -> str:
        place = f"{self.path}, {self.unit} {line}"
        return f"{place}, column '{column}'" if column else place

    def with_frame(self, frame: pl.DataFrame) -> SourceTable:
        return SourceTable(frame, self.path, self.unit)


def require_file(path: Path, what: str) -> Path:
    return require_regular_file(path, what)


def decode_text(path: Path, *, allow_latin1: bool, data: bytes | None = None) -> str:
    """UTF-8 if it is valid, else latin-1 where the format allows it (MovieLens titles are).

    ``data`` is the file's content when it was read already (a member of a zip archive);
    ``path`` then only names it in messages.
    """
    if data is None:
        data = require_file(path, "data file").read_bytes()
    if not data.strip():
        raise InputError(f"{path}: the file is empty")
    if b"\x00" in data[:65536]:
        raise InputError(
            f"{path}: the file contains NUL bytes; expected plain text (UTF-8"
            f"{' or latin-1' if allow_latin1 else ''}), not UTF-16 or a binary file"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        if allow_latin1:
            return data.decode("latin-1")
        line = data[: e.start].count(b"\n") + 1
        raise InputError(
            f"{path}, line {line}: invalid UTF-8 byte {data[e.start:e.start + 1]!r}; save the file as UTF-8"
        ) from e


def read_delimited(
    path: Path, separator: str, columns: list[str], *, allow_latin1: bool = False, data: bytes | None = None
) -> SourceTable:
    """A headerless file with a fixed number of fields per line (the MovieLens formats)."""
    text = decode_text(path, allow_latin1=allow_latin1, data=data)
    lines = pl.DataFrame({"raw": text.splitlines()}).with_row_index(LINE, offset=1)
    lines = lines.with_columns(pl.col(LINE).cast(pl.Int64)).filter(pl.col("raw").str.strip_chars() != "")
    fields = lines.with_columns(pl.col("raw").str.split(separator).alias("fields"))
    wrong = fields.filter(pl.col("fields").list.len() != len(columns))
    if wrong.height:
        line, raw, got = wrong.row(0, named=True)[LINE], wrong["raw"][0], wrong["fields"][0]
        hint = _separator_hint(raw, separator)
        raise InputError(
            f"{path}, line {line}: expected {len(columns)} fields separated by "
            f"{_SEPARATOR_NAMES.get(separator, repr(separator))} ({', '.join(columns)}), got {len(got)}{hint}"
        )
    frame = fields.select(
        pl.col(LINE), *[pl.col("fields").list.get(i).alias(name) for i, name in enumerate(columns)]
    )
    return SourceTable(frame, Path(path))


def _separator_hint(raw: str, expected: str) -> str:
    for sep, name in _SEPARATOR_NAMES.items():
        if sep != expected and sep in raw and not (sep == "|" and expected == "::"):
            return f"; the line looks separated by {name}"
    return ""


def read_table(path: Path, what: str) -> SourceTable:
    """A CSV (with header) or Parquet file, every column as strings except nested ones (lists,
    structs), which are kept as they are: genres may be a list, further item columns go to JSON."""
    path = require_file(path, what)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _read_parquet(path)
    if suffix not in (".csv", ".tsv", ".txt"):
        raise InputError(f"{path}: unknown file type '{suffix}'; expected .csv or .parquet")
    text = decode_text(path, allow_latin1=False)  # clear messages for empty, binary and non-UTF-8 files
    separator = "\t" if suffix == ".tsv" else ","
    try:
        frame = pl.read_csv(io.BytesIO(text.encode()), infer_schema=False, separator=separator)
    except pl.exceptions.PolarsError as e:
        raise InputError(f"{path}: {csv_problem(text, separator, e)}") from e
    # Line 1 is the header, so record n sits on line n + 1 unless a quoted field spans lines.
    lines = record_lines(text, separator, frame.height)
    frame = frame.with_columns(
        (pl.Series(LINE, lines, dtype=pl.Int64) if lines is not None else pl.int_range(2, frame.height + 2, dtype=pl.Int64))
        .alias(LINE)
    ).select(LINE, *frame.columns)
    frame = frame.filter(~pl.all_horizontal(pl.exclude(LINE).is_null()))  # blank lines, as in MovieLens files
    if frame.height == 0:
        raise InputError(f"{path}: the file has a header but no rows")
    return SourceTable(frame, path)


def _read_parquet(path: Path) -> SourceTable:
    try:
        frame = pl.read_parquet(path)
    except Exception as e:  # polars raises several unrelated types for a corrupt file
        raise InputError(f"{path}: not a readable Parquet file ({str(e).splitlines()[0] if str(e) else e})") from e
    columns = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Array):
            columns.append(pl.col(name).cast(pl.List(dtype.inner)))
        elif dtype.is_nested():
            columns.append(pl.col(name))
        else:
            try:
                frame.select(pl.col(name).cast(pl.Utf8))
            except pl.exceptions.PolarsError as e:
                raise InputError(f"{path}: column '{name}' of type {dtype} cannot be read as text ({e})") from e
            columns.append(pl.col(name).cast(pl.Utf8))
    frame = frame.select(columns)
    if frame.height == 0:
        raise InputError(f"{path}: the file has no rows")
    return SourceTable(frame.with_row_index(LINE, offset=1).with_columns(pl.col(LINE).cast(pl.Int64)), path, "row")


def record_lines(text: str, separator: str, n_records: int) -> list[int] | None:
    """The line on which each record starts, when quoted fields may span lines (else None)."""
    if '"' not in text:
        return None
    reader = csv.reader(io.StringIO(text), delimiter=separator)
    starts, previous = [], 0
    try:
        for _ in reader:
            starts.append(previous + 1)
            previous = reader.line_num
    except csv.Error:
        return None
    starts = starts[1:]  # the header
    return starts if len(starts) == n_records else None


def csv_problem(text: str, separator: str, error: Exception) -> str:
    """What polars could not parse, said with the line: too many fields or an unclosed quote."""
    n_lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    return _csv_problem(io.StringIO(text), n_lines, separator, error)


def csv_file_problem(path: Path, separator: str, error: Exception) -> str:
    """``csv_problem`` for a file read as a stream (a file too large to hold as text): a wrong
    number of fields, an unclosed quote, or the first byte that is not UTF-8."""
    bad_utf8 = first_invalid_utf8(path)
    if bad_utf8 is not None:
        line, byte = bad_utf8
        return f"line {line}: invalid UTF-8 byte {byte!r}; save the file as UTF-8"
    with open(path, encoding="utf-8-sig", newline="") as f:
        n_lines = sum(1 for _ in f)
    with open(path, encoding="utf-8-sig", newline="") as f:
        return _csv_problem(f, n_lines, separator, error, fewer_is_wrong=True)


def _csv_problem(stream, n_lines: int, separator: str, error: Exception, *, fewer_is_wrong: bool = False) -> str:
    reader = csv.reader(stream, delimiter=separator)
    header, previous = None, 0
    try:
        for row in reader:
            start, previous = previous + 1, reader.line_num
            if header is None:
                header = row
                continue
            if previous >= n_lines and previous > start and row and "\n" in row[-1]:
                return f"line {start}: a quoted field is never closed (unbalanced '\"'); check the quotes from this line on"
            if len(row) > len(header) or (fewer_is_wrong and row and len(row) < len(header)):
                more = len(row) > len(header)
                return (f"line {start}: {len(row)} fields, but the header has {len(header)} "
                        f"({', '.join(header)}); check for a {'stray separator or an unquoted' if more else 'missing'} "
                        f"{_SEPARATOR_NAMES.get(separator, separator)[:-1] if more else 'field'}")
    except csv.Error as e:
        return f"line {reader.line_num}: not readable as CSV ({e})"
    return f"not a readable CSV file ({str(error).splitlines()[0] if str(error) else type(error).__name__})"


def first_invalid_utf8(path: Path, chunk_bytes: int = 1 << 20) -> tuple[int, bytes] | None:
    """(line, byte) of the first byte of ``path`` that is not UTF-8, reading it in chunks."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = 1
    with open(path, "rb") as f:
        while True:
            chunk = f.read(chunk_bytes)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as e:
                # The error's position counts from the bytes the decoder held back plus this chunk.
                held = len(e.object) - len(chunk)
                at = max(e.start - held, 0)
                return lines + chunk[:at].count(b"\n"), chunk[at:at + 1] or e.object[e.start:e.start + 1]
            if not chunk:
                return None
            lines += chunk.count(b"\n")


def check_text_start(path: Path, *, probe_bytes: int = 65536) -> None:
    """The checks ``decode_text`` makes, without reading the whole file: not empty, no NUL bytes."""
    with open(path, "rb") as f:
        head = f.read(probe_bytes)
        while head and not head.strip():  # only whitespace so far: look further
            more = f.read(probe_bytes)
            if not more:
                break
            head = more
    if not head.strip():
        raise InputError(f"{path}: the file is empty")
    if b"\x00" in head:
        raise InputError(
            f"{path}: the file contains NUL bytes; expected plain text (UTF-8), not UTF-16 or a binary file"
        )


def csv_header(path: Path, separator: str) -> list[str]:
    """The first record of a CSV file: its column names."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            return next(csv.reader(f, delimiter=separator), [])
    except UnicodeDecodeError:
        line, byte = first_invalid_utf8(path) or (1, b"?")
        raise InputError(f"{path}, line {line}: invalid UTF-8 byte {byte!r}; save the file as UTF-8") from None
    except csv.Error as e:
        raise InputError(f"{path}: line 1: not readable as CSV ({e})") from e


def csv_record(path: Path, separator: str, index: int) -> tuple[int, list[str]]:
    """(line, fields) of the data record ``index`` (0-based, after the header; blank lines are
    not records, as DuckDB skips them). Reads up to it: for messages, not for loading."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=separator)
        next(reader, None)
        previous, seen = reader.line_num, -1
        for row in reader:
            start, previous = previous + 1, reader.line_num
            if not row:
                continue
            seen += 1
            if seen == index:
                return start, row
    return previous, []


def require_columns(table: SourceTable, required: list[str], optional: list[str] = ()) -> None:
    require_header(table.path, [c for c in table.frame.columns if c != LINE], required, optional)


def require_header(path: Path, present: list[str], required: list[str], optional: list[str] = ()) -> None:
    missing = [c for c in required if c not in present]
    if missing:
        raise InputError(
            f"{path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}; "
            f"expected columns {', '.join(required)} (optional: {', '.join(optional) or 'none'}), "
            f"found {', '.join(present) or 'none'}{header_separator_hint(present)}"
        )


def header_separator_hint(columns: list[str]) -> str:
    """A hint when a header came out as one column: the file uses another separator."""
    if len(columns) != 1:
        return ""
    for sep, name in _SEPARATOR_NAMES.items():
        if sep not in (",", "::") and sep in columns[0]:
            return f"; the header looks separated by {name}: save the file with commas as separators"
    return ""


def text_column(table: SourceTable, column: str, expected: str) -> pl.Series:
    """The column as strings; a nested Parquet column (lists, structs) cannot hold a scalar."""
    values = table.frame[column]
    if values.dtype != pl.Utf8:
        line = table.frame[LINE][0]
        raise InputError(
            f"{table.where(line, column)}: the column holds {values.dtype} values; expected {expected} "
            "as a plain value (text or number)"
        )
    return values


def typed(table: SourceTable, column: str, dtype: pl.DataType, expected: str, *, required: bool = True) -> pl.Series:
    """The column cast to ``dtype``; the first value that does not fit is reported with its line."""
    raw = text_column(table, column, expected).str.strip_chars()
    blank = raw.is_null() | (raw == "")
    if required and blank.any():
        line = table.frame[LINE].filter(blank)[0]
        raise InputError(f"{table.where(line, column)}: missing value; expected {expected}")
    values = raw.cast(dtype, strict=False)
    bad = values.is_null() & ~blank
    if bad.any():
        line, got = table.frame[LINE].filter(bad)[0], raw.filter(bad)[0]
        raise InputError(f"{table.where(line, column)}: expected {expected}, got {got!r}")
    return values.alias(column)


def check_range(table: SourceTable, values: pl.Series, low: float, high: float, expected: str) -> None:
    bad = values.is_not_null() & ((values < low) | (values > high))
    if bad.any():
        line, got = table.frame[LINE].filter(bad)[0], values.filter(bad)[0]
        raise InputError(f"{table.where(line, values.name)}: expected {expected}, got {got}")


def check_allowed(table: SourceTable, values: pl.Series, allowed: tuple, expected: str) -> None:
    bad = values.is_not_null() & ~values.is_in(list(allowed))
    if bad.any():
        line, got = table.frame[LINE].filter(bad)[0], values.filter(bad)[0]
        raise InputError(f"{table.where(line, values.name)}: expected {expected}, got {got!r}")


def check_unique(table: SourceTable, ids: pl.Series) -> None:
    frame = pl.DataFrame({LINE: table.frame[LINE], "id": ids})
    dupes = frame.filter(pl.col("id").is_duplicated())
    if dupes.height:
        first = dupes.group_by("id", maintain_order=True).agg(pl.col(LINE)).row(0)
        raise InputError(
            f"{table.where(first[1][1], ids.name)}: duplicate {ids.name} {first[0]} "
            f"(already on {table.unit} {first[1][0]}); each {ids.name} must appear once"
        )


def check_known(table: SourceTable, ids: pl.Series, known: pl.Series, known_path: Path) -> None:
    unknown = ~ids.is_in(known.implode())
    if unknown.any():
        line, got = table.frame[LINE].filter(unknown)[0], ids.filter(unknown)[0]
        raise InputError(
            f"{table.where(line, ids.name)}: {ids.name} {got} is not in {known_path} "
            f"({unknown.sum()} interaction{'s' if unknown.sum() > 1 else ''} refer to unknown ids)"
        )
