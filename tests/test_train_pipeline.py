"""The data scientist's loop end to end: train, compare, promote, evaluate, serve, load in MLflow.

Trains small real models (TensorFlow), so these are among the slower tests.
"""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli import cli
from movielens_fixtures import write_ml100k

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    home = root / "home"
    runner = CliRunner()
    source = write_ml100k(root / "ml", n_users=60, n_items=40, n_ratings=900)
    assert runner.invoke(cli, ["ingest", "movielens", str(source), "--home", str(home)]).exit_code == 0
    # The first run in a real process: TensorFlow's native log lines go to the real stderr.
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "MLFLOW_TRACKING_URI")}
    first = subprocess.run([sys.executable, "cli.py", "train", "--epochs", "2", "--json", "--home", str(home)],
                           cwd=REPO, capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    second = runner.invoke(cli, ["train", "--epochs", "2", "--seed", "4", "--json", "--home", str(home)])
    assert second.exit_code == 0, second.output
    return home, json.loads(first.stdout), json.loads(second.stdout), first.stderr


def test_train_prints_no_tensorflow_log_lines(trained_home):
    stderr = trained_home[3]
    for marker in ("oneDNN", "cuInit", "cuda", "absl::InitializeLog", "port.cc", "cpu_feature_guard", "E0000", "I0000"):
        assert marker not in stderr, stderr


def test_another_seed_is_judged_on_the_same_users(trained_home):
    home, first, second, _ = trained_home
    assert first["model_version"] == 1 and first["promoted"] and "first version" in first["reason"]
    from warehouse.connection import connected

    with connected(home, read_only=True) as conn:
        users = {v: {p: sorted(r[0] for r in conn.sql(
            "SELECT user_id FROM model_evaluations WHERE version = ? AND protocol = ?", params=[v, p]).fetchall())
            for p in ("cold", "warm")} for v in (1, 2)}
    assert users[1] == users[2] and len(users[1]["cold"]) == first["metrics"]["cold.n_users"]
    # The baselines do not depend on the training seed, so on the same split they score the same.
    assert second["baselines"]["demographic_popularity"] == pytest.approx(first["baselines"]["demographic_popularity"])
    cold = next(c for c in second["comparisons"] if c["protocol"] == "cold")
    assert cold["n_users"] == first["metrics"]["cold.n_users"]
    assert cold["diff"] == pytest.approx(second["metrics"]["cold.ndcg_at_10"] - first["metrics"]["cold.ndcg_at_10"])
    assert second["promoted"] == (cold["low"] > 0 and all(c["high"] >= 0 for c in second["comparisons"]))
    assert "95% CI" in second["reason"]


def test_mlflow_holds_the_run_config_curves_inputs_and_registry(trained_home):
    import mlflow

    home, first, _, _ = trained_home
    from pipelines.tracking import REGISTERED_MODEL, tracking_uri

    client = mlflow.MlflowClient(tracking_uri=tracking_uri(home), registry_uri=tracking_uri(home))
    run = client.get_run(first["mlflow_run_id"])
    assert run.info.run_name == first["run_name"] and run.info.run_name.startswith("ml-100k@")
    assert " s42 ep2 bs1024 lr0.01 " in run.info.run_name
    assert run.data.params["epochs"] == "2" and run.data.params["split_seed"] == "None" and "tower.output_dim" in run.data.params
    assert run.data.metrics["cold.ndcg_at_10"] == pytest.approx(first["metrics"]["cold.ndcg_at_10"])
    assert len(client.get_metric_history(run.info.run_id, "loss.final")) == 2
    assert len(client.get_metric_history(run.info.run_id, "val_ndcg_at_10.cold")) == 2  # one per epoch
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.toml", "training_curve.png", "ndcg_by_age_band_gender_cold.png"} <= artifacts
    assert run.inputs.dataset_inputs[0].dataset.name.startswith("interactions@")
    version = client.get_model_version(REGISTERED_MODEL, "1")
    assert version.tags["status"] == "champion" and "first version" in version.description
    assert int(client.get_model_version_by_alias(REGISTERED_MODEL, "champion").version) == 1
    assert run.data.tags["promotion"].startswith("first version")


def test_list_compare_promote_evaluate_and_serve(trained_home):
    home, _, second, _ = trained_home
    runner = CliRunner()
    listed = json.loads(runner.invoke(cli, ["models", "list", "--json", "--home", str(home)]).stdout)
    assert [(v["model_version"], v["config"]["seed"], v["stale"]) for v in listed] == [(1, 42, False), (2, 4, False)]
    table = runner.invoke(cli, ["models", "list", "--home", str(home)]).output  # piped: no column is cut
    assert second["reason"] in table.replace("\n", "") or second["reason"][:150] in table
    compared = json.loads(runner.invoke(cli, ["models", "compare", "1", "2", "--json", "--home", str(home)]).stdout)
    assert compared["settings"] == [{"setting": "seed", "v1": "42", "v2": "4"}]
    protocols = [d["protocol"] for d in compared["differences"]]  # cold, the few-shot sizes the data allows, warm
    assert protocols[0] == "cold" and protocols[-1] == "warm" and protocols[1:-1]
    assert all(p.startswith("fewshot.n") for p in protocols[1:-1])
    promoted = runner.invoke(cli, ["models", "promote", "2", "--reason", "warm lists look better", "--json", "--home", str(home)])
    assert promoted.exit_code == 0, promoted.output
    assert json.loads(promoted.stdout)["reason"] == "promoted by hand: warm lists look better"
    listed = json.loads(runner.invoke(cli, ["models", "list", "--json", "--home", str(home)]).stdout)
    assert [(v["model_version"], v["status"]) for v in listed] == [(1, "retired"), (2, "champion")]
    assert listed[1]["note"] == "promoted by hand: warm lists look better"
    evaluation = json.loads(runner.invoke(cli, ["evaluate", "--json", "--home", str(home)]).stdout)
    assert evaluation["model_version"] == 2
    row = next(r for r in evaluation["rows"] if r["metric"] == "cold.ndcg_at_10")
    assert row["model v2"] == pytest.approx(second["metrics"]["cold.ndcg_at_10"])
    served = json.loads(runner.invoke(cli, ["recommend", "--age", "30", "--gender", "F", "-k", "5", "--json", "--home", str(home)]).stdout)
    assert served["model_version"] == 2 and len(served["items"]) == 5
    scores = [item["score"] for item in served["items"]]
    assert scores == sorted(scores, reverse=True) and np.isfinite(scores).all()
    assert Path(second["bundle_path"]).name == "v2"


def test_a_copied_then_moved_home_works_on_its_own_including_the_mlflow_model(trained_home, tmp_path):
    """Runs last in this module: it needs the champion promoted above (v2)."""
    import mlflow
    import pandas as pd

    from pipelines import tracking

    home = trained_home[0]
    copy = tmp_path / "copy"
    shutil.copytree(home, copy)
    moved = tmp_path / "moved"
    shutil.move(str(copy), str(moved))
    runner = CliRunner()
    served = runner.invoke(cli, ["recommend", "--user-id", "3", "-k", "3", "--json", "--home", str(moved)])
    assert served.exit_code == 0, served.output
    tracking.open_store(moved)
    locations = sqlite3.connect(moved / "mlruns" / "mlflow.db").execute(
        "SELECT storage_location FROM model_versions").fetchall()
    assert locations and all(str(moved) in loc for (loc,) in locations)
    model = mlflow.pyfunc.load_model(f"models:/{tracking.REGISTERED_MODEL}@champion")
    out = model.predict(pd.DataFrame({"age": [30, 61], "gender": ["F", "m"]}), params={"k": 4})  # integer ages
    cli_list = json.loads(runner.invoke(cli, ["recommend", "--age", "30", "--gender", "F", "-k", "4", "--json",
                                               "--home", str(moved)]).stdout)
    assert out["item_ids"][0] == [i["item_id"] for i in cli_list["items"]]
    known = model.predict(pd.DataFrame({"user_id": [3]}), params={"k": 3})
    assert known["item_ids"][0] == [i["item_id"] for i in json.loads(served.stdout)["items"]]
    assert known["basis"][0] == "known_user"
    with pytest.raises(mlflow.exceptions.MlflowException, match="gender must be M or F"):
        model.predict(pd.DataFrame({"gender": ["X"]}))
    # The copy writes into itself, never into the original.
    before = sorted(p.name for p in (home / "mlruns").rglob("*"))
    assert runner.invoke(cli, ["models", "promote", "1", "--home", str(moved)]).exit_code == 0
    assert sorted(p.name for p in (home / "mlruns").rglob("*")) == before


def test_a_retail_catalog_with_ids_titles_and_purchases_only_trains_and_serves(tmp_path):
    """No occupation, no genres, no title word shared by two items, no rating, no demographics."""
    rng = np.random.default_rng(0)
    (tmp_path / "users.csv").write_text("user_id\n" + "".join(f"{u}\n" for u in range(1, 41)))
    words = ["kettle", "mug", "lamp", "chair", "desk", "pen", "rug", "sofa", "vase", "clock", "fan", "bowl",
             "plate", "fork", "spoon", "knife", "pan", "pot", "jar", "tray"]
    (tmp_path / "items.csv").write_text("item_id,title\n" + "".join(f"{i},{w.title()}\n" for i, w in enumerate(words, 1)))
    purchases = {(int(u), int(i)) for u, i in zip(rng.integers(1, 41, 500), rng.zipf(1.5, 500) % 20 + 1)}
    (tmp_path / "orders.csv").write_text("user_id,item_id,timestamp\n"
                                         + "".join(f"{u},{i},{1700000000 + n}\n" for n, (u, i) in enumerate(sorted(purchases))))
    home = tmp_path / "home"
    runner = CliRunner()
    loaded = runner.invoke(cli, ["ingest", "csv", "--users", str(tmp_path / "users.csv"), "--items", str(tmp_path / "items.csv"),
                                 "--interactions", str(tmp_path / "orders.csv"), "--home", str(home)])
    assert loaded.exit_code == 0, loaded.output
    (tmp_path / "fast.toml").write_text("epochs = 1\nbatch_size = 64\nrefit_on_all_data = false\n")
    trained = runner.invoke(cli, ["train", "--config", str(tmp_path / "fast.toml"), "--json", "--home", str(home)])
    assert trained.exit_code == 0, trained.output
    outcome = json.loads(trained.stdout)
    assert any("implicit feedback" in note for note in outcome["adjustments"])
    assert outcome["config"]["relevant_min_rating"] == 1.0 and outcome["config"]["rating_weight_offset"] is None
    assert outcome["config"]["item_item"]["min_rating"] is None
    assert outcome["metrics"]["cold.n_users"] > 0
    # Purchases count as liked: the item-item part learned which items go together.
    cosine = np.load(Path(outcome["bundle_path"]) / "item_item_cosine_weights.npy")
    assert (cosine > 0).any()
    for args in (["--user-id", "1"], ["--age", "30"]):
        served = runner.invoke(cli, ["recommend", *args, "-k", "5", "--json", "--home", str(home)])
        assert served.exit_code == 0, served.output
        assert len(json.loads(served.stdout)["items"]) == 5


def test_the_readme_notebook_example_runs(trained_home):
    """The README's notebook session, run as written against a trained home."""
    readme = (REPO / "README.md").read_text()
    start = readme.index("import duckdb, numpy as np, polars as pl")
    code = readme[start:readme.index("```", start)].replace("homes/ml100k", str(trained_home[0]))
    namespace: dict = {}
    exec(compile(code, "README notebook example", "exec"), namespace)
    assert namespace["top"].height == 10
    joined = namespace["top"].join(namespace["items"], on="item_id", how="left")
    assert joined["title"].null_count() == 0
    assert namespace["per_user"].height > 0
