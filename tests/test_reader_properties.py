"""Property tests for the readers: whatever bytes, encoding, separator or shape a users, items,
interactions or audience file has, reading it ends in a result or one InputError, and a failed
load or campaign leaves the warehouse as it was."""

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from movielens_fixtures import write_generic_csv
from pipelines.batch_score import batch_score
from pipelines.errors import InputError
from pipelines.ingest import ingest_generic
from pipelines.rules import CampaignRules
from serving_fixtures import make_home
from warehouse.batch_results import campaign_runs
from warehouse.catalog import counts, current_snapshot
from warehouse.connection import connected

SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
HEADERS = {
    "users": ["user_id", "age", "gender", "occupation"],
    "items": ["item_id", "title", "genres", "year", "brand"],
    "interactions": ["user_id", "item_id", "timestamp", "rating"],
    "audience": ["user_id", "age", "gender", "occupation"],
}
CELLS = st.one_of(
    st.sampled_from(["1", "2", "3", "10", "11", "12", "042", "42.0", "", " ", "30", "F", "m", "X", "nan", "-1", "1e9",
                     "2024-03-01T10:00:00", "2024-03-01T10:00:00Z", "2024-03-01T10:00:00+02:00", "a|b", '"', '""']),
    st.text(max_size=6),
)


@st.composite
def table_bytes(draw, kind):
    """A delimited file: a header (maybe shuffled, truncated or wrongly separated), rows of
    varying length, line ends, encodings; or just arbitrary bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200))
    columns = draw(st.permutations(HEADERS[kind]))[: draw(st.integers(1, len(HEADERS[kind])))]
    separator = draw(st.sampled_from([",", ",", ";", "\t", "|"]))
    rows = [separator.join(columns)]
    for _ in range(draw(st.integers(0, 6))):
        rows.append(separator.join(draw(st.lists(CELLS, min_size=0, max_size=len(columns) + 1))))
    text = draw(st.sampled_from(["\n", "\r\n"])).join(rows) + draw(st.sampled_from(["", "\n", "\n\n"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "latin-1", "utf-16"]))
    return text.encode(encoding, errors="replace")


@pytest.fixture(scope="module")
def loaded_home(tmp_path_factory):
    base = tmp_path_factory.mktemp("props")
    good = write_generic_csv(base / "good")
    home = base / "home"
    ingest_generic(home, good["users"], good["items"], good["interactions"], lock_timeout_s=5)
    return home, good


def warehouse_state(home):
    with connected(home, read_only=True) as conn:
        return current_snapshot(conn), counts(conn)


@SETTINGS
@given(which=st.sampled_from(["users", "items", "interactions"]), data=st.data())
def test_any_catalog_file_loads_or_fails_with_one_input_error(loaded_home, tmp_path_factory, which, data):
    home, good = loaded_home
    before = warehouse_state(home)
    paths = dict(good)
    paths[which] = tmp_path_factory.mktemp("case") / f"{which}.csv"
    paths[which].write_bytes(data.draw(table_bytes(which)))
    try:
        ingest_generic(home, paths["users"], paths["items"], paths["interactions"], lock_timeout_s=5)
    except InputError as e:
        assert str(e) and "Traceback" not in str(e)
        assert warehouse_state(home) == before
    else:  # a file that reads is a valid catalog: put the good one back for the next example
        ingest_generic(home, good["users"], good["items"], good["interactions"], lock_timeout_s=5)


@pytest.fixture(scope="module")
def serving_home(tmp_path_factory):
    return make_home(tmp_path_factory.mktemp("serve") / "home")


@SETTINGS
@given(content=table_bytes("audience"), chunk=st.sampled_from([1000, 100_000]))
def test_any_audience_scores_or_fails_with_one_input_error(serving_home, tmp_path_factory, content, chunk):
    directory = tmp_path_factory.mktemp("aud")
    audience = directory / "audience.csv"
    audience.write_bytes(content)
    with connected(serving_home, read_only=True) as conn:
        runs_before = campaign_runs(conn).height
    try:
        summary = batch_score(serving_home, audience, directory / "out.parquet", k=2, campaign=f"p{random.random()}",
                              version=None, rules=CampaignRules(), show_progress=False, chunk_size=chunk)
    except InputError:
        with connected(serving_home, read_only=True) as conn:
            assert campaign_runs(conn).height == runs_before
        assert sorted(p.name for p in directory.iterdir()) == ["audience.csv"]
    else:
        assert summary.n_rows == summary.n_known + summary.n_cold + summary.n_rejected
        assert not [p for p in directory.iterdir() if p.name.startswith(".")]
