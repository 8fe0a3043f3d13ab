import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cli import cli
from movielens_fixtures import write_ml100k

REPO = Path(__file__).resolve().parents[1]


def all_commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from all_commands(command, (*prefix, name))


@pytest.mark.parametrize("path", [p for p, _ in all_commands(cli)], ids=" ".join)
def test_every_command_has_help_with_an_example(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output


def test_every_leaf_command_takes_home():
    for path, command in all_commands(cli):
        if not isinstance(command, click.Group):
            assert "home" in {p.name for p in command.params}, path


def test_help_imports_nothing_heavy():
    code = (
        "import sys; sys.argv = ['cli.py', '--help']\n"
        "import cli\n"
        "try:\n    cli.cli(prog_name='cli.py')\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('tensorflow', 'mlflow', 'polars', 'duckdb', 'numpy') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("HEAVY []")


def test_ingest_then_stats_json(tmp_path):
    runner = CliRunner()
    source = write_ml100k(tmp_path / "ml-100k")
    result = runner.invoke(cli, ["ingest", "movielens", str(source), "--home", str(tmp_path / "h")])
    assert result.exit_code == 0, result.output
    assert "12 users, 15 items, 80 interactions" in result.output
    result = runner.invoke(cli, ["stats", "--json", "--home", str(tmp_path / "h")])
    stats = json.loads(result.output)
    assert stats["counts"] == {"users": 12, "items": 15, "interactions": 80}
    assert sum(row["total"] for row in stats["users_by_age_band_gender"]) == 12
    assert sum(row["n"] for row in stats["ratings"]) == 80


def test_home_from_environment(tmp_path):
    source = write_ml100k(tmp_path / "ml-100k")
    result = CliRunner().invoke(cli, ["ingest", "movielens", str(source)], env={"RECSYS_HOME": str(tmp_path / "env")})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "env" / "warehouse" / "recsys.duckdb").exists()


def test_user_error_is_one_line_and_exit_1(tmp_path):
    result = CliRunner().invoke(cli, ["stats", "--home", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: no warehouse at") and "Traceback" not in result.output


def test_usage_error_exits_2(tmp_path):
    result = CliRunner().invoke(cli, ["ingest", "movielens", "--home", str(tmp_path)])
    assert result.exit_code == 2 and "give either PATH or --download" in result.output


def test_train_without_data_fails_fast_and_clearly(tmp_path):
    result = CliRunner().invoke(cli, ["train", "--home", str(tmp_path)])
    assert result.exit_code == 1 and "no warehouse at" in result.output
