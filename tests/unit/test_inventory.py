"""The stock ledger of one SKU at one location: movements, counts, supplier feeds and the journal."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oms_streams.domain.inventory import (
    JOURNAL_WINDOW,
    MAX_QUANTITY,
    Count,
    JournalEntry,
    Movement,
    MovementKind,
    StockPosition,
    SupplierFeed,
    Verdict,
    apply_count,
    apply_movement,
    apply_stock_event,
    apply_supplier_feed,
    available_to_promise,
)
from oms_streams.schemas.inventory import MovementKindName
from tests.unit.builders import (
    T0,
    a_count,
    a_movement,
    a_position,
    a_receipt,
    a_sale,
    a_supplier_feed,
    an_adjustment,
    an_inbound_announcement,
    minutes,
)

K = MovementKind

# An oracle written independently of the code under test: what each kind does to on hand and to
# unsellable, per unit of quantity.
ON_HAND_SIGN = {
    K.RECEIPT: 1,
    K.TRANSFER_IN: 1,
    K.CUSTOMER_RETURN_RESTOCKED: 1,
    K.CUSTOMER_RETURN_UNSELLABLE: 1,
    K.ADJUSTMENT: 1,
    K.SALE: -1,
    K.TRANSFER_OUT: -1,
    K.UNSELLABLE_IN: 0,
    K.UNSELLABLE_OUT: 0,
    K.INBOUND_ANNOUNCED: 0,
}
UNSELLABLE_SIGN = {kind: 0 for kind in K} | {
    K.UNSELLABLE_IN: 1,
    K.UNSELLABLE_OUT: -1,
    K.CUSTOMER_RETURN_UNSELLABLE: 1,
}


def on_hand_effect(m: Movement) -> int:
    return ON_HAND_SIGN[m.kind] * m.quantity


def unsellable_effect(m: Movement) -> int:
    return UNSELLABLE_SIGN[m.kind] * m.quantity


def apply_all(position: StockPosition, events: list[object]) -> tuple[StockPosition, list[Verdict]]:
    verdicts = []
    for event in events:
        outcome = apply_stock_event(position, event)  # type: ignore[arg-type]
        position = outcome.position
        verdicts.append(outcome.verdict)
    return position, verdicts


# --- strategies ---------------------------------------------------------------------------------

times = st.integers(-120, 120).map(minutes)


@st.composite
def plausible_movements(draw: st.DrawFn, event_id: str | None = None, at: st.SearchStrategy[int] = times):
    kind = draw(st.sampled_from(list(K)))
    signed_non_zero, positive = st.integers(-500, 500).filter(bool), st.integers(1, 500)
    qty = draw(signed_non_zero if kind is K.ADJUSTMENT else positive)
    return Movement(event_id or draw(st.sampled_from([f"EV-{i}" for i in range(20)])), kind, qty, draw(at))


movements_any_quantity = st.builds(
    Movement,
    event_id=st.sampled_from([f"EV-{i}" for i in range(20)]),
    kind=st.sampled_from(list(K)),
    quantity=st.one_of(
        st.integers(-10, 500), st.sampled_from([0, MAX_QUANTITY, MAX_QUANTITY + 1, -MAX_QUANTITY - 1])
    ),
    occurred_at_ms=times,
)
counts = st.builds(
    Count,
    event_id=st.just("COUNT"),
    on_hand=st.integers(-5, 1000),
    as_of_ms=times,
    unsellable=st.none() | st.integers(-5, 1000),
)
supplier_feeds = st.builds(
    SupplierFeed,
    event_id=st.just("FEED"),
    quantity=st.integers(-5, 1000),
    lead_time_hours=st.integers(-5, 24 * 366),
    as_of_ms=times,
)
any_event = st.one_of(plausible_movements(), movements_any_quantity, counts, supplier_feeds)


@st.composite
def reachable_positions(draw: st.DrawFn) -> StockPosition:
    """A position some history of events could have produced, reserved stock included."""
    position, _ = apply_all(StockPosition(), draw(st.lists(any_event, max_size=90)))
    return replace(position, reserved=draw(st.integers(0, 200)))


# --- properties ---------------------------------------------------------------------------------


@given(position=reachable_positions(), event=any_event)
def test_any_event_applied_twice_leaves_the_position_as_applied_once(position, event):
    once = apply_stock_event(position, event)
    twice = apply_stock_event(once.position, event)

    assert twice.position == once.position
    if once.verdict is Verdict.APPLIED:
        expected = Verdict.DUPLICATE if isinstance(event, Movement) else Verdict.SUPERSEDED
        assert twice.verdict is expected
    else:
        assert twice.verdict is once.verdict
        assert once.position == position


def distinct_movements(
    *, min_size: int = 0, max_size: int = JOURNAL_WINDOW, at: st.SearchStrategy[int] = times
) -> st.SearchStrategy[list[Movement]]:
    """Movements with distinct event ids, in arrival order."""
    return st.lists(plausible_movements(event_id="EV", at=at), min_size=min_size, max_size=max_size).map(
        lambda ms: [replace(m, event_id=f"EV-{i:03d}") for i, m in enumerate(ms)]
    )


def movements_around_a_count(as_of: int) -> st.SearchStrategy[list[Movement]]:
    """Up to a journal's worth of movements, some before, at and after ``as_of``."""
    return distinct_movements(at=st.integers(-30, 30).map(lambda m: as_of + m * 60_000))


@given(data=st.data(), counted_unsellable=st.booleans(), earlier_count=st.booleans())
def test_a_count_reconciles_movements_arriving_in_any_order(data, counted_unsellable, earlier_count):
    as_of = T0
    movements = data.draw(movements_around_a_count(as_of), label="movements")
    on_hand = data.draw(st.integers(0, 1000), label="counted on hand")
    unsellable = (
        data.draw(st.integers(0, on_hand), label="counted unsellable") if counted_unsellable else None
    )
    count = a_count(on_hand=on_hand, unsellable=unsellable, as_of=as_of)
    arrival = data.draw(st.permutations(movements), label="arrival order")
    count_arrives_at = data.draw(st.integers(0, len(arrival)), label="count arrives at")
    events = [*arrival[:count_arrives_at], count, *arrival[count_arrives_at:]]
    start = StockPosition()
    if earlier_count:
        start = apply_count(start, a_count(on_hand=77, unsellable=3, as_of=minutes(-24 * 60))).position

    final, verdicts = apply_all(start, events)

    assert Verdict.REJECTED not in verdicts
    assert Verdict.DUPLICATE not in verdicts
    assert verdicts[count_arrives_at] is Verdict.APPLIED
    after_count = [m for m in movements if m.occurred_at_ms > as_of]
    assert final.on_hand == count.on_hand + sum(on_hand_effect(m) for m in after_count)
    if counted_unsellable:
        assert final.unsellable == count.unsellable + sum(unsellable_effect(m) for m in after_count)
    assert final.counted_at_ms == as_of


@given(
    movements=distinct_movements(min_size=JOURNAL_WINDOW + 1, max_size=JOURNAL_WINDOW + 24),
    as_of=st.integers(-130, 130).map(minutes),
    on_hand=st.integers(0, 1000),
)
def test_a_count_older_than_the_journal_horizon_is_rejected_never_applied_wrongly(movements, as_of, on_hand):
    n = len(movements)
    before, verdicts = apply_all(StockPosition(), movements)
    assert set(verdicts) == {Verdict.APPLIED}
    forgotten = movements[: n - JOURNAL_WINDOW]

    outcome = apply_count(before, a_count(on_hand=on_hand, as_of=as_of))

    if any(m.occurred_at_ms > as_of for m in forgotten):
        assert outcome.verdict is Verdict.REJECTED
        assert "older than" in outcome.reason and "recount" in outcome.reason
        assert outcome.position == before
    else:
        assert outcome.verdict is Verdict.APPLIED
        later = [m for m in movements if m.occurred_at_ms > as_of]
        assert outcome.position.on_hand == on_hand + sum(on_hand_effect(m) for m in later)


@given(
    position=st.builds(
        StockPosition,
        on_hand=st.integers(-MAX_QUANTITY, MAX_QUANTITY),
        reserved=st.integers(-MAX_QUANTITY, MAX_QUANTITY),
        unsellable=st.integers(-MAX_QUANTITY, MAX_QUANTITY),
    )
    | reachable_positions(),
    protection=st.integers(-1000, 10_000),
)
def test_available_to_promise_is_never_negative(position, protection):
    assert available_to_promise(position, protection) >= 0
    assert available_to_promise(position) >= 0


# --- movements ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "qty", "on_hand", "unsellable", "inbound"),
    [
        (K.RECEIPT, 5, 15, 2, 0),
        (K.SALE, 3, 7, 2, 0),
        (K.CUSTOMER_RETURN_RESTOCKED, 1, 11, 2, 0),
        (K.CUSTOMER_RETURN_UNSELLABLE, 1, 11, 3, 0),
        (K.TRANSFER_OUT, 4, 6, 2, 0),
        (K.TRANSFER_IN, 4, 14, 2, 0),
        (K.ADJUSTMENT, -3, 7, 2, 0),
        (K.ADJUSTMENT, 3, 13, 2, 0),
        (K.UNSELLABLE_IN, 2, 10, 4, 0),
        (K.UNSELLABLE_OUT, 1, 10, 1, 0),
        (K.INBOUND_ANNOUNCED, 20, 10, 2, 20),
    ],
    ids=lambda v: v.value if isinstance(v, K) else str(v),
)
def test_each_movement_kind_moves_stock_where_it_should(kind, qty, on_hand, unsellable, inbound):
    position = a_position(on_hand=10, unsellable=2, reserved=1)

    outcome = apply_movement(position, a_movement(kind=kind, qty=qty))

    assert outcome.verdict is Verdict.APPLIED
    assert (outcome.position.on_hand, outcome.position.unsellable, outcome.position.inbound) == (
        on_hand,
        unsellable,
        inbound,
    )
    assert outcome.position.reserved == 1


@pytest.mark.parametrize(
    ("movement", "reason_mentions"),
    [
        (a_receipt(qty=0), "impossible quantity 0"),
        (a_sale(qty=-2), "impossible quantity -2"),
        (a_receipt(qty=MAX_QUANTITY + 1), "more than"),
        (an_adjustment(qty=-(MAX_QUANTITY + 1)), "more than"),
        (an_adjustment(qty=0), "adjustment of zero units"),
        (an_inbound_announcement(qty=-10), "must be positive"),
    ],
    ids=[
        "zero-receipt",
        "negative-sale",
        "receipt-above-max",
        "adjustment-below-minus-max",
        "zero-adjustment",
        "negative-inbound",
    ],
)
def test_impossible_quantities_are_rejected_with_a_reason(movement, reason_mentions):
    position = a_position(on_hand=10)

    outcome = apply_movement(position, movement)

    assert outcome.verdict is Verdict.REJECTED
    assert reason_mentions in outcome.reason
    assert outcome.position == position


def test_the_largest_plausible_quantity_is_accepted():
    assert apply_movement(StockPosition(), a_receipt(qty=MAX_QUANTITY)).verdict is Verdict.APPLIED
    assert apply_movement(StockPosition(), an_adjustment(qty=-MAX_QUANTITY)).verdict is Verdict.APPLIED


@pytest.mark.parametrize(
    ("count", "reason_mentions"),
    [
        (a_count(on_hand=-1), "impossible counted quantity -1"),
        (a_count(on_hand=MAX_QUANTITY + 1), "impossible counted quantity"),
        (a_count(on_hand=5, unsellable=6), "counted unsellable 6 outside 0..5"),
        (a_count(on_hand=5, unsellable=-1), "counted unsellable -1"),
    ],
    ids=["negative", "above-max", "more-unsellable-than-on-hand", "negative-unsellable"],
)
def test_impossible_counts_are_rejected_with_a_reason(count, reason_mentions):
    outcome = apply_count(a_position(), count)

    assert outcome.verdict is Verdict.REJECTED
    assert reason_mentions in outcome.reason
    assert outcome.position == a_position()


@pytest.mark.parametrize(
    ("feed", "reason_mentions"),
    [
        (a_supplier_feed(qty=-1), "impossible supplier quantity -1"),
        (a_supplier_feed(qty=MAX_QUANTITY + 1), "impossible supplier quantity"),
        (a_supplier_feed(lead_time_hours=-1), "impossible lead time -1 h"),
        (a_supplier_feed(lead_time_hours=24 * 365 + 1), "impossible lead time"),
    ],
    ids=["negative-quantity", "quantity-above-max", "negative-lead-time", "lead-time-over-a-year"],
)
def test_impossible_supplier_feeds_are_rejected_with_a_reason(feed, reason_mentions):
    outcome = apply_supplier_feed(StockPosition(), feed)

    assert outcome.verdict is Verdict.REJECTED
    assert reason_mentions in outcome.reason


@pytest.mark.parametrize("kind", [K.RECEIPT, K.TRANSFER_IN])
def test_arriving_goods_first_fulfil_announced_inbound(kind):
    position = a_position(on_hand=10, inbound=8)

    partly = apply_movement(position, a_movement(kind=kind, qty=5)).position
    fully = apply_movement(partly, a_movement(kind=kind, qty=10)).position

    assert (partly.on_hand, partly.inbound) == (15, 3)
    assert (fully.on_hand, fully.inbound) == (25, 0)


def test_a_restocked_customer_return_does_not_consume_inbound():
    position = apply_movement(
        a_position(inbound=8), a_movement(kind=K.CUSTOMER_RETURN_RESTOCKED, qty=2)
    ).position

    assert position.inbound == 8


def test_a_redelivered_movement_is_a_duplicate():
    receipt = a_receipt(qty=5, event_id="ERP-RCPT-1")
    once = apply_movement(a_position(on_hand=10), receipt)

    again = apply_movement(once.position, receipt)

    assert again.verdict is Verdict.DUPLICATE
    assert again.position.on_hand == 15


def test_a_late_movement_that_occurred_before_the_latest_count_is_already_counted():
    counted = apply_count(StockPosition(), a_count(on_hand=10, as_of=minutes(0))).position

    at_count_time = apply_movement(counted, a_sale(qty=1, at=minutes(0)))
    before = apply_movement(counted, a_sale(qty=1, at=minutes(-1)))
    after = apply_movement(counted, a_sale(qty=1, at=minutes(1)))

    assert at_count_time.verdict is Verdict.SUPERSEDED
    assert before.verdict is Verdict.SUPERSEDED
    assert after.verdict is Verdict.APPLIED
    assert after.position.on_hand == 9


# --- counts -------------------------------------------------------------------------------------


def test_a_count_replays_only_the_movements_after_it():
    position = StockPosition()
    for movement in [
        a_receipt(qty=10, at=minutes(-5)),
        a_sale(qty=2, at=minutes(5)),
        a_sale(qty=1, at=minutes(0)),
    ]:
        position = apply_movement(position, movement).position

    counted = apply_count(position, a_count(on_hand=50, as_of=minutes(0))).position

    assert counted.on_hand == 48
    assert [e.occurred_at_ms for e in counted.journal] == [minutes(5)]
    assert counted.counted_at_ms == minutes(0)
    assert counted.horizon_ms is None


def test_a_count_without_unsellable_keeps_the_unsellable_figure():
    position = a_position(on_hand=10, unsellable=3)

    counted = apply_count(position, a_count(on_hand=20)).position

    assert (counted.on_hand, counted.unsellable) == (20, 3)


def test_an_older_count_is_superseded_by_a_newer_one():
    newer = apply_count(StockPosition(), a_count(on_hand=10, as_of=minutes(10))).position

    older = apply_count(newer, a_count(on_hand=99, as_of=minutes(5)))

    assert older.verdict is Verdict.SUPERSEDED
    assert older.position.on_hand == 10


def test_an_inbound_announcement_delivered_after_a_count_is_not_lost():
    """A count states on hand (and maybe unsellable); it says nothing about goods still on their way.

    So whether the ERP's announcement reaches us just before or just after the count, inbound must
    end the same.
    """
    announcement = an_inbound_announcement(qty=20, at=minutes(-5))
    count = a_count(on_hand=10, as_of=minutes(0))

    announced_first, _ = apply_all(StockPosition(), [announcement, count])
    counted_first, _ = apply_all(StockPosition(), [count, announcement])

    assert announced_first.inbound == 20
    assert counted_first.inbound == announced_first.inbound


def test_an_unsellable_movement_delivered_after_a_count_without_unsellable_is_not_lost():
    """A count that does not carry unsellable does not contain unsellable movements either."""
    damaged = a_movement(kind=K.UNSELLABLE_IN, qty=2, at=minutes(-5))
    count = a_count(on_hand=10, unsellable=None, as_of=minutes(0))

    damaged_first, _ = apply_all(StockPosition(), [damaged, count])
    counted_first, _ = apply_all(StockPosition(), [count, damaged])

    assert damaged_first.unsellable == 2
    assert counted_first.unsellable == damaged_first.unsellable


# --- supplier feeds -----------------------------------------------------------------------------


def test_a_supplier_feed_replaces_the_previous_snapshot():
    first = apply_supplier_feed(
        StockPosition(), a_supplier_feed(qty=100, lead_time_hours=48, as_of=minutes(0))
    )

    second = apply_supplier_feed(
        first.position, a_supplier_feed(qty=40, lead_time_hours=24, as_of=minutes(60))
    )

    assert second.verdict is Verdict.APPLIED
    assert (second.position.on_hand, second.position.lead_time_hours) == (40, 24)


def test_an_older_supplier_feed_is_superseded():
    newer = apply_supplier_feed(StockPosition(), a_supplier_feed(qty=40, as_of=minutes(60))).position

    older = apply_supplier_feed(newer, a_supplier_feed(qty=100, lead_time_hours=1, as_of=minutes(0)))

    assert older.verdict is Verdict.SUPERSEDED
    assert older.position == newer


# --- the journal --------------------------------------------------------------------------------


def test_the_journal_is_bounded_and_remembers_the_horizon_of_what_it_forgot():
    position = StockPosition()
    # Arrival order differs from occurrence order: the first two arrivals fall out of the window.
    arrivals = [a_receipt(qty=1, at=minutes(7)), a_receipt(qty=1, at=minutes(3))] + [
        a_receipt(qty=1, at=minutes(10 + i)) for i in range(JOURNAL_WINDOW)
    ]
    for movement in arrivals[:JOURNAL_WINDOW]:
        position = apply_movement(position, movement).position
    assert len(position.journal) == JOURNAL_WINDOW
    assert position.horizon_ms is None

    for movement in arrivals[JOURNAL_WINDOW:]:
        position = apply_movement(position, movement).position

    assert len(position.journal) == JOURNAL_WINDOW
    assert position.horizon_ms == minutes(7)
    assert not position.knows(arrivals[0].event_id)
    assert position.knows(arrivals[-1].event_id)
    assert position.on_hand == JOURNAL_WINDOW + 2


def test_a_count_older_than_the_horizon_is_rejected_with_a_reason():
    position = StockPosition()
    for i in range(JOURNAL_WINDOW + 1):
        position = apply_movement(position, a_receipt(qty=1, at=minutes(i))).position
    assert position.horizon_ms == minutes(0)

    stale = apply_count(position, a_count(on_hand=500, as_of=minutes(-1)))
    at_horizon = apply_count(position, a_count(on_hand=500, as_of=minutes(0)))

    assert stale.verdict is Verdict.REJECTED
    assert f"horizon {minutes(0)}" in stale.reason
    assert stale.position == position
    assert at_horizon.verdict is Verdict.APPLIED
    assert at_horizon.position.on_hand == 500 + JOURNAL_WINDOW


def every_field_set() -> StockPosition:
    """A position with every field away from its default, for the tests that pin what a step keeps."""
    return StockPosition(
        on_hand=10,
        reserved=3,
        unsellable=2,
        inbound=5,
        lead_time_hours=48,
        counted_at_ms=1_000,
        unsellable_counted_at_ms=900,
        horizon_ms=800,
        journal=(JournalEntry("old", 1_500, 1, 0),),
        holds=(("ORDER-1/1", 3),),
        settled=("ORDER-0/1",),
        applied=7,
    )


def test_a_movement_keeps_every_field_it_does_not_move() -> None:
    # apply_movement builds the new position field by field (not dataclasses.replace): a field it
    # forgets or swaps would silently drop holds, settled ids or a supplier's lead time.
    position = every_field_set()
    moved = apply_movement(position, Movement("m1", MovementKind.RECEIPT, 4, 2_000)).position
    # A receipt adds on hand and consumes what was announced inbound; the rest stays as it was.
    assert moved == replace(
        position,
        on_hand=14,
        inbound=1,
        journal=(*position.journal, JournalEntry("m1", 2_000, 4, 0, -4)),
        applied=8,
    )


def test_a_count_keeps_every_field_it_does_not_set() -> None:
    # apply_count builds the counted position field by field (not dataclasses.replace), as
    # apply_movement does: a field it forgets or swaps would drop holds, settled ids or lead times.
    journal = (JournalEntry("before", 1_500, 1, 1, 2), JournalEntry("after", 2_500, 4, 0))
    position = replace(every_field_set(), journal=journal)
    counted = apply_count(position, Count("c1", 20, 2_000)).position
    # On hand is the count plus what came after it; unsellable was not counted and stays; the entry
    # the count absorbs keeps only what the count does not cover (unsellable and inbound).
    assert counted == replace(
        position,
        on_hand=24,
        counted_at_ms=2_000,
        horizon_ms=None,
        journal=(JournalEntry("before", 1_500, 0, 1, 2), JournalEntry("after", 2_500, 4, 0)),
    )
    with_unsellable = apply_count(position, Count("c2", 20, 2_000, unsellable=1)).position
    assert (with_unsellable.unsellable, with_unsellable.unsellable_counted_at_ms) == (1, 2_000)
    assert with_unsellable.journal == (
        JournalEntry("before", 1_500, 0, 0, 2),
        JournalEntry("after", 2_500, 4, 0),
    )


def test_movement_kinds_are_the_wire_schemas_and_verdict_labels_are_fixed() -> None:
    # Kinds must be the stock topics' wire values; verdicts are metric labels dashboards and alerts read.
    assert [kind.value for kind in MovementKind] == list(get_args(MovementKindName))
    assert [verdict.value for verdict in Verdict] == ["applied", "duplicate", "superseded", "rejected"]


def test_a_position_remembers_its_last_64_movements_and_a_billion_units_at_most() -> None:
    assert JOURNAL_WINDOW == 64  # the documented window of count semantics and of the id store
    position = StockPosition()
    for i in range(65):
        position = apply_movement(position, Movement(f"m{i}", MovementKind.RECEIPT, 1, i)).position
    assert len(position.journal) == 64 and position.journal[0].event_id == "m1"
    assert position.horizon_ms == 0
    assert apply_movement(StockPosition(), Movement("big", MovementKind.RECEIPT, 1_000_000_000, 1)).changed
    too_many = apply_movement(StockPosition(), Movement("bigger", MovementKind.RECEIPT, 1_000_000_001, 1))
    assert too_many.verdict is Verdict.REJECTED


def test_a_new_position_and_journal_entry_carry_nothing_they_were_not_given() -> None:
    fresh = StockPosition()
    assert (fresh.lead_time_hours, fresh.counted_at_ms, fresh.unsellable_counted_at_ms) == (None, None, None)
    assert fresh.horizon_ms is None
    assert JournalEntry("m1", 1, 2, 3).inbound_delta == 0


def test_every_refusal_reason_is_the_whole_documented_sentence() -> None:
    # Dead letters carry these reasons to operators: pinned whole, not as fragments.
    def reason(outcome: Any) -> str:
        assert outcome.verdict is Verdict.REJECTED
        return str(outcome.reason)

    empty = StockPosition()
    assert reason(apply_movement(empty, a_receipt(qty=MAX_QUANTITY + 1))) == (
        f"impossible quantity {MAX_QUANTITY + 1}: more than {MAX_QUANTITY} units"
    )
    assert reason(apply_movement(empty, an_adjustment(qty=0))) == "adjustment of zero units"
    assert reason(apply_movement(empty, a_receipt(qty=0))) == (
        "impossible quantity 0 for receipt: must be positive"
    )
    assert reason(apply_count(empty, a_count(on_hand=-1))) == "impossible counted quantity -1"
    assert reason(apply_count(empty, a_count(on_hand=5, unsellable=6))) == "counted unsellable 6 outside 0..5"
    assert reason(apply_supplier_feed(empty, a_supplier_feed(qty=-1))) == "impossible supplier quantity -1"
    no_lead_time = a_supplier_feed(lead_time_hours=-1)
    assert reason(apply_supplier_feed(empty, no_lead_time)) == "impossible lead time -1 h"
    position = empty
    for i in range(JOURNAL_WINDOW + 1):
        position = apply_movement(position, a_receipt(qty=1, at=minutes(i))).position
    assert reason(apply_count(position, a_count(on_hand=5, as_of=minutes(-1)))) == (
        f"count as of {minutes(-1)} is older than the 64-movement reconciliation window "
        f"(horizon {minutes(0)}); recount or resend a newer snapshot"
    )


def test_a_count_of_the_largest_plausible_quantity_is_applied() -> None:
    assert apply_count(StockPosition(), a_count(on_hand=MAX_QUANTITY)).verdict is Verdict.APPLIED
    with_unsellable = apply_count(StockPosition(), a_count(on_hand=5, unsellable=5))
    assert with_unsellable.verdict is Verdict.APPLIED and with_unsellable.position.unsellable == 5


# Kills inventory.available_to_promise: `- unsellable` -> `+ unsellable` (only visibility's tests read it).
def test_available_to_promise_is_on_hand_less_reserved_unsellable_and_protection():
    position = StockPosition(on_hand=10, reserved=2, unsellable=3)
    assert available_to_promise(position) == 5
    assert available_to_promise(position, protection=4) == 1
    assert available_to_promise(replace(position, reserved=-2, unsellable=-3)) == 10  # never adds units
