"""Cancelling an order or some of its lines: what is withdrawn, released, replaced, refused, and why."""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import pytest

from oms_streams.domain.cancellation import (
    Allocated,
    AllocationStatus,
    CancellableOrder,
    CancellationDecision,
    CancellationRequest,
    LineResult,
    LineVerdict,
    Outcome,
    closed_shipments,
    decide_cancellation,
    open_lines,
)
from oms_streams.domain.risk import assess, latest_event_ms, next_check_ms, risk_event_id
from tests.unit.test_risk import MINUTE, PICK_DUE, tracking

LIVE, FULFILLED, CANCELLED = AllocationStatus.LIVE, AllocationStatus.FULFILLED, AllocationStatus.CANCELLED


def an_allocation(
    allocation_id: str = "ORDER-1:1:0",
    location_id: str = "DC-NORTH",
    status: AllocationStatus = LIVE,
    **lines: int,
) -> Allocated:
    return Allocated(
        allocation_id, location_id, tuple((sku.replace("_", "-"), n) for sku, n in lines.items()), status
    )


def an_order(*allocations: Allocated, **ordered: int) -> CancellableOrder:
    return CancellableOrder(
        order_id="ORDER-1",
        ordered=tuple((sku.replace("_", "-"), n) for sku, n in ordered.items()),
        allocations=allocations,
    )


def cancel(*skus: str, request_id: str = "CANCEL-1") -> CancellationRequest:
    return CancellationRequest(request_id, "ORDER-1", skus)


def test_cancelling_a_whole_allocated_order_withdraws_every_allocation_and_releases_every_hold():
    order = an_order(
        an_allocation("ORDER-1:1:0", "DC-NORTH", SKU_TENT=2),
        an_allocation("ORDER-1:1:1", "DC-SOUTH", SKU_STOVE=1),
        SKU_TENT=2,
        SKU_STOVE=1,
    )

    decision = decide_cancellation(order, cancel())

    assert decision.outcome is Outcome.CANCELLED
    assert decision.withdrawn == ("ORDER-1:1:0", "ORDER-1:1:1") and decision.reduced == ()
    assert decision.releases == (("ORDER-1:1:0", "SKU-TENT"), ("ORDER-1:1:1", "SKU-STOVE"))
    assert [(line.sku, line.verdict, line.cancelled_units) for line in decision.lines] == [
        ("SKU-TENT", LineVerdict.CANCELLED, 2),
        ("SKU-STOVE", LineVerdict.CANCELLED, 1),
    ]
    assert decision.reason == ""


def test_cancelling_one_line_keeps_the_rest_of_its_allocation_to_be_replaced():
    order = an_order(an_allocation(SKU_TENT=2, SKU_BIKE_LIGHT=3), SKU_TENT=2, SKU_BIKE_LIGHT=3)

    decision = decide_cancellation(order, cancel("SKU-TENT"))

    assert decision.outcome is Outcome.CANCELLED
    assert decision.withdrawn == ()
    assert decision.reduced == (("ORDER-1:1:0", (("SKU-BIKE-LIGHT", 3),)),)
    assert decision.releases == (("ORDER-1:1:0", "SKU-TENT"),)
    assert decision.cancelled_skus == ("SKU-TENT",)
    assert open_lines(order, decision.cancelled_skus) == (("SKU-BIKE-LIGHT", 3),)


def test_a_line_that_already_shipped_is_refused_with_where_it_left_from():
    order = an_order(an_allocation(status=FULFILLED, SKU_TENT=2), SKU_TENT=2)

    decision = decide_cancellation(order, cancel("SKU-TENT"))

    assert decision.outcome is Outcome.REFUSED
    [line] = decision.lines
    assert (line.verdict, line.cancelled_units, line.refused_units) == (LineVerdict.SHIPPED, 0, 2)
    assert decision.reason == "SKU-TENT: all 2 already shipped from DC-NORTH"
    assert decision.releases == () and decision.withdrawn == ()


def test_a_whole_order_with_one_shipment_gone_cancels_the_rest_and_says_what_shipped():
    order = an_order(
        an_allocation("ORDER-1:1:0", "DC-NORTH", FULFILLED, SKU_TENT=1),
        an_allocation("ORDER-1:1:1", "DC-SOUTH", LIVE, SKU_TENT=1, SKU_STOVE=1),
        SKU_TENT=2,
        SKU_STOVE=1,
    )

    decision = decide_cancellation(order, cancel())

    assert decision.outcome is Outcome.PARTIALLY_CANCELLED
    tent, stove = decision.lines
    assert (tent.verdict, tent.cancelled_units, tent.refused_units) == (LineVerdict.CANCELLED, 1, 1)
    assert tent.reason == "SKU-TENT: 1 of 2 already shipped from DC-NORTH"
    assert (stove.verdict, stove.cancelled_units) == (LineVerdict.CANCELLED, 1)
    assert decision.withdrawn == ("ORDER-1:1:1",)
    assert open_lines(order, decision.cancelled_skus) == ()


def test_a_backordered_line_is_cancelled_with_nothing_to_release():
    order = an_order(an_allocation(SKU_TENT=1), SKU_TENT=1, SKU_KAYAK=1)

    decision = decide_cancellation(order, cancel("SKU-KAYAK"))

    assert decision.outcome is Outcome.CANCELLED
    assert decision.releases == () and decision.withdrawn == () and decision.reduced == ()


def test_a_sku_the_order_does_not_have_is_refused_and_the_others_are_cancelled():
    order = an_order(an_allocation(SKU_TENT=1), SKU_TENT=1)

    decision = decide_cancellation(order, cancel("SKU-TENT", "SKU-CANOE"))

    assert decision.outcome is Outcome.PARTIALLY_CANCELLED
    assert [line.verdict for line in decision.lines] == [LineVerdict.CANCELLED, LineVerdict.NOT_IN_ORDER]
    assert decision.reason == "SKU-CANOE is not a line of order ORDER-1"


def test_the_same_request_again_is_a_duplicate_and_a_new_one_finds_the_order_already_cancelled():
    order = an_order(an_allocation(status=CANCELLED, SKU_TENT=1), SKU_TENT=1)
    after = CancellableOrder(
        order.order_id, order.ordered, order.allocations, frozenset({"SKU-TENT"}), frozenset({"CANCEL-1"})
    )

    assert decide_cancellation(after, cancel()).outcome is Outcome.DUPLICATE
    again = decide_cancellation(after, cancel(request_id="CANCEL-2"))
    assert again.outcome is Outcome.ALREADY_CANCELLED
    assert again.releases == () and again.withdrawn == () and again.reason == ""


def test_cancelling_an_unknown_order_is_refused_with_the_reason():
    decision = decide_cancellation(None, CancellationRequest("CANCEL-1", "ORDER-404"))

    assert decision.outcome is Outcome.REFUSED
    assert decision.reason == "order ORDER-404 is not known: not placed, or not seen yet"


def test_a_request_during_a_sourcing_round_waits_for_its_result():
    order = an_order(SKU_TENT=1)
    busy = CancellableOrder(order.order_id, order.ordered, sourcing_under_way=True)

    assert decide_cancellation(busy, cancel()).outcome is Outcome.WAIT


def test_a_line_named_twice_is_decided_once():
    order = an_order(an_allocation(SKU_TENT=1), SKU_TENT=1)

    decision = decide_cancellation(order, cancel("SKU-TENT", "SKU-TENT"))

    assert [line.sku for line in decision.lines] == ["SKU-TENT"]
    assert decision.releases == (("ORDER-1:1:0", "SKU-TENT"),)


def test_units_shipped_from_several_locations_are_all_counted_and_named():
    # A live allocation first: the shipped count looks past it (not stopping there), adds up every
    # shipment of the SKU, and names each location once.
    order = an_order(
        an_allocation("ORDER-1:2:0", "DC-EAST", LIVE, SKU_STOVE=1),
        an_allocation("ORDER-1:1:0", "DC-NORTH", FULFILLED, SKU_TENT=1),
        an_allocation("ORDER-1:1:1", "DC-SOUTH", FULFILLED, SKU_TENT=2),
        SKU_TENT=4,
        SKU_STOVE=1,
    )

    decision = decide_cancellation(order, cancel("SKU-TENT"))

    [tent] = decision.lines
    assert (tent.verdict, tent.cancelled_units, tent.refused_units) == (LineVerdict.CANCELLED, 1, 3)
    assert tent.reason == "SKU-TENT: 3 of 4 already shipped from DC-NORTH, DC-SOUTH"
    assert open_lines(order) == (("SKU-TENT", 1), ("SKU-STOVE", 1))


def test_a_live_allocation_listed_after_a_shipped_one_and_an_untouched_one_is_still_withdrawn():
    order = an_order(
        an_allocation("ORDER-1:1:0", "DC-NORTH", FULFILLED, SKU_TENT=1),
        an_allocation("ORDER-1:1:1", "DC-EAST", LIVE, SKU_KAYAK=1),
        an_allocation("ORDER-1:1:2", "DC-SOUTH", LIVE, SKU_STOVE=1),
        SKU_TENT=1,
        SKU_KAYAK=1,
        SKU_STOVE=1,
    )

    decision = decide_cancellation(order, cancel("SKU-STOVE"))

    assert decision.withdrawn == ("ORDER-1:1:2",)
    assert decision.releases == (("ORDER-1:1:2", "SKU-STOVE"),)


def test_refused_and_already_cancelled_lines_count_no_units_and_every_reason_is_given():
    order = replace(
        an_order(an_allocation(status=FULFILLED, SKU_TENT=2), SKU_TENT=2, SKU_STOVE=1),
        cancelled=frozenset({"SKU-STOVE"}),
    )

    decision = decide_cancellation(order, cancel("SKU-STOVE", "SKU-CANOE", "SKU-TENT"))

    assert [
        (line.verdict, line.cancelled_units, line.refused_units, line.reason) for line in decision.lines
    ] == [
        (LineVerdict.ALREADY_CANCELLED, 0, 0, ""),
        (LineVerdict.NOT_IN_ORDER, 0, 0, "SKU-CANOE is not a line of order ORDER-1"),
        (LineVerdict.SHIPPED, 0, 2, "SKU-TENT: all 2 already shipped from DC-NORTH"),
    ]
    assert decision.reason == (
        "SKU-CANOE is not a line of order ORDER-1; SKU-TENT: all 2 already shipped from DC-NORTH"
    )


def test_the_answers_wire_values_are_fixed():
    # They are the topic's contract (oms.orders.cancellation-outcomes.v1): renaming one breaks readers.
    assert [o.value for o in Outcome] == [
        "cancelled",
        "partially_cancelled",
        "already_cancelled",
        "refused",
        "duplicate",
        "wait",
    ]
    assert [v.value for v in LineVerdict] == ["cancelled", "already_cancelled", "shipped", "not_in_order"]


def test_a_promised_shipment_closes_when_every_sku_it_carries_is_cancelled():
    shipments = [["SKU-TENT"], ["SKU-STOVE", "SKU-BIKE-LIGHT"], []]

    assert closed_shipments(shipments, {"SKU-TENT", "SKU-STOVE"}) == frozenset({0})
    assert closed_shipments(shipments, {"SKU-TENT", "SKU-STOVE", "SKU-BIKE-LIGHT"}) == frozenset({0, 1})


def test_a_withdrawn_shipment_is_never_at_risk_nor_checked_again_and_its_clearance_has_its_own_id():
    overdue = tracking()  # a home delivery whose pick is overdue
    assert assess(overdue, PICK_DUE + 15 * MINUTE) is not None

    cancelled = replace(overdue, closed=frozenset({0}), closed_at_ms=PICK_DUE + 20 * MINUTE)

    assert assess(cancelled, PICK_DUE + 30 * MINUTE) is None
    assert next_check_ms(cancelled) is None
    assert latest_event_ms(cancelled) == PICK_DUE + 20 * MINUTE
    assert risk_event_id("ORDER-1", None, 1, as_of_ms=latest_event_ms(cancelled)) != risk_event_id(
        "ORDER-1", None, 1, as_of_ms=latest_event_ms(overdue)
    )


# --- what mutation testing found unpinned (mutmut 2.4.5 on domain/cancellation.py) ---------------------


def test_an_allocations_states_are_the_sourcing_rows_allocation_states():
    # ``adapters.cancellations.cancellable`` reads them from the row's ``state`` strings.
    assert [s.value for s in AllocationStatus] == ["live", "fulfilled", "cancelled"]


def test_a_cancellations_values_cannot_be_changed_once_made():
    order = an_order(an_allocation(SKU_TENT=1), SKU_TENT=1)
    request = cancel()
    decision = decide_cancellation(order, request)
    for value in (an_allocation(SKU_TENT=1), order, request, decision.lines[0], decision):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, dataclasses.fields(value)[0].name, None)


def test_an_order_known_by_its_lines_only_and_a_request_naming_none_cancel_the_whole_order():
    # The defaults: no allocation (everything backordered), no line named (the whole order).
    order = CancellableOrder("ORDER-1", (("SKU-TENT", 2),))
    decision = decide_cancellation(order, CancellationRequest("CANCEL-1", "ORDER-1"))
    assert decision == CancellationDecision(
        Outcome.CANCELLED, lines=(LineResult("SKU-TENT", LineVerdict.CANCELLED, 2, 0),)
    )


def test_answers_that_cancel_nothing_carry_nothing_to_withdraw_or_release():
    unknown = decide_cancellation(None, CancellationRequest("CANCEL-1", "ORDER-404"))
    assert (unknown.lines, unknown.withdrawn, unknown.reduced, unknown.releases) == ((), (), (), ())
    waiting = decide_cancellation(replace(an_order(SKU_TENT=1), sourcing_under_way=True), cancel())
    assert waiting.reason == ""
    assert decide_cancellation(None, CancellationRequest("CANCEL-1", "ORDER-404")) == CancellationDecision(
        Outcome.REFUSED, reason="order ORDER-404 is not known: not placed, or not seen yet"
    )
    order = an_order(an_allocation(SKU_TENT=1), SKU_TENT=1)
    decided = replace(order, decided=frozenset({"CANCEL-1"}))
    assert decide_cancellation(decided, CancellationRequest("CANCEL-1", "ORDER-1")) == CancellationDecision(
        Outcome.DUPLICATE
    )
    busy = replace(order, sourcing_under_way=True)
    assert decide_cancellation(busy, CancellationRequest("CANCEL-2", "ORDER-1")) == CancellationDecision(
        Outcome.WAIT
    )


def test_a_line_whose_every_unit_shipped_is_not_open():
    shipped = an_allocation("ORDER-1:1:0", status=FULFILLED, SKU_TENT=2)
    live = an_allocation("ORDER-1:1:1", SKU_STOVE=1)
    assert open_lines(an_order(shipped, live, SKU_TENT=2, SKU_STOVE=1)) == (("SKU-STOVE", 1),)
