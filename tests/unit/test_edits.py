"""The difference between an order as sourced and its new version (``domain.edits``): pure."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from oms_streams.domain.cancellation import Allocated, AllocationStatus
from oms_streams.domain.edits import Change, Delivery, EditableOrder, EditRequest, Outcome, decide_edit

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
