"""A generic catalog staged inside DuckDB, with memory bounded whatever the interactions file's size.

The users and items files are read with polars (they are small next to the interactions) and
checked as every reader checks its files. The interactions file is never held by Python: DuckDB
reads it (every CSV column as text, so a bad value can be named) into a TEMP table of typed
columns plus a ``problem`` code per row, in one pass, spilling to disk past its memory limit.
A row's problem is its first failed check, in the order the checks are listed below, so the
lowest code in the file, at its first row, is the error a person fixing the file needs first;
its line and raw value are then looked up in the file itself, only on that error path.

Ids: when a users (or items) file's ids are all integers they are the keys, as before. When
they are not (SKUs, UUIDs), each gets a BIGINT key 1..n in the ids' sorted order and the source's
id is kept in ``external_id``; interactions refer to users and items by the source's ids and are
joined to the keys here. The contract the rest of the product relies on: BIGINT keys in
``user_id``/``item_id`` everywhere in the warehouse, ``external_id`` beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from pipelines.errors import InputError
from pipelines.fileio import require_regular_file, storage_cause
from pipelines.readers import INTERACTION_OPTIONAL, INTERACTION_REQUIRED, generic_items, generic_users
from pipelines.tables import (
    LINE,
    SourceTable,
    check_text_start,
    csv_file_problem,
    csv_header,
    csv_record,
    read_table,
    require_header,
)
from warehouse.catalog import ITEM_COLUMNS, STAGED, USER_COLUMNS

PARSED = "staged_interactions_parsed"  # the typed rows with their problem codes; staged_interactions reads it
_INTEGER = "'\\s*[+-]?[0-9]+\\s*'"
_SQL_TYPES = {pl.Int32: "INTEGER", pl.Int64: "BIGINT", pl.Boolean: "BOOLEAN", pl.Utf8: "VARCHAR",
              pl.List(pl.Utf8): "VARCHAR[]"}
BLANK = 255  # a line whose fields are all empty: skipped, as blank lines are
MAX_TIMESTAMP = 10**11


@dataclass(frozen=True)
class InteractionsFile:
    """Where the interactions are and how DuckDB reads them; nothing of their content."""

    path: Path
    columns: list[str]  # as the file names them, in order
    separator: str | None  # None for Parquet

    @property
    def unit(self) -> str:
        return "row" if self.separator is None else "line"

    def scan(self) -> str:
        """A DuckDB table expression with the file's columns as c0, c1, ... (text for CSV)."""
        path = _literal(str(self.path))
        if self.separator is None:
            columns = ", ".join(f"CAST({_ident(c)} AS VARCHAR) AS c{i}" for i, c in enumerate(self.columns))
            return f"(SELECT {columns} FROM read_parquet({path}))"
        columns = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(self.columns)))
        # null_padding would stop DuckDB reading a file with quoted line breaks in parallel; a
        # short line is an error instead, reported with its line.
        return (f"read_csv({path}, header = true, delim = {_literal(self.separator)}, quote = '\"', escape = '\"', "
                f"auto_detect = false, strict_mode = true, encoding = 'utf-8', columns = {{{columns}}})")


@dataclass(frozen=True)
class GenericCatalog:
    """A generic catalog's users and items (read and checked) and its interactions file (opened)."""

    users: SourceTable
    user_frame: pl.DataFrame
    items: SourceTable
    item_frame: pl.DataFrame
    interactions: InteractionsFile


def open_generic(users_path: Path, items_path: Path, interactions_path: Path) -> GenericCatalog:
    """Any catalog in MovieLens' shape, as CSV or Parquet with the documented columns.

    users: user_id, [age (years or a 1M code), gender (M/F), occupation, zip]
    items: item_id, title, [genres ('|'-separated), year, any further columns -> extra]
    interactions: user_id, item_id, timestamp (unix seconds or ISO date-time), [rating, default 1]
    Ids may be integers or any text (then keyed 1..n, see the module's docstring).
    """
    users = read_table(users_path, "users file")
    items = read_table(items_path, "items file")
    interactions = open_interactions(interactions_path)
    return GenericCatalog(users, generic_users(users), items, generic_items(items), interactions)


def open_interactions(path: Path) -> InteractionsFile:
    path = require_regular_file(path, "interactions file")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            with duckdb.connect() as conn:
                described = conn.sql(f"DESCRIBE SELECT * FROM read_parquet({_literal(str(path))})").fetchall()
        except duckdb.Error as e:
            raise InputError(f"{path}: not a readable Parquet file ({_first_line(e)})") from e
        source = InteractionsFile(path, [row[0] for row in described], None)
        require_header(path, source.columns, INTERACTION_REQUIRED, INTERACTION_OPTIONAL)
        for name, kind in ((row[0], row[1]) for row in described):
            if name in (*INTERACTION_REQUIRED, *INTERACTION_OPTIONAL) and _nested(kind):
                raise InputError(f"{path}, row 1, column '{name}': the column holds {kind} values; expected "
                                 "a plain value (text or number)")
        return source
    if suffix not in (".csv", ".tsv", ".txt"):
        raise InputError(f"{path}: unknown file type '{suffix}'; expected .csv or .parquet")
    check_text_start(path)
    separator = "\t" if suffix == ".tsv" else ","
    source = InteractionsFile(path, csv_header(path, separator), separator)
    require_header(path, source.columns, INTERACTION_REQUIRED, INTERACTION_OPTIONAL)
    return source


# ---------------------------------------------------------------- staging


def stage_generic(conn: duckdb.DuckDBPyConnection, catalog: GenericCatalog) -> None:
    """Fills the staging tables (warehouse.catalog.STAGED) from the catalog, or raises an
    InputError naming the file, line and column; the warehouse's own tables are not touched."""
    users_integer = _stage_keyed(conn, "users", "user_id", catalog.users, catalog.user_frame, USER_COLUMNS)
    items_integer = _stage_keyed(conn, "items", "item_id", catalog.items, catalog.item_frame, ITEM_COLUMNS)
    _stage_interactions(conn, catalog, users_integer, items_integer)


def _stage_keyed(conn, table: str, id_column: str, source: SourceTable, frame: pl.DataFrame, columns: dict) -> bool:
    """Stages users or items; returns whether their ids are integers (else they were keyed)."""
    what = id_column.split("_")[0]
    raw = f"{STAGED[table]}_source"
    conn.register("frame", frame)
    try:
        conn.execute(f"CREATE OR REPLACE TEMP TABLE {raw} AS SELECT * FROM frame")
    finally:
        conn.unregister("frame")
    missing = conn.sql(f"SELECT min({LINE}) FROM {raw} WHERE coalesce({id_column}, '') = ''").fetchall()[0][0]
    if missing is not None:
        raise InputError(f"{source.where(missing, id_column)}: missing value; expected a {what} id")
    integer = conn.sql(
        f"SELECT coalesce(bool_and(regexp_full_match({id_column}, {_INTEGER}) "
        f"AND TRY_CAST({id_column} AS BIGINT) IS NOT NULL), true) FROM {raw}"
    ).fetchall()[0][0]
    key = f"CAST({id_column} AS BIGINT)" if integer else id_column
    duplicate = conn.sql(
        f"SELECT any_value({id_column} ORDER BY {LINE}), list({LINE} ORDER BY {LINE})[1:2] FROM {raw} "
        f"GROUP BY {key} HAVING count(*) > 1 ORDER BY min({LINE}) LIMIT 1"
    ).fetchall()
    if duplicate:
        value, (first, second) = duplicate[0]
        shown = int(value) if integer else value
        raise InputError(
            f"{source.where(second, id_column)}: duplicate {id_column} {shown} (already on {source.unit} {first}); "
            f"each {id_column} must appear once"
        )
    others = [c for c in columns if c != id_column]
    select = ", ".join(c if c in frame.columns else f"CAST(NULL AS {_SQL_TYPES[columns[c]]}) AS {c}" for c in others)
    if integer:
        keys = f"{key} AS {id_column}, CAST(NULL AS VARCHAR) AS external_id"
        conn.execute(f"CREATE OR REPLACE TEMP TABLE {STAGED[table]} AS SELECT {keys}, {select} FROM {raw}")
    else:
        # Keys 1..n in the sorted order of the source's ids on a first load. A later load keeps the
        # key of every id the warehouse already holds and numbers new ids after the largest, in
        # their sorted order: events landed but not merged yet, campaign results and models all
        # name items and users by key, so a new SKU must not shift the others.
        conn.execute(
            f"""CREATE OR REPLACE TEMP TABLE {STAGED[table]} AS
                WITH known AS (SELECT external_id, {id_column} AS old_key FROM main.{table} WHERE external_id IS NOT NULL),
                     base AS (SELECT coalesce(max(old_key), 0) AS top FROM known)
                SELECT coalesce(known.old_key, base.top + row_number() OVER (
                           PARTITION BY known.old_key IS NULL ORDER BY r.{id_column})) AS {id_column},
                       r.{id_column} AS external_id, {select}
                FROM {raw} r LEFT JOIN known ON known.external_id = r.{id_column}, base"""
        )
    if "age_is_band" in others:
        conn.execute(f"UPDATE {STAGED[table]} SET age_is_band = coalesce(age_is_band, false)")
    conn.execute(f"DROP TABLE {raw}")
    return integer


# The checks on each interaction, in the order their errors are reported (codes 1-9), then the
# ids that neither the users nor the items file has (10, 11), checked by joins afterwards.
_PROBLEMS = {
    1: ("user_id", "missing"), 2: ("user_id", "not an integer"),
    3: ("item_id", "missing"), 4: ("item_id", "not an integer"),
    5: ("rating", "missing"), 6: ("rating", "not a number"), 7: ("rating", "not finite"),
    8: ("timestamp", "not a time"), 9: ("timestamp", "out of range"),
    10: ("user_id", "unknown"), 11: ("item_id", "unknown"),
}


def _stage_interactions(conn, catalog: GenericCatalog, users_integer: bool, items_integer: bool) -> None:
    source = catalog.interactions
    position = {name: source.columns.index(name) for name in reversed(source.columns)}  # first of a repeated name

    def raw(name: str) -> str:
        return f"c{position[name]}" if name in position else "'1'"

    blank = " AND ".join(f"c{i} IS NULL" for i in range(len(source.columns))) if source.separator else "false"
    # Values are not trimmed up front (trimming every value costs more than reading the file):
    # the casts and the integer pattern allow surrounding spaces, and only a value that fails
    # them is trimmed, to tell a missing one from a bad one. Text ids are trimmed to be matched.
    user_ref = "TRY_CAST(u AS BIGINT)" if users_integer else "trim(u)"
    item_ref = "TRY_CAST(i AS BIGINT)" if items_integer else "trim(i)"
    conn.execute("SET TimeZone = 'UTC'")  # an ISO time without an offset is UTC
    try:
        conn.execute(f"""
            CREATE OR REPLACE TEMP TABLE {PARSED} AS
            SELECT {user_ref} AS user_ref, {item_ref} AS item_ref, TRY_CAST(rating AS REAL) AS rating, timestamp,
                   CAST(CASE WHEN blank THEN {BLANK}
                        WHEN {_missing('u', users_integer)} THEN 1 WHEN {_not_integer('u', users_integer)} THEN 2
                        WHEN {_missing('i', items_integer)} THEN 3 WHEN {_not_integer('i', items_integer)} THEN 4
                        WHEN r IS NULL OR (rating IS NULL AND trim(r) = '') THEN 5 WHEN rating IS NULL THEN 6
                        WHEN NOT coalesce(isfinite(TRY_CAST(rating AS REAL)), false) THEN 7
                        WHEN timestamp IS NULL THEN 8 WHEN timestamp NOT BETWEEN 0 AND {MAX_TIMESTAMP} THEN 9
                   END AS UTINYINT) AS problem
            FROM (
                SELECT *, TRY_CAST(r AS DOUBLE) AS rating,
                       CASE WHEN regexp_full_match(t, {_INTEGER}) THEN TRY_CAST(t AS BIGINT)
                            WHEN isfinite(TRY_CAST(trim(t) AS TIMESTAMPTZ))
                            THEN epoch_us(TRY_CAST(trim(t) AS TIMESTAMPTZ)) // 1000000 END AS timestamp
                FROM (SELECT {raw('user_id')} AS u, {raw('item_id')} AS i, {raw('rating')} AS r,
                             {raw('timestamp')} AS t, {blank} AS blank
                      FROM {source.scan()})
            )""")
    except duckdb.Error as e:
        if storage_cause(e) is not None:
            raise
        raise InputError(f"{source.path}: {_unreadable(source, e)}") from e
    finally:
        conn.execute("RESET TimeZone")

    n_rows = conn.sql(f"SELECT count(*) FROM {PARSED} WHERE problem IS DISTINCT FROM {BLANK}").fetchall()[0][0]
    if n_rows == 0:
        raise InputError(f"{source.path}: the file has {'a header but ' if source.separator else ''}no rows")
    found = conn.sql(
        f"SELECT problem, min(rowid), count(*) FROM {PARSED} WHERE problem IS NOT NULL AND problem <> {BLANK} "
        "GROUP BY problem ORDER BY problem LIMIT 1"
    ).fetchall()
    if not found:
        for code, table, ref, integer in ((10, "users", "user_ref", users_integer), (11, "items", "item_ref", items_integer)):
            key = f"{table[:-1]}_id" if integer else "external_id"
            unknown = conn.sql(
                f"SELECT min(p.rowid), count(*) FROM {PARSED} p ANTI JOIN {STAGED[table]} k ON p.{ref} = k.{key} "
                f"WHERE p.problem IS NULL"
            ).fetchall()[0]
            if unknown[1]:
                found = [(code, *unknown)]
                break
    if found:
        raise InputError(_problem_message(conn, catalog, *found[0], users_integer=users_integer,
                                          items_integer=items_integer))
    _stage_view(conn, users_integer, items_integer)


def _stage_view(conn, users_integer: bool, items_integer: bool) -> None:
    """staged_interactions: the parsed rows with their keys (joined when the ids are text)."""
    user = "p.user_ref" if users_integer else "u.user_id"
    item = "p.item_ref" if items_integer else "i.item_id"
    joins = ("" if users_integer else f" JOIN {STAGED['users']} u ON u.external_id = p.user_ref") + (
        "" if items_integer else f" JOIN {STAGED['items']} i ON i.external_id = p.item_ref")
    conn.execute(
        f"CREATE OR REPLACE TEMP VIEW {STAGED['interactions']} AS SELECT {user} AS user_id, {item} AS item_id, "
        f"p.rating, p.timestamp FROM {PARSED} p{joins} WHERE p.problem IS NULL"
    )


def _problem_message(conn, catalog: GenericCatalog, code: int, row: int, count: int, *,
                     users_integer: bool, items_integer: bool) -> str:
    source = catalog.interactions
    column, _ = _PROBLEMS[code]
    line, got = _raw_value(conn, source, row, column)
    where = f"{source.path}, {source.unit} {line}, column '{column}'"
    integer = users_integer if column == "user_id" else items_integer
    what = f"an integer {column.split('_')[0]} id" if integer else f"a {column.split('_')[0]} id"
    if code in (1, 3):
        return f"{where}: missing value; expected {what}"
    if code in (2, 4):
        return f"{where}: expected {what}, got {got!r}"
    if code == 5:
        return f"{where}: missing value; expected a numeric rating"
    if code == 6:
        return f"{where}: expected a numeric rating, got {got!r}"
    if code == 7:
        return f"{where}: expected a finite number"
    if code == 8:
        return f"{where}: expected unix seconds or an ISO date-time, got {got!r}"
    if code == 9:
        value = conn.sql(f"SELECT timestamp FROM {PARSED} WHERE rowid = {row}").fetchall()[0][0]
        return f"{where}: expected unix seconds (a non-negative integer), got {value}"
    known = catalog.users.path if code == 10 else catalog.items.path
    shown = int(got) if integer else got
    return (f"{where}: {column} {shown} is not in {known} "
            f"({count} interaction{'s' if count > 1 else ''} refer to unknown ids)")


def _raw_value(conn, source: InteractionsFile, row: int, column: str) -> tuple[int, str]:
    """The line (or row) of data record ``row`` and its value in ``column``, as the file has it."""
    index = source.columns.index(column) if column in source.columns else None
    if source.separator is None:
        got = None
        if index is not None:
            got = conn.sql(f"SELECT CAST(c{index} AS VARCHAR) FROM {source.scan()} LIMIT 1 OFFSET {row}").fetchall()[0][0]
        return row + 1, (got or "").strip()
    line, fields = csv_record(source.path, source.separator, row)
    return line, (fields[index] if index is not None and index < len(fields) else "").strip()


def _missing(value: str, integer: bool) -> str:
    if integer:  # only a value that is not an integer can be blank
        return f"{value} IS NULL OR (NOT regexp_full_match({value}, {_INTEGER}) AND trim({value}) = '')"
    return f"{value} IS NULL OR trim({value}) = ''"


def _not_integer(value: str, integer: bool) -> str:
    return f"NOT (regexp_full_match({value}, {_INTEGER}) AND TRY_CAST({value} AS BIGINT) IS NOT NULL)" if integer else "false"


def _unreadable(source: InteractionsFile, error: duckdb.Error) -> str:
    if source.separator is None:
        return f"not a readable Parquet file ({_first_line(error)})"
    return csv_file_problem(source.path, source.separator, error)


def _nested(kind: str) -> bool:
    return kind.endswith("]") or kind.split("(")[0] in ("STRUCT", "MAP", "UNION")


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
