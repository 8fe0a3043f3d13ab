"""The data scientist's loop end to end: train, compare, promote, evaluate, serve.

Trains a small real model twice (TensorFlow), so it is one of the slower tests.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli import cli
from movielens_fixtures import write_ml100k

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    home = root / "home"
    runner = CliRunner()
    source = write_ml100k(root / "ml", n_users=60, n_items=40, n_ratings=900)
    assert runner.invoke(cli, ["ingest", "movielens", str(source), "--home", str(home)]).exit_code == 0
    first = runner.invoke(cli, ["train", "--epochs", "2", "--json", "--home", str(home)])
    assert first.exit_code == 0, first.output
    second = runner.invoke(cli, ["train", "--epochs", "2", "--json", "--home", str(home)])
    assert second.exit_code == 0, second.output
    return home, json.loads(first.stdout), json.loads(second.stdout)


def test_first_version_is_champion_and_an_equal_one_is_not(trained_home):
    _, first, second = trained_home
    assert first["version"] == 1 and first["promoted"] and "first version" in first["reason"]
    # Same data, same seed: the same score, which does not beat the champion.
    assert second["metrics"]["cold.ndcg_at_10"] == pytest.approx(first["metrics"]["cold.ndcg_at_10"])
    assert second["version"] == 2 and not second["promoted"] and "does not beat champion v1" in second["reason"]
    for key in ("cold.ndcg_at_10", "cold.recall_at_10", "warm.ndcg_at_10", "cold.coverage_at_10", "warm.novelty_at_10"):
        assert key in first["metrics"]
    assert {"popularity", "demographic_popularity", "als"} <= set(first["baselines"])


def test_mlflow_holds_the_run_and_the_registry_alias(trained_home):
    import mlflow

    home, first, _ = trained_home
    from pipelines.tracking import REGISTERED_MODEL, tracking_uri

    client = mlflow.MlflowClient(tracking_uri=tracking_uri(home), registry_uri=tracking_uri(home))
    run = client.get_run(first["mlflow_run_id"])
    assert run.data.params["epochs"] == "2" and "tower.output_dim" in run.data.params
    assert run.data.metrics["cold.ndcg_at_10"] == pytest.approx(first["metrics"]["cold.ndcg_at_10"])
    assert "baseline.demographic_popularity.cold.ndcg_at_10" in run.data.metrics
    assert len(client.get_metric_history(run.info.run_id, "loss.final")) == 2
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"training_curve.png", "ndcg_by_age_band_gender.png"} <= artifacts
    assert int(client.get_model_version_by_alias(REGISTERED_MODEL, "champion").version) == 1
    assert run.data.tags["promotion"].startswith("first version")


def test_list_promote_evaluate_and_serve(trained_home):
    home, _, second = trained_home
    runner = CliRunner()
    listed = json.loads(runner.invoke(cli, ["models", "list", "--json", "--home", str(home)]).stdout)
    assert [(v["version"], v["status"]) for v in listed] == [(1, "champion"), (2, "candidate")]
    assert runner.invoke(cli, ["models", "promote", "2", "--home", str(home)]).exit_code == 0
    listed = json.loads(runner.invoke(cli, ["models", "list", "--json", "--home", str(home)]).stdout)
    assert [(v["version"], v["status"]) for v in listed] == [(1, "retired"), (2, "champion")]
    missing = runner.invoke(cli, ["models", "promote", "9", "--home", str(home)])
    assert missing.exit_code == 1 and "no model version 9; known versions: 1, 2" in missing.output
    evaluation = json.loads(runner.invoke(cli, ["evaluate", "--json", "--home", str(home)]).stdout)
    assert evaluation["version"] == 2
    row = next(r for r in evaluation["rows"] if r["metric"] == "cold.ndcg_at_10")
    assert row["model v2"] == pytest.approx(second["metrics"]["cold.ndcg_at_10"])
    served = json.loads(runner.invoke(cli, ["recommend", "--age", "30", "--gender", "F", "-k", "5", "--json", "--home", str(home)]).stdout)
    assert served["model_version"] == 2 and len(served["items"]) == 5
    scores = [item["score"] for item in served["items"]]
    assert scores == sorted(scores, reverse=True) and np.isfinite(scores).all()
    assert Path(second["bundle_path"]).name == "v2"
