import numpy as np
import pytest

from recsys.metrics import catalog_coverage, novelty, per_user_metrics, ranking_report


def test_perfect_ranking_scores_one():
    ranked = np.array([[0, 1, 2]])
    m = per_user_metrics(ranked, [np.array([0, 1, 2])], k=3)
    for name in ("recall", "ndcg", "hit_rate", "map"):
        assert m[name][0] == pytest.approx(1.0)


def test_no_hits_and_empty_lists_score_zero():
    m = per_user_metrics(np.array([[3, 4, 5], [-1, -1, -1]]), [np.array([0]), np.array([0])], k=3)
    for name in ("recall", "ndcg", "hit_rate", "map"):
        assert m[name].tolist() == [0.0, 0.0]


def test_two_users_three_items_by_hand():
    # User 0: list [2, 0, 1], relevant {0, 1}: hits at ranks 2 and 3.
    # User 1: list [1, 2, 0], relevant {2}:    hit at rank 2.
    ranked = np.array([[2, 0, 1], [1, 2, 0]])
    relevant = [np.array([0, 1]), np.array([2])]
    m = per_user_metrics(ranked, relevant, k=2)
    # recall@2: user 0 finds 1 of 2, user 1 finds 1 of 1.
    assert m["recall"].tolist() == pytest.approx([0.5, 1.0])
    # ndcg@2: DCG = 1/log2(3) for both; IDCG(u0) = 1 + 1/log2(3), IDCG(u1) = 1.
    d = 1 / np.log2(3)
    assert m["ndcg"].tolist() == pytest.approx([d / (1 + d), d])
    assert m["hit_rate"].tolist() == [1.0, 1.0]
    # map@2: precision at the hit (rank 2) = 1/2, divided by min(|relevant|, 2).
    assert m["map"].tolist() == pytest.approx([0.5 / 2, 0.5 / 1])
    report = ranking_report(ranked, relevant, np.array([0.5, 0.25, 0.125]), k=2)
    assert report["recall_at_2"] == pytest.approx(0.75)
    assert report["ndcg_at_2"] == pytest.approx((d / (1 + d) + d) / 2)
    # Items 2, 0, 1 all appear in some top-2 list.
    assert report["coverage_at_2"] == pytest.approx(1.0)
    # Shown: 2, 0 (user 0) and 1, 2 (user 1): -log2 of 0.125, 0.5, 0.25, 0.125.
    assert report["novelty_at_2"] == pytest.approx((3 + 1 + 2 + 3) / 4)


def test_users_without_relevant_items_are_not_averaged():
    ranked = np.array([[0, 1], [0, 1]])
    report = ranking_report(ranked, [np.array([0]), np.array([], dtype=int)], np.ones(2), k=2)
    assert report["ndcg_at_2"] == pytest.approx(1.0)
    assert report["n_users"] == 1


def test_coverage_and_novelty_limits():
    assert catalog_coverage(np.array([[-1, -1]]), 4) == 0.0
    assert catalog_coverage(np.array([[0, 1], [2, 3]]), 4) == 1.0
    assert novelty(np.array([[-1]]), np.ones(3)) == 0.0


def test_bad_shapes_say_what_was_expected():
    with pytest.raises(ValueError, match="2-D"):
        per_user_metrics(np.array([0, 1]), [np.array([0])], k=2)
    with pytest.raises(ValueError, match="one set of relevant items per ranked list"):
        per_user_metrics(np.array([[0, 1]]), [], k=2)
