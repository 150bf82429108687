"""Delivery promise for a whole cart: every option the retailer can really meet, and when.

Pure: the caller passes the moment of asking, the visible stock per channel, the network and the
learned transit model. A promise never claims what physics forbids: it is never earlier than
pick + pack + handover + the fastest transit ever observed, and never lands on a day the location
or the carrier does not work.

The engine is split by idea: ``promise_types`` (requests and options), ``promise_plan`` (what a
network and a request compute once), ``promise_timing`` (carrier legs, route transfers, courier
rides along calendars), one module per kind of option (``promise_home_delivery``,
``promise_click_and_collect``, ``promise_courier``) and ``promise_leg_planner`` (the same timing
for sourcing). This module asks every requested method and keeps the options within the horizon;
it re-exports the public names it always had.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from oms_streams.domain.calendar import MS_PER_DAY
from oms_streams.domain.network import DeliveryMethod, PromiseNetwork
from oms_streams.domain.promise_click_and_collect import click_and_collect_options
from oms_streams.domain.promise_courier import courier_options
from oms_streams.domain.promise_home_delivery import green_options, ship_from_store_options, standard_options
from oms_streams.domain.promise_leg_planner import CarrierLeg, LegPlanner, RouteTransfer
from oms_streams.domain.promise_plan import Plan
from oms_streams.domain.promise_preorder import Inbound, preorder_options
from oms_streams.domain.promise_timing import courier_ride_ms
from oms_streams.domain.promise_types import (
    CHANNEL_FOR_METHOD,
    CartLine,
    DeliveryOption,
    Destination,
    PromiseRequest,
    PromiseResult,
    Shipment,
    Stock,
    Unavailable,
)
from oms_streams.domain.transit import TransitModel

__all__ = [
    "CHANNEL_FOR_METHOD",
    "CarrierLeg",
    "CartLine",
    "DeliveryOption",
    "Destination",
    "LegPlanner",
    "PromiseRequest",
    "PromiseResult",
    "RouteTransfer",
    "Shipment",
    "Stock",
    "Unavailable",
    "courier_ride_ms",
    "promise_options",
]


def promise_options(
    request: PromiseRequest,
    stock: Stock,
    network: PromiseNetwork,
    transit: TransitModel,
    booked_courier_slots: Mapping[tuple[str, int], int] | None = None,
    inbound: Inbound | None = None,
) -> PromiseResult:
    """Every option for the cart; ``booked_courier_slots`` maps (store, slot start ms) to bookings;
    ``inbound``: the cart SKUs' free inbound lots, for a preorder option when standard delivery
    has none from stock on hand (``promise_preorder``).

    Options are sorted by window end, then CO2e; a requested method that cannot be offered gets
    one ``Unavailable`` entry saying why."""
    plan = Plan(request, stock, network, transit, booked_courier_slots or {})
    options: list[DeliveryOption] = []
    unavailable: list[Unavailable] = []
    unknown = _unknown_skus(plan.need, stock)
    if unknown:
        # Not "out of stock": the availability feed has never heard of it (a typo, a retired SKU).
        why = f"unknown SKU {', '.join(unknown)}"
        missing = tuple(Unavailable(m, why) for m in _METHOD_ORDER if m in request.methods)
        return PromiseResult(request.request_id, request.asked_at_ms, (), missing)
    horizon_end = request.asked_at_ms + network.policy.horizon_days * MS_PER_DAY
    for method in _METHOD_ORDER:
        if method not in request.methods:
            continue
        found = _PLANNERS[method](plan) if plan.need else "the cart is empty"
        if isinstance(found, str):
            unavailable.append(Unavailable(method, found))
            continue
        in_horizon = [option for option in found if option.window_end_ms <= horizon_end]
        if in_horizon:
            options.extend(in_horizon)
        else:
            days = network.policy.horizon_days
            unavailable.append(Unavailable(method, f"cannot be met within the {days}-day horizon"))
    standard_short = any(u.method is DeliveryMethod.STANDARD for u in unavailable)
    if inbound and standard_short and plan.need:
        found = preorder_options(plan, inbound)
        if not isinstance(found, str):
            options.extend(found)  # the standard entry stays: nothing from stock on hand
    options.sort(key=lambda o: (o.window_end_ms, o.co2e_g, o.option_id))
    return PromiseResult(request.request_id, request.asked_at_ms, tuple(options), tuple(unavailable))


def _unknown_skus(need: Mapping[str, int], stock: Stock) -> list[str]:
    """Cart SKUs no channel of the stock mapping knows (not even with zero units)."""
    return [sku for sku in need if not any(sku in by_sku for by_sku in stock.values())]


_METHOD_ORDER = (
    DeliveryMethod.STANDARD,
    DeliveryMethod.GREEN,
    DeliveryMethod.SHIP_FROM_STORE,
    DeliveryMethod.CLICK_AND_COLLECT,
    DeliveryMethod.COURIER,
)

_PLANNERS: Mapping[DeliveryMethod, Callable[[Plan], list[DeliveryOption] | str]] = {
    DeliveryMethod.STANDARD: standard_options,
    DeliveryMethod.GREEN: green_options,
    DeliveryMethod.SHIP_FROM_STORE: ship_from_store_options,
    DeliveryMethod.CLICK_AND_COLLECT: click_and_collect_options,
    DeliveryMethod.COURIER: courier_options,
}
