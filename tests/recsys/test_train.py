"""Train on the synthetic checkerboard once per module; check lists, export and serving."""

import dataclasses

import numpy as np
import polars as pl
import pytest

from recsys.config import TrainConfig
from recsys.features import UNKNOWN_ID, user_features
from recsys.plots import fewshot_curve, ndcg_by_group, training_curve
from recsys.serving import ServingBundle
from recsys.train import fit_two_tower, train_and_evaluate

pytestmark = pytest.mark.slow

# Small and quick: the synthetic catalog has 40 items and 1,440 ratings.
SMALL = TrainConfig(
    seed=3, epochs=12, batch_size=128, learning_rate=0.02, als_factors=8, als_iterations=3,
).with_changes(
    tower={"output_dim": 8, "feature_embedding_dim": 4, "hidden_units": (16,)},
    item_item={"cosine_width": 10},  # below the 40 items, so the bundle's cosine table is sparse
)


@pytest.fixture(scope="module")
def result(taste_data):
    return train_and_evaluate(taste_data, SMALL, show_progress=False)


def _cold_vectors(recommender, genders):
    n = len(genders)
    return recommender.user_vectors({
        "user_id": np.full(n, UNKNOWN_ID, dtype=np.int64),
        "age_band": np.array(["25-34"] * n, dtype=object),
        "gender": np.array(genders, dtype=object),
        "occupation": np.array(["student"] * n, dtype=object),
    })


def test_cold_start_lists_follow_the_known_taste(result):
    recommender = result.model
    vectors = _cold_vectors(recommender, ["F", "M"])
    top = np.argsort(-(vectors @ recommender.item_vectors().T), axis=1)[:, :10]
    item_ids = recommender.items["item_id"].to_numpy()
    # Women's taste is the even (Drama) items, men's the odd (Action) ones.
    assert np.mean(item_ids[top[0]] % 2 == 0) >= 0.9
    assert np.mean(item_ids[top[1]] % 2 == 1) >= 0.9


def test_the_prior_columns_reach_new_visitors_only(result):
    recommender = result.model
    n_groups = recommender.model.user_tower.n_prior_groups
    known = recommender.user_vectors(user_features(recommender.users.head(5)))
    assert np.all(known[:, -n_groups:] == 0.0)
    visitors = _cold_vectors(recommender, ["F", "M"])
    assert np.all(visitors[:, -n_groups:].sum(axis=1) == 1.0)
    # The item side holds weight x log p(item | group): negative where it is set.
    assert np.all(recommender.item_vectors()[:, -n_groups:] < 0.0)


def test_result_holds_metrics_baselines_and_history(result):
    for key in ("cold.ndcg_at_10", "cold.recall_at_10", "warm.ndcg_at_10", "warm.map_at_10", "seconds.total"):
        assert key in result.metrics
    # Demographics decide taste here, so the model must beat global popularity for new users.
    assert result.metrics["cold.ndcg_at_10"] > result.baselines["popularity"]["cold.ndcg_at_10"]
    assert set(result.baselines) == {
        "popularity", "demographic_popularity", "als", "ease", "item_knn", "ease_foldin", "als_foldin",
    }
    assert "warm.ndcg_at_10" in result.baselines["als"] and "cold.ndcg_at_10" not in result.baselines["als"]
    assert "warm.ndcg_at_10" in result.baselines["ease"]
    for n in (1, 3, 5, 10):
        key = f"fewshot.n{n}.ndcg_at_10"
        assert 0.0 <= result.metrics[key] <= 1.0
        for name in ("demographic_popularity", "item_knn", "ease_foldin", "als_foldin"):
            assert key in result.baselines[name]
    assert result.fewshot.filter(pl.col("recommender") == "model")["n"].to_list() == [0, 1, 3, 5, 10]
    assert [r["epoch"] for r in result.history if r["stage"] == "final"] == list(range(1, SMALL.epochs + 1))
    assert all(np.isfinite(r["loss"]) for r in result.history)
    assert result.model_trained_on == "all"
    assert dataclasses.asdict(result.config)["tower"]["output_dim"] == 8
    assert set(result.ndcg_by_group.columns) == {"protocol", "age_band", "gender", "ndcg_at_10", "n_users"}


def test_plots_return_figures(result):
    assert training_curve(result.history).axes
    assert ndcg_by_group(result.ndcg_by_group, "cold").axes
    curve = fewshot_curve(result.metrics, result.baselines)
    lines = {line.get_label(): line.get_xdata().tolist() for line in curve.axes[0].lines}
    assert lines["model"] == [0, 1, 3, 5, 10] and lines["item_knn"] == [1, 3, 5, 10]


def test_exported_bundle_scores_agree_with_the_model(result, tmp_path):
    from recsys.export import export_bundle

    path = export_bundle(result, tmp_path / "bundle", version="test-1")
    bundle = ServingBundle.load(path)
    recommender = result.model
    items = recommender.item_vectors()
    assert bundle.version == "test-1"
    assert np.array_equal(bundle.item_ids, recommender.items["item_id"].to_numpy())
    # Known users: the bundle's vector scores like the tower's.
    known = recommender.users.head(5)
    tf_scores = recommender.tower_scores(known, use_history=True)
    served = np.stack([bundle.vector_for_user(u) for u in known["user_id"].to_list()])
    np.testing.assert_allclose(bundle.score(served), tf_scores, rtol=1e-4, atol=1e-4)
    # New visitors: demographics through the table score like the tower with the OOV id.
    visitors = pl.DataFrame(
        {"user_id": [10_001, 10_002, 10_003], "age": [30, 56, None], "gender": ["F", "M", None],
         "occupation": ["student", "astronaut", None], "zip": [None, None, None]},
        schema={"user_id": pl.Int64, "age": pl.Int32, "gender": pl.Utf8, "occupation": pl.Utf8, "zip": pl.Utf8},
    )
    tf_scores = recommender.tower_scores(visitors, use_history=False)
    served = np.stack([
        bundle.vector_for_demographics(30, "F", "student"),
        bundle.vector_for_demographics(56, "m", "astronaut"),  # unseen occupation -> unknown
        bundle.vector_for_demographics(None, None, None),
    ])
    np.testing.assert_allclose(bundle.score(served), tf_scores, rtol=1e-4, atol=1e-4)
    # Top-k with seen items excluded never returns them.
    seen = bundle.item_index([2, 4, 6])
    mask = np.zeros(len(bundle.item_ids), dtype=bool)
    mask[seen] = True
    ids, _ = bundle.recommend(served, k=10, exclude=mask)
    assert not np.isin(ids, [2, 4, 6]).any()
    with pytest.raises(KeyError, match="10001"):
        bundle.vector_for_user(10_001)
    with pytest.raises(FileExistsError):
        export_bundle(result, path, version="test-2")


def test_lists_served_with_likes_are_the_lists_measured(result, tmp_path):
    """What the few-shot and warm protocols score is what recommend_with_history serves."""
    from recsys.export import export_bundle
    from recsys.personalize import History, recommend_many_with_history, recommend_with_history
    from recsys.serving import top_k_from_scores

    bundle = ServingBundle.load(export_bundle(result, tmp_path / "bundle", version="test-3"))
    recommender = result.model
    assert bundle.item_item is not None and bundle.item_item.ease is not None
    assert bundle.item_item.cosine.neighbours is not None  # kept sparse: 40 items, width below
    visitors = recommender.users.head(4)
    revealed = [np.array([0, 2]), np.array([4]), np.array([1, 3, 5]), np.array([], dtype=np.int64)]
    exclude = np.zeros((4, len(bundle.item_ids)), dtype=bool)
    for row, items in enumerate(revealed):
        exclude[row, items] = True
    measured, _ = top_k_from_scores(recommender.score_given(visitors, revealed), 5, exclude)
    features = user_features(visitors)
    vectors = np.stack([
        bundle.vector_for_demographics(a, g, o)
        for a, g, o in zip(visitors["age"].to_list(), features["gender"].tolist(), features["occupation"].tolist())
    ])
    histories = [History(liked=tuple(r.tolist())) for r in revealed]
    served, _ = recommend_many_with_history(bundle.item_vectors, vectors, histories, k=5, item_item=bundle.item_item)
    np.testing.assert_array_equal(served, measured)
    one = recommend_with_history(bundle.item_vectors, vectors[0], histories[0], k=5, known_user=False, item_item=bundle.item_item)
    np.testing.assert_array_equal(one.indices, measured[0])
    # Known users: their liked training items through EASE and the mean cosine.
    user = recommender.users.head(1)
    liked = recommender.liked_history[user["user_id"][0]]
    measured, _ = top_k_from_scores(recommender.score(user, use_history=True), 5, None)
    mine = recommend_with_history(
        bundle.item_vectors, bundle.vector_for_user(user["user_id"][0]), History(liked=tuple(liked.tolist())),
        k=5 + len(liked), known_user=True, item_item=bundle.item_item,
    )
    expected = [i for i in measured[0] if i not in liked]
    assert mine.indices.tolist()[: len(expected)] == expected


def test_training_without_logq_runs_and_is_reproducible(taste_data):
    cfg = dataclasses.replace(SMALL, logq_correction=False, epochs=2)
    users = user_features(taste_data.users.head(3))
    a, history = fit_two_tower(taste_data, cfg)
    b, _ = fit_two_tower(taste_data, cfg)
    assert len(history) == 2
    np.testing.assert_allclose(a.user_vectors(users), b.user_vectors(users), rtol=1e-5, atol=1e-5)
