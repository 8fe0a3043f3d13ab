"""Registry, promotion and repair without TensorFlow: hand-made bundles and a stand-in for training.

The training step is replaced by a small fake result (``fake_training``), so the pipeline's own
work - the lock, MLflow logging and registration, the bundle, the warehouse record and the
undoing of them on failure - runs in seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from cli import cli
from movielens_fixtures import write_ml100k
from pipelines.promotion import Difference, compared_protocols, decide, paired_difference
from recsys.config import TrainConfig
from serving_fixtures import ITEM_IDS, make_home, write_bundle
from warehouse.connection import connected
from warehouse.model_versions import get_version, record_version

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- the champion rule, by hand


def test_paired_bootstrap_of_identical_and_clearly_better_lists():
    same = paired_difference("cold", [0.2, 0.4, 0.6], [0.2, 0.4, 0.6])
    assert (same.diff, same.low, same.high, same.verdict) == (0.0, 0.0, 0.0, "tie")
    better = paired_difference("cold", [0.0] * 4, [1.0] * 4)  # every user gains exactly 1
    assert (better.diff, better.low, better.high, better.verdict) == (1.0, 1.0, 1.0, "better")
    # Gains of 0 and 1 on two users: the mean is 0.5 and some resamples draw the 0 twice.
    mixed = paired_difference("cold", [0.0, 0.0], [0.0, 1.0])
    assert mixed.diff == 0.5 and mixed.low == 0.0 and mixed.high == 1.0 and mixed.verdict == "tie"


def _d(protocol: str, low: float, high: float) -> Difference:
    return Difference(protocol, 100, 0.4, 0.4 + (low + high) / 2, (low + high) / 2, low, high)


def test_champion_rule():
    assert decide(None, []).promoted
    assert decide(1, [_d("cold", 0.01, 0.03), _d("warm", -0.01, 0.01)]).promoted
    tie = decide(1, [_d("cold", -0.01, 0.02)])
    assert not tie.promoted and "no cold-start gain beyond noise" in tie.reason
    guarded = decide(1, [_d("cold", 0.01, 0.03), _d("warm", -0.03, -0.01)])
    assert not guarded.promoted and "loses warm beyond noise" in guarded.reason
    # Issue 10's rule: better few-shot and warm do not excuse a cold-start loss beyond noise.
    fewshot = decide(1, [_d("cold", -0.03, -0.01), _d("fewshot.n3", 0.02, 0.05), _d("warm", 0.01, 0.02)])
    assert not fewshot.promoted
    assert "loses cold start beyond noise although it improves fewshot.n3, warm" in fewshot.reason
    assert decide(1, [_d("cold", -0.03, -0.01)], force=True).promoted
    stale = decide(1, [], champion_stale=True)
    assert stale.promoted and "trained on other data" in stale.reason


def test_compared_protocols_pick_cold_warm_and_fewshot_by_key():
    metrics = {"cold.ndcg_at_10": 0.4, "warm.ndcg_at_10": 0.1, "fewshot.n3.ndcg_at_10": 0.2,
               "cold.recall_at_10": 0.1, "seconds.cold": 3.0}
    assert compared_protocols(metrics) == ["cold", "fewshot.n3", "warm"]


# ---------------------------------------------------------------- a fake training result


class _FakeRecommender:
    def __init__(self, vectors: np.ndarray) -> None:
        self._vectors = vectors

    def item_vectors(self) -> np.ndarray:
        return self._vectors


@dataclass
class FakeResult:
    cold: dict[int, float]
    item_vectors: np.ndarray = field(default_factory=lambda: np.ones((5, 2), np.float32))
    config: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=1))

    def __post_init__(self) -> None:
        self.model = _FakeRecommender(self.item_vectors)
        self.model_trained_on = "all"
        self.history = [{"stage": "cold", "epoch": 1, "loss": 1.0, "val_ndcg": 0.1, "seconds": 0.1}]
        self.metrics = {"cold.ndcg_at_10": float(np.mean(list(self.cold.values())))}
        self.baselines = {"popularity": {"cold.ndcg_at_10": 0.1}}
        self.ndcg_by_group = pl.DataFrame({"protocol": ["cold"], "age_band": ["25-34"], "gender": ["F"],
                                           "ndcg_at_10": [0.3], "n_users": [4]})
        self.data_summary = {"n_users": 12.0}
        self.per_user_ndcg = {"cold": pl.DataFrame({"user_id": list(self.cold), "ndcg": list(self.cold.values())})}


@pytest.fixture
def fake_training(monkeypatch):
    """Replaces training (without importing TensorFlow) and export; returns a list to put the next results in."""
    import types

    import recsys.export

    queue: list[FakeResult] = []
    stub = types.ModuleType("recsys.train")
    stub.train_and_evaluate = lambda data, cfg, show_progress=True: queue.pop(0)
    monkeypatch.setitem(sys.modules, "recsys.train", stub)
    monkeypatch.setattr(recsys.export, "export_bundle", lambda result, out, version: write_bundle(Path(out), int(version)))
    return queue


@pytest.fixture
def data_home(tmp_path):
    home = tmp_path / "home"
    source = write_ml100k(tmp_path / "ml", n_users=20, n_items=15, n_ratings=150)
    assert CliRunner().invoke(cli, ["ingest", "movielens", str(source), "--home", str(home)]).exit_code == 0
    return home


def _train(home: Path, **kwargs):
    from pipelines.train import train

    return train(home, TrainConfig(epochs=1), force_promote=kwargs.get("force", False), show_progress=False, lock_timeout_s=1)


def _registry(home: Path):
    import mlflow

    from pipelines.tracking import EXPERIMENT, REGISTERED_MODEL, tracking_uri

    client = mlflow.MlflowClient(tracking_uri=tracking_uri(home), registry_uri=tracking_uri(home))
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name = '{REGISTERED_MODEL}'"))
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    return client, versions, runs


def test_promotion_needs_a_gain_beyond_noise_on_the_same_users(data_home, fake_training):
    fake_training += [FakeResult({1: 0.2, 2: 0.4, 3: 0.6}), FakeResult({1: 0.2, 2: 0.4, 3: 0.6}),
                      FakeResult({1: 0.5, 2: 0.7, 3: 0.9})]
    first, same, better = _train(data_home), _train(data_home), _train(data_home)
    assert first.promoted and "first version" in first.reason
    assert not same.promoted and "no cold-start gain beyond noise" in same.reason
    assert same.comparisons[0]["n_users"] == 3 and same.comparisons[0]["diff"] == 0.0
    assert better.promoted and "+0.3000" in better.reason and "95% CI [+0.3000, +0.3000]" in better.reason
    with connected(data_home, read_only=True) as conn:
        assert get_version(conn, 3).status == "champion" and get_version(conn, 2).note == same.reason
        assert get_version(conn, 3).config["epochs"] == 1
        rows = conn.sql("SELECT version, user_id, ndcg FROM model_evaluations ORDER BY version, user_id").fetchall()
    assert rows[:3] == [(1, 1, 0.2), (1, 2, 0.4), (1, 3, 0.6)] and len(rows) == 9
    client, versions, runs = _registry(data_home)
    assert versions == [1, 2, 3]
    assert int(client.get_model_version_by_alias("selfie-recsys", "champion").version) == 3
    described = client.get_model_version("selfie-recsys", "2")
    assert "no cold-start gain beyond noise" in described.description and described.tags["status"] == "candidate"


def test_a_failed_warehouse_write_leaves_nothing_registered(data_home, fake_training, monkeypatch):
    import pipelines.train
    from warehouse.errors import WarehouseError

    def broken(*args, **kwargs):
        raise WarehouseError("disk full (simulated)")

    fake_training.append(FakeResult({1: 0.5}))
    monkeypatch.setattr(pipelines.train, "record_version", broken)
    with pytest.raises(WarehouseError, match="simulated"):
        _train(data_home)
    _, versions, runs = _registry(data_home)
    assert versions == []
    assert [r.info.status for r in runs] == ["FAILED"] and "simulated" in runs[0].data.tags["discarded"]
    assert [p.name for p in (data_home / "bundles").iterdir()] == []


def test_a_diverged_model_is_refused_before_anything_is_written(data_home, fake_training):
    from pipelines.train import DivergedModel

    vectors = np.ones((5, 2), np.float32)
    vectors[:3] = np.nan
    fake_training.append(FakeResult({1: 0.0}, item_vectors=vectors, config=TrainConfig(learning_rate=1e12)))
    with pytest.raises(DivergedModel, match=r"60% of item vectors are not finite.*Lower --learning-rate \(got 1e\+12\)"):
        _train(data_home)
    assert not (data_home / "mlruns" / "mlflow.db").exists() or _registry(data_home)[1] == []
    with connected(data_home, read_only=True) as conn:
        assert conn.sql("SELECT count(*) FROM model_versions").fetchall() == [(0,)]


def test_repair_removes_what_a_killed_train_left(data_home, fake_training):
    import mlflow

    from pipelines import tracking

    fake_training.append(FakeResult({1: 0.5}))
    _train(data_home)
    client, _, _ = _registry(data_home)
    # What a kill after registering but before the warehouse commit leaves behind:
    orphan_bundle = write_bundle(data_home / "bundles" / "v2", 2)
    run = client.create_run(client.get_experiment_by_name(tracking.EXPERIMENT).experiment_id)  # stuck in RUNNING
    client.create_model_version(tracking.REGISTERED_MODEL, str(orphan_bundle), run_id=run.info.run_id)
    (data_home / "bundles" / ".incoming-dead").mkdir()
    runner = CliRunner()
    dry = json.loads(runner.invoke(cli, ["models", "repair", "--dry-run", "--json", "--home", str(data_home)]).stdout)
    assert sorted(f["kind"] for f in dry) == ["incoming_folder", "orphan_bundle", "orphan_registry_version", "stuck_run"]
    assert orphan_bundle.exists()  # a dry run changes nothing
    done = runner.invoke(cli, ["models", "repair", "--home", str(data_home)])
    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in (data_home / "bundles").iterdir()) == ["v1"]
    _, versions, runs = _registry(data_home)
    assert versions == [1] and all(r.info.status != "RUNNING" for r in runs)
    again = runner.invoke(cli, ["models", "repair", "--home", str(data_home)])
    assert "nothing to repair" in again.output
    assert mlflow  # imported for the client above


def test_two_first_runs_create_the_mlflow_store_once(tmp_path):
    home = tmp_path / "home"
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); from pathlib import Path; "
            "from pipelines import tracking; tracking.open_store(Path(sys.argv[1])); print('ok')")
    processes = [subprocess.Popen([sys.executable, "-c", code, str(home)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"})
                 for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [err[-500:] for _, err in outputs]
    import sqlite3

    names = sqlite3.connect(home / "mlruns" / "mlflow.db").execute("SELECT name FROM experiments").fetchall()
    assert sorted(names) == [("Default",), ("recsys",)]


def test_mlflow_tracking_uri_is_respected(tmp_path, monkeypatch):
    from pipelines import tracking

    team = f"sqlite:///{tmp_path / 'team.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", team)
    assert tracking.tracking_uri(tmp_path / "home") == team
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert tracking.tracking_uri(tmp_path / "home").endswith("/home/mlruns/mlflow.db")


# ---------------------------------------------------------------- promote, stale models, paths


def _second_version(home: Path, *, bundle: Path) -> None:
    with connected(home) as conn:
        record_version(conn, version=2, mlflow_run_id="run-2", metrics={"model": {}, "baselines": {}},
                       data_snapshot="s", bundle_path=str(bundle), champion=False, note="fixture")


def test_promote_refuses_a_version_whose_bundle_is_missing(tmp_path):
    home = make_home(tmp_path)
    _second_version(home, bundle=home / "bundles" / "v2")  # never written
    result = CliRunner().invoke(cli, ["models", "promote", "2", "--home", str(home)])
    assert result.exit_code == 1 and "serving bundle of model v2" in result.output
    with connected(home, read_only=True) as conn:
        assert get_version(conn, 1).status == "champion"


def test_errors_are_json_objects_under_json(tmp_path):
    home = make_home(tmp_path)
    result = CliRunner().invoke(cli, ["models", "promote", "9", "--json", "--home", str(home)])
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {"error": "no model version 9; known versions: 1",
                                         "error_type": "UnknownModelVersion"}


def test_a_model_trained_on_other_data_is_refused(tmp_path):
    home = make_home(tmp_path)
    with connected(home, read_only=True) as conn:
        snapshot = conn.sql("SELECT snapshot_id FROM dataset_loads").fetchall()[0][0]
    manifest = home / "bundles" / "v1" / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "data_snapshot": snapshot}))
    runner = CliRunner()
    args = ["recommend", "--age", "30", "--gender", "F", "--home", str(home)]
    assert runner.invoke(cli, args).exit_code == 0
    other = write_ml100k(tmp_path / "other")
    assert runner.invoke(cli, ["ingest", "movielens", str(other), "--home", str(home)]).exit_code == 0
    refused = runner.invoke(cli, args)
    assert refused.exit_code == 1
    assert f"model v1 was trained on data snapshot {snapshot}, but the warehouse now holds" in refused.output
    listed = json.loads(runner.invoke(cli, ["models", "list", "--json", "--home", str(home)]).stdout)
    assert listed[0]["model_version"] == 1 and listed[0]["stale"] is True


def test_bundle_paths_are_stored_relative_to_the_home(tmp_path):
    import shutil

    home = make_home(tmp_path / "a")
    with connected(home, read_only=True) as conn:
        assert conn.sql("SELECT bundle_path FROM model_versions").fetchall() == [("bundles/v1",)]
    moved = tmp_path / "b"
    shutil.move(str(home), str(moved))
    result = CliRunner().invoke(cli, ["recommend", "--age", "30", "--gender", "M", "-k", "2", "--json", "--home", str(moved)])
    assert result.exit_code == 0, result.output
    assert [i["item_id"] for i in json.loads(result.stdout)["items"]] == [10, 11]


def test_batch_results_join_users_without_a_cast(tmp_path):
    home = make_home(tmp_path)
    with connected(home) as conn:
        conn.execute("INSERT INTO batch_results VALUES ('c', '1', 1, 10, 1.0, 1), ('c', 'visitor-7', 1, 12, 1.0, 1)")
        rows = conn.sql("""SELECT b.audience_id, u.gender FROM (SELECT user_id AS audience_id, known_user_id
                           FROM batch_results_by_user) b LEFT JOIN users u ON u.user_id = b.known_user_id
                           ORDER BY b.audience_id""").fetchall()
    assert rows == [("1", "M"), ("visitor-7", None)]


# ---------------------------------------------------------------- the MLflow model's predict, by hand


def test_mlflow_model_validates_like_the_cli_and_knows_users(tmp_path):
    from mlflow.exceptions import MlflowException

    from pipelines.mlflow_model import BundleModel

    bundle = write_bundle(tmp_path / "bundle", 1)
    # User 1 (action) has seen item 10; user 2 (romance) nothing.
    np.savez(tmp_path / "seen.npz", offsets=np.array([0, 1, 1]), item_rows=np.array([0]))
    model = BundleModel()
    model.load_context(type("Context", (), {"artifacts": {"bundle": str(bundle), "seen_items": str(tmp_path / "seen.npz")}})())
    import pandas as pd

    out = model.predict(None, pd.DataFrame({"user_id": [1, None, 7], "age": [None, 30, 40], "gender": [None, "f", "M"]}),
                        params={"k": 3})
    assert out["item_ids"].tolist() == [[11, 14, 12], [12, 13, 14], [10, 11, 14]]
    assert out["basis"].tolist() == ["known_user", "demographics", "demographics"]  # 7 is unknown: demographics
    assert out["scores"][0] == pytest.approx([0.9, 0.3, 0.0])
    for bad, message in (({"age": [130]}, "row 0: age must be between 0 and 120"),
                         ({"gender": ["X"]}, "row 0: gender must be M or F"),
                         ({"user_id": [1, 99]}, "row 1: user 99 is not known to this model version"),
                         ({"age": ["old"]}, "row 0: age must be a finite number")):
        with pytest.raises(MlflowException, match=message):
            model.predict(None, pd.DataFrame(bad))
    assert list(ITEM_IDS) == [10, 11, 12, 13, 14]


def test_a_model_logged_from_a_string_id_home_takes_uuids_and_gives_skus(data_home, fake_training):
    import mlflow
    import pandas as pd

    from pipelines import tracking
    from pipelines.recommend import recommend_for_user

    with connected(data_home) as conn:  # the SKUs' order is not the keys' on purpose
        conn.execute("UPDATE users SET external_id = 'uuid-' || CAST(user_id AS VARCHAR)")
        conn.execute("UPDATE items SET external_id = printf('SKU-%05d', 100 - item_id)")
    sku = {key: f"SKU-{100 - key:05d}" for key in ITEM_IDS.tolist()}
    fake_training.append(FakeResult({1: 0.5}))
    _train(data_home)
    tracking.open_store(data_home)
    model = mlflow.pyfunc.load_model(f"models:/{tracking.REGISTERED_MODEL}/1")
    assert model.metadata.signature.outputs.to_dict()[0]["items"]["type"] == "string"
    out = model.predict(pd.DataFrame({"user_id": [" uuid-2 ", None, "uuid-404"], "gender": [None, "M", "F"]}),
                        params={"k": 3})
    assert out["basis"].tolist() == ["known_user", "demographics", "demographics"]  # uuid-404: not known, a woman
    assert out["item_ids"][1] == [sku[10], sku[11], sku[14]]  # a man: action first
    assert out["item_ids"][2] == [sku[12], sku[13], sku[14]]
    # A known user's list is the CLI's, in the same ids (what they have seen left out).
    assert out["item_ids"][0] == recommend_for_user(data_home, "uuid-2", k=3).items["item_id"].to_list()
    for user, shown in (("no-such-user", "'no-such-user'"), (1, "'1'")):  # a key is not an id
        with pytest.raises(mlflow.exceptions.MlflowException, match=f"row 0: user {shown} is not known to this model"):
            model.predict(pd.DataFrame({"user_id": [user]}))


# ---------------------------------------------------------------- config, version, default home


def test_show_config_round_trips_and_a_bad_file_is_one_json_error(tmp_path):
    runner = CliRunner()
    shown = runner.invoke(cli, ["train", "--show-config", "--epochs", "3", "--home", str(tmp_path)])
    assert shown.exit_code == 0 and "epochs = 3" in shown.output and "[tower]" in shown.output
    (tmp_path / "c.toml").write_text(shown.output)
    assert TrainConfig.from_toml(tmp_path / "c.toml") == TrainConfig(epochs=3)
    (tmp_path / "bad.toml").write_text("epochz = 3\n")
    bad = runner.invoke(cli, ["train", "--config", str(tmp_path / "bad.toml"), "--json", "--home", str(tmp_path)])
    assert bad.exit_code == 1 and "unknown setting(s) epochz" in json.loads(bad.stdout)["error"]
    (tmp_path / "typed.toml").write_text("epochs = 'many'\n")
    with pytest.raises(ValueError, match="epochs must be int"):
        TrainConfig.from_toml(tmp_path / "typed.toml")


def test_version_console_command_and_default_home(tmp_path, monkeypatch):
    import tomllib

    import cli as cli_module

    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("selfie-recsys 0.")
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"selfie-recsys": "cli:main"}
    assert cli_module.default_home() == REPO  # run from the checkout: the README's main job
    monkeypatch.setattr(cli_module, "REPO_ROOT", tmp_path / "site-packages")  # an installed copy
    monkeypatch.chdir(tmp_path)
    assert cli_module.default_home() == tmp_path
