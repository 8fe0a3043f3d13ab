"""Command line for the selfie recommender.

Each command parses its options, calls one pipeline function and renders the result. Heavy
imports (polars, DuckDB, TensorFlow, MLflow) happen inside the commands, so `--help` is
instant. Domain errors become one clear message and exit code 1; usage errors exit 2.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import click

from pipelines.errors import BrokenBundle, InputError
from warehouse.errors import WarehouseError

REPO_ROOT = Path(__file__).resolve().parent
USER_ERRORS: tuple[type[Exception], ...] = (InputError, WarehouseError, BrokenBundle)


def default_home() -> Path:
    """The repository root when cli.py runs from a source checkout, else the current directory.

    After a regular install cli.py lies in site-packages, which must never become a home.
    """
    if (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "pipelines").is_dir():
        return REPO_ROOT
    return Path.cwd()


class Group(click.Group):
    """Turns the errors a user can fix into one line on stderr (a JSON object on stdout under
    --json) instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except USER_ERRORS as e:
            if ctx.meta.get("as_json"):
                click.echo(json.dumps({"error": str(e), "error_type": type(e).__name__}))
                ctx.exit(1)
            raise click.ClickException(str(e)) from e
        except BaseException as e:
            if type(e).__name__ != "Terminated":  # pipelines.fileio.Terminated, not imported for --help
                raise
            click.echo("Error: terminated (SIGTERM); temporary files were removed", err=True)
            ctx.exit(143)


class FiniteFloatRange(click.FloatRange):
    """A FloatRange that also refuses nan (which compares false with both bounds) and inf."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if number is not None and not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def home_option(f):
    @click.option(
        "--home",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="RECSYS_HOME",
        default=default_home,
        show_default="the repository root when run from it, else the current directory",
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


def _remember_json(ctx: click.Context, _param, value: bool) -> bool:
    # ctx.meta is shared by the whole command chain: the group's error handler reads it.
    ctx.meta["as_json"] = value
    return value


json_option = click.option("--json", "as_json", is_flag=True, callback=_remember_json,
                           help="Print JSON for scripts instead of tables (errors too, as {\"error\": ...}).")


def _print_version(ctx: click.Context, _param, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        number = version("selfie-recsys")
    except PackageNotFoundError:  # run from a checkout that was never installed
        import tomllib

        number = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    click.echo(f"selfie-recsys {number}")
    ctx.exit()


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Print the program's version and exit.")
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
    if os.environ.get("RECSYS_FAULT_POINT"):  # for the fault-injection tests only
        from pipelines.fileio import arm_fault_point

        arm_fault_point(os.environ["RECSYS_FAULT_POINT"])


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
@click.option("--allow-partial", is_flag=True, help="Load a copy with fewer users, items or ratings than the release declares.")
@home_option
@json_option
def ingest_movielens_command(path: Path | None, download: str | None, allow_partial: bool, home: Path, lock_timeout: float, as_json: bool) -> None:
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
    fmt, summary = ingest_movielens(home, path, lock_timeout_s=lock_timeout, allow_partial=allow_partial)
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
    Ids may be integers or any text (SKUs, UUIDs): text ids get keys 1..n in their sorted
    order, and the source's id is kept as external_id. DuckDB reads the interactions file
    itself, so memory stays bounded whatever its size.

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


# ---------------------------------------------------------------- train, models, evaluate


@cli.command()
@click.option("--config", "config_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="A TOML file of settings (see --show-config); options given here override it.")
@click.option("--show-config", is_flag=True, help="Print every setting with its value (TOML) and exit.")
@click.option("--epochs", type=click.IntRange(min=1), help="Training epochs (default from TrainConfig).")
@click.option("--batch-size", type=click.IntRange(min=2), help="Batch size = number of in-batch negatives.")
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True))
@click.option("--user-id-dropout", type=click.FloatRange(0, 1, max_open=True), help="Share of examples trained without the user id (cold start).")
@click.option("--logq/--no-logq", default=None, help="Popularity (logQ) correction of the in-batch softmax.")
@click.option("--seed", type=int, help="Seed for initialisation and shuffling (the evaluation split is fixed by the data).")
@click.option("--promote", is_flag=True, help="Make this version champion even if it does not beat the current one.")
@home_option
@json_option
def train(config_file, show_config, epochs, batch_size, learning_rate, user_id_dropout, logq, seed, promote, home, lock_timeout, as_json) -> None:
    """Train, evaluate (cold start and warm), log to MLflow and register a model version.

    The new version becomes champion only if it beats the champion on cold-start NDCG@10
    beyond noise (paired bootstrap over the same users) without losing warm or few-shot
    quality beyond noise, unless --promote is given. The rule and its reason are printed.

    Example:

    \b
        python cli.py train
        python cli.py train --show-config > my.toml && python cli.py train --config my.toml
        python cli.py train --epochs 12 --no-logq --promote
    """
    from recsys.config import TrainConfig

    try:
        config = TrainConfig.from_toml(config_file) if config_file else TrainConfig()
        changes = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
                   "user_id_dropout": user_id_dropout, "logq_correction": logq, "seed": seed}
        config = config.with_changes(**{k: v for k, v in changes.items() if v is not None})
    except (ValueError, OSError) as e:
        raise InputError(str(e)) from e
    if show_config:
        click.echo(config.to_toml(), nl=False)
        return
    from pipelines.train import train as train_pipeline

    outcome = train_pipeline(home, config, force_promote=promote, show_progress=not as_json, lock_timeout_s=lock_timeout)
    if as_json:
        click.echo(json.dumps({
            "model_version": outcome.model_version, "mlflow_run_id": outcome.run_id, "run_name": outcome.run_name,
            "promoted": outcome.promoted, "reason": outcome.reason, "comparisons": outcome.comparisons,
            "warnings": outcome.warnings, "adjustments": outcome.adjustments, "metrics": outcome.metrics,
            "baselines": outcome.baselines, "config": outcome.config, "bundle_path": str(outcome.bundle_path),
            "seconds": outcome.seconds,
        }))
        return
    from pipelines.models import comparison_table

    for note in outcome.adjustments:
        click.echo(f"note: {note}")
    print_table(comparison_table(outcome.metrics, outcome.baselines, f"model v{outcome.model_version}"), "Evaluation (same split for all)")
    for warning in outcome.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    click.echo(f"model v{outcome.model_version} registered as '{outcome.run_name}' (MLflow run {outcome.run_id[:12]}) in {outcome.seconds:.1f} s")
    click.echo(("champion: " if outcome.promoted else "not promoted: ") + outcome.reason)


@cli.group(cls=Group)
def models() -> None:
    """List, compare, promote and repair model versions.

    Example:

    \b
        python cli.py models list
        python cli.py models compare 1 2
        python cli.py models promote 3 --reason "better warm lists, cold start tied"
        python cli.py models repair --dry-run
    """


@models.command("list")
@home_option
@json_option
def models_list(home: Path, lock_timeout: float, as_json: bool) -> None:
    """Every model version: status, seed, key settings, data snapshot, metrics, why (not) champion.

    A version marked "(stale)" was trained on another data snapshot than the warehouse holds.

    Example:

    \b
        python cli.py models list --json
    """
    from pipelines.models import SUMMARY_METRICS, model_versions
    from warehouse.model_versions import versions_frame

    versions = model_versions(home, lock_timeout_s=lock_timeout)
    if as_json:
        from dataclasses import asdict

        rows = []
        for v in versions:
            row = asdict(v)
            row = {"model_version": row.pop("version"), **row, "stale": v.stale}
            rows.append(row)
        click.echo(json.dumps(rows, default=str))
    elif not versions:
        click.echo("no model versions yet; run `python cli.py train`")
    else:
        print_table(versions_frame(versions, SUMMARY_METRICS), "Model versions")


@models.command("promote")
@click.argument("version", type=int)
@click.option("--reason", help="Why, in words: stored with the version and tagged on its MLflow run.")
@home_option
@json_option
def models_promote(version: int, reason: str | None, home: Path, lock_timeout: float, as_json: bool) -> None:
    """Make VERSION the champion (in DuckDB and as the MLflow alias 'champion').

    Refused when the version's bundle is missing, broken, or trained on other data; warns
    when it loses to a baseline or to the current champion beyond noise.

    Example:

    \b
        python cli.py models promote 2 --reason "warm NDCG +0.01, cold start tied"
    """
    from dataclasses import asdict

    from pipelines.models import promote

    promoted = promote(home, version, reason=reason, lock_timeout_s=lock_timeout)
    if as_json:
        click.echo(json.dumps(asdict(promoted)))
        return
    for warning in promoted.warnings:
        click.secho(f"warning: {warning}", fg="yellow", err=True)
    click.echo(f"model v{promoted.model_version} is now champion ({promoted.reason})")


@models.command("compare")
@click.argument("a", type=int)
@click.argument("b", type=int)
@home_option
@json_option
def models_compare(a: int, b: int, home: Path, lock_timeout: float, as_json: bool) -> None:
    """Compare versions A and B on the same users: B - A per protocol with a 95% interval
    (paired bootstrap), every logged metric, and the settings that differ.

    Example:

    \b
        python cli.py models compare 1 2
    """
    from pipelines.models import compare, comparison_json, differences_frame

    comparison = compare(home, a, b, lock_timeout_s=lock_timeout)
    if as_json:
        click.echo(json.dumps(comparison_json(comparison)))
        return
    print_table(differences_frame(comparison.differences).rename({"A": f"v{a}", "B": f"v{b}", "B - A": f"v{b} - v{a}"}),
                f"NDCG@10 per user, v{b} vs v{a} (data snapshot {comparison.data_snapshot})")
    print_table(comparison.metrics, "Logged metrics")
    if comparison.settings.height:
        print_table(comparison.settings, "Settings that differ")
    else:
        click.echo("same settings")


@models.command("repair")
@click.option("--dry-run", is_flag=True, help="Only list what would be done.")
@home_option
@json_option
def models_repair(dry_run: bool, home: Path, lock_timeout: float, as_json: bool) -> None:
    """Remove what an interrupted train left: registry versions the warehouse does not know,
    orphan bundles and .incoming-* folders, runs stuck in RUNNING; realign the champion alias.

    Example:

    \b
        python cli.py models repair --dry-run
    """
    from dataclasses import asdict

    from pipelines.repair import repair

    findings = repair(home, dry_run=dry_run, lock_timeout_s=lock_timeout)
    if as_json:
        click.echo(json.dumps([asdict(f) for f in findings]))
    elif not findings:
        click.echo("nothing to repair: registry, bundles and warehouse agree")
    else:
        for f in findings:
            click.echo(f"{f.kind}: {f.what}: {f.action}")


@cli.command()
@click.option("--version", "version", type=int, help="Model version (default: the champion).")
@home_option
@json_option
def evaluate(version: int | None, home: Path, lock_timeout: float, as_json: bool) -> None:
    """Show a version's evaluation beside the baselines computed on the same split.

    Example:

    \b
        python cli.py evaluate --version 2
    """
    from pipelines.models import evaluation_table

    chosen, table = evaluation_table(home, version, lock_timeout_s=lock_timeout)
    if as_json:
        click.echo(json.dumps({"model_version": chosen.version, "status": chosen.status, "rows": table.to_dicts()}))
        return
    print_table(table, f"Model v{chosen.version} ({chosen.status}) vs baselines, data snapshot {chosen.data_snapshot}")


# ---------------------------------------------------------------- recommend


@cli.command()
@click.option("--age", type=FiniteFloatRange(0, 120), help="Age in years (or a MovieLens 1M code).")
@click.option("--gender", type=click.Choice(["M", "F"], case_sensitive=False), help="M or F; leave out if unknown.")
@click.option("--occupation", help="Occupation, as in the training data (e.g. writer).")
@click.option("--user-id", help="A known user (their id as the catalog spells it: 42, SKU-7, a UUID): "
                                "recommendations from their history, seen items excluded.")
@click.option("--selfie", type=click.Path(dir_okay=False, path_type=Path), help="A photo: age and gender are estimated from the face (the photo is never stored).")
@click.option("--all-faces", is_flag=True, help="With --selfie: a list for every face, not only the largest.")
@click.option("-k", "k", type=click.IntRange(1, 1000), default=10, show_default=True, help="Length of the list.")
@click.option("--liked", "liked", callback=lambda ctx, param, value: _item_id_list(value, "--liked"),
              help="Item ids the person just liked, comma-separated (e.g. 50,181,172): the list bends toward them.")
@click.option("--disliked", "disliked", callback=lambda ctx, param, value: _item_id_list(value, "--disliked"),
              help="Item ids the person disliked, comma-separated: their neighbours move down.")
@click.option("--model-version", type=int, help="Model version (default: the champion).")
@home_option
@json_option
def recommend(age, gender, occupation, user_id, selfie, all_faces, k, liked, disliked, model_version, home, lock_timeout, as_json) -> None:
    """Top-k items for a new person (a selfie or demographics) or a known user, optionally
    with items they just liked or disliked (no retraining; each item says why it is listed).

    Example:

    \b
        python cli.py recommend --selfie examples/astronaut.jpg
        python cli.py recommend --age 34 --gender F --occupation writer
        python cli.py recommend --age 30 --gender F --liked 50,181,172 --disliked 94
        python cli.py recommend --user-id 42 -k 5 --json
    """
    from pipelines.recommend import recommend_for_demographics, recommend_for_user, recommend_with_items

    given = [name for name, value in (("--user-id", user_id), ("--selfie", selfie)) if value is not None]
    if age is not None or gender is not None or occupation is not None:
        given.append("demographics")
    if (liked or disliked) and not given:
        given.append("demographics")  # likes alone: a visitor of unknown age and gender
    if len(given) != 1:
        raise click.UsageError("give exactly one of --user-id, --selfie, or demographics (--age/--gender/--occupation)")
    if all_faces and selfie is None:
        raise click.UsageError("--all-faces goes with --selfie")
    if (liked or disliked) and selfie is not None:
        raise click.UsageError("--liked/--disliked go with --user-id or demographics, not --selfie")
    if liked or disliked:
        with _ids_as_usage_errors():
            show_recommendations(recommend_with_items(
                home, age=age, gender=gender.upper() if gender else None, occupation=occupation, liked=liked,
                disliked=disliked, user_id=user_id, k=k, version=model_version, lock_timeout_s=lock_timeout,
            ), as_json)
        return
    if selfie is not None:
        from pipelines.selfie import recommend_for_selfie

        show_selfie_recommendations(recommend_for_selfie(
            home, selfie, k=k, version=model_version, all_faces=all_faces, lock_timeout_s=lock_timeout), as_json)
        return
    if user_id is not None:
        with _ids_as_usage_errors():
            result = recommend_for_user(home, user_id, k=k, version=model_version, lock_timeout_s=lock_timeout)
    else:
        result = recommend_for_demographics(
            home, age=age, gender=gender.upper() if gender else None, occupation=occupation, k=k,
            version=model_version, lock_timeout_s=lock_timeout,
        )
    show_recommendations(result, as_json)


def _item_id_list(value: str | None, option: str) -> tuple[str, ...]:
    """Item ids as given (50,181 or SKU-1,SKU-2): the pipeline reads them as the catalog spells its ids."""
    if not value:
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


@contextmanager
def _ids_as_usage_errors():
    """A word where the catalog's ids are integers is a usage error (exit 2), as a wrong option type is."""
    from pipelines.ids import NotAnId

    try:
        yield
    except NotAnId as e:
        expected = "a user id, like 42" if e.option == "--user-id" else "item ids separated by commas, like 50,181,172"
        raise click.BadParameter(f"expected {expected} (got {', '.join(map(repr, e.values))}); {e}",
                                 param_hint=e.option) from e


def show_selfie_recommendations(result, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({
            "photo": result.photo, "other_faces": result.other_faces,
            "faces": [{**face, **rec.to_list().to_dict()} for face, rec in zip(result.faces, result.lists)],
        }))
        return
    for number, (face, rec) in enumerate(zip(result.faces, result.lists), start=1):
        gender = face["gender_for_recommendation"] or "unknown"
        why = "" if face["gender_for_recommendation"] else (
            " (under 13)" if face["age"] < 13 else f" (model says {face['gender']} at {face['gender_confidence']:.0%}, below the threshold)")
        click.echo(
            f"face {number}: age {face['age']:.0f} ± {face['age_uncertainty']:.0f} -> band {face['age_band']}; "
            f"gender {gender}{why}"
            + (f" ({face['gender_confidence']:.0%})" if face["gender_for_recommendation"] else "")
        )
        if len(face.get("age_band_weights", {})) > 1 or len(face.get("gender_weights", {})) > 1:
            mix = lambda weights: ", ".join(f"{k} {v:.0%}" for k, v in weights.items())  # noqa: E731
            click.echo(f"  unsure, so the list weighs age bands {mix(face['age_band_weights'])}; "
                       f"genders {mix(face['gender_weights'])}")
        if face["low_quality"]:
            click.secho(f"  low confidence: {', '.join(face['quality_issues'])}; a sharper, closer photo gives a better estimate", fg="yellow")
        print_table(rec.items.drop("because"), f"Top {rec.items.height} for age band {face['age_band']}, gender {gender} (model v{rec.model_version})")
    if result.other_faces:
        click.echo(f"{result.other_faces} other face(s) in the photo were not used; --all-faces gives each a list")


def show_recommendations(result, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.to_list().to_dict()))
        return
    who = ", ".join(f"{k}: {v}" for k, v in result.basis.items() if k != "kind")
    # From the entries, not result.items: a polars frame would cost a fresh process ~0.2 s to import.
    columns = ["rank", "item_id", "title", "year", "genres", "score", "reason"]
    if any(entry.because for entry in result.entries):
        columns.append("because")
    print_rows([(name, name in ("rank", "item_id", "year", "score")) for name in columns],
               [[getattr(entry, name) for name in columns] for entry in result.entries],
               f"Top {len(result.entries)} for {who} (model v{result.model_version})")


# ---------------------------------------------------------------- watch


@cli.command()
@click.argument("video", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--camera", type=int, help="Read this camera (0 is usually the built-in one) instead of a file.")
@click.option("--every", type=click.IntRange(1, 1000), default=1, show_default=True, help="Process one frame in N.")
@click.option("--max-frames", type=click.IntRange(1), help="Stop after this many frames.")
@click.option("-k", "k", type=click.IntRange(1, 1000), default=10, show_default=True, help="Length of each list.")
@click.option("--model-version", type=int, help="Model version (default: the champion).")
@home_option
@json_option
def watch(video, camera, every, max_frames, k, model_version, home, lock_timeout, as_json) -> None:
    """Follow the faces in front of a camera or in a video and print recommendation events.

    One event per viewer once their age and gender estimate (averaged over the frames they are
    seen) is stable, and one for the whole audience whenever it changes. Frames are used and
    dropped; nothing is written.

    Example:

    \b
        python cli.py watch shop.mp4 --json
        python cli.py watch --camera 0 --every 3
    """
    from pipelines.watch import WatchConfig, watch as run_watch

    if (video is None) == (camera is None):
        raise click.UsageError("give a VIDEO file or --camera N (one of them)")

    def show(event: dict) -> None:
        if as_json:
            click.echo(json.dumps(event))
            return
        titles = ", ".join(row["title"] or str(row["item_id"]) for row in event["items"][:3])
        if event["event"] == "viewer":
            click.echo(f"[{event['time_s']:7.2f}s] viewer {event['viewer']}: age {event['age']:.0f} "
                       f"± {event['age_uncertainty']:.0f}, {event['gender']} ({event['gender_confidence']:.0%}) "
                       f"over {event['frames_seen']} frames -> {titles} ...")
        else:
            who = ", ".join(map(str, event["viewers"])) or "nobody"
            click.echo(f"[{event['time_s']:7.2f}s] audience: {who}" + (f" -> {titles} ..." if titles else ""))

    config = WatchConfig(every_nth_frame=every, k=k, max_frames=max_frames)
    summary = run_watch(home, str(video) if video is not None else camera, config=config, version=model_version,
                        emit=show, lock_timeout_s=lock_timeout)
    if not as_json:
        click.echo(f"{summary['frames']} frames read, {summary['processed']} processed in {summary['seconds']:.1f} s; "
                   f"{summary['viewers']} viewer(s), {summary['events']} event(s)")


# ---------------------------------------------------------------- profile


@cli.command()
@click.argument("photos", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--all-faces", is_flag=True, help="Profile every face, not only the largest.")
@json_option
@home_option
def profile(photos, all_faces, as_json, home, lock_timeout) -> None:
    """What the vision module sees in each photo: faces, age, age band, gender, confidences.

    A photo that fails gets its own error record and the others still run; the exit code
    is 1 if any photo failed. Photos are read in memory and never stored.

    Example:

    \b
        python cli.py profile examples/astronaut.jpg --json
    """
    from pipelines.profile import profile_photos

    records = profile_photos(photos, all_faces=all_faces, show_progress=not as_json and len(photos) > 3)
    if as_json:
        click.echo(json.dumps(records))
    else:
        import polars as pl

        rows = [
            {"photo": r["photo"], "face": i + 1, "age": f["age"], "age_band": f["age_band"], "gender": f["gender"],
             "gender_conf": f["gender_confidence"], "for_recs": f["gender_for_recommendation"] or "unknown",
             "box": " ".join(map(str, f["box"])), "quality": ", ".join(f["quality_issues"]) or "ok"}
            for r in records for i, f in enumerate(r["faces"])
        ]
        if rows:
            print_table(pl.DataFrame(rows), "Faces")
        for r in records:
            if r["error"]:
                click.secho(f"{r['photo']}: {r['error']}", fg="red", err=True)
            elif r["other_faces"]:
                click.echo(f"{r['photo']}: {r['other_faces']} smaller face(s) not profiled (--all-faces)")
    if any(r["error"] for r in records):
        raise SystemExit(1)


# ---------------------------------------------------------------- batch scoring


def _item_ids(value: str | None, option: str) -> frozenset[str] | None:
    """An item list given inline (1,2,3 or SKU-1,SKU-2) or as a file with one id per line; the
    pipeline reads the ids as the catalog spells them."""
    if value is None:
        return None
    path = Path(value)
    text = path.read_text() if path.is_file() else value
    return frozenset(t.strip() for t in text.replace("\n", ",").split(",") if t.strip() and t.strip() != "item_id")


@cli.command("batch-score")
@click.argument("audience", type=click.Path(path_type=str))
@click.option("--out", required=True, type=click.Path(path_type=str), help="Result file: .parquet or .csv (with --engine spark: a Parquet dataset, any Hadoop-compatible URI).")
@click.option("-k", "k", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--campaign", help="Name the results are stored under in the warehouse (default: the output file's stem).")
@click.option("--model-version", type=int, help="Model version (default: the champion).")
@click.option("--exclude-items", help="Never recommend these items: 1,2,3 or a file of ids.")
@click.option("--items", "only_items", help="Recommend only from these items: 1,2,3 or a file of ids.")
@click.option("--genre", "genres", multiple=True, help="Recommend only items of this genre (repeatable).")
@click.option("--max-per-item", type=click.IntRange(min=1), help="An item appears in at most this many lists.")
@click.option("--chunk-size", type=click.IntRange(min=1000), default=200_000, show_default=True, help="Audience rows per chunk (bounds memory).")
@click.option("--store-selfie-results", is_flag=True, help="Also keep selfie rows' lists in the warehouse (they reveal the inferred age band and gender).")
@click.option("--retention-days", type=click.IntRange(min=1), default=30, show_default=True, help="The warehouse deletes this campaign's stored lists after this many days.")
@click.option("--retrieval", type=click.Choice(["auto", "exact", "ann"]), default="auto", show_default=True,
              help="Known users' lists: exact, or approximate (a FAISS index beside the bundle); auto uses ANN from 100,000 items.")
@click.option("--engine", type=click.Choice(["local", "spark"]), default="local", show_default=True,
              help="spark: score a Parquet audience on Apache Spark (run under spark-submit, or with --spark-master local[2]).")
@click.option("--spark-master", help="With --engine spark and no spark-submit: the master URL, e.g. local[4].")
@click.option("--staging", help="With --engine spark: where the warehouse's users and interactions are exported for the executors (shared storage on a cluster).")
@home_option
@json_option
def batch_score(audience, out, k, campaign, model_version, exclude_items, only_items, genres, max_per_item, chunk_size,
                store_selfie_results, retention_days, retrieval, engine, spark_master, staging, home, lock_timeout, as_json) -> None:
    """Top-k lists for a whole campaign audience (CSV or Parquet).

    The audience has user_id and, for people the warehouse does not know, age (years or a
    MovieLens 1M code) and gender (M/F), optionally occupation, or a selfie column of image
    paths (read, never stored); liked_items (ids joined by '|') bends a row's list toward
    what the person just liked. Rows that cannot be scored go to OUT's .rejects.csv with a
    reason. Results are written atomically and stored in the warehouse under the campaign.

    Example:

    \b
        python cli.py batch-score audience.csv --out spring.parquet --genre Comedy --max-per-item 5000
    """
    from dataclasses import asdict

    from pipelines.batch_score import batch_score as run_batch
    from pipelines.rules import CampaignRules

    rules = CampaignRules(
        exclude_items=_item_ids(exclude_items, "--exclude-items") or frozenset(),
        only_items=_item_ids(only_items, "--items"),
        genres=frozenset(genres) if genres else None,
        max_per_item=max_per_item,
    )
    if engine == "spark":
        from pipelines.spark_batch import spark_batch_score

        result = spark_batch_score(home, audience, out, k=k, version=model_version, rules=rules, retrieval=retrieval,
                                   staging=staging, master=spark_master, lock_timeout_s=lock_timeout)
        if as_json:
            click.echo(json.dumps(asdict(result), default=str))
        else:
            click.echo(f"spark campaign (model v{result.model_version}, {result.retrieval}): {result.n_scored:,} rows scored, "
                       f"{result.n_rejected:,} rejected in {result.seconds:.1f} s\nresults: {result.output_path}\n"
                       f"rejects: {result.rejects_path}")
        return
    summary = run_batch(home, Path(audience), Path(out), k=k, campaign=campaign, version=model_version, rules=rules,
                        chunk_size=chunk_size, show_progress=not as_json, lock_timeout_s=lock_timeout,
                        store_selfie_results=store_selfie_results, retention_days=retention_days, retrieval=retrieval)
    if as_json:
        click.echo(json.dumps(asdict(summary), default=str))
        return
    click.echo(
        f"campaign '{summary.campaign}' (model v{summary.model_version}): {summary.n_rows:,} rows in {summary.seconds:.1f} s "
        f"({summary.n_rows / max(summary.seconds, 1e-9):,.0f} rows/s)\n"
        f"  known users (history): {summary.n_known:,}\n"
        f"  cold start (demographics): {summary.n_cold:,}, of which from selfies: {summary.n_selfie:,}; "
        f"{summary.n_cold_combinations} distinct combinations\n"
        f"  rejected: {summary.n_rejected:,}" + (f" -> {summary.rejects_path}" if summary.rejects_path else "")
    )
    for reason, n in sorted(summary.reject_reasons.items(), key=lambda r: -r[1])[:5]:
        click.echo(f"    {n:,} x {reason}")
    if summary.n_short_lists:
        click.echo(f"  {summary.n_short_lists:,} lists are shorter than {k} (rules left too few items)")
    click.echo(f"results: {summary.output_path}")


@cli.group(cls=Group)
def campaigns() -> None:
    """Campaigns stored in the warehouse by batch-score: list them, purge old ones.

    Example:

    \b
        python cli.py campaigns list
        python cli.py campaigns purge --older-than 30d
    """


@campaigns.command("list")
@home_option
@json_option
def campaigns_list(home: Path, lock_timeout: float, as_json: bool) -> None:
    """Every stored campaign: rows kept, selfie lists kept or not, created and expiry dates.

    Example:

    \b
        python cli.py campaigns list --json
    """
    from pipelines.campaigns import list_campaigns

    table = list_campaigns(home, lock_timeout_s=lock_timeout)
    if as_json:
        click.echo(json.dumps(table.to_dicts(), default=str))
    elif table.height == 0:
        click.echo("no campaigns stored")
    else:
        print_table(table, "Stored campaigns")


@campaigns.command("purge")
@click.option("--older-than", help="Delete campaigns created longer ago than this (30d, 12h, 2w). Default: those past their retention period.")
@home_option
def campaigns_purge(older_than: str | None, home: Path, lock_timeout: float) -> None:
    """Delete stored campaign lists from the warehouse (output files are left alone).

    Example:

    \b
        python cli.py campaigns purge
        python cli.py campaigns purge --older-than 30d
    """
    from pipelines.campaigns import parse_age, purge

    age = parse_age(older_than) if older_than is not None else None
    names = purge(home, older_than=age, lock_timeout_s=lock_timeout)
    click.echo(f"purged {len(names)} campaign(s)" + (f": {', '.join(names)}" if names else ""))


# ---------------------------------------------------------------- the service and its events


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 for every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Worker processes (each holds the model).")
@click.option("--admin-token", envvar="RECSYS_ADMIN_TOKEN", help="Bearer token for the admin routes (env RECSYS_ADMIN_TOKEN); without one they are off.")
@home_option
def serve(host: str, port: int, workers: int, admin_token: str | None, home: Path, lock_timeout: float) -> None:
    """Run the HTTP API (and the page) on uvicorn: lists, selfies, events, metrics.

    Interactive docs at /docs, the OpenAPI schema at /openapi.json, Prometheus metrics at
    /metrics. A new champion (`models promote`, or a `train` that promotes) is served within
    a few seconds, without a restart.

    Example:

    \b
        python cli.py serve --port 8000
        curl -s localhost:8000/v1/recommendations -H 'content-type: application/json' -d '{"age": 30, "gender": "F"}'
    """
    import os
    import tempfile

    import uvicorn

    os.environ["RECSYS_HOME"] = str(Path(home).resolve())
    if admin_token:
        os.environ["RECSYS_ADMIN_TOKEN"] = admin_token
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="recsys-metrics-")
    uvicorn.run("service.app:create_app", factory=True, host=host, port=port, workers=workers,
                log_level="warning", access_log=False)


@cli.group(cls=Group)
def events() -> None:
    """Events the service recorded (likes, views, ratings) and erasures it was asked for.

    Example:

    \b
        python cli.py events merge
    """


@events.command("merge")
@home_option
@json_option
def events_merge(home: Path, lock_timeout: float, as_json: bool) -> None:
    """Copy what the service landed into the warehouse (train does this by itself first).

    Example:

    \b
        python cli.py events merge --json
    """
    from dataclasses import asdict

    from pipelines.events import merge_events

    summary = merge_events(home, lock_timeout_s=lock_timeout)
    if as_json:
        click.echo(json.dumps(asdict(summary) if summary else {"n_events": 0, "n_interactions": 0, "erasures": []}))
    elif summary is None:
        click.echo("no warehouse in this home yet; load data first")
    else:
        click.echo(f"merged {summary.n_events:,} events ({summary.n_interactions:,} became interactions); "
                   f"{len(summary.erasures)} erasure(s) applied")


# ---------------------------------------------------------------- rendering


def _jsonable(value):
    import polars as pl

    if isinstance(value, pl.DataFrame):
        return value.to_dicts()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def print_table(frame, title: str) -> None:
    print_rows([(name, dtype.is_numeric()) for name, dtype in frame.schema.items()], frame.iter_rows(), title)


def print_rows(columns: list[tuple[str, bool]], rows, title: str) -> None:
    """A table of ``rows``; ``columns`` are (name, whether numeric: right-aligned)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name, numeric in columns:
        table.add_column(name, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*[_cell(v) for v in row])
    # Piped or redirected, there is no terminal width to respect: never cut or wrap a column.
    Console(width=None if sys.stdout.isatty() else 10_000).print(table)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def main() -> None:
    """The console command `selfie-recsys` (pyproject's [project.scripts])."""
    cli(prog_name="selfie-recsys")


if __name__ == "__main__":
    cli(prog_name="python cli.py")
