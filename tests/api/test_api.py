"""Every route through FastAPI's test client, on the hand-made bundle of serving_fixtures:
items 10, 11 action, 12, 13 romance, 14 both; men -> action, women -> romance; user 1 likes
action and has seen 10; user 2 likes romance; user 3 joined after the model (F)."""

from pathlib import Path

import pytest

from pipelines.recommend import recommend_for_demographics

ASTRONAUT = Path(__file__).resolve().parents[2] / "examples" / "astronaut.jpg"


def ids(response):
    assert response.status_code == 200, response.text
    return [item["item_id"] for item in response.json()["items"]]


def test_demographics_list_has_the_cli_shape_and_reasons(client, home):
    response = client.post("/v1/recommendations", json={"age": 30, "gender": "f", "k": 2})
    body = response.json()
    assert ids(response) == [12, 13]
    assert body["model_version"] == 1
    assert body["basis"]["kind"] == "demographics" and body["basis"]["age_band"] == "25-34"
    assert [i["reason"] for i in body["items"]] == ["demographic", "demographic"]
    # One schema: the API's list is the CLI's --json list, field for field.
    cli = recommend_for_demographics(home, age=30, gender="F", k=2).to_list().to_dict()
    assert body == cli


def test_known_user_excludes_seen_and_says_personal_history(client):
    response = client.post("/v1/recommendations", json={"user_id": 1, "k": 2})
    assert ids(response) == [11, 14]
    assert {i["reason"] for i in response.json()["items"]} == {"personal_history"}


def test_liked_items_change_the_list_and_say_because(client):
    plain = ids(client.post("/v1/recommendations", json={"k": 3}))  # gender unknown: [10, 12, 11]
    liked = client.post("/v1/recommendations", json={"k": 3, "liked_items": [12]})
    assert 13 not in plain and 13 in ids(liked)
    item = next(i for i in liked.json()["items"] if i["item_id"] == 13)
    assert item["reason"] == "liked_items" and item["because"] == [12]


def test_campaign_rules(client):
    assert set(ids(client.post("/v1/recommendations", json={"gender": "M", "genres": ["Romance"], "k": 5}))) == {12, 13, 14}
    assert ids(client.post("/v1/recommendations", json={"gender": "M", "exclude_items": [10], "k": 1})) == [11]
    assert ids(client.post("/v1/recommendations", json={"gender": "M", "items": [13, 14], "k": 5}))[0] == 14


def test_session_events_count_for_the_next_list(client):
    before = ids(client.post("/v1/recommendations", json={"session_id": "s-1", "gender": "M", "k": 3}))
    assert before[:2] == [10, 11]
    response = client.post("/v1/events", json={"events": [
        {"session_id": "s-1", "item_id": 10, "type": "view"},
        {"session_id": "s-1", "item_id": 12, "type": "like"},
    ]})
    assert response.status_code == 201 and response.json()["accepted"] == 2
    after = client.post("/v1/recommendations", json={"session_id": "s-1", "gender": "M", "k": 3})
    assert 10 not in ids(after) and 12 not in ids(after)  # seen and liked items are not offered again
    assert 13 in ids(after)
    assert after.json()["basis"]["kind"] == "session" and after.json()["basis"]["n_liked"] == 1


def test_known_user_events_exclude_and_reach_the_warehouse(client, home):
    assert client.post("/v1/events", json={"events": [{"user_id": 1, "item_id": 11, "type": "rating", "value": 5}]}).status_code == 201
    assert 11 not in ids(client.post("/v1/recommendations", json={"user_id": 1, "k": 3}))
    from pipelines.events import merge_events
    from warehouse.connection import connected

    summary = merge_events(home, lock_timeout_s=5)
    assert (summary.n_events, summary.n_interactions) == (1, 1)
    assert merge_events(home, lock_timeout_s=5).n_events == 0  # never merged twice
    with connected(home, read_only=True) as conn:
        assert conn.sql("SELECT rating FROM interactions WHERE user_id = 1 AND item_id = 11").fetchall() == [(5.0,)]


@pytest.mark.parametrize("body, status, field", [
    ({"age": 130}, 422, "age"),
    ({"age": "NaN"}, 422, "age"),
    ({"gender": "X"}, 422, "gender"),
    ({"k": 0}, 422, "k"),
    ({"user_id": 1, "age": 30}, 422, "user_id alone"),
    ({"color": "red"}, 422, "color"),
    ({"liked_items": [999]}, 422, "liked_items"),
    ({"user_id": 999}, 404, "user 999"),
    ({"genres": ["Western"]}, 422, "genre"),
])
def test_bad_requests_name_the_field(client, body, status, field):
    response = client.post("/v1/recommendations", json=body)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error", "detail"} and field in response.json()["detail"]


@pytest.mark.parametrize("event, field", [
    ({"item_id": 10, "type": "like"}, "exactly one of user_id and session_id"),
    ({"session_id": "s", "item_id": 999, "type": "like"}, "item 999"),
    ({"user_id": 77, "item_id": 10, "type": "like"}, "user 77"),
    ({"session_id": "s", "item_id": 10, "type": "rating"}, "needs a value"),
    ({"session_id": "s", "item_id": 10, "type": "purchase"}, "type"),
    ({"session_id": "bad id!", "item_id": 10, "type": "like"}, "session_id"),
])
def test_bad_events_are_refused_whole(client, event, field):
    good = {"session_id": "s", "item_id": 10, "type": "view"}
    response = client.post("/v1/events", json={"events": [good, event]})
    assert response.status_code in (404, 422), response.text
    assert field in response.json()["detail"]
    liked_list = client.post("/v1/recommendations", json={"session_id": "s", "k": 5})
    assert 10 in ids(liked_list)  # the good event of a refused batch was not recorded


def test_items_and_champion(client):
    item = client.get("/v1/items/12").json()
    assert item["title"] == "Item 12" and item["genres"] == ["Romance"]
    assert client.get("/v1/items/999").status_code == 404
    page = client.get("/v1/items", params={"genre": "Action", "limit": 2}).json()
    assert page["total"] == 3 and len(page["items"]) == 2
    assert page["items"][0]["item_id"] == 10  # the most interacted-with first
    assert client.get("/v1/items", params={"search": "item 1"}).json()["total"] == 5
    assert client.get("/v1/items", params={"limit": 0}).status_code == 422
    champion = client.get("/v1/models/champion").json()
    assert champion["model_version"] == 1 and champion["metrics"]["cold.ndcg_at_10"] == 0.5


def test_health_readiness_metrics_and_docs(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "model_version": 1}
    client.post("/v1/recommendations", json={"gender": "F"})
    client.post("/v1/events", json={"events": [{"session_id": "m", "item_id": 10, "type": "like"}]})
    text = client.get("/metrics").text
    assert 'recsys_http_requests_total{method="POST",route="/v1/recommendations",status="200"}' in text
    assert "recsys_http_request_duration_seconds_bucket" in text
    assert 'recsys_events_accepted_total{type="like"}' in text
    assert "recsys_model_version_served 1.0" in text
    assert client.get("/docs").status_code == 200
    assert "/v1/recommendations/selfie" in client.get("/openapi.json").json()["paths"]


def test_not_ready_without_a_champion(tmp_path):
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import Settings

    with TestClient(create_app(Settings(home=tmp_path))) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503
        response = client.post("/v1/recommendations", json={"gender": "F"})
        assert response.status_code == 503 and response.json()["error"] == "not_ready"


def test_admin_routes_need_the_token_and_are_off_without_one(client, admin, home):
    assert client.post("/v1/admin/reload").status_code == 401
    assert client.post("/v1/admin/reload", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post("/v1/admin/reload", headers=admin).json()["model_version"] == 1
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import Settings

    with TestClient(create_app(Settings(home=home))) as no_admin:
        assert no_admin.post("/v1/admin/reload").status_code == 404


def test_erasing_a_user_removes_events_interactions_and_batch_results(client, admin, home):
    from warehouse.connection import connected

    with connected(home) as conn:
        conn.execute("INSERT INTO batch_results VALUES ('spring', '1', 1, 11, 0.9, 1), ('spring', '2', 1, 12, 0.9, 1)")
    client.post("/v1/events", json={"events": [{"user_id": 1, "item_id": 12, "type": "like"}]})
    response = client.delete("/v1/users/1", headers=admin)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["warehouse"] == "erased" and body["landing_events_deleted"] == 1
    assert (body["n_interactions"], body["n_batch_results"]) == (1, 1)
    with connected(home, read_only=True) as conn:
        assert conn.sql("SELECT count(*) FROM interactions WHERE user_id = 1").fetchall() == [(0,)]
        assert conn.sql("SELECT count(*) FROM batch_results WHERE user_id = '1'").fetchall() == [(0,)]
        assert conn.sql("SELECT count(*) FROM batch_results").fetchall() == [(1,)]
        assert conn.sql("SELECT subject, subject_id FROM erasures").fetchall() == [("user", "1")]
    assert client.post("/v1/recommendations", json={"user_id": 1}).status_code == 410
    assert client.post("/v1/events", json={"events": [{"user_id": 1, "item_id": 12, "type": "like"}]}).status_code == 410
    assert client.delete("/v1/users/1").status_code == 401


def test_erasing_a_session(client, admin):
    client.post("/v1/events", json={"events": [{"session_id": "gone", "item_id": 12, "type": "like"}]})
    response = client.delete("/v1/sessions/gone", headers=admin)
    assert response.status_code == 200 and response.json()["landing_events_deleted"] == 1
    assert client.post("/v1/recommendations", json={"session_id": "gone"}).json()["basis"]["n_liked"] == 0


def test_a_known_users_history_newest_first_with_what_landed(client):
    assert client.get("/v1/users/1/history").json()["items"][0]["item_id"] == 10
    client.post("/v1/events", json={"events": [{"user_id": 1, "item_id": 13, "type": "like"}]})
    items = client.get("/v1/users/1/history", params={"limit": 5}).json()["items"]
    assert [(i["item_id"], i["type"]) for i in items] == [(13, "like"), (10, "rating")]
    assert items[0]["title"] == "Item 13"
    assert client.get("/v1/users/999/history").status_code == 404


def test_the_service_and_the_cli_rank_likes_alike(tmp_path):
    """The same hand-made bundle with an item-item part: the API's list is the CLI's."""
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import Settings
    from test_recommend_liked import home_with_item_item, recommend_json

    home = home_with_item_item(tmp_path)
    cli_list = recommend_json(home, "--age", "40", "--gender", "M", "--liked", "12")
    with TestClient(create_app(Settings(home=home, reload_interval_s=3600))) as client:
        api_list = client.post("/v1/recommendations", json={"age": 40, "gender": "M", "liked_items": [12], "k": 3}).json()
    assert [(i["item_id"], i["reason"], i["because"]) for i in api_list["items"]] == \
        [(i["item_id"], i["reason"], i["because"]) for i in cli_list["items"]] == [(13, "liked_items", [12]), (10, "demographic", []), (11, "demographic", [])]


def test_the_service_imports_neither_tensorflow_nor_mlflow(home):
    import json
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import json, sys; from pathlib import Path; from fastapi.testclient import TestClient\n"
        "from service.app import create_app; from service.settings import Settings\n"
        f"with TestClient(create_app(Settings(home=Path({str(home)!r})))) as c:\n"
        "    assert c.post('/v1/recommendations', json={'age': 30, 'gender': 'F'}).status_code == 200\n"
        "print(json.dumps(sorted(m for m in ('tensorflow', 'tf_keras', 'keras', 'mlflow') if m in sys.modules)))"
    )
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []
