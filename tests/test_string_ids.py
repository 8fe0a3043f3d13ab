"""A catalog with string ids (SKUs for items, UUIDs for users) through every outward surface:
ids in and out are the source's, keys stay inside. The lists are serving_fixtures' (worked out
by hand there), spelled in SKUs: see string_id_fixtures."""

import json

import pytest
from click.testing import CliRunner

from cli import cli
from pipelines.errors import InputError, UnknownUserId
from pipelines.recommend import recommend_for_demographics, recommend_for_user, recommend_with_items
from string_id_fixtures import SKU, USER, make_string_home


def test_lists_show_skus_and_take_uuids(tmp_path):
    home = make_string_home(tmp_path)
    women = recommend_for_demographics(home, age=30, gender="F", k=2)
    assert women.items["item_id"].to_list() == [SKU[12], SKU[13]]
    known = recommend_for_user(home, USER[1], k=2)
    assert known.items["item_id"].to_list() == [SKU[11], SKU[14]]  # SKU[10] was seen
    assert known.basis["user_id"] == USER[1] and known.basis["kind"] == "known_user"
    later = recommend_for_user(home, f"  {USER[3]} ", k=2)  # joined after the model: demographics
    assert later.basis["user_id"] == USER[3] and later.items["item_id"].to_list() == [SKU[13], SKU[14]]


def test_liked_skus_bend_the_list_and_because_names_them(tmp_path):
    home = make_string_home(tmp_path)
    liked = recommend_with_items(home, age=None, gender=None, liked=[SKU[12]], k=3).to_list().to_dict()
    item = next(i for i in liked["items"] if i["item_id"] == SKU[13])
    assert item["reason"] == "liked_items" and item["because"] == [SKU[12]]
    with pytest.raises(InputError, match=r"--liked: item id\(s\) 'SKU-99999' are not in the catalog"):
        recommend_with_items(home, age=None, gender=None, liked=[SKU[12], "SKU-99999"])
    with pytest.raises(InputError, match="both liked and disliked"):
        recommend_with_items(home, age=None, gender=None, liked=[SKU[12]], disliked=[SKU[12]])


def test_unknown_string_user_is_named(tmp_path):
    home = make_string_home(tmp_path)
    with pytest.raises(UnknownUserId, match="'no-such-user' are not in the catalog"):
        recommend_for_user(home, "no-such-user")
    with pytest.raises(UnknownUserId):  # a key is not an id: the source's ids are the UUIDs
        recommend_for_user(home, 1)


def test_cli_recommend_json_and_table_speak_skus(tmp_path):
    home = str(make_string_home(tmp_path))
    runner = CliRunner()
    result = runner.invoke(cli, ["recommend", "--user-id", USER[1], "-k", "2", "--json", "--home", home])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert [i["item_id"] for i in payload["items"]] == [SKU[11], SKU[14]]
    assert payload["basis"]["user_id"] == USER[1]
    result = runner.invoke(cli, ["recommend", "--liked", f"{SKU[12]}", "-k", "3", "--home", home])
    assert result.exit_code == 0, result.output
    assert SKU[13] in result.output and SKU[12] in result.output  # listed, and the liked item in "because"
    result = runner.invoke(cli, ["recommend", "--user-id", "nobody", "--home", home])
    assert result.exit_code == 1 and "'nobody'" in result.output
    result = runner.invoke(cli, ["recommend", "--liked", "SKU-99999", "--home", home])
    assert result.exit_code == 1 and "SKU-99999" in result.output


def test_integer_catalogs_keep_integers_and_read_ids_as_ingest_does(tmp_path):
    from serving_fixtures import make_home

    home = make_home(tmp_path)
    assert recommend_for_user(home, "001", k=2).basis["user_id"] == 1
    assert recommend_for_user(home, "1.0", k=2).items["item_id"].to_list() == [11, 14]
    result = CliRunner().invoke(cli, ["recommend", "--user-id", "abc", "--home", str(home)])
    assert result.exit_code == 2 and "expected a user id" in result.output
