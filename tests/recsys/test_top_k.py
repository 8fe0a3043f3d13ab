import numpy as np
import pytest

from recsys.serving import top_k_from_scores


def reference(scores, k, exclude=None):
    """Full stable sort: best first, ties to the lower item index, excluded items never."""
    scores = np.where(exclude, -np.inf, scores) if exclude is not None else scores
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    values = np.take_along_axis(scores, order, axis=1)
    return np.where(np.isneginf(values), -1, order), values


@pytest.mark.parametrize("n_items, k", [(1682, 10), (700, 50), (256, 10), (40, 10), (5, 10)])  # 256: an ANN row of candidates
def test_matches_a_full_stable_sort_with_ties_and_exclusions(n_items, k):
    rng = np.random.default_rng(n_items)
    scores = np.round(rng.normal(size=(300, n_items)), 1).astype(np.float32)  # many ties
    exclude = rng.random((300, n_items)) < 0.3
    exclude[0] = True  # a row with nothing allowed
    got_idx, got_scores = top_k_from_scores(scores, k, exclude)
    want_idx, want_scores = reference(scores, min(k, n_items), exclude)
    assert np.array_equal(got_idx[:, : min(k, n_items)], want_idx)
    assert np.array_equal(got_scores[:, : min(k, n_items)], want_scores)
    assert (got_idx[0] == -1).all() and np.isneginf(got_scores[0]).all()
    if k > n_items:
        assert (got_idx[:, n_items:] == -1).all()


def test_hand_worked_row():
    idx, scores = top_k_from_scores(np.array([[0.1, 0.9, 0.5, 0.9]]), 3, exclude=np.array([False, False, True, False]))
    assert idx.tolist() == [[1, 3, 0]] and scores[0].tolist() == pytest.approx([0.9, 0.9, 0.1])
