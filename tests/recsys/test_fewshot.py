"""The given-n protocol and the fold-in baselines, on data small enough to work out by hand."""

import numpy as np
import polars as pl
import pytest

from recsys.baselines import EASE, DemographicPopularity, ImplicitALS, ItemKNN
from recsys.data import RecsysData
from recsys.evaluate import build_fewshot_protocol, evaluate, fewshot_name, fewshot_table
from recsys.item_item import ItemItemModel, ItemItemTable, cosine_weights, ease_weights
from recsys.personalize import History, recommend_many_with_history, recommend_with_history
from recsys.splits import Split, cold_start_split

USERS_SCHEMA = {"user_id": pl.Int64, "age": pl.Int32, "gender": pl.Utf8, "occupation": pl.Utf8, "zip": pl.Utf8}
ITEMS_SCHEMA = {"item_id": pl.Int64, "title": pl.Utf8, "year": pl.Int32, "genres": pl.List(pl.Utf8)}
RATINGS_SCHEMA = {"user_id": pl.Int64, "item_id": pl.Int64, "rating": pl.Float32, "timestamp": pl.Int64}


def _users(ids):
    return pl.DataFrame({"user_id": ids, "age": [30] * len(ids), "gender": ["F"] * len(ids),
                         "occupation": ["writer"] * len(ids), "zip": ["0"] * len(ids)}, schema=USERS_SCHEMA)


def _items(ids):
    return pl.DataFrame({"item_id": ids, "title": [f"film {i}" for i in ids], "year": [1990] * len(ids),
                         "genres": [["Drama"]] * len(ids)}, schema=ITEMS_SCHEMA)


def _ratings(rows):
    return pl.DataFrame(rows, schema=RATINGS_SCHEMA, orient="row")


def hand_made_split() -> Split:
    """Catalog 10..15 (positions 0..5). Held out: user 7 liked 12 (t=1), 10 (t=2), 14 and 11
    (both t=3) and rated 13 a 2; user 8 liked only 15 and 10; user 9 liked nothing."""
    train = RecsysData(users=_users([1]), items=_items([10, 11, 12, 13, 14, 15]),
                       interactions=_ratings([(1, 10, 5.0, 0)]))
    test = _ratings([(7, 13, 2.0, 0), (7, 12, 4.0, 1), (7, 10, 5.0, 2), (7, 14, 4.0, 3), (7, 11, 4.0, 3),
                     (8, 15, 5.0, 1), (8, 10, 4.0, 2), (9, 11, 1.0, 1)])
    return Split(train=train, test_interactions=test, test_users=_users([7, 8, 9]))


def test_given_n_reveals_the_earliest_likes_and_judges_the_rest():
    protocol = build_fewshot_protocol(hand_made_split(), n=1, relevant_min_rating=4.0)
    assert protocol.name == "fewshot.n1"
    assert protocol.users["user_id"].to_list() == [7, 8]  # 9 liked nothing
    # User 7: 12 first (t=1); the low rating of 13 at t=0 is neither revealed nor relevant.
    assert [r.tolist() for r in protocol.revealed] == [[2], [5]]
    assert [sorted(r.tolist()) for r in protocol.relevant] == [[0, 1, 4], [0]]
    assert protocol.exclude_rows(0, 1)[0].tolist() == [False, False, True, False, False, False]
    assert not protocol.use_history


def test_given_n_keeps_only_users_with_something_left_and_breaks_ties_by_item_id():
    protocol = build_fewshot_protocol(hand_made_split(), n=3, relevant_min_rating=4.0)
    assert protocol.users["user_id"].to_list() == [7]  # user 8 has 2 likes: nothing left to judge
    # 14 and 11 share t=3: item 11 (position 1) comes first, so it is revealed and 14 stays relevant.
    assert protocol.revealed[0].tolist() == [2, 0, 1]
    assert protocol.relevant[0].tolist() == [4]
    with pytest.raises(ValueError, match="at least 1"):
        build_fewshot_protocol(hand_made_split(), n=0, relevant_min_rating=4.0)


class _Oracle:
    """Scores the held-out relevant items highest: every protocol's ceiling."""

    def __init__(self, protocol):
        self.protocol = protocol

    def score_given(self, users, revealed):
        scores = np.zeros((users.height, len(self.protocol.item_popularity)), dtype=np.float32)
        for row, relevant in enumerate(self.protocol.relevant):
            scores[row, relevant] = 1.0
            scores[row, revealed[row]] = 2.0  # excluded by the protocol, so never counted
        return scores


def test_a_perfect_scorer_reaches_one_and_revealed_items_never_count():
    protocol = build_fewshot_protocol(hand_made_split(), n=1, relevant_min_rating=4.0)
    assert evaluate(_Oracle(protocol), protocol, k=3).metrics["ndcg_at_3"] == pytest.approx(1.0)


def test_cosine_and_ease_by_hand():
    # Users like {A, B}, {A, B}, {B, C}: cos(A, B) = 2 / sqrt(2 * 3), cos(B, C) = 1 / sqrt(3), cos(A, C) = 0.
    X = np.array([[1, 1, 0], [1, 1, 0], [0, 1, 1]], dtype=np.float32)
    cos = cosine_weights(X)
    np.testing.assert_allclose(cos, [[0, 2 / 6 ** 0.5, 0], [2 / 6 ** 0.5, 0, 3 ** -0.5], [0, 3 ** -0.5, 0]], rtol=1e-6)
    # EASE: B = -P / diag(P) with P = (X^T X + l2 I)^-1; reconstructs X best off the diagonal.
    B = ease_weights(X, l2=1.0)
    P = np.linalg.inv(X.T @ X + np.eye(3))
    np.testing.assert_allclose(B, np.where(np.eye(3) == 1, 0.0, -P / np.diag(P)), rtol=1e-5)


def test_sparse_table_keeps_the_strongest_neighbours_and_sums_rows():
    dense = np.array([[0, 3, 1, 2], [3, 0, 0, 1], [1, 0, 0, 5], [2, 1, 5, 0]], dtype=np.float32)
    table = ItemItemTable.from_dense(dense, width=2)
    assert sorted(table.neighbours[0].tolist()) == [1, 3]  # 3 and 2 kept, 1 dropped
    # Rows 0 and 2 kept: item 1 gets 3 (from 0), item 3 gets 2 + 5, item 0 gets 1 (from 2).
    assert table.scores(np.array([0, 2])).tolist() == [1.0, 3.0, 0.0, 7.0]
    np.testing.assert_array_equal(table.batch_scores([np.array([0, 2]), np.array([], dtype=np.int64)]),
                                  [[1, 3, 0, 7], [0, 0, 0, 0]])
    assert ItemItemTable.from_dense(dense, width=None).neighbours is None
    np.testing.assert_array_equal(table.contributions(np.array([0, 2]), np.array([3, 1])), [[2, 3], [5, 0]])


def test_batch_and_one_person_functions_agree():
    rng = np.random.default_rng(0)
    items = rng.normal(size=(30, 4)).astype(np.float32)
    dense = np.abs(rng.normal(size=(30, 30))).astype(np.float32)
    np.fill_diagonal(dense, 0)
    model = ItemItemModel(cosine=ItemItemTable.from_dense(dense, 5), ease=ItemItemTable.from_dense(dense - 0.5, None),
                          min_rating=4.0, new_visitor_weight=2.0, known_user_ease_weight=1.0, known_user_cosine_weight=3.0)
    vectors = rng.normal(size=(3, 4)).astype(np.float32)
    histories = [History(liked=(1, 2), disliked=(7,), seen=(9,)), History(), History(liked=tuple(range(10, 20)))]
    known = np.array([False, True, True])
    batch, _ = recommend_many_with_history(items, vectors, histories, k=6, known_user=known, item_item=model)
    for row, history in enumerate(histories):
        one = recommend_with_history(items, vectors[row], history, k=6, known_user=bool(known[row]), item_item=model)
        assert one.indices.tolist() == batch[row].tolist()
        assert not set(one.indices.tolist()) & set(history.liked + history.disliked + history.seen)


def _checkerboard():
    """40 users x 20 items: even users like the even items, odd users the odd ones."""
    rows, t = [], 0
    for user in range(1, 41):
        for item in range(1, 21):
            if item % 2 == user % 2:
                t += 1
                rows.append((user, item, 5.0, t))
    users = _users(list(range(1, 41)))
    return RecsysData(users=users, items=_items(list(range(1, 21))), interactions=_ratings(rows))


@pytest.mark.parametrize("baseline", [
    ItemKNN(), EASE(l2=10.0, name="ease_foldin"),
    ImplicitALS(factors=4, regularization=0.1, iterations=10, random_state=0, name="als_foldin"),
], ids=lambda b: b.name)
def test_fold_in_baselines_follow_the_revealed_side(baseline):
    """The same check for every fold-in baseline: a new person who reveals two even items gets
    even items, one who reveals two odd items odd ones."""
    data = _checkerboard()
    split = cold_start_split(data, 0.25, random_state=0)
    baseline.fit(split.train)
    scores = baseline.score_given(_users([100, 101]), [np.array([1, 3]), np.array([0, 2])])  # item 2, 4 / 1, 3
    item_ids = split.train.items["item_id"].to_numpy()
    for row, parity in ((0, 0), (1, 1)):
        allowed = np.ones(20, dtype=bool)
        allowed[[1, 3] if row == 0 else [0, 2]] = False
        top = np.flatnonzero(allowed)[np.argsort(-scores[row, allowed], kind="stable")[:5]]
        assert np.all(item_ids[top] % 2 == parity), baseline.name


def test_demographic_popularity_ignores_the_revealed_items_and_runs_the_protocol():
    data = _checkerboard()
    split = cold_start_split(data, 0.25, random_state=0)
    protocol = build_fewshot_protocol(split, n=3, relevant_min_rating=4.0)
    baseline = DemographicPopularity().fit(split.train)
    assert np.array_equal(baseline.score_given(protocol.users, protocol.revealed), baseline.score(protocol.users))
    assert fewshot_name(3) == protocol.name
    assert 0.0 <= evaluate(ItemKNN().fit(split.train), protocol).metrics["ndcg_at_10"] <= 1.0


def test_fewshot_table_puts_cold_start_at_n_zero_for_those_with_few_shot_results():
    metrics = {"cold.ndcg_at_10": 0.4, "fewshot.n1.ndcg_at_10": 0.41, "fewshot.n1.recall_at_10": 0.1, "warm.ndcg_at_10": 0.2}
    baselines = {"popularity": {"cold.ndcg_at_10": 0.3}, "item_knn": {"fewshot.n1.ndcg_at_10": 0.35}}
    table = fewshot_table(metrics, baselines)
    assert table.rows() == [("model", 0, 0.4, None), ("model", 1, 0.41, 0.1), ("item_knn", 1, 0.35, None)]
