"""Same-day courier sourcing: whole lines from the order's promised courier store only (no other
source may serve a courier promise); short lines are backordered.
"""

from __future__ import annotations

from oms_streams.domain.network import Capability, PromiseNetwork
from oms_streams.domain.promise_leg_planner import LegPlanner
from oms_streams.domain.promise_timing import courier_ride_ms
from oms_streams.domain.promise_types import CartLine
from oms_streams.domain.sourcing_types import (
    CandidateTrace,
    DecisionTrace,
    PlannedShipment,
    SourcingDecision,
    SourcingPolicy,
    SourcingRequest,
    StockSnapshot,
    _backorder,
    _held,
    _nothing,
    _outcome,
    _protection_cost,
    _winning,
    _workload_cost,
)
from oms_streams.domain.transit import TransitModel


def _courier(
    request: SourcingRequest,
    cart: tuple[CartLine, ...],
    stock: StockSnapshot,
    network: PromiseNetwork,
    transit: TransitModel,
    policy: SourcingPolicy,
) -> SourcingDecision:
    """Whole lines from the promised courier store only; short lines are backordered."""
    name = "courier"
    store_id = request.courier_store_id
    if store_id is None:
        return _nothing(request, cart, "a courier order needs its courier store", name)
    store = network.sites.get(store_id)
    if store is None:
        return _nothing(request, cart, f"unknown courier store {store_id}", name)
    profile = store.courier
    if Capability.COURIER not in store.capabilities or profile is None:
        return _nothing(request, cart, f"{store_id} has no courier", name)
    if store_id in request.excluded_locations:
        return _nothing(request, cart, f"{store_id} is excluded and is the only courier source", name)
    destination = request.destination
    if destination.lat is None or destination.lon is None:
        return _nothing(request, cart, "courier delivery needs destination coordinates", name)
    planner = LegPlanner(cart, destination, request.now_ms, network, transit)
    ready = planner.ready(store, store.pick_minutes + store.pack_minutes)
    if ready is None:
        return _nothing(request, cart, f"{store_id} does not open within the horizon", name)
    units = [
        0
        if request.excluded and (store_id, line.sku) in request.excluded
        else max(0, stock.units.get(line.sku, {}).get(store_id, 0))
        for line in cart
    ]
    whole = [i for i, line in enumerate(cart) if units[i] >= line.quantity]
    km = planner.distance_km(store)
    weights = policy.weights
    parcel = weights.km * km + _workload_cost(stock, policy, store_id)
    shipments: list[PlannedShipment] = []
    if whole:
        arrives = ready + courier_ride_ms(profile, km)
        unit_cost = sum(
            cart[i].quantity * _protection_cost(stock, weights.protection, cart[i].sku, store_id, units[i])
            for i in whole
        )
        shipments.append(
            PlannedShipment(
                location_id=store_id,
                lines=tuple(cart[i] for i in whole),
                service_id=None,
                route_id=None,
                ready_at_ms=ready,
                handover_at_ms=ready,
                arrives_at_ms=arrives,
                distance_km=km,
                co2e_g=0.0,
                cost=parcel + unit_cost,
                late=arrives > request.promised_by_ms,
            )
        )
    backorder = _backorder(cart, shipments)
    reason = "; ".join(
        f"{store_id} is short of {short.sku} ({units[i]} of {cart[i].quantity})"
        for short in backorder
        for i in [next(n for n, line in enumerate(cart) if line.sku == short.sku)]
    )
    cost = sum(s.cost for s in shipments)
    trace = DecisionTrace(
        search=name,
        candidates=(CandidateTrace(store_id, _held(cart, stock, store_id), None, parcel, km),),
        candidates_total=1,
        filtered_counts=(),
        plans_evaluated=1,
        splits=len(shipments),
        splits_lower_bound=len(shipments),
        cost=cost,
        cost_lower_bound=cost,
        gap=0.0,
        winning=_winning(shipments, cost),
        notes=("late: the courier arrives after the promised time",)
        if any(s.late for s in shipments)
        else (),
    )
    return SourcingDecision(
        request.order_id, _outcome(shipments, backorder), tuple(shipments), backorder, reason, trace
    )
