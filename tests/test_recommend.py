import json

import pytest
from click.testing import CliRunner

from cli import cli
from pipelines.errors import UnknownUserId
from pipelines.recommend import recommend_for_demographics, recommend_for_user
from serving_fixtures import heavy_modules_after, make_home
from warehouse.model_versions import NoChampion


def test_cold_start_follows_demographics(tmp_path):
    home = make_home(tmp_path)
    women = recommend_for_demographics(home, age=30, gender="F", k=2)
    men = recommend_for_demographics(home, age=30, gender="M", k=2)
    assert women.items["item_id"].to_list() == [12, 13]
    assert men.items["item_id"].to_list() == [10, 11]
    assert women.basis == {"kind": "demographics", "age_band": "25-34", "gender": "F", "occupation": "unknown"}
    assert women.items["title"].to_list() == ["Item 12", "Item 13"]
    assert women.items["score"].to_list() == pytest.approx([1.0, 0.8])


def test_known_user_never_gets_what_they_saw(tmp_path):
    result = recommend_for_user(make_home(tmp_path), 1, k=2)
    assert result.items["item_id"].to_list() == [11, 14]  # 10 scores highest but was seen
    assert result.basis["kind"] == "known_user"


def test_user_newer_than_the_model_gets_cold_start_from_warehouse_demographics(tmp_path):
    result = recommend_for_user(make_home(tmp_path), 3, k=2)
    assert result.basis["kind"] == "demographics" and "joined after model v1" in result.basis["note"]
    assert result.items["item_id"].to_list() == [13, 14]  # F -> romance, and 12 was seen


def test_unknown_user_and_no_champion_say_what_to_do(tmp_path):
    with pytest.raises(UnknownUserId, match="user 999 is not in the warehouse .* use --age and --gender"):
        recommend_for_user(make_home(tmp_path / "a"), 999)
    from movielens_fixtures import write_ml100k
    from pipelines.ingest import ingest_movielens

    ingest_movielens(tmp_path / "b", write_ml100k(tmp_path / "ml"), lock_timeout_s=5)
    with pytest.raises(NoChampion, match="run `python cli.py train` first"):
        recommend_for_demographics(tmp_path / "b", age=30, gender="F")


def test_k_longer_than_catalog_returns_the_whole_catalog(tmp_path):
    assert recommend_for_demographics(make_home(tmp_path), age=None, gender=None, k=50).items.height == 5


def test_cli_recommend_json_and_errors(tmp_path):
    home = str(make_home(tmp_path))
    runner = CliRunner()
    result = runner.invoke(cli, ["recommend", "--age", "34", "--gender", "f", "-k", "2", "--json", "--home", home])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert [row["item_id"] for row in payload["items"]] == [12, 13] and payload["model_version"] == 1
    result = runner.invoke(cli, ["recommend", "--user-id", "999", "--home", home])
    assert result.exit_code == 1 and "user 999 is not in the warehouse" in result.output
    result = runner.invoke(cli, ["recommend", "--user-id", "1", "--age", "3", "--home", home])
    assert result.exit_code == 2


def test_recommend_imports_neither_tensorflow_nor_mlflow(tmp_path):
    home = make_home(tmp_path)
    assert heavy_modules_after(["recommend", "--age", "30", "--gender", "F", "--home", str(home)]) == []


@pytest.mark.parametrize("who", [["--user-id", "1"], ["--age", "30", "--gender", "F"], ["--age", "30", "--liked", "12"]])
@pytest.mark.parametrize("output", [["--json"], []])
def test_recommend_imports_neither_polars_nor_pyarrow(tmp_path, who, output):
    # A fresh `recommend` answers in a fraction of a second; these two imports alone cost ~0.2 s.
    home = make_home(tmp_path)
    assert heavy_modules_after(["recommend", *who, *output, "--home", str(home)], ("polars", "pyarrow")) == []
