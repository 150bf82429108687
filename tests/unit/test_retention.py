"""Retention as pure decisions: which rows are finished, and from when they may leave the state."""

from __future__ import annotations

import pytest

from oms_streams.domain.lifecycle import Lifecycle
from oms_streams.domain.retention import (
    DAY_MS,
    Ending,
    Finished,
    RetentionPolicy,
    SagaFacts,
    order_finished,
    removable,
    removal_due_ms,
    return_finished,
    saga_ending,
    saga_finished,
)

T = 1_800_000_000_000
POLICY = RetentionPolicy.of_days(delivered=44, cancelled=7, rejected=3, orphaned=14, returned=60)


def saga(**facts: object) -> SagaFacts:
    defaults: dict[str, object] = {
        "busy": False,
        "live": 0,
        "fulfilled": 0,
        "backordered": False,
        "rejected": False,
        "all_cancelled": False,
    }
    return SagaFacts(**{**defaults, **facts})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ending", "days"),
    [
        (Ending.DELIVERED, 44),
        (Ending.CANCELLED, 7),
        (Ending.REJECTED, 3),
        (Ending.ORPHANED, 14),
        (Ending.RETURNED, 60),
    ],
)
def test_each_ending_is_kept_for_its_own_retention_and_not_a_millisecond_less(
    ending: Ending, days: int
) -> None:
    finished = Finished(ending, T)
    assert removal_due_ms(finished, POLICY) == T + days * DAY_MS
    assert not removable(finished, POLICY, T + days * DAY_MS - 1)
    assert removable(finished, POLICY, T + days * DAY_MS)


def test_the_defaults_keep_a_delivered_order_past_a_30_day_return_window_and_cancelled_ones_a_week() -> None:
    policy = RetentionPolicy()
    assert policy.delivered_ms > 30 * DAY_MS and policy.cancelled_ms == 7 * DAY_MS
    assert policy.returned_ms > policy.delivered_ms - 30 * DAY_MS


def test_an_open_row_is_never_removable() -> None:
    assert not removable(None, POLICY, T + 1000 * DAY_MS)


def test_a_delivered_or_cancelled_order_is_finished_from_its_last_moment() -> None:
    assert order_finished(Lifecycle.DELIVERED, False, T) == Finished(Ending.DELIVERED, T)
    assert order_finished(Lifecycle.CANCELLED, False, T) == Finished(Ending.CANCELLED, T)


def test_an_order_still_watched_or_on_its_way_is_not_finished() -> None:
    assert order_finished(Lifecycle.DELIVERED, True, T) is None  # a check is still pending
    for state in (Lifecycle.PLACED, Lifecycle.ALLOCATED, Lifecycle.SHIPPED, Lifecycle.BACKORDERED):
        assert order_finished(state, False, T) is None


def test_a_rejected_order_is_finished_even_while_its_milestones_are_watched() -> None:
    assert order_finished(Lifecycle.REJECTED, True, T) == Finished(Ending.REJECTED, T)


def test_events_without_a_placement_are_orphans_and_nothing_at_all_is_not_finished() -> None:
    assert order_finished(None, False, T) == Finished(Ending.ORPHANED, T)
    assert order_finished(None, False, None) is None


def test_a_saga_that_holds_stock_or_awaits_an_answer_is_open() -> None:
    assert saga_ending(saga(busy=True, fulfilled=1)) is None
    assert saga_ending(saga(live=1, fulfilled=1)) is None


def test_a_saga_whose_every_allocation_left_is_delivered_unless_lines_still_wait_for_stock() -> None:
    assert saga_ending(saga(fulfilled=2)) is Ending.DELIVERED
    assert saga_ending(saga(fulfilled=1, backordered=True, awaiting_stock=True)) is None
    # A backorder past its horizon (or one never sourced again) is final: what shipped decides.
    assert saga_ending(saga(fulfilled=1, backordered=True)) is Ending.DELIVERED
    assert saga_ending(saga(fulfilled=1, backordered=True, rejected=True)) is Ending.DELIVERED


def test_a_saga_with_nothing_shipped_is_cancelled_rejected_or_waiting_for_stock() -> None:
    assert saga_ending(saga(all_cancelled=True)) is Ending.CANCELLED
    assert saga_ending(saga(rejected=True, backordered=True, awaiting_stock=True)) is None
    assert saga_ending(saga(backordered=True, awaiting_stock=True)) is None
    assert saga_ending(saga(rejected=True, backordered=True)) is Ending.REJECTED
    assert saga_ending(saga(backordered=True)) is Ending.REJECTED  # final: nothing ever shipped


def test_a_saga_keeps_the_time_it_was_first_seen_finished() -> None:
    assert saga_finished(saga(rejected=True), None, T) == Finished(Ending.REJECTED, T)
    assert saga_finished(saga(rejected=True), T, T + DAY_MS) == Finished(Ending.REJECTED, T)
    assert saga_finished(saga(live=1), T, T + DAY_MS) is None


def test_a_return_is_finished_from_its_latest_routing_or_receipt() -> None:
    assert return_finished([T, T + 5]) == Finished(Ending.RETURNED, T + 5)
    assert return_finished([]) is None
