"""Serving and batch scoring that scale with the catalog: memory-mapped bundles, id lookups
without a dict of every id, bounded score blocks, the approximate (ANN) path against the exact
one, and a campaign that reads only its own audience's histories."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import pipelines.batch_score as batch_module
import recsys.serving as serving
from pipelines.batch_score import _Scorer, batch_score, block_rows
from pipelines.rules import CampaignRules
from recsys.personalize import History, recommend_with_history
from recsys.serving import ServingBundle
from serving_fixtures import make_home, write_bundle


def test_large_arrays_are_memory_mapped_read_only(tmp_path, monkeypatch):
    monkeypatch.setattr(serving, "MMAP_MIN_BYTES", 0)
    bundle = ServingBundle.load(write_bundle(tmp_path / "b", 1))
    assert isinstance(bundle.item_vectors, np.memmap) and isinstance(bundle.user_vectors, np.memmap)
    with pytest.raises(ValueError):
        bundle.item_vectors[0, 0] = 5.0  # a request can never change the bundle on disk
    assert bundle.vector_for_user(2).tolist() == [0.0, 1.0]


def test_id_lookups_by_binary_search_handle_unsorted_and_missing_ids():
    bundle = ServingBundle(manifest={"version": "1", "dim": 1}, item_ids=np.array([30, 10, 20]),
                           item_vectors=np.zeros((3, 1), np.float32), user_ids=np.array([7, 3]),
                           user_vectors=np.array([[1.0], [2.0]], np.float32), cold_start_vectors=np.zeros((1, 1, 1, 1)))
    assert bundle.item_rows([10, 20, 30, 99, 0]).tolist() == [1, 2, 0, -1, -1]
    assert bundle.user_rows([3, 7, 5]).tolist() == [1, 0, -1]
    assert bundle.has_user(3) and not bundle.has_user(5)
    assert bundle.vector_for_user(3).tolist() == [2.0]
    with pytest.raises(KeyError, match="99"):
        bundle.item_index([10, 99])


@pytest.mark.parametrize("ids", [[5, 6, 7, 8], [5, 6, 8, 9]])  # without gaps: rows by subtraction; with one: by search
def test_id_lookups_are_the_same_with_and_without_gaps(ids):
    lookup = serving._SortedIds(np.array(ids, dtype=np.int64))
    assert lookup.contiguous == (ids == [5, 6, 7, 8])
    wanted = [4, 5, 6, 7, 8, 9, 10, -5]
    assert lookup.rows(wanted).tolist() == [ids.index(w) if w in ids else -1 for w in wanted]


def test_score_blocks_are_bounded_in_bytes_not_rows():
    assert block_rows(1_000_000) == 67  # 256 MiB / (4 bytes x 1M items)
    assert block_rows(100_000) == 671
    assert block_rows(10) == batch_module.MAX_BLOCK_ROWS
    assert block_rows(100_000_000) == 1


def test_a_single_list_matches_a_full_sort_ties_to_the_lower_index():
    items = np.array([[1.0], [3.0], [3.0], [2.0], [3.0], [0.5]], dtype=np.float32)
    ranked = recommend_with_history(items, np.array([1.0], np.float32), History(seen=(2,)), k=3, known_user=True)
    assert ranked.indices.tolist() == [1, 4, 3]  # 2 is seen; 1 and 4 tie and keep item order


@pytest.mark.parametrize("n_items", [100, 5_000])  # the small path and the large catalog's block bound
def test_a_single_list_matches_a_full_sort_at_any_size(n_items):
    rng = np.random.default_rng(n_items)
    items = np.round(rng.normal(size=(n_items, 2)), 1).astype(np.float32)  # many tied scores
    vector = np.array([1.0, 0.5], np.float32)
    seen = tuple(rng.choice(n_items, n_items // 3, replace=False).tolist())
    ranked = recommend_with_history(items, vector, History(seen=seen), k=10, known_user=True)
    scores = np.where(np.isin(np.arange(n_items), seen), -np.inf, items @ vector)
    assert ranked.indices.tolist() == np.argsort(-scores, kind="stable")[:10].tolist()


def _clustered_bundle(n_items=3_000, n_users=300, dim=8, seed=0) -> ServingBundle:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((30, dim)).astype(np.float32)
    items = centres[rng.integers(0, 30, n_items)] + 0.3 * rng.standard_normal((n_items, dim)).astype(np.float32)
    users = 2 * centres[rng.integers(0, 30, n_users)] + 0.3 * rng.standard_normal((n_users, dim)).astype(np.float32)
    return ServingBundle(manifest={"version": "1", "dim": dim}, item_ids=np.arange(n_items) + 1,
                         item_vectors=items.astype(np.float32), user_ids=np.arange(n_users) + 1,
                         user_vectors=users.astype(np.float32), cold_start_vectors=np.zeros((1, 1, 1, dim), np.float32))


def test_ann_lists_agree_with_exact_and_never_hold_seen_or_blocked_items():
    bundle = _clustered_bundle()
    rng = np.random.default_rng(1)
    blocked = np.zeros(len(bundle.item_ids), dtype=bool)
    blocked[rng.choice(len(blocked), 300, replace=False)] = True
    users = np.arange(len(bundle.user_ids))
    # Each user has seen their own 20 best items (what a trained model ranks first) or nothing.
    best = np.argsort(-(bundle.user_vectors @ bundle.item_vectors.T), axis=1)[:, :20]
    seen_rows = [best[u] if u % 2 else np.array([], np.int64) for u in users]
    indptr = np.concatenate([[0], np.cumsum([len(s) for s in seen_rows])]).astype(np.int64)
    seen = (indptr, np.concatenate(seen_rows).astype(np.int64))
    lists = {}
    for retrieval in ("exact", "ann"):
        scorer = _Scorer(bundle, blocked, width=10, retrieval=retrieval)
        scorer.use_histories(seen)
        lists[retrieval] = scorer.personal(bundle.user_vectors[users], users)
    exact, ann = lists["exact"][0], lists["ann"][0]
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(ann, exact)])
    assert recall >= 0.95
    for u in users:
        assert not set(ann[u]) & set(seen_rows[u]) and not blocked[ann[u]].any()
    # Where ANN found the same items, scores and order are the exact path's.
    same = (ann == exact).all(axis=1)
    assert same.mean() > 0.8
    np.testing.assert_allclose(lists["ann"][1][same], lists["exact"][1][same], rtol=1e-5)


def test_seen_candidates_are_masked_by_row_with_padding_and_item_zero():
    scorer = _Scorer(_clustered_bundle(n_items=5, n_users=3), np.zeros(5, dtype=bool), width=2, retrieval="exact")
    # history rows: 0 saw items 0 and 4, 1 saw nothing, 2 saw items 1 and 2
    scorer.use_histories((np.array([0, 2, 2, 4]), np.array([0, 4, 1, 2])))
    candidates = np.array([[-1, 0, 2, 4], [0, 1, 3, 4], [-1, -1, 0, 1], [0, 1, 2, 3]])  # sorted within rows
    mask = scorer._seen_mask(np.array([0, 2, 1, -1]), candidates)  # the last row has no history
    assert mask.tolist() == [[False, True, False, True], [False, True, False, False],
                             [False, False, False, False], [False, False, False, False]]


def test_ann_hands_rows_it_cannot_fill_to_the_exact_path():
    bundle = _clustered_bundle(n_items=2_000, n_users=4)
    blocked = np.ones(len(bundle.item_ids), dtype=bool)
    blocked[::97] = False  # 21 items allowed, scattered over every cluster: the index's candidates miss most
    scorer = _Scorer(bundle, blocked, width=10, retrieval="ann")
    idx, _ = scorer.personal(bundle.user_vectors, np.full(4, -1, dtype=np.int64))
    exact = _Scorer(bundle, blocked, width=10, retrieval="exact").personal(bundle.user_vectors, np.full(4, -1, dtype=np.int64))[0]
    assert scorer.n_exact_fallback == 4 and np.array_equal(idx, exact)
    # auto keeps such rules on the exact path from the start
    assert not _Scorer(bundle, blocked, width=10, retrieval="auto").ann


def test_a_campaign_reads_only_its_audience_histories(tmp_path, monkeypatch):
    home = make_home(tmp_path / "home")  # interactions: user 1 saw 10, user 3 saw 12
    read = []
    original = batch_module._seen_matrix
    monkeypatch.setattr(batch_module, "_seen_matrix",
                        lambda bundle, interactions, n: read.append(interactions.height) or original(bundle, interactions, n))

    def run(text):
        (tmp_path / "a.csv").write_text(text)
        read.clear()
        return batch_score(home, tmp_path / "a.csv", tmp_path / "out.parquet", k=2, campaign=None, version=None,
                           rules=CampaignRules(), show_progress=False, lock_timeout_s=5)

    run("user_id,age,gender\nnew-1,30,F\nnew-2,40,M\n")
    assert read == [0]  # a cold-only campaign loads no history
    run("user_id\n1\n")
    assert read == [1]  # user 1's one interaction, not user 3's
    lists = pl.read_parquet(tmp_path / "out.parquet")["item_id"].to_list()
    assert lists == [11, 14]  # 10 was seen


def test_a_new_ingest_during_a_campaign_stops_it(tmp_path, monkeypatch):
    home = make_home(tmp_path / "home")
    (tmp_path / "a.csv").write_text("user_id\n1\n")
    answers = iter(["s", "changed"])
    monkeypatch.setattr(batch_module, "current_snapshot", lambda conn: next(answers))
    with pytest.raises(batch_module.InputError, match="loaded with new data"):
        batch_score(home, tmp_path / "a.csv", tmp_path / "out.parquet", k=2, campaign=None, version=None,
                    rules=CampaignRules(), show_progress=False, lock_timeout_s=5)
    assert not (tmp_path / "out.parquet").exists()


def test_ann_scans_a_share_of_a_large_index_clusters():
    from recsys.ann import build_index, default_nprobe

    assert default_nprobe(100) == 32 and default_nprobe(2_048) == 32  # 1/64 of 2,048 is 32
    assert default_nprobe(4_000) == 63  # a 1M-item catalog: 63 of 4,000 clusters
    assert default_nprobe(10) == 10  # never more clusters than there are
    index = build_index(_clustered_bundle(n_items=3_000).item_vectors)
    assert index.nprobe == min(32, index._index.nlist)
