"""The landing file: durable appends, grouped commits from many threads, ids in order."""

import threading

import pytest

from warehouse.landing import Event, Landing


def test_concurrent_appends_get_distinct_ordered_ids_and_all_land(tmp_path):
    landing = Landing(tmp_path)
    results: list[list[int]] = []

    def send(worker):
        for n in range(25):
            results.append(landing.append([Event(item_id=n, type="view", session_id=f"w{worker}")] * 3))

    threads = [threading.Thread(target=send, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(len(ids) == 3 and ids == sorted(ids) for ids in results)
    every = [i for ids in results for i in ids]
    assert len(set(every)) == 8 * 25 * 3 == landing.count()
    assert [e.item_id for e in landing.events_of(session_id="w3")] == [n for n in range(25) for _ in range(3)]


def test_a_failed_batch_records_nothing_of_it(tmp_path):
    landing = Landing(tmp_path)
    with pytest.raises(Exception):
        landing.append([Event(item_id=1, type="view", session_id="s"), Event(item_id=2, type="view")])  # no who: CHECK fails
    assert landing.count() == 0
    assert landing.append([Event(item_id=1, type="view", session_id="s")]) == [1]


def test_erase_deletes_and_queues(tmp_path):
    landing = Landing(tmp_path)
    landing.append([Event(item_id=1, type="like", user_id=7), Event(item_id=2, type="like", user_id=8)])
    assert landing.erase("user", "7") == 1
    assert [e.user_id for e in landing.events_after(0)] == [8]
    assert landing.erased_users() == {"7"}
    assert [(s, i) for _, s, i, _ in landing.pending_erasures()] == [("user", "7")]
