"""Request-time personalisation on hand-made 2-D vectors (axis 0 action, axis 1 romance)."""

import numpy as np

from recsys.personalize import REASON_DEMOGRAPHIC, REASON_HISTORY, REASON_LIKED, History, recommend_with_history

# items 0, 1 action; 2, 3 romance; 4 a little of both
ITEMS = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.8], [0.3, 0.3]], dtype=np.float32)
ACTION_FAN = np.array([1.0, 0.0], dtype=np.float32)


def test_no_history_is_the_base_ranking():
    result = recommend_with_history(ITEMS, ACTION_FAN, History(), k=3, known_user=False)
    assert result.indices.tolist() == [0, 1, 4]
    assert result.reasons == [REASON_DEMOGRAPHIC] * 3


def test_seen_items_are_never_returned_and_known_users_get_their_reason():
    result = recommend_with_history(ITEMS, ACTION_FAN, History(seen=(0,)), k=2, known_user=True)
    assert result.indices.tolist() == [1, 4]
    assert result.reasons == [REASON_HISTORY] * 2


def test_likes_bring_related_items_up_and_say_why():
    leaning_action = np.array([0.6, 0.4], dtype=np.float32)
    before = recommend_with_history(ITEMS, leaning_action, History(), k=3, known_user=False)
    assert 3 not in before.indices  # [0, 1, 2]: action first
    after = recommend_with_history(ITEMS, leaning_action, History(liked=(2,)), k=3, known_user=False)
    # The liked romance item itself is excluded; its neighbour 3 enters because of it.
    assert 2 not in after.indices
    assert 3 in after.indices
    position = after.indices.tolist().index(3)
    assert after.reasons[position] == REASON_LIKED
    assert after.because[position] == (2,)


def test_dislikes_push_similar_items_down():
    plain = recommend_with_history(ITEMS, np.array([0.5, 0.5], np.float32), History(liked=(4,)), k=4, known_user=False)
    disliked = recommend_with_history(ITEMS, np.array([0.5, 0.5], np.float32), History(liked=(4,), disliked=(0,)), k=4, known_user=False)
    assert plain.indices.tolist().index(1) < disliked.indices.tolist().index(1)
    assert 0 not in disliked.indices


def test_rules_can_leave_fewer_than_k():
    blocked = np.array([False, True, True, True, True])
    result = recommend_with_history(ITEMS, ACTION_FAN, History(), k=3, known_user=False, blocked=blocked)
    assert result.indices.tolist() == [0]
