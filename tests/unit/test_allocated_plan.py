"""Re-sourcing moves milestones and risk with the allocation (``domain.allocated_plan``), pure: the
promise's shipments folded with sourcing's allocations, withdrawals and round outcomes, and what the
risk watch makes of the result."""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oms_streams.adapters.allocated import decode_round, plan_of
from oms_streams.domain.allocated_plan import (
    Allocated,
    AllocatedPlan,
    Move,
    SourcingRound,
    Withdrawal,
    allocated_plan,
    clearance_reason,
)
from oms_streams.domain.orders import Milestone, MilestoneKind, PromiseRecord
from oms_streams.domain.promise_types import CartLine, Shipment
from oms_streams.domain.risk import (
    FulfilmentEvent,
    FulfilmentKind,
    OrderTracking,
    RiskReason,
    SuggestedAction,
    apply_fulfilment,
    assess,
    event_targets,
    latest_event_ms,
    next_check_ms,
    risk_event_id,
)
from tests.unit.builders import minutes
from tests.unit.test_risk import WINDOW_END, a_record, an_option, home_delivery_milestones

K = FulfilmentKind
M = MilestoneKind
MINUTE = 60_000
TENT, STOVE = "SKU-TENT", "SKU-STOVE"

# Round 2 (after the short pick at DC-NORTH) is decided at minute 30; DC-SOUTH must start picking
# by minute 90, hand over by minute 300; the window ends at WINDOW_END (minute 1920).
SOUTH_PICK, SOUTH_HANDOVER = minutes(90), minutes(300)


def shipment(location: str, *lines: tuple[str, int], arrives: int = minutes(1800)) -> Shipment:
    return Shipment(
        location_id=location,
        lines=tuple(CartLine(sku, n) for sku, n in lines),
        ready_at_ms=minutes(60),
        handover_at_ms=minutes(240),
        arrives_at_ms=arrives,
        service_id="POSTNL-STANDARD",
        distance_km=80.0,
    )


def a_promise(*shipments: Shipment) -> PromiseRecord:
    """A home delivery promised from DC-NORTH (or ``shipments``), each with the three milestones."""
    shipments = shipments or (shipment("DC-NORTH", (TENT, 1)),)
    milestones = tuple(
        m
        for i, s in enumerate(shipments)
        for m in home_delivery_milestones(shipment=i, location_id=s.location_id)
    )
    return a_record(option=an_option(shipments=shipments), milestones=milestones)


def allocated(
    allocation_id: str,
    location: str,
    *lines: tuple[str, int],
    late: bool = False,
    arrives: int = minutes(1800),
) -> Allocated:
    round_ = int(allocation_id.split(":")[1])
    milestones = (
        Milestone(M.PICK_START, location, SOUTH_PICK, 0),
        Milestone(M.CARRIER_HANDOVER, location, SOUTH_HANDOVER, 0),
        Milestone(M.DELIVERED, location, WINDOW_END, 0),
    )
    return Allocated(allocation_id, round_, shipment(location, *lines, arrives=arrives), milestones, late)


def a_round(number: int, *ids: str, outcome: str = "allocated", backorder: tuple[str, ...] = (), at: int = 0):
    return SourcingRound(number, outcome, ids, backorder, f"round {number}", at or minutes(number * 15))


SHORT_PICK = "short_pick at DC-NORTH: not on the shelf"


def short_picked_and_moved_south() -> AllocatedPlan:
    """Promised and allocated at DC-NORTH, short-picked there, re-sourced to DC-SOUTH in round 2."""
    return allocated_plan(
        a_promise(),
        [allocated("O:1:0", "DC-NORTH", (TENT, 1)), allocated("O:2:0", "DC-SOUTH", (TENT, 1))],
        [Withdrawal("O:1:0", SHORT_PICK)],
        [a_round(1, "O:1:0"), a_round(2, "O:2:0", at=minutes(30))],
    )


def watched(plan: AllocatedPlan, *events: FulfilmentEvent) -> OrderTracking:
    order = OrderTracking(plan.record, withdrawn=plan.withdrawn, late=plan.late, moved_at_ms=plan.moved_at_ms)
    for event in events:
        order, _ = apply_fulfilment(order, event)
    return order


_ids = itertools.count(1)


def an_event(kind: FulfilmentKind, *, at: int, location_id: str | None = None, shipment: int | None = None):
    return FulfilmentEvent(f"FUL-{next(_ids)}", kind, at, location_id, shipment)


# --- the plan ---------------------------------------------------------------------------------------


def test_without_a_round_the_plan_is_the_promise_itself() -> None:
    promise = a_promise()
    plan = allocated_plan(promise, [allocated("O:1:0", "DC-SOUTH", (TENT, 1))], [], [])
    assert plan.record is promise and plan.withdrawn == frozenset() and plan.moves == () and plan.round == 0


def test_an_allocation_where_the_promise_ships_from_confirms_it_with_the_promise_s_milestones() -> None:
    promise = a_promise()
    plan = allocated_plan(promise, [allocated("O:1:0", "DC-NORTH", (TENT, 1))], [], [a_round(1, "O:1:0")])
    assert plan.record.option.shipments == promise.option.shipments
    assert plan.record.milestones == promise.milestones
    assert (plan.withdrawn, plan.moves, plan.rounds, plan.round) == (frozenset(), (), (0,), 1)


def test_a_short_pick_re_sourced_elsewhere_moves_the_shipment_and_its_milestones() -> None:
    plan = short_picked_and_moved_south()

    shipments = plan.record.option.shipments
    assert [s.location_id for s in shipments] == ["DC-NORTH", "DC-SOUTH"]
    assert shipments[0].lines == () and shipments[1].lines == (CartLine(TENT, 1),)
    assert plan.withdrawn == frozenset({0}) and plan.rounds == (0, 2)
    assert [(m.kind, m.location_id, m.due_ms, m.shipment) for m in plan.record.milestones] == [
        (M.PICK_START, "DC-SOUTH", SOUTH_PICK, 1),
        (M.CARRIER_HANDOVER, "DC-SOUTH", SOUTH_HANDOVER, 1),
        (M.DELIVERED, "DC-SOUTH", WINDOW_END, 1),
    ]
    assert plan.moves == (Move(0, 2, "DC-NORTH", (CartLine(TENT, 1),), (1,), True, SHORT_PICK, minutes(30)),)
    assert plan.moved_at_ms == minutes(30) and plan.round == 2
    # The promise to the customer stands: same window, same version.
    assert plan.record.option.window_end_ms == WINDOW_END and plan.record.version == 1
    assert clearance_reason(plan, 0) == "resourced" and clearance_reason(plan, 1) is None


def test_the_first_round_moves_what_it_allocates_elsewhere_than_promised() -> None:
    promise = a_promise(shipment("DC-NORTH", (TENT, 1), (STOVE, 2)))
    plan = allocated_plan(
        promise,
        [allocated("O:1:0", "DC-NORTH", (TENT, 1)), allocated("O:1:1", "DC-SOUTH", (STOVE, 2))],
        [],
        [a_round(1, "O:1:0", "O:1:1")],
    )
    north, south = plan.record.option.shipments
    assert north.lines == (CartLine(TENT, 1),) and south.lines == (CartLine(STOVE, 2),)
    assert plan.withdrawn == frozenset()  # DC-NORTH still ships the tent, to the promise's milestones
    assert {m.location_id for m in plan.record.milestones} == {"DC-NORTH", "DC-SOUTH"}
    [move] = plan.moves
    assert (move.shipment, move.to, move.lines, move.withdrawn) == (0, (1,), (CartLine(STOVE, 2),), False)
    assert move.reason == "round 1"


def test_a_round_is_applied_once_its_outcome_and_every_allocation_it_lists_are_known() -> None:
    promise = a_promise()
    facts = (
        [allocated("O:1:0", "DC-NORTH", (TENT, 1))],
        [Withdrawal("O:1:0", SHORT_PICK)],
        [a_round(1, "O:1:0"), a_round(2, "O:2:0", at=minutes(30))],  # O:2:0 not read yet
    )
    waiting = allocated_plan(promise, *facts)
    assert waiting.round == 1 and waiting.withdrawn == frozenset() and waiting.moves == ()
    assert waiting.record.milestones == promise.milestones


@settings(max_examples=50, deadline=None)
@given(st.permutations(range(5)))
def test_the_plan_does_not_depend_on_the_order_the_facts_arrived_in(order: list[int]) -> None:
    facts: list[object] = [
        allocated("O:1:0", "DC-NORTH", (TENT, 1)),
        allocated("O:2:0", "DC-SOUTH", (TENT, 1)),
        Withdrawal("O:1:0", SHORT_PICK),
        a_round(1, "O:1:0"),
        a_round(2, "O:2:0", at=minutes(30)),
    ]
    seen = [facts[i] for i in order]
    plan = allocated_plan(
        a_promise(),
        [f for f in seen if isinstance(f, Allocated)],
        [f for f in seen if isinstance(f, Withdrawal)],
        [f for f in seen if isinstance(f, SourcingRound)],
    )
    assert plan == short_picked_and_moved_south()


def test_a_rejected_first_round_withdraws_every_shipment_and_keeps_their_units() -> None:
    promise = a_promise()
    plan = allocated_plan(promise, [], [], [a_round(1, outcome="rejected", backorder=(TENT,))])
    assert plan.withdrawn == frozenset({0}) and plan.record.milestones == ()
    assert plan.record.option.shipments[0].lines == (CartLine(TENT, 1),)
    assert clearance_reason(plan, 0) == "rejected"
    assert assess(watched(plan), WINDOW_END + 60 * MINUTE) is None  # nothing to watch


def test_a_re_sourcing_that_finds_nothing_leaves_the_units_backordered_on_the_withdrawn_shipment() -> None:
    promise = a_promise(shipment("DC-NORTH", (TENT, 1)), shipment("DC-SOUTH", (STOVE, 1)))
    plan = allocated_plan(
        promise,
        [allocated("O:1:0", "DC-NORTH", (TENT, 1)), allocated("O:1:1", "DC-SOUTH", (STOVE, 1))],
        [Withdrawal("O:1:0", SHORT_PICK)],
        [a_round(1, "O:1:0", "O:1:1"), a_round(2, outcome="rejected", backorder=(TENT,))],
    )
    assert plan.withdrawn == frozenset({0})
    assert plan.record.option.shipments[0].lines == (CartLine(TENT, 1),)
    [move] = plan.moves
    assert (move.to, move.lines, move.withdrawn, move.reason) == ((), (), True, SHORT_PICK)
    assert clearance_reason(plan, 0) == "backordered"
    assert {m.shipment for m in plan.record.milestones} == {1}  # DC-SOUTH is still watched


def test_a_backorder_allocated_when_stock_arrives_is_watched_where_it_ships_from() -> None:
    """Round 1 found no tent; round 2 (stock arrived) allocates it at DC-SOUTH, nothing withdrawn."""
    plan = allocated_plan(
        a_promise(),
        [allocated("O:2:0", "DC-SOUTH", (TENT, 1))],
        [],
        [a_round(1, outcome="rejected", backorder=(TENT,)), a_round(2, "O:2:0", at=minutes(600))],
    )
    north, south = plan.record.option.shipments
    assert north.lines == () and south.lines == (CartLine(TENT, 1),)
    assert plan.withdrawn == frozenset({0}) and {m.location_id for m in plan.record.milestones} == {
        "DC-SOUTH"
    }
    assert [(m.round, m.shipment, m.to, m.lines) for m in plan.moves] == [
        (1, 0, (), ()),
        (2, 0, (1,), (CartLine(TENT, 1),)),
    ]
    assert plan.moved_at_ms == minutes(600)


def test_a_partial_backorder_allocated_later_leaves_the_first_shipment_alone() -> None:
    promise = a_promise(shipment("DC-NORTH", (TENT, 1), (STOVE, 2)))
    plan = allocated_plan(
        promise,
        [allocated("O:1:0", "DC-NORTH", (TENT, 1)), allocated("O:2:0", "DC-SOUTH", (STOVE, 2))],
        [],
        [
            a_round(1, "O:1:0", outcome="partially_allocated", backorder=(STOVE,)),
            a_round(2, "O:2:0"),
        ],
    )
    north, south = plan.record.option.shipments
    assert north.lines == (CartLine(TENT, 1),) and south.lines == (CartLine(STOVE, 2),)
    assert plan.withdrawn == frozenset()
    assert plan.record.milestones[0].location_id in {"DC-NORTH", "DC-SOUTH"}
    assert {m.shipment for m in plan.record.milestones} == {0, 1}


def test_a_replacement_at_the_same_location_keeps_the_shipment() -> None:
    """A cancellation of one line replaces the allocation by one of the rest, at the same place."""
    promise = a_promise(shipment("DC-NORTH", (TENT, 1), (STOVE, 1)))
    plan = allocated_plan(
        promise,
        [allocated("O:1:0", "DC-NORTH", (TENT, 1), (STOVE, 1)), allocated("O:2:0", "DC-NORTH", (STOVE, 1))],
        [Withdrawal("O:1:0", "cancelled")],
        [a_round(1, "O:1:0"), a_round(2, "O:2:0")],
    )
    assert plan.withdrawn == frozenset() and plan.moves == ()
    assert plan.record.option.shipments == promise.option.shipments
    assert plan.record.milestones == promise.milestones


def test_a_shipment_moved_twice_is_watched_where_it_is_now() -> None:
    plan = allocated_plan(
        a_promise(),
        [
            allocated("O:1:0", "DC-NORTH", (TENT, 1)),
            allocated("O:2:0", "DC-SOUTH", (TENT, 1)),
            allocated("O:3:0", "STORE-UTRECHT-01", (TENT, 1)),
        ],
        [Withdrawal("O:1:0", SHORT_PICK), Withdrawal("O:2:0", "store_rejected at DC-SOUTH")],
        [a_round(1, "O:1:0"), a_round(2, "O:2:0"), a_round(3, "O:3:0")],
    )
    assert plan.withdrawn == frozenset({0, 1}) and plan.rounds == (0, 2, 3)
    assert {m.location_id for m in plan.record.milestones} == {"STORE-UTRECHT-01"}
    assert [(m.round, m.shipment, m.to, m.reason) for m in plan.moves] == [
        (2, 0, (1,), SHORT_PICK),
        (3, 1, (2,), "store_rejected at DC-SOUTH"),
    ]


PLACES = ["DC-NORTH", "DC-SOUTH", "STORE-UTRECHT-01"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(st.none(), st.sampled_from(PLACES), st.tuples(*[st.sampled_from(PLACES)] * 2)), max_size=5
    ),
    st.integers(min_value=1, max_value=3),
    st.integers(min_value=1, max_value=3),
)
def test_every_unit_of_the_order_stays_on_exactly_one_shipment(
    steps: list[str | tuple[str, str] | None], tents: int, stoves: int
) -> None:
    """However the rounds go (all in one place, split over two, nothing found; after a short pick
    of what was live, or for the backorder when stock arrives), no unit appears or vanishes, and
    facts read in another order give the same plan."""
    promise = a_promise(shipment("DC-NORTH", (TENT, tents)), shipment("DC-SOUTH", (STOVE, stoves)))
    allocations: list[Allocated] = []
    withdrawals: list[Withdrawal] = []
    rounds: list[SourcingRound] = []
    live: list[str] = []
    for number, step in enumerate(steps, start=1):
        withdrawals += [Withdrawal(i, "short_pick") for i in live]  # what was live is short-picked
        if step is None:
            rounds.append(a_round(number, outcome="rejected", backorder=(TENT, STOVE)))
            live = []
            continue
        if isinstance(step, str):
            live = [f"O:{number}:0"]
            allocations.append(allocated(live[0], step, (TENT, tents), (STOVE, stoves)))
        else:
            live = [f"O:{number}:0", f"O:{number}:1"]
            allocations += [
                allocated(live[0], step[0], (TENT, tents)),
                allocated(live[1], step[1], (STOVE, stoves)),
            ]
        rounds.append(a_round(number, *live))
    plan = allocated_plan(promise, allocations, withdrawals, rounds)
    units: Counter[str] = Counter()
    for s in plan.record.option.shipments:
        for line in s.lines:
            units[line.sku] += line.quantity
    assert units == {TENT: tents, STOVE: stoves}
    again = allocated_plan(promise, allocations[::-1], withdrawals[::-1], rounds[::-1])
    assert again == plan


# --- what the risk watch makes of it ----------------------------------------------------------------


def test_after_the_move_a_late_pick_at_the_new_location_is_at_risk_there_and_nothing_at_the_old() -> None:
    plan = short_picked_and_moved_south()
    short_pick = an_event(K.SHORT_PICK, at=minutes(20), location_id="DC-NORTH")
    order = watched(plan, short_pick)

    assert assess(order, minutes(60)) is None  # the short pick's shipment was withdrawn
    risk = assess(order, SOUTH_PICK + 10 * MINUTE)
    assert risk is not None
    assert (risk.reason, risk.action, risk.location_id, risk.shipment, risk.milestone) == (
        RiskReason.PICK_NOT_STARTED,
        SuggestedAction.EXPEDITE,
        "DC-SOUTH",
        1,
        M.PICK_START,
    )
    # DC-NORTH's promised milestones are gone: its pick (minute 60 in the promise) is not watched.
    assert next_check_ms(order, minutes(31)) == SOUTH_PICK


def test_events_at_the_old_location_after_the_move_do_not_count_for_the_new_one() -> None:
    plan = short_picked_and_moved_south()
    late_north = an_event(K.PICK_STARTED, at=minutes(80), location_id="DC-NORTH")
    order = watched(plan, late_north)
    risk = assess(order, SOUTH_PICK + MINUTE)
    assert risk is not None and risk.location_id == "DC-SOUTH"

    picked_south = an_event(K.PICK_STARTED, at=minutes(95), location_id="DC-SOUTH")
    assert assess(watched(plan, late_north, picked_south), minutes(100)) is None


def test_an_allocation_s_own_index_at_the_new_location_counts_for_the_new_shipment() -> None:
    """The WMS at DC-SOUTH knows its allocation as shipment 0 of round 2: the location decides."""
    plan = short_picked_and_moved_south()
    event = an_event(K.PICK_STARTED, at=minutes(95), location_id="DC-SOUTH", shipment=0)
    assert tuple(event_targets(event, plan.record)) == (1,)
    assert assess(watched(plan, event), minutes(100)) is None


def test_a_risk_raised_before_the_move_clears_with_a_new_state_id() -> None:
    before = allocated_plan(
        a_promise(),
        [allocated("O:1:0", "DC-NORTH", (TENT, 1))],
        [Withdrawal("O:1:0", SHORT_PICK)],
        [a_round(1, "O:1:0")],
    )
    short_pick = an_event(K.SHORT_PICK, at=minutes(20), location_id="DC-NORTH")
    at_risk = assess(watched(before, short_pick), minutes(25))
    assert at_risk is not None and (at_risk.reason, at_risk.location_id) == (
        RiskReason.SHORT_PICK,
        "DC-NORTH",
    )

    after = watched(short_picked_and_moved_south(), short_pick)
    assert assess(after, minutes(31)) is None and latest_event_ms(after) == minutes(30)
    cleared = risk_event_id("O", None, 1, as_of_ms=latest_event_ms(after))
    assert cleared != risk_event_id("O", None, 1, as_of_ms=latest_event_ms(watched(before, short_pick)))


def test_a_new_location_that_cannot_make_the_window_is_at_risk_at_once_with_the_delay() -> None:
    late_arrival = WINDOW_END + 20 * 60 * MINUTE
    plan = allocated_plan(
        a_promise(),
        [
            allocated("O:1:0", "DC-NORTH", (TENT, 1)),
            allocated("O:2:0", "DC-SOUTH", (TENT, 1), late=True, arrives=late_arrival),
        ],
        [Withdrawal("O:1:0", SHORT_PICK)],
        [a_round(1, "O:1:0"), a_round(2, "O:2:0", at=minutes(30))],
    )
    assert plan.late == ((1, minutes(30), late_arrival),)
    risk = assess(watched(plan), minutes(31))
    assert risk is not None
    assert (risk.reason, risk.action, risk.location_id, risk.milestone) == (
        RiskReason.ALLOCATED_LATE,
        SuggestedAction.INFORM_CUSTOMER,
        "DC-SOUTH",
        M.DELIVERED,
    )
    assert risk.expected_delay_ms == 20 * 60 * MINUTE and risk.since_ms == minutes(30)
    # The promise is kept as the customer's: delivered late is still delivered, and then it is over.
    delivered = an_event(K.DELIVERED, at=late_arrival, location_id="DC-SOUTH")
    assert assess(watched(plan, delivered), late_arrival + MINUTE) is None


def test_a_rejected_order_clears_its_risk() -> None:
    promise = a_promise()
    plan = allocated_plan(promise, [], [], [a_round(1, outcome="rejected", backorder=(TENT,))])
    short_pick = an_event(K.SHORT_PICK, at=minutes(20), location_id="DC-NORTH")
    assert assess(watched(plan, short_pick), minutes(120)) is None


def test_a_courier_slot_moved_to_the_next_free_one_is_the_window_from_then_on() -> None:
    # The chosen slot was full at placement: the slots' owner booked the next one, the round says
    # so, and the order is watched against that slot, not against the one it chose.
    later = 120 * MINUTE
    slot = (WINDOW_END - 60 * MINUTE + later, WINDOW_END + later)
    moved = Allocated(
        "O:1:0",
        1,
        shipment("DC-NORTH", (TENT, 1), arrives=WINDOW_END + later),
        tuple(
            Milestone(m.kind, m.location_id, m.due_ms + later, 0)
            for m in allocated("O:1:0", "DC-NORTH").milestones
        ),
    )
    outcome = SourcingRound(1, "allocated", ("O:1:0",), (), "round 1", minutes(15), window=slot)
    plan = allocated_plan(a_promise(), [moved], [], [outcome])

    assert (plan.record.option.window_start_ms, plan.record.option.window_end_ms) == slot
    assert [m.due_ms for m in plan.record.milestones] == [m.due_ms for m in moved.milestones]
    on_the_road = (
        an_event(K.PICK_STARTED, at=minutes(200), location_id="DC-NORTH"),
        an_event(K.HANDED_TO_CARRIER, at=minutes(400), location_id="DC-NORTH"),
    )
    # Past the slot it chose, within the one it got: on time.
    assert assess(watched(plan, *on_the_road), WINDOW_END + 30 * MINUTE) is None
    overdue = assess(watched(plan, *on_the_road), WINDOW_END + later + MINUTE)
    assert overdue is not None and overdue.since_ms == WINDOW_END + later
    # A round that did not move the slot leaves the promise's window.
    kept = allocated_plan(a_promise(), [moved], [], [a_round(1, "O:1:0")])
    assert kept.record.option.window_end_ms == WINDOW_END


def test_a_round_outcome_with_a_moved_courier_slot_carries_the_booked_window() -> None:
    record = {
        "order_id": "O",
        "round": 1,
        "outcome": "allocated",
        "allocations": [],
        "occurred_at": "2026-12-08T19:00:00+00:00",
        "courier_slot": {
            "store_id": "STORE-UTRECHT-01",
            "requested_start": "2026-12-08T19:00:00+00:00",
            "slot_start": "2026-12-08T21:00:00+00:00",
            "slot_end": "2026-12-08T23:00:00+00:00",
            "moved": True,
        },
    }
    fact = decode_round(json.dumps(record).encode())
    assert fact is not None
    plan = plan_of(a_promise(), {}, {}, {fact.key: fact.entry})
    start, end = plan.record.option.window_start_ms, plan.record.option.window_end_ms
    assert (end - start, end) == (2 * 60 * MINUTE, 1796770800000)
    unmoved = decode_round(
        json.dumps({**record, "courier_slot": {**record["courier_slot"], "moved": False}}).encode()
    )
    assert unmoved is not None and unmoved.entry[-1] is None
    old_row = plan_of(a_promise(), {}, {}, {fact.key: fact.entry[:5]})  # a row written before
    assert old_row.record.option.window_end_ms == WINDOW_END


# --- an edited order: the new version folded with every round ---------------------------------------


def test_an_edit_s_round_withdraws_a_removed_line_s_shipment_and_keeps_only_the_new_version_s_units() -> None:
    """Version 1 shipped 2 tents from DC-NORTH and a stove from DC-SOUTH; version 2 asks for 1 tent
    only: the edit withdrew both allocations and re-allocated 1 tent at DC-NORTH in round 2."""
    version_2 = a_promise(shipment("DC-NORTH", (TENT, 1)))
    edited = "edited: withdrawn by version 2 of the order"
    plan = allocated_plan(
        version_2,
        [
            allocated("O:1:0", "DC-NORTH", (TENT, 2)),
            allocated("O:1:1", "DC-SOUTH", (STOVE, 1)),
            allocated("O:2:0", "DC-NORTH", (TENT, 1)),
        ],
        [Withdrawal("O:1:0", edited), Withdrawal("O:1:1", edited)],
        [
            a_round(1, "O:1:0", "O:1:1"),
            SourcingRound(2, "allocated", ("O:2:0",), (), "edited", minutes(30), edit=True),
        ],
    )
    live = [s for i, s in enumerate(plan.record.option.shipments) if i not in plan.withdrawn]
    assert [(s.location_id, s.lines) for s in live] == [("DC-NORTH", (CartLine(TENT, 1),))]
    assert {m.location_id for m in plan.record.milestones} == {"DC-NORTH"}
    assert [plan.record.option.shipments[i].location_id for i in plan.withdrawn] == ["DC-SOUTH"]


# --- what mutation testing found unpinned (mutmut 2.4.5 on domain/allocated_plan.py) -------------------

LAMP = "SKU-LAMP"


def lines_of(plan: AllocatedPlan) -> list[tuple[str, list[tuple[str, int]]]]:
    return [(s.location_id, [(c.sku, c.quantity) for c in s.lines]) for s in plan.record.option.shipments]


def an_edit_round(number: int, *ids: str, at: int = 0) -> SourcingRound:
    return SourcingRound(
        number, "allocated", ids, (), f"edited: round {number}", at or minutes(number * 15), True
    )


def test_a_line_an_edit_added_to_a_promised_shipment_is_counted_once_where_it_was_allocated() -> None:
    # Bug found through the survivors: the new version's promise carries the added stove on the
    # shipment the tent ships on; the first round (before the edit) never covered the stove, so it
    # stayed on that shipment as if allocated there, and the edit's round added it again elsewhere.
    version_2 = a_promise(shipment("DC-NORTH", (TENT, 1), (STOVE, 1)))
    tent = allocated("O:1:0", "DC-NORTH", (TENT, 1))
    for where in ("DC-SOUTH", "DC-NORTH"):
        stove = allocated("O:2:0", where, (STOVE, 1))
        plan = allocated_plan(version_2, [tent, stove], [], [a_round(1, "O:1:0"), an_edit_round(2, "O:2:0")])
        assert lines_of(plan) == [("DC-NORTH", [(TENT, 1)]), (where, [(STOVE, 1)])]
        assert plan.withdrawn == frozenset()
        assert plan.moves == (
            Move(0, 2, "DC-NORTH", (CartLine(STOVE, 1),), (1,), False, "edited: round 2", minutes(30)),
        )


def test_the_facts_of_a_plan_cannot_be_changed_once_made() -> None:
    plan = short_picked_and_moved_south()
    values = [
        allocated("O:1:0", "DC-NORTH", (TENT, 1)),
        Withdrawal("O:1:0", SHORT_PICK),
        a_round(1),
        plan.moves[0],
        plan,
    ]
    for value in values:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, dataclasses.fields(value)[0].name, None)


def test_an_allocation_known_only_by_its_cancel_adds_a_shipment_without_milestones_and_not_late() -> None:
    # ``adapters.allocated.plan_of`` builds it so when only the cancel was read: no times, no milestones.
    known_by_cancel = Allocated("O:1:0", 1, Shipment("DC-SOUTH", (CartLine(TENT, 1),), 0, 0, 0))
    plan = allocated_plan(
        a_promise(), [known_by_cancel], [Withdrawal("O:1:0", SHORT_PICK)], [a_round(1, "O:1:0")]
    )
    assert lines_of(plan) == [("DC-NORTH", []), ("DC-SOUTH", [(TENT, 1)])]
    assert plan.withdrawn == frozenset({0}) and plan.late == () and plan.record.milestones == ()


def test_without_a_round_every_shipment_is_the_promise_s() -> None:
    plan = allocated_plan(
        a_promise(shipment("DC-NORTH", (TENT, 1)), shipment("DC-SOUTH", (STOVE, 1))), [], [], []
    )
    assert (plan.rounds, plan.late, plan.moved_at_ms, plan.round) == ((0, 0), (), None, 0)


def test_a_round_waiting_for_its_allocations_holds_back_every_later_round() -> None:
    plan = allocated_plan(
        a_promise(),
        [allocated("O:1:0", "DC-NORTH", (TENT, 1))],
        [Withdrawal("O:1:0", SHORT_PICK)],
        [a_round(1, "O:1:0"), a_round(2, "O:2:0"), a_round(3, outcome="rejected", backorder=(TENT,))],
    )
    assert plan.round == 1 and plan.withdrawn == frozenset() and plan.moves == ()


def test_each_withdrawn_shipment_s_risk_ends_for_its_own_reason() -> None:
    # The tent moved north -> store (resourced), then the store rejected it and nothing was found
    # (backordered); the stove ships on from DC-SOUTH.
    plan = allocated_plan(
        a_promise(shipment("DC-NORTH", (TENT, 1)), shipment("DC-SOUTH", (STOVE, 1))),
        [
            allocated("O:1:0", "DC-NORTH", (TENT, 1)),
            allocated("O:1:1", "DC-SOUTH", (STOVE, 1)),
            allocated("O:2:0", "STORE-UTRECHT-01", (TENT, 1)),
        ],
        [Withdrawal("O:1:0", SHORT_PICK), Withdrawal("O:2:0", "store_rejected at STORE-UTRECHT-01")],
        [
            a_round(1, "O:1:0", "O:1:1"),
            a_round(2, "O:2:0"),
            a_round(3, outcome="rejected", backorder=(TENT,)),
        ],
    )
    assert plan.withdrawn == frozenset({0, 2})
    assert [clearance_reason(plan, i) for i in range(3)] == ["resourced", None, "backordered"]


def test_a_round_replaces_only_the_shipments_never_allocated_that_carry_its_skus() -> None:
    promise = a_promise(shipment("DC-NORTH", (TENT, 1)), shipment("DC-SOUTH", (STOVE, 1)))
    plan = allocated_plan(promise, [allocated("O:1:0", "DC-NORTH", (TENT, 1))], [], [a_round(1, "O:1:0")])
    assert plan.withdrawn == frozenset() and plan.moves == ()
    assert set(plan.record.milestones) == set(promise.milestones)  # the stove's is still expected
    assert plan.late == ()  # and no allocation said it arrives late


def test_only_an_edit_s_round_replaces_a_shipment_whose_allocations_were_all_withdrawn() -> None:
    # The stove's allocation was withdrawn whole (its line cancelled); the tent is short-picked and
    # re-sourced at the store. A plain round leaves the stove's shipment to the cancellation (it is
    # closed there); an edit's round replaces it: a line the edit removed is expected nowhere.
    promise = a_promise(shipment("DC-NORTH", (TENT, 1)), shipment("DC-SOUTH", (STOVE, 1)))
    allocations = [
        allocated("O:1:0", "DC-NORTH", (TENT, 1)),
        allocated("O:1:1", "DC-SOUTH", (STOVE, 1)),
        allocated("O:2:0", "STORE-UTRECHT-01", (TENT, 1)),
    ]
    withdrawals = [Withdrawal("O:1:1", "cancelled"), Withdrawal("O:1:0", SHORT_PICK)]
    plain = allocated_plan(
        promise, allocations, withdrawals, [a_round(1, "O:1:0", "O:1:1"), a_round(2, "O:2:0")]
    )
    assert plain.withdrawn == frozenset({0})
    edit = allocated_plan(
        promise, allocations, withdrawals, [a_round(1, "O:1:0", "O:1:1"), an_edit_round(2, "O:2:0")]
    )
    assert edit.withdrawn == frozenset({0, 1})


def test_a_line_an_edit_removed_from_an_allocation_leaves_the_plan_and_the_other_shipments_stay() -> None:
    # Version 1: tent and stove at DC-NORTH, a lamp at DC-SOUTH. The edit removes the stove: it
    # withdraws the DC-NORTH allocation whole and reserves the tent there again (O:2:0).
    version_2 = a_promise(shipment("DC-NORTH", (TENT, 1)), shipment("DC-SOUTH", (LAMP, 1)))
    plan = allocated_plan(
        version_2,
        [
            allocated("O:1:0", "DC-NORTH", (TENT, 1), (STOVE, 1)),
            allocated("O:1:1", "DC-SOUTH", (LAMP, 1)),
            allocated("O:2:0", "DC-NORTH", (TENT, 1)),
        ],
        [Withdrawal("O:1:0", "edited")],
        [a_round(1, "O:1:0", "O:1:1"), an_edit_round(2, "O:2:0")],
    )
    assert lines_of(plan) == [("DC-NORTH", [(TENT, 1)]), ("DC-SOUTH", [(LAMP, 1)])]
    assert plan.withdrawn == frozenset() and plan.moves == ()


def test_a_backordered_unit_waits_on_its_shipment_and_moves_when_stock_arrives_elsewhere() -> None:
    promise = a_promise(shipment("DC-NORTH", (TENT, 2)), shipment("DC-SOUTH", (STOVE, 1)))
    first = [allocated("O:1:0", "DC-NORTH", (TENT, 1)), allocated("O:1:1", "DC-SOUTH", (STOVE, 1))]
    round_1 = a_round(1, "O:1:0", "O:1:1", outcome="partially_allocated", backorder=(TENT,))
    waiting = allocated_plan(promise, first, [], [round_1])
    assert lines_of(waiting) == [("DC-NORTH", [(TENT, 2)]), ("DC-SOUTH", [(STOVE, 1)])]
    arrived = allocated("O:2:0", "STORE-UTRECHT-01", (TENT, 1))
    plan = allocated_plan(promise, [*first, arrived], [], [round_1, a_round(2, "O:2:0")])
    assert lines_of(plan) == [
        ("DC-NORTH", [(TENT, 1)]),
        ("DC-SOUTH", [(STOVE, 1)]),
        ("STORE-UTRECHT-01", [(TENT, 1)]),
    ]
    assert plan.withdrawn == frozenset()
    assert plan.moves == (Move(0, 2, "DC-NORTH", (CartLine(TENT, 1),), (2,), False, "round 2", minutes(30)),)


def test_a_re_sourcing_round_takes_what_it_needs_and_leaves_the_rest_of_a_backorder_waiting() -> None:
    # Three tents at DC-NORTH: one allocated, two backordered. The one is short-picked; round 2
    # finds two at the store: the short-picked one and one of the two waiting.
    plan = allocated_plan(
        a_promise(shipment("DC-NORTH", (TENT, 3))),
        [allocated("O:1:0", "DC-NORTH", (TENT, 1)), allocated("O:2:0", "STORE-UTRECHT-01", (TENT, 2))],
        [Withdrawal("O:1:0", SHORT_PICK)],
        [
            a_round(1, "O:1:0", outcome="partially_allocated", backorder=(TENT,)),
            a_round(2, "O:2:0", outcome="partially_allocated", backorder=(TENT,)),
        ],
    )
    assert lines_of(plan) == [("DC-NORTH", [(TENT, 1)]), ("STORE-UTRECHT-01", [(TENT, 2)])]
    assert plan.moves[0].lines == (CartLine(TENT, 2),) and plan.moves[0].withdrawn


def test_an_allocation_confirms_only_a_shipment_of_its_location_that_carried_its_skus() -> None:
    swapped = allocated_plan(
        a_promise(shipment("DC-NORTH", (TENT, 1)), shipment("DC-SOUTH", (STOVE, 1))),
        [allocated("O:1:0", "DC-NORTH", (STOVE, 1)), allocated("O:1:1", "DC-SOUTH", (TENT, 1))],
        [],
        [a_round(1, "O:1:0", "O:1:1")],
    )
    assert swapped.withdrawn == frozenset({0, 1})
    assert lines_of(swapped)[2:] == [("DC-NORTH", [(STOVE, 1)]), ("DC-SOUTH", [(TENT, 1)])]


def test_a_late_allocation_where_the_promise_ships_from_is_late_there() -> None:
    late_arrival = WINDOW_END + 60 * MINUTE
    plan = allocated_plan(
        a_promise(),
        [allocated("O:1:0", "DC-NORTH", (TENT, 1), late=True, arrives=late_arrival)],
        [],
        [a_round(1, "O:1:0")],
    )
    assert plan.late == ((0, minutes(15), late_arrival),)


def test_a_unit_nothing_took_is_not_said_to_have_moved() -> None:
    # Two shipments of one SKU; the round allocates one unit where the first ships from.
    plan = allocated_plan(
        a_promise(shipment("DC-NORTH", (TENT, 1)), shipment("DC-SOUTH", (TENT, 1))),
        [allocated("O:1:0", "DC-NORTH", (TENT, 1))],
        [],
        [a_round(1, "O:1:0", outcome="partially_allocated", backorder=(TENT,))],
    )
    assert plan.moves == (Move(1, 1, "DC-SOUTH", (), (), True, "round 1", minutes(15)),)
    assert clearance_reason(plan, 1) == "backordered"


def test_an_allocation_drawing_on_two_shipments_takes_each_one_s_units() -> None:
    plan = allocated_plan(
        a_promise(shipment("DC-NORTH", (TENT, 1)), shipment("DC-SOUTH", (TENT, 2))),
        [allocated("O:1:0", "STORE-UTRECHT-01", (TENT, 3))],
        [],
        [a_round(1, "O:1:0")],
    )
    assert lines_of(plan) == [("DC-NORTH", []), ("DC-SOUTH", []), ("STORE-UTRECHT-01", [(TENT, 3)])]
    assert [(m.shipment, m.lines, m.to) for m in plan.moves] == [
        (0, (CartLine(TENT, 1),), (2,)),
        (1, (CartLine(TENT, 2),), (2,)),
    ]


def test_units_an_edit_removed_do_not_stay_waiting_on_a_withdrawn_shipment() -> None:
    # Bug found while pinning ``_fit``: four tents, two at each DC; the edit keeps one (it withdraws
    # DC-SOUTH's allocation whole and DC-NORTH's, reserving one there again). DC-SOUTH's two tents
    # stayed on its withdrawn shipment as if still waiting for stock (GET /orders: "what nothing took").
    version_2 = a_promise(shipment("DC-NORTH", (TENT, 1)))
    plan = allocated_plan(
        version_2,
        [
            allocated("O:1:0", "DC-NORTH", (TENT, 2)),
            allocated("O:1:1", "DC-SOUTH", (TENT, 2)),
            allocated("O:2:0", "DC-NORTH", (TENT, 1)),
        ],
        [Withdrawal("O:1:0", "edited"), Withdrawal("O:1:1", "edited")],
        [a_round(1, "O:1:0", "O:1:1"), an_edit_round(2, "O:2:0")],
    )
    assert lines_of(plan) == [("DC-NORTH", [(TENT, 1)]), ("DC-SOUTH", [])]
    assert plan.withdrawn == frozenset({1})
    # A backorder within what the version asks for still waits where it was (a rejected round).
    rejected = allocated_plan(a_promise(), [], [], [a_round(1, outcome="rejected", backorder=(TENT,))])
    assert lines_of(rejected) == [("DC-NORTH", [(TENT, 1)])]


def test_a_backorder_of_one_sku_split_over_two_shipments_waits_on_each() -> None:
    plan = allocated_plan(
        a_promise(shipment("DC-NORTH", (TENT, 2)), shipment("DC-SOUTH", (TENT, 2))),
        [allocated("O:1:0", "DC-NORTH", (TENT, 1)), allocated("O:1:1", "DC-SOUTH", (TENT, 1))],
        [],
        [a_round(1, "O:1:0", "O:1:1", outcome="partially_allocated", backorder=(TENT,))],
    )
    assert lines_of(plan) == [("DC-NORTH", [(TENT, 2)]), ("DC-SOUTH", [(TENT, 2)])]
    assert plan.withdrawn == frozenset() and plan.moves == ()
