"""Sourcing (allocation): which locations ship which lines of a placed order, and why.

Pure: the caller passes the moment, the usable stock, the network and the learned transit model;
the decision carries its own explanation (candidates, filters, scores, bounds, the winning plan).

Split by idea: ``sourcing_types`` (the request, stock snapshot and policy, the decision and its
trace, the small helpers every method builds a decision with) and one module per delivery method:
``sourcing_home_delivery`` (standard, ship from store, green: fewest shipments, then the least
cost, searched by ``split_search``), ``sourcing_click_and_collect`` (the pickup store's own stock
first, missing lines on a replenishment route) and ``sourcing_courier`` (whole lines from the
courier store only). This module merges the order's lines and hands them to the method; it
re-exports the public names it always had.
"""

from __future__ import annotations

from collections.abc import Sequence

from oms_streams.domain.network import DeliveryMethod, PromiseNetwork
from oms_streams.domain.promise_types import CartLine
from oms_streams.domain.sourcing_click_and_collect import _click_and_collect
from oms_streams.domain.sourcing_courier import _courier
from oms_streams.domain.sourcing_home_delivery import _home_delivery
from oms_streams.domain.sourcing_types import (
    TRACE_CANDIDATES,
    CandidateTrace,
    DecisionTrace,
    Outcome,
    PlannedShipment,
    SourcingDecision,
    SourcingPolicy,
    SourcingRequest,
    SourcingWeights,
    StockSnapshot,
    _nothing,
)
from oms_streams.domain.transit import TransitModel

__all__ = [
    "TRACE_CANDIDATES",
    "CandidateTrace",
    "DecisionTrace",
    "Outcome",
    "PlannedShipment",
    "SourcingDecision",
    "SourcingPolicy",
    "SourcingRequest",
    "SourcingWeights",
    "StockSnapshot",
    "source_order",
]


def source_order(
    request: SourcingRequest,
    stock: StockSnapshot,
    network: PromiseNetwork,
    transit: TransitModel,
    policy: SourcingPolicy = SourcingPolicy(),  # noqa: B008 (frozen: one shared default is safe)
) -> SourcingDecision:
    """Where each line of a placed order comes from (see the module docstring)."""
    cart = _merge(request.lines)
    if not cart:
        return _nothing(request, cart, "the order has no lines", "exact")
    if request.method is DeliveryMethod.CLICK_AND_COLLECT:
        return _click_and_collect(request, cart, stock, network, transit, policy)
    if request.method is DeliveryMethod.COURIER:
        return _courier(request, cart, stock, network, transit, policy)
    return _home_delivery(request, cart, stock, network, transit, policy)


def _merge(lines: Sequence[CartLine]) -> tuple[CartLine, ...]:
    need: dict[str, int] = {}
    for line in lines:
        if line.quantity > 0:
            need[line.sku] = need.get(line.sku, 0) + line.quantity
    return tuple(CartLine(sku, quantity) for sku, quantity in need.items())
