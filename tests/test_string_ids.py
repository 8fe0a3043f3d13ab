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


# ---------------------------------------------------------------- the service


@pytest.fixture
def client(tmp_path):
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import Settings

    home = make_string_home(tmp_path / "home")
    with TestClient(create_app(Settings(home=home, admin_token="t", reload_interval_s=3600))) as client:
        client.home = home
        yield client


def _ids(response):
    assert response.status_code == 200, response.text
    return [i["item_id"] for i in response.json()["items"]]


def test_service_lists_take_and_give_the_sources_ids(client):
    body = client.post("/v1/recommendations", json={"user_id": USER[1], "k": 2}).json()
    assert [i["item_id"] for i in body["items"]] == [SKU[11], SKU[14]] and body["basis"]["user_id"] == USER[1]
    # The API's list is the CLI's, field for field, in SKUs too.
    assert body == recommend_for_user(client.home, USER[1], k=2).to_list().to_dict() | {"basis": body["basis"]}
    liked = client.post("/v1/recommendations", json={"k": 3, "liked_items": [SKU[12]]}).json()
    assert next(i for i in liked["items"] if i["item_id"] == SKU[13])["because"] == [SKU[12]]
    assert _ids(client.post("/v1/recommendations", json={"gender": "M", "exclude_items": [SKU[10]], "k": 1})) == [SKU[11]]
    assert _ids(client.post("/v1/recommendations", json={"gender": "M", "items": [SKU[13], SKU[14]], "k": 5}))[0] == SKU[14]


def test_service_names_unknown_string_ids(client):
    response = client.post("/v1/recommendations", json={"user_id": "no-such-user"})
    assert response.status_code == 404 and "'no-such-user'" in response.json()["detail"]
    response = client.post("/v1/recommendations", json={"liked_items": ["SKU-99999"]})
    assert response.status_code == 422 and "liked_items" in response.json()["detail"] and "SKU-99999" in response.json()["detail"]
    response = client.post("/v1/events", json={"events": [{"session_id": "s", "item_id": "SKU-99999", "type": "like"}]})
    assert response.status_code == 422 and "events[0].item_id" in response.json()["detail"]
    assert client.get("/v1/items/SKU-99999").status_code == 404
    assert client.get("/v1/users/nobody/history").status_code == 404
    assert client.get("/v1/items/10").status_code == 404  # a key is not an id: the SKUs are


def test_service_events_land_by_key_and_reach_the_warehouse(client):
    from pipelines.events import merge_events
    from warehouse.connection import connected

    response = client.post("/v1/events", json={"events": [{"user_id": USER[1], "item_id": SKU[11], "type": "rating", "value": 5}]})
    assert response.status_code == 201, response.text
    assert SKU[11] not in _ids(client.post("/v1/recommendations", json={"user_id": USER[1], "k": 3}))
    history = client.get(f"/v1/users/{USER[1]}/history").json()
    assert history["user_id"] == USER[1] and [i["item_id"] for i in history["items"]] == [SKU[11], SKU[10]]
    assert merge_events(client.home, lock_timeout_s=5).n_interactions == 1
    with connected(client.home, read_only=True) as conn:
        assert conn.sql("SELECT user_id, item_id, rating FROM interactions WHERE item_id = 11").fetchall() == [(1, 11, 5.0)]


def test_service_items_show_skus(client):
    page = client.get("/v1/items", params={"genre": "Romance"}).json()
    assert {i["item_id"] for i in page["items"]} == {SKU[12], SKU[13], SKU[14]}
    item = client.get(f"/v1/items/{SKU[12]}").json()
    assert item["item_id"] == SKU[12] and item["title"] == "Item 12"


def test_service_erases_a_user_by_their_string_id(client):
    from warehouse.connection import connected

    with connected(client.home) as conn:
        conn.execute(f"INSERT INTO batch_results VALUES ('spring', '{USER[1]}', 1, 11, 0.9, 1), ('spring', '{USER[2]}', 1, 12, 0.9, 1)")
    client.post("/v1/events", json={"events": [{"user_id": USER[1], "item_id": SKU[12], "type": "like"}]})
    response = client.delete(f"/v1/users/{USER[1]}", headers={"Authorization": "Bearer t"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["subject_id"] == USER[1] and body["landing_events_deleted"] == 1
    assert (body["n_interactions"], body["n_batch_results"]) == (1, 1)
    with connected(client.home, read_only=True) as conn:
        assert conn.sql("SELECT count(*) FROM interactions WHERE user_id = 1").fetchall() == [(0,)]
        assert conn.sql("SELECT user_id FROM batch_results").fetchall() == [(USER[2],)]
        assert conn.sql("SELECT subject_id FROM erasures").fetchall() == [(USER[1],)]
    assert client.post("/v1/recommendations", json={"user_id": USER[1]}).status_code == 410
    assert client.get(f"/v1/users/{USER[1]}/history").status_code == 410


# ---------------------------------------------------------------- batch-score


def test_batch_score_reads_and_writes_the_sources_ids(tmp_path):
    import polars as pl

    from pipelines.batch_score import batch_score
    from pipelines.ids import keyed_rules
    from pipelines.rules import CampaignRules
    from warehouse.connection import connected

    home = make_string_home(tmp_path / "home")
    audience = tmp_path / "audience.csv"
    audience.write_text(f"user_id,age,gender,liked_items\n{USER[1]},,,\n{USER[3]},,,\nnew-visitor,40,M,\n"
                        f"liker,,F,{SKU[12]}\nbad-like,30,F,{SKU[12]}|SKU-99999\n{USER[1]},,,\nghost,,,\n1,,,\n")
    out = tmp_path / "spring.csv"
    summary = batch_score(home, audience, out, k=2, campaign=None, version=None, rules=CampaignRules(),
                          show_progress=False, chunk_size=1000)
    results = pl.read_csv(out, infer_schema=False)
    lists = {uid: group.sort("rank")["item_id"].to_list() for (uid,), group in results.group_by("user_id")}
    assert lists[USER[1]] == [SKU[11], SKU[14]]  # known by their UUID, saw SKU[10]
    assert lists[USER[3]] == [SKU[13], SKU[14]]  # in the warehouse after the model
    assert lists["new-visitor"] == [SKU[10], SKU[11]]
    assert lists["liker"][0] == SKU[13]  # liked SKU[12]: its neighbour first, as the service gives it
    assert (summary.n_known, summary.n_cold) == (1, 3)
    reasons = dict(zip(*pl.read_csv(summary.rejects_path, infer_schema=False).select("user_id", "reason")))
    assert reasons == {"bad-like": "liked_items: item 'SKU-99999' is not in the model's catalog",
                       USER[1]: "duplicate user_id in the audience",
                       "ghost": "not a known user and no usable age, gender or selfie",
                       "1": "not a known user and no usable age, gender or selfie"}  # a key is not an id
    with connected(home, read_only=True) as conn:
        stored = conn.sql("SELECT user_id, item_external_id FROM batch_results_by_user WHERE rank = 1 ORDER BY user_id").fetchall()
        assert (USER[1], SKU[11]) in stored
        assert conn.sql(f"SELECT known_user_id FROM batch_results_by_user WHERE user_id = '{USER[1]}' LIMIT 1").fetchall() == [(1,)]
        # Campaign rules name items by SKU; an unknown SKU is named.
        assert keyed_rules(conn, CampaignRules(exclude_items=frozenset({SKU[10]}))).exclude_items == {10}
        with pytest.raises(InputError, match="--items: item id.*'SKU-1'"):
            keyed_rules(conn, CampaignRules(only_items=frozenset({"SKU-1"})))
    parquet = tmp_path / "rules.parquet"
    batch_score(home, audience, parquet, k=1, campaign=None, version=None, show_progress=False, chunk_size=1000,
                rules=CampaignRules(exclude_items=frozenset({SKU[11]})))
    assert pl.read_parquet(parquet).filter(pl.col("user_id") == USER[1])["item_id"].to_list() == [SKU[14]]


def test_cli_batch_score_rules_take_skus(tmp_path):
    home = make_string_home(tmp_path / "home")
    audience = tmp_path / "audience.csv"
    audience.write_text("user_id,age,gender\nv,40,M\n")
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(cli, ["batch-score", str(audience), "--out", str(out), "-k", "1", "--items",
                                      f"{SKU[12]},{SKU[13]}", "--json", "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines()[1].split(",")[2] == SKU[12]
    result = CliRunner().invoke(cli, ["batch-score", str(audience), "--out", str(out), "--exclude-items", "SKU-404",
                                      "--home", str(home)])
    assert result.exit_code == 1 and "SKU-404" in result.output
