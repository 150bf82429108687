"""Placement checks (limits) and the order lifecycle, both pure."""

from __future__ import annotations

import pytest

from oms_streams.domain.lifecycle import Lifecycle, LifecycleFacts, lifecycle
from oms_streams.domain.placement import PlacementLimits, placement_problem

LIMITS = PlacementLimits(max_lines=2, max_line_quantity=10)


def test_a_cart_within_the_limits_passes() -> None:
    assert placement_problem({"SKU-A": 10, "SKU-B": 1}, LIMITS) is None


def test_too_many_lines_are_refused_with_the_limit() -> None:
    problem = placement_problem({"SKU-A": 1, "SKU-B": 1, "SKU-C": 1}, LIMITS)
    assert problem == "too many lines: 3 (at most 2 per order)"


def test_an_absurd_quantity_is_refused_naming_the_line() -> None:
    problem = placement_problem({"SKU-A": 11, "SKU-B": 1}, LIMITS)
    assert problem == "quantity over the limit of 10 units per line: SKU-A x 11"


def test_a_sku_without_any_stock_is_not_refused_here_but_sourced_as_out_of_stock() -> None:
    # A worker that has just restarted has not caught up on availability: a real SKU would look unknown.
    assert placement_problem({"SKU-A": 1, "SKU-NEVER-STOCKED": 1}, LIMITS) is None


def test_the_default_limits_are_a_hundred_lines_and_a_thousand_units() -> None:
    assert PlacementLimits() == PlacementLimits(max_lines=100, max_line_quantity=1_000)


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (LifecycleFacts(sourcing=None), Lifecycle.PLACED),
        (LifecycleFacts(sourcing="reserving"), Lifecycle.PLACED),
        (LifecycleFacts(sourcing="rejected", round=0), Lifecycle.REJECTED),
        (LifecycleFacts(sourcing="rejected", round=1, backordered=True), Lifecycle.REJECTED),
        (LifecycleFacts(sourcing="allocated", live=2), Lifecycle.ALLOCATED),
        (
            LifecycleFacts(sourcing="partially_allocated", live=1, backordered=True),
            Lifecycle.PARTIALLY_ALLOCATED,
        ),
        # A re-sourcing round under way while the first round's other shipment is still allocated.
        (LifecycleFacts(sourcing="reserving", round=2, live=1), Lifecycle.PARTIALLY_ALLOCATED),
        # A re-sourcing round that found nothing: the order was accepted, its lines wait for stock.
        (LifecycleFacts(sourcing="rejected", round=2, backordered=True), Lifecycle.BACKORDERED),
        (LifecycleFacts(sourcing="allocated", live=1, left=1), Lifecycle.SHIPPED),
        (LifecycleFacts(sourcing="allocated", left=2, delivered=1), Lifecycle.SHIPPED),
        (LifecycleFacts(sourcing="allocated", left=2, delivered=2), Lifecycle.DELIVERED),
        (
            LifecycleFacts(
                sourcing="partially_allocated", left=1, delivered=1, backordered=True, awaiting_stock=True
            ),
            Lifecycle.SHIPPED,
        ),
        # Its backorder final (the horizon passed): what was delivered is all it gets.
        (
            LifecycleFacts(sourcing="partially_allocated", left=1, delivered=1, backordered=True),
            Lifecycle.DELIVERED,
        ),
        # Rejected for lack of stock, waiting for it within the horizon; then rejected for good,
        # also after rounds that sourced the backorder again and found nothing.
        (
            LifecycleFacts(sourcing="rejected", round=1, backordered=True, awaiting_stock=True),
            Lifecycle.BACKORDERED,
        ),
        (
            LifecycleFacts(sourcing="rejected", round=3, backordered=True, allocated_ever=False),
            Lifecycle.REJECTED,
        ),
        (LifecycleFacts(sourcing="allocated", cancelled=True), Lifecycle.CANCELLED),
        # Cancelled after part of it shipped: what shipped decides.
        (LifecycleFacts(sourcing="allocated", left=1, delivered=1, cancelled=True), Lifecycle.DELIVERED),
        (LifecycleFacts(sourcing=None, left=1, delivered=1), Lifecycle.DELIVERED),
    ],
)
def test_the_lifecycle_follows_the_order(facts: LifecycleFacts, expected: Lifecycle) -> None:
    assert lifecycle(facts) is expected
