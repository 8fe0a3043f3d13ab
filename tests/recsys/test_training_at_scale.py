"""What lets training scale: lazy (row-wise) Adam, streamed batches, a sparse item-item table and
evaluation in bounded blocks. Each is checked against the plain version it replaces."""

import numpy as np
import pytest
import tensorflow as tf
from scipy.sparse import random as sparse_random

from recsys import evaluate as evaluation
from recsys import item_item
from recsys.baselines import ItemKNN, Popularity
from recsys.config import TrainConfig
from recsys.evaluate import WARM, build_protocol, evaluate
from recsys.features import UNKNOWN, UNKNOWN_ID, build_vocabularies, user_features
from recsys.item_item import ItemItemTable, cosine_table, cosine_weights
from recsys.model import SAMPLE_WEIGHT, SAMPLING_PROBABILITY
from recsys.optimizers import LazyAdam
from recsys.splits import warm_split
from recsys.training_data import BatchStream, training_examples


def _embedding_step(optimizer, table: tf.Variable, rows: list[int]) -> None:
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(tf.gather(table, rows) - 1.0))
    optimizer.apply_gradients([(tape.gradient(loss, table), table)])


def test_lazy_adam_moves_only_the_rows_a_batch_used():
    start = np.arange(12, dtype=np.float32).reshape(6, 2) / 10
    lazy, dense = tf.Variable(start), tf.Variable(start)
    lazy_opt, dense_opt = LazyAdam(learning_rate=0.1), tf.keras.optimizers.Adam(learning_rate=0.1)
    # Step 1, rows 0 and 2 (2 twice: the gradients add up): both optimizers agree (to rounding).
    _embedding_step(lazy_opt, lazy, [0, 2, 2])
    _embedding_step(dense_opt, dense, [0, 2, 2])
    np.testing.assert_allclose(lazy.numpy(), dense.numpy(), rtol=1e-5)
    assert np.array_equal(lazy.numpy()[[1, 3, 4, 5]], start[[1, 3, 4, 5]])
    # Step 2 uses row 1 only: dense Adam keeps moving rows 0 and 2 on their momentum; lazy does not.
    after_first = lazy.numpy().copy()
    _embedding_step(lazy_opt, lazy, [1])
    _embedding_step(dense_opt, dense, [1])
    assert np.array_equal(lazy.numpy()[[0, 2, 3, 4, 5]], after_first[[0, 2, 3, 4, 5]])
    assert not np.allclose(dense.numpy()[[0, 2]], after_first[[0, 2]])
    np.testing.assert_allclose(lazy.numpy()[1], dense.numpy()[1], rtol=1e-5)


def test_batches_gather_each_examples_features_and_repeat_with_the_seed(taste_data):
    cfg = TrainConfig(batch_size=64, user_id_dropout=0.3, demographic_dropout=0.2, occupation_dropout=0.5)
    vocab = build_vocabularies(taste_data.users, taste_data.items)
    examples = training_examples(taste_data, cfg)
    stream = BatchStream(taste_data, vocab, examples, cfg)
    batches = list(stream.epoch(np.random.default_rng(7)))
    assert len(batches) == len(examples) // 64 and all(b["item_id"].shape[0] == 64 for b in batches)
    users = user_features(taste_data.users)
    by_id = {int(u): row for row, u in enumerate(users["user_id"])}
    dropped = {"user_id": 0, "age_band": 0, "gender": 0}
    total = 0
    for batch in batches:
        for ids, item_ids, age in zip(batch["user_id"].numpy(), batch["item_id"].numpy(), batch["age_band"].numpy()):
            total += 1
            dropped["user_id"] += ids == UNKNOWN_ID
            dropped["age_band"] += age.decode() == UNKNOWN
            if ids != UNKNOWN_ID:  # a kept id comes with its own demographics (or their dropout)
                assert age.decode() in (users["age_band"][by_id[int(ids)]], UNKNOWN)
            assert item_ids in taste_data.items["item_id"].to_numpy()
        # logQ: the item's share of the training examples, gathered per example.
        positions = np.searchsorted(taste_data.items["item_id"].to_numpy(), batch["item_id"].numpy())
        np.testing.assert_allclose(batch[SAMPLING_PROBABILITY].numpy(), examples.item_probability[positions])
        assert batch[SAMPLE_WEIGHT].shape == (64,)
    assert abs(dropped["user_id"] / total - 0.3) < 0.05 and abs(dropped["age_band"] / total - 0.2) < 0.05
    again = list(stream.epoch(np.random.default_rng(7)))
    assert all(np.array_equal(a["user_id"].numpy(), b["user_id"].numpy()) for a, b in zip(batches, again))


def test_training_examples_weight_by_rating_and_know_each_row(taste_data):
    examples = training_examples(taste_data, TrainConfig(rating_weight_offset=2.0))
    kept = taste_data.interactions.filter(taste_data.interactions["rating"] > 2.0)
    assert len(examples) == kept.height
    assert examples.user_row.dtype == np.int32 and examples.item_row.dtype == np.int32
    np.testing.assert_array_equal(taste_data.users["user_id"].to_numpy()[examples.user_row], kept["user_id"].to_numpy())
    np.testing.assert_array_equal(taste_data.items["item_id"].to_numpy()[examples.item_row], kept["item_id"].to_numpy())
    assert examples.weight.mean() == pytest.approx(1.0)
    assert examples.item_probability.sum() == pytest.approx(1.0)


def _tie_free_matrix(users: int, items: int, seed: int):
    matrix = sparse_random(users, items, density=0.08, random_state=seed, format="csr")
    matrix.data = np.random.default_rng(seed).random(len(matrix.data)).astype(np.float32) + 0.1
    return matrix


def test_the_sparse_cosine_table_equals_the_dense_one_in_any_block_size(monkeypatch):
    matrix = _tie_free_matrix(300, 90, seed=3)
    dense = ItemItemTable.from_dense(cosine_weights(matrix), 7)
    histories = [np.random.default_rng(i).choice(90, 4, replace=False) for i in range(40)]
    for cells in (10**9, 500, 1):  # one block, several, one row at a time
        monkeypatch.setattr(item_item, "_GRAM_BLOCK_CELLS", cells)
        sparse = cosine_table(matrix, 7)
        np.testing.assert_allclose(sparse.batch_scores(histories), dense.batch_scores(histories), atol=1e-5)


def test_item_knn_above_its_dense_limit_keeps_each_items_nearest(taste_data):
    histories = [np.arange(i % 5, 40, 7) for i in range(6)]
    dense = ItemKNN().fit(taste_data)
    wide = ItemKNN(dense_max_items=10, width=taste_data.items.height - 1).fit(taste_data)
    assert wide.table_.neighbours is not None and dense.table_.neighbours is None
    np.testing.assert_allclose(wide.score_given(None, histories), dense.score_given(None, histories), atol=1e-5)


def test_evaluation_in_small_blocks_equals_evaluation_at_once(taste_data, monkeypatch):
    protocol = build_protocol(WARM, warm_split(taste_data, 0.2), 4.0)
    models = [Popularity().fit(warm_split(taste_data, 0.2).train), ItemKNN().fit(warm_split(taste_data, 0.2).train)]
    whole = [evaluate(m, protocol).metrics for m in models]
    monkeypatch.setattr(evaluation, "EVALUATION_CELLS", protocol.n_items * 7)  # blocks of 7 users
    assert [evaluate(m, protocol).metrics for m in models] == whole
    # The seen items stay out of every block's lists.
    mask = protocol.exclude_rows(0, protocol.users.height)
    assert mask.sum() == sum(len(e) for e in protocol.excluded) > 0


def test_a_sampled_protocol_keeps_its_users_rows_together(taste_data):
    protocol = build_protocol(WARM, warm_split(taste_data, 0.2), 4.0)
    sample = protocol.sample(5)
    assert sample.users.height == 5 and protocol.sample(10**6) is protocol
    for row, user in enumerate(sample.users["user_id"].to_list()):
        original = protocol.users["user_id"].to_list().index(user)
        assert np.array_equal(sample.relevant[row], protocol.relevant[original])
        assert np.array_equal(sample.excluded[row], protocol.excluded[original])
