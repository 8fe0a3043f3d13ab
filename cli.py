"""Command line for the selfie recommender.

Each command parses its options, calls one pipeline function and renders the result. Heavy
imports (polars, DuckDB, TensorFlow, MLflow) happen inside the commands, so `--help` is
instant. Domain errors become one clear message and exit code 1; usage errors exit 2.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from pathlib import Path

import click

from pipelines.errors import InputError
from warehouse.errors import WarehouseError

REPO_ROOT = Path(__file__).resolve().parent
USER_ERRORS: tuple[type[Exception], ...] = (InputError, WarehouseError)


class Group(click.Group):
    """Turns the errors a user can fix into one line on stderr instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except USER_ERRORS as e:
            raise click.ClickException(str(e)) from e


def home_option(f):
    @click.option(
        "--home",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="RECSYS_HOME",
        default=REPO_ROOT,
        show_default="the repository root",
        help="Directory holding warehouse/ and mlruns/ (env RECSYS_HOME). One home per dataset.",
    )
    @click.option(
        "--lock-timeout",
        type=click.FloatRange(min=0),
        default=30.0,
        show_default=True,
        help="Seconds to wait while another process holds the warehouse.",
    )
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        return f(*args, **kwargs)

    return wrapper


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of tables.")


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """Recommendations for people we have never seen: a selfie gives age and gender, a
    two-tower model turns them into a top-10 list.

    Example:

    \b
        python cli.py ingest movielens ../shared/data/ml-100k
        python cli.py stats
    """
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


# ---------------------------------------------------------------- ingest


@cli.group(cls=Group)
def ingest() -> None:
    """Load a dataset into the warehouse (replacing what the home held).

    Example:

    \b
        python cli.py ingest movielens ../shared/data/ml-100k
        python cli.py ingest movielens --download 100k
        python cli.py ingest csv --users u.csv --items i.csv --interactions r.csv
    """


@ingest.command("movielens")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--download", type=click.Choice(["100k", "1m"]), help="Fetch this release from GroupLens (MD5-checked).")
@home_option
@json_option
def ingest_movielens_command(path: Path | None, download: str | None, home: Path, lock_timeout: float, as_json: bool) -> None:
    """Load MovieLens 100K or 1M from a directory or .zip (format detected).

    Example:

    \b
        python cli.py ingest movielens ../shared/data/ml-100k
        python cli.py ingest movielens ml-1m.zip --home homes/ml1m
    """
    from pipelines.download import download_movielens
    from pipelines.ingest import ingest_movielens

    if (path is None) == (download is None):
        raise click.UsageError("give either PATH or --download (not both)")
    if download:
        path = download_movielens(download, home / "downloads", show_progress=not as_json)
    fmt, summary = ingest_movielens(home, path, lock_timeout_s=lock_timeout)
    _report_load(summary, fmt, as_json)


@ingest.command("csv")
@click.option("--users", required=True, type=click.Path(path_type=Path), help="user_id, [age, gender, occupation, zip]")
@click.option("--items", required=True, type=click.Path(path_type=Path), help="item_id, title, [genres a|b, year, ...]")
@click.option(
    "--interactions", required=True, type=click.Path(path_type=Path), help="user_id, item_id, timestamp, [rating]"
)
@home_option
@json_option
def ingest_csv_command(users: Path, items: Path, interactions: Path, home: Path, lock_timeout: float, as_json: bool) -> None:
    """Load any catalog in MovieLens' shape from CSV or Parquet files.

    Columns (extra item columns are kept as JSON in items.extra): users: user_id, and
    optionally age (years or a MovieLens 1M code), gender (M/F), occupation, zip. items:
    item_id, title, and optionally genres ('|'-separated), year. interactions: user_id,
    item_id, timestamp (unix seconds or ISO date-time), and optionally rating (default 1).

    Example:

    \b
        python cli.py ingest csv --users users.csv --items products.parquet --interactions orders.csv
    """
    from pipelines.ingest import ingest_generic

    summary = ingest_generic(home, users, items, interactions, lock_timeout_s=lock_timeout)
    _report_load(summary, "generic", as_json)


def _report_load(summary, fmt: str, as_json: bool) -> None:
    from dataclasses import asdict

    if as_json:
        click.echo(json.dumps({"format": fmt, **asdict(summary)}))
        return
    state = "already loaded, nothing changed" if summary.unchanged else "loaded"
    click.echo(
        f"{fmt}: {state}: {summary.n_users:,} users, {summary.n_items:,} items, "
        f"{summary.n_interactions:,} interactions (snapshot {summary.snapshot_id})"
    )


# ---------------------------------------------------------------- stats


@cli.command()
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True, help="How many top items to list.")
@home_option
@json_option
def stats(top: int, home: Path, lock_timeout: float, as_json: bool) -> None:
    """Counts, rating distribution, users by age band and gender, top items.

    Example:

    \b
        python cli.py stats --top 5
    """
    from pipelines.stats import warehouse_stats

    result = warehouse_stats(home, lock_timeout_s=lock_timeout, top=top)
    if as_json:
        click.echo(json.dumps(_jsonable(result), default=str))
        return
    counts, load = result["counts"], result["latest_load"]
    click.echo(
        f"{counts['users']:,} users, {counts['items']:,} items, {counts['interactions']:,} interactions"
        + (f"  (from {load['format']}, snapshot {load['snapshot_id']}, loaded {load['loaded_at']:%Y-%m-%d %H:%M})" if load else "")
    )
    print_table(result["ratings"], "Ratings")
    print_table(result["users_by_age_band_gender"], "Users by age band and gender")
    print_table(result["top_items"], f"Top {top} items by number of ratings")


# ---------------------------------------------------------------- rendering


def _jsonable(value):
    import polars as pl

    if isinstance(value, pl.DataFrame):
        return value.to_dicts()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def print_table(frame, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name, dtype in frame.schema.items():
        table.add_column(name, justify="right" if dtype.is_numeric() else "left")
    for row in frame.iter_rows():
        table.add_row(*[_cell(v) for v in row])
    Console().print(table)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


if __name__ == "__main__":
    cli(prog_name="python cli.py")
