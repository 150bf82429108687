"""A partition is stalled when messages wait and its committed offset does not move for a while."""

from __future__ import annotations

from oms_streams.streaming.stall_watch import StallWatch


def test_lag_with_progress_is_not_a_stall() -> None:
    watch = StallWatch(after_s=60)
    for second, committed in enumerate(range(0, 1000, 10)):
        assert watch.observe({"movements:0": (committed, 5000)}, second * 5.0) == []


def test_lag_without_progress_for_long_enough_is_a_stall_until_it_moves() -> None:
    watch = StallWatch(after_s=60)
    assert watch.observe({"movements:0": (100, 168), "movements:1": (50, 50)}, 0.0) == []
    assert watch.observe({"movements:0": (100, 168), "movements:1": (50, 50)}, 59.0) == []
    assert watch.observe({"movements:0": (100, 168), "movements:1": (50, 50)}, 60.0) == ["movements:0"]
    assert watch.stalled == ["movements:0"]
    assert watch.observe({"movements:0": (101, 168), "movements:1": (50, 50)}, 65.0) == []


def test_a_caught_up_partition_is_never_stalled_and_a_revoked_one_is_forgotten() -> None:
    watch = StallWatch(after_s=10)
    assert watch.observe({"orders:2": (7, 7)}, 0.0) == []
    assert watch.observe({"orders:2": (7, 7)}, 100.0) == []
    watch.observe({"orders:2": (7, 9)}, 100.0)
    assert watch.observe({}, 200.0) == []
    assert watch.observe({"orders:2": (7, 9)}, 205.0) == []  # newly owned again: the clock restarts


def test_a_partition_standing_still_with_records_waiting_is_named_before_it_counts_as_stalled() -> None:
    watch = StallWatch(after_s=60)
    waiting = {"orders:0": (100, 168), "orders:1": (50, 50)}
    watch.observe(waiting, 0.0)
    watch.observe(waiting, 29.0)
    assert watch.standing(29.0, 30.0) == {}
    watch.observe(waiting, 30.0)
    assert watch.standing(30.0, 30.0) == {"orders:0": 100}  # the caught-up partition never stands
    assert watch.stalled == []
    watch.observe({"orders:0": (120, 168), "orders:1": (50, 50)}, 35.0)
    assert watch.standing(35.0, 30.0) == {}  # it moved: the clock restarts
