import json

import polars as pl
import pytest
from click.testing import CliRunner

from cli import cli
from pipelines.batch_score import batch_score
from pipelines.errors import InputError
from pipelines.rules import CampaignRules
from serving_fixtures import make_home
from warehouse.batch_results import campaign_results, campaign_runs
from warehouse.connection import connected


def audience_csv(path, text):
    path.write_text(text)
    return path


def run(home, audience, out, rules=CampaignRules(), **kwargs):
    return batch_score(home, audience, out, k=kwargs.pop("k", 2), campaign=kwargs.pop("campaign", None), version=None,
                       rules=rules, show_progress=False, chunk_size=kwargs.pop("chunk_size", 1000), **kwargs)


AUDIENCE = """user_id,age,gender,occupation
1,,,
2,,,
3,,,
a,30,F,
b,45,M,writer
c,31,f,
d,abc,F,
e,30,X,
f,,,
a,30,F,
,30,F,
g,200,M,
"""


def test_every_kind_of_row(tmp_path):
    home = make_home(tmp_path / "home")
    out = tmp_path / "spring.parquet"
    summary = run(home, audience_csv(tmp_path / "audience.csv", AUDIENCE), out)
    assert (summary.n_rows, summary.n_known, summary.n_cold, summary.n_rejected) == (12, 2, 4, 6)
    results = pl.read_parquet(out)
    lists = {uid: group.sort("rank")["item_id"].to_list() for (uid,), group in results.group_by("user_id")}
    assert lists["1"] == [11, 14]  # known, saw 10
    assert lists["2"] == [12, 13]  # known, romance
    assert lists["3"] == [13, 14]  # in the warehouse after the model: F, saw 12
    assert lists["a"] == lists["c"] == [12, 13] and lists["b"] == [10, 11]
    assert set(results["model_version"]) == {1} and results.columns == ["user_id", "rank", "item_id", "score", "model_version"]
    rejects = pl.read_csv(summary.rejects_path, infer_schema=False)
    reasons = dict(zip(rejects["row"].to_list(), rejects["reason"].to_list()))
    assert reasons == {
        "7": "age 'abc' is not a number",
        "8": "gender 'X' is not M or F",
        "9": "not a known user and no usable age, gender or selfie",
        "10": "duplicate user_id in the audience",
        "11": "missing user_id",
        "12": "age 200 is outside 0-120",
    }
    assert summary.n_cold_combinations == 2  # (25-34, F) shared by a, c and user 3; (45-49, M)


def test_results_are_stored_under_the_campaign_and_rerun_replaces(tmp_path):
    home = make_home(tmp_path / "home")
    audience = audience_csv(tmp_path / "a.csv", "user_id,age,gender\nx,30,F\ny,30,M\n")
    run(home, audience, tmp_path / "out.csv", campaign="spring")
    run(home, audience, tmp_path / "out.csv", campaign="spring")
    with connected(home, read_only=True) as conn:
        stored = campaign_results(conn, "spring")
        runs = campaign_runs(conn)
    assert stored.height == 4 and runs.height == 1
    assert pl.read_csv(tmp_path / "out.csv").height == 4
    assert not (tmp_path / "out.rejects.csv").exists()


def test_chunks_do_not_change_the_answer(tmp_path):
    home = make_home(tmp_path / "home")
    rows = "".join(f"u{i},{20 + i % 50},{'MF'[i % 2]}\n" for i in range(2500))
    audience = audience_csv(tmp_path / "a.csv", "user_id,age,gender\n" + rows)
    one = run(home, audience, tmp_path / "one.parquet", chunk_size=100_000)
    many = run(home, audience, tmp_path / "many.parquet", chunk_size=1000)
    assert one.n_cold == many.n_cold == 2500
    assert pl.read_parquet(tmp_path / "one.parquet").equals(pl.read_parquet(tmp_path / "many.parquet"))


def test_business_rules(tmp_path):
    home = make_home(tmp_path / "home")
    audience = audience_csv(tmp_path / "a.csv", "user_id,age,gender\nx,30,M\ny,30,M\nz,30,M\n")
    excluded = run(home, audience, tmp_path / "e.parquet", CampaignRules(exclude_items=frozenset({10})))
    assert pl.read_parquet(tmp_path / "e.parquet").filter(pl.col("user_id") == "x")["item_id"].to_list() == [11, 14]
    run(home, audience, tmp_path / "g.parquet", CampaignRules(genres=frozenset({"Romance"})))
    assert pl.read_parquet(tmp_path / "g.parquet").filter(pl.col("user_id") == "x")["item_id"].to_list() == [14, 12]
    capped = run(home, audience, tmp_path / "c.parquet", CampaignRules(max_per_item=2))
    counts = pl.read_parquet(tmp_path / "c.parquet").group_by("item_id").len()
    assert counts["len"].max() <= 2
    lists = pl.read_parquet(tmp_path / "c.parquet").group_by("user_id", maintain_order=True).agg("item_id")
    assert lists["item_id"].to_list() == [[10, 11], [10, 11], [14, 12]]  # z, third in line, finds 10 and 11 full
    assert excluded.n_short_lists == capped.n_short_lists == 0
    with pytest.raises(InputError, match="unknown genre"):
        run(home, audience, tmp_path / "x.parquet", CampaignRules(genres=frozenset({"Opera"})))


@pytest.mark.parametrize(
    "content, name, message",
    [
        (None, "missing.csv", "audience file not found"),
        ("x", "a.xlsx", "unknown audience format '.xlsx'"),
        ("age,gender\n30,F\n", "a.csv", "missing column 'user_id'"),
        ("user_id,age\n", "a.csv", "the audience is empty"),
    ],
)
def test_bad_audience_files_fail_clearly_and_write_nothing(tmp_path, content, name, message):
    home = make_home(tmp_path / "home")
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=message):
        run(home, path, tmp_path / "out.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["home"] + ([name] if content is not None else []))
    with connected(home, read_only=True) as conn:
        assert campaign_runs(conn).height == 0


def test_failure_midway_keeps_the_previous_results(tmp_path, monkeypatch):
    home = make_home(tmp_path / "home")
    audience = audience_csv(tmp_path / "a.csv", "user_id,age,gender\nx,30,F\n")
    out = tmp_path / "out.parquet"
    run(home, audience, out, campaign="c")
    before = out.read_bytes()
    import pipelines.batch_score as module

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(module, "_rows", broken)
    audience_csv(tmp_path / "a.csv", "user_id,age,gender\nx,30,M\n")
    with pytest.raises(RuntimeError):
        run(home, audience, out, campaign="c")
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    with connected(home, read_only=True) as conn:
        assert campaign_results(conn, "c")["item_id"].to_list() == [12, 13]


def test_cli_summary_json(tmp_path):
    home = make_home(tmp_path / "home")
    audience = audience_csv(tmp_path / "a.csv", AUDIENCE)
    result = CliRunner().invoke(cli, ["batch-score", str(audience), "--out", str(tmp_path / "o.parquet"), "--json",
                                      "--home", str(home), "--exclude-items", "10,11"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["n_known"] == 2 and summary["n_rejected"] == 6
    assert 10 not in pl.read_parquet(tmp_path / "o.parquet")["item_id"].to_list()


def test_liked_items_bend_each_row_like_a_single_list(tmp_path):
    """The hand-made bundle with an item-item part (see test_recommend_liked): a man gets action
    (10, 11); one who just liked 12 gets 13 first, as `recommend --liked 12` gives him."""
    from test_recommend_liked import home_with_item_item, recommend_json

    home = home_with_item_item(tmp_path)
    audience = audience_csv(tmp_path / "audience.csv", "user_id,age,gender,liked_items\n"
                            "a,40,M,\nb,40,M,12\nc,40,M,12|999\nd,40,M,x|12\n")
    summary = run(home, audience, tmp_path / "out.parquet", k=3)
    results = pl.read_parquet(tmp_path / "out.parquet")
    lists = {uid: group.sort("rank")["item_id"].to_list() for (uid,), group in results.group_by("user_id")}
    assert lists["a"] == [10, 11, 14]
    single = recommend_json(home, "--age", "40", "--gender", "M", "--liked", "12")
    assert lists["b"] == [row["item_id"] for row in single["items"]] == [13, 10, 11]
    reasons = dict(zip(*pl.read_csv(summary.rejects_path, infer_schema=False).select("user_id", "reason")))
    assert reasons == {"c": "liked_items: item 999 is not in the model's catalog",
                       "d": "liked_items 'x|12' is not item ids joined by '|'"}
    # A list column in Parquet works the same way.
    pl.DataFrame({"user_id": ["b"], "age": [40], "gender": ["M"], "liked_items": [[12]]}).write_parquet(tmp_path / "a.parquet")
    run(home, tmp_path / "a.parquet", tmp_path / "out2.parquet", k=3, campaign="parquet")
    assert pl.read_parquet(tmp_path / "out2.parquet").sort("rank")["item_id"].to_list() == [13, 10, 11]
