"""The difference between an order as sourced and its new version (``domain.edits``): pure."""

from __future__ import annotations

import dataclasses
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oms_streams.domain.cancellation import Allocated, AllocationStatus
from oms_streams.domain.edits import (
    Change,
    Delivery,
    EditableOrder,
    EditDecision,
    EditRequest,
    LineChange,
    Outcome,
    decide_edit,
)
from oms_streams.schemas.sourcing import EditAnswerModel, EditChange

HOME = Delivery("standard", None, None, ("3511 AB", 52.09, 5.11))
LIVE, SHIPPED = AllocationStatus.LIVE, AllocationStatus.FULFILLED


def order(*allocations: Allocated, ordered=(("A", 3), ("B", 1)), backorder=(), cancelled=()) -> EditableOrder:
    return EditableOrder("O-1", tuple(ordered), HOME, allocations, tuple(backorder), frozenset(cancelled))


def edit(*cart: tuple[str, int], delivery: Delivery = HOME) -> EditRequest:
    return EditRequest("O-1-v2", cart, delivery)


def test_a_reduced_line_withdraws_its_allocation_and_keeps_the_rest_where_it_was():
    a1 = Allocated("O-1:1:0", "DC-NORTH", (("A", 3), ("B", 1)), LIVE)
    decision = decide_edit(order(a1), edit(("A", 2), ("B", 1)))
    assert decision.outcome is Outcome.ACCEPTED
    assert decision.withdrawn == ("O-1:1:0",)
    assert decision.kept == (("O-1:1:0", (("A", 2), ("B", 1))),)
    assert decision.additions == () and decision.ordered == (("A", 2), ("B", 1))
    assert [(c.sku, c.change) for c in decision.lines] == [("A", Change.REDUCED), ("B", Change.UNCHANGED)]


def test_a_removed_sku_is_withdrawn_and_an_untouched_allocation_stays():
    a1 = Allocated("O-1:1:0", "DC-NORTH", (("A", 3),), LIVE)
    a2 = Allocated("O-1:1:1", "STORE-1", (("B", 1),), LIVE)
    decision = decide_edit(order(a1, a2), edit(("A", 3)))
    assert decision.withdrawn == ("O-1:1:1",) and decision.kept == ()
    assert decision.lines[1].change is Change.REMOVED and decision.ordered == (("A", 3),)


def test_added_and_increased_units_are_sourced_for_the_difference_only():
    a1 = Allocated("O-1:1:0", "DC-NORTH", (("A", 3), ("B", 1)), LIVE)
    decision = decide_edit(order(a1), edit(("A", 5), ("B", 1), ("C", 2)))
    assert decision.withdrawn == () and decision.additions == (("A", 2), ("C", 2))
    assert [c.change for c in decision.lines] == [Change.INCREASED, Change.UNCHANGED, Change.ADDED]


def test_a_reduction_takes_backordered_units_first_then_the_newest_allocation():
    a1 = Allocated("O-1:1:0", "DC-NORTH", (("A", 2),), LIVE)
    a2 = Allocated("O-1:2:0", "DC-SOUTH", (("A", 2),), LIVE)
    ordered = (("A", 6),)
    decision = decide_edit(order(a1, a2, ordered=ordered, backorder=[("A", 2)]), edit(("A", 5)))
    assert decision.withdrawn == () and decision.backorder == (("A", 1),)
    decision = decide_edit(order(a1, a2, ordered=ordered, backorder=[("A", 2)]), edit(("A", 3)))
    assert decision.backorder == () and decision.withdrawn == ("O-1:2:0",)
    assert decision.kept == (("O-1:2:0", (("A", 1),)),)


def test_a_shipped_line_cannot_be_reduced_below_what_left_and_nothing_changes():
    a1 = Allocated("O-1:1:0", "DC-NORTH", (("A", 3),), SHIPPED)
    a2 = Allocated("O-1:1:1", "STORE-1", (("B", 1),), LIVE)
    decision = decide_edit(order(a1, a2), edit(("A", 1)))
    assert decision.outcome is Outcome.REFUSED
    assert decision.reason == "A: 3 already shipped, cannot become 1"
    assert decision.withdrawn == () and decision.additions == ()
    assert [c.change for c in decision.lines] == [Change.REFUSED, Change.REMOVED]


def test_another_delivery_withdraws_every_live_allocation_and_sources_what_has_not_shipped():
    a1 = Allocated("O-1:1:0", "DC-NORTH", (("A", 2),), SHIPPED)
    a2 = Allocated("O-1:1:1", "DC-SOUTH", (("A", 1), ("B", 1)), LIVE)
    pickup = Delivery("click_and_collect", "STORE-UTRECHT-01", None, ())
    decision = decide_edit(order(a1, a2, backorder=[("B", 0)]), edit(("A", 3), ("B", 2), delivery=pickup))
    assert decision.outcome is Outcome.ACCEPTED and decision.redelivered.startswith("delivery method")
    assert decision.withdrawn == ("O-1:1:1",) and decision.kept == ()
    assert decision.additions == (("A", 1), ("B", 2)) and decision.backorder == ()
    moved = Delivery("standard", None, None, ("1011 AA", 52.37, 4.89))
    assert decide_edit(order(a2), edit(("A", 3), ("B", 1), delivery=moved)).redelivered == "destination"


def test_a_courier_delivery_cannot_change_its_method_or_store():
    courier = Delivery("courier", None, "STORE-UTRECHT-01", ("3511 AB", 52.09, 5.11))
    decision = decide_edit(order(), edit(("A", 3), ("B", 1), delivery=courier))
    assert decision.outcome is Outcome.REFUSED
    assert decision.reason.startswith("an edit cannot change a courier delivery's delivery method")


def test_a_cancelled_line_cannot_come_back_but_may_be_left_out():
    a1 = Allocated("O-1:1:0", "DC-NORTH", (("A", 3),), LIVE)
    refused = decide_edit(order(a1, cancelled=["B"]), edit(("A", 3), ("B", 1)))
    assert refused.outcome is Outcome.REFUSED and "B was cancelled" in refused.reason
    accepted = decide_edit(order(a1, cancelled=["B"]), edit(("A", 3)))
    assert accepted.outcome is Outcome.ACCEPTED and accepted.withdrawn == () and accepted.additions == ()


def test_the_same_version_changes_nothing():
    a1 = Allocated("O-1:1:0", "DC-NORTH", (("A", 3), ("B", 1)), LIVE)
    decision = decide_edit(order(a1), edit(("B", 1), ("A", 3)))
    assert decision.outcome is Outcome.ACCEPTED
    assert (decision.withdrawn, decision.kept, decision.additions) == ((), (), ())


def test_a_cancelled_order_cannot_be_edited():
    decision = decide_edit(order(cancelled=["A", "B"]), edit(("C", 1)))
    assert (
        decision.outcome is Outcome.REFUSED and decision.reason == "order O-1 is cancelled: place a new order"
    )


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("ABC"), st.integers(1, 4), st.sampled_from([LIVE, SHIPPED])), max_size=4
    ),
    st.dictionaries(st.sampled_from("ABC"), st.integers(0, 3), max_size=3),
    st.dictionaries(st.sampled_from("ABCD"), st.integers(0, 9), min_size=1, max_size=4),
)
def test_every_unit_of_an_accepted_edit_is_shipped_kept_left_alone_added_or_waiting(allocs, waiting, cart):
    """Conservation: after an accepted edit, per SKU, what shipped + what live allocations keep
    (untouched or re-reserved) + what is added + what waits for stock is the new version's line."""
    allocations = tuple(
        Allocated(f"O-1:1:{i}", "DC-NORTH", ((sku, n),), status) for i, (sku, n, status) in enumerate(allocs)
    )
    held = {}
    for a in allocations:
        for sku, n in a.lines:
            held[sku] = held.get(sku, 0) + n
    for sku, n in waiting.items():
        held[sku] = held.get(sku, 0) + n
    ordered = tuple(held.items())
    decision = decide_edit(
        order(*allocations, ordered=ordered, backorder=tuple(waiting.items())), edit(*cart.items())
    )
    shipped = {}
    for a in allocations:
        if a.status is SHIPPED:
            for sku, n in a.lines:
                shipped[sku] = shipped.get(sku, 0) + n
    if decision.outcome is Outcome.REFUSED:
        assert any(cart.get(sku, 0) < n for sku, n in shipped.items())
        assert decision.withdrawn == () and decision.additions == ()
        return
    units: dict[str, int] = {}

    def add(lines):
        for sku, n in lines:
            units[sku] = units.get(sku, 0) + n

    add(
        (sku, n)
        for a in allocations
        if a.allocation_id not in decision.withdrawn and a.status is not AllocationStatus.CANCELLED
        for sku, n in a.lines
    )
    add(line for _, kept in decision.kept for line in kept)
    add(decision.additions)
    add(decision.backorder)
    assert {sku: n for sku, n in units.items() if n} == {sku: n for sku, n in cart.items() if n}


def test_a_line_kept_at_what_shipped_adds_nothing_and_a_cancelled_line_kept_as_shipped_is_accepted():
    # The boundaries "more than shipped" (what is sourced again) and "more than before" (a cancelled
    # line brought back).
    shipped = Allocated("O-1:1:0", "DC-NORTH", (("A", 3), ("B", 1)), SHIPPED)
    decision = decide_edit(order(shipped), edit(("A", 3), ("B", 1), ("C", 1)))
    assert decision.outcome is Outcome.ACCEPTED and decision.additions == (("C", 1),)
    # B was cancelled after its unit shipped: keeping that unit is no change, not a line brought back.
    kept = decide_edit(order(shipped, cancelled={"B"}), edit(("A", 3), ("B", 1)))
    assert kept.outcome is Outcome.ACCEPTED, kept.reason
    back = decide_edit(order(shipped, cancelled={"B"}), edit(("A", 3), ("B", 2)))
    assert back.outcome is Outcome.REFUSED


# --- what mutation testing found unpinned (mutmut 2.4.5 on domain/edits.py) ---------------------------


def test_the_changes_and_outcomes_are_the_wire_names_of_the_edit_answer():
    # An edit's answer carries each line's change and its status as these strings.
    assert [c.value for c in Change] == list(get_args(EditChange))
    assert [o.value for o in Outcome] == list(get_args(EditAnswerModel.model_fields["status"].annotation))


def test_an_edits_values_cannot_be_changed_once_made():
    # The caller's order and request are read, never changed; a decision is kept as it was made.
    values = [
        HOME,
        order(),
        edit(("A", 1)),
        LineChange("A", 1, 2, Change.INCREASED),
        decide_edit(order(), edit(("A", 3))),
    ]
    for value in values:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, dataclasses.fields(value)[0].name, None)


def test_an_order_known_by_its_lines_and_delivery_only_has_nothing_allocated_waiting_or_cancelled():
    # The defaults of EditableOrder (no allocation, no backorder, nothing cancelled) and of Delivery
    # (no store, no address: a pickup's destination is its store).
    assert Delivery("click_and_collect") == Delivery("click_and_collect", None, None, ())
    known = EditableOrder("O-1", (("A", 2),), HOME)
    decision = decide_edit(known, edit(("A", 1), ("B", 1)))
    assert decision == EditDecision(
        Outcome.ACCEPTED,
        lines=(LineChange("A", 2, 1, Change.REDUCED), LineChange("B", 0, 1, Change.ADDED)),
        additions=(("B", 1),),
        ordered=(("A", 1), ("B", 1)),
    )


def test_a_refused_edit_is_only_its_reason_and_its_lines():
    # Every field a refusal does not set stays empty: nothing withdrawn, sourced or re-delivered.
    cancelled = decide_edit(order(cancelled=["A", "B"]), edit(("C", 1)))
    empty = (cancelled.lines, cancelled.withdrawn, cancelled.kept, cancelled.additions, cancelled.backorder)
    assert empty == ((), (), (), (), ()) and (cancelled.ordered, cancelled.redelivered) == ((), "")
    assert decide_edit(order(cancelled=["A", "B"]), edit(("C", 1))) == EditDecision(
        Outcome.REFUSED, reason="order O-1 is cancelled: place a new order"
    )
    courier = Delivery("courier", None, "STORE-UTRECHT-01", HOME.address)
    assert decide_edit(order(), edit(("A", 3), ("B", 1), delivery=courier)) == EditDecision(
        Outcome.REFUSED,
        reason="an edit cannot change a courier delivery's delivery method (standard -> courier): "
        "cancel the order and place it again",
    )


def test_every_refused_line_is_in_the_reason_in_cart_order():
    shipped = Allocated("O-1:1:0", "DC-NORTH", (("A", 3), ("B", 1)), SHIPPED)
    decision = decide_edit(
        order(shipped, cancelled={"C"}, ordered=(("A", 3), ("B", 1), ("C", 1))), edit(("C", 2))
    )
    assert decision.reason == (
        "A: 3 already shipped, cannot become 0; B: 1 already shipped, cannot become 0; "
        "C was cancelled: an edit cannot bring it back (place a new order)"
    )
    assert [(c.sku, c.before, c.after, c.change) for c in decision.lines] == [
        ("A", 3, 0, Change.REFUSED),
        ("B", 1, 0, Change.REFUSED),
        ("C", 0, 2, Change.REFUSED),
    ]


def test_an_unchanged_line_has_no_reason_and_an_accepted_edit_no_reason_nor_redelivery():
    a1 = Allocated("O-1:1:0", "DC-NORTH", (("A", 3), ("B", 1)), LIVE)
    decision = decide_edit(order(a1), edit(("A", 3), ("B", 1)))
    assert decision == EditDecision(
        Outcome.ACCEPTED,
        lines=(LineChange("A", 3, 3, Change.UNCHANGED), LineChange("B", 1, 1, Change.UNCHANGED)),
        ordered=(("A", 3), ("B", 1)),
    )
    assert decision.reason == "" and decision.redelivered == ""
    assert [c.reason for c in decision.lines] == ["", ""]


def test_a_line_of_no_units_is_no_line_and_a_cancelled_line_with_nothing_shipped_is_gone():
    a1 = Allocated("O-1:1:0", "DC-NORTH", (("A", 3),), LIVE)
    decision = decide_edit(order(a1, cancelled={"B"}), edit(("A", 3), ("C", 0)))
    assert decision.outcome is Outcome.ACCEPTED
    assert decision.lines == (LineChange("A", 3, 3, Change.UNCHANGED),)
    assert decision.ordered == (("A", 3),) and decision.additions == ()


def test_an_allocation_with_a_sku_on_two_lines_keeps_what_the_edit_did_not_take_line_by_line():
    a1 = Allocated("O-1:1:0", "DC-NORTH", (("A", 2), ("B", 1), ("A", 2), ("B", 1)), LIVE)
    decision = decide_edit(order(a1, ordered=(("A", 4), ("B", 2))), edit(("A", 1), ("B", 2)))
    assert decision.withdrawn == ("O-1:1:0",)
    assert decision.kept == (("O-1:1:0", (("B", 1), ("A", 1), ("B", 1))),)


def test_another_delivery_sources_every_unit_not_shipped_and_nothing_for_a_line_that_all_shipped():
    a1 = Allocated("O-1:1:0", "DC-NORTH", (("A", 3),), SHIPPED)
    a2 = Allocated("O-1:1:1", "DC-SOUTH", (("B", 1),), LIVE)
    pickup = Delivery("click_and_collect", "STORE-UTRECHT-01")
    decision = decide_edit(order(a1, a2), edit(("A", 3), ("B", 1), delivery=pickup))
    assert decision.withdrawn == ("O-1:1:1",) and decision.additions == (("B", 1),)
    assert decision.redelivered == "delivery method (standard -> click_and_collect)"


def test_a_change_of_store_is_named_with_both_stores():
    pickup = Delivery("click_and_collect", "STORE-UTRECHT-01")
    other = Delivery("click_and_collect", "STORE-AMSTERDAM-02")
    decision = decide_edit(
        dataclasses.replace(order(), delivery=pickup), edit(("A", 3), ("B", 1), delivery=other)
    )
    assert decision.redelivered == "pickup store (STORE-UTRECHT-01 -> STORE-AMSTERDAM-02)"
    courier = Delivery("courier", None, "STORE-UTRECHT-01", HOME.address)
    moved = Delivery("courier", None, "STORE-AMSTERDAM-02", HOME.address)
    refused = decide_edit(dataclasses.replace(order(), delivery=courier), edit(("A", 3), delivery=moved))
    assert refused.reason == (
        "an edit cannot change a courier delivery's courier store (STORE-UTRECHT-01 -> STORE-AMSTERDAM-02): "
        "cancel the order and place it again"
    )
