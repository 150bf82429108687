"""Click & collect sourcing: the pickup store's own stock first, the missing lines on the next
replenishment route from a DC (near-zero marginal transport).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from oms_streams.domain.network import Capability, PromiseNetwork
from oms_streams.domain.promise_leg_planner import LegPlanner, RouteTransfer
from oms_streams.domain.promise_types import CartLine
from oms_streams.domain.sourcing_types import (
    TRACE_CANDIDATES,
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
    _utc,
    _winning,
    _workload_cost,
)
from oms_streams.domain.transit import TransitModel


@dataclass(frozen=True, slots=True)
class _Transfer:
    transfer: RouteTransfer
    serves: frozenset[int]
    """Lines (indices) it holds whole among the missing ones."""
    units: tuple[int, ...]
    parcel_cost: float
    unit_costs: tuple[float, ...]


def _click_and_collect(
    request: SourcingRequest,
    cart: tuple[CartLine, ...],
    stock: StockSnapshot,
    network: PromiseNetwork,
    transit: TransitModel,
    policy: SourcingPolicy,
) -> SourcingDecision:
    """The pickup store's own stock first (lines it holds whole); the missing lines ride the next
    route truck from the fewest DCs (then the earliest ready for pickup, the least cost); what
    neither can serve whole comes from the store's shelf as far as it goes, the rest is backordered.
    A store that rejected the order keeps it: nothing goes back to general sourcing."""
    name = "click_and_collect"
    store_id = request.destination.pickup_store_id
    if store_id is None:
        return _nothing(request, cart, "click & collect needs a pickup store", name)
    store = network.sites.get(store_id)
    if store is None:
        return _nothing(request, cart, f"unknown pickup store {store_id}", name)
    if Capability.CLICK_AND_COLLECT not in store.capabilities:
        return _nothing(request, cart, f"{store_id} does not offer click & collect", name)
    planner = LegPlanner(cart, request.destination, request.now_ms, network, transit)
    weights = policy.weights
    n_lines = len(cart)
    filtered: dict[str, str] = {}
    notes: list[str] = []

    def usable(location_id: str, sku: str) -> int:
        if request.excluded and (location_id, sku) in request.excluded:
            return 0
        return max(0, stock.units.get(sku, {}).get(location_id, 0))

    def unit_costs(location_id: str, units: Sequence[int]) -> tuple[float, ...]:
        return tuple(
            _protection_cost(stock, weights.protection, line.sku, location_id, u)
            for line, u in zip(cart, units, strict=True)
        )

    own_units = [usable(store_id, line.sku) for line in cart]
    own_ready = planner.ready(store, store.pick_minutes)
    if store_id in request.excluded_locations:
        own_units = [0] * n_lines
        filtered[store_id] = "excluded"
        notes.append(f"{store_id}'s own stock is excluded: lines come on route transfers only")
    elif own_ready is None:
        own_units = [0] * n_lines
        filtered[store_id] = "does not open within the horizon"
    own = [i for i, line in enumerate(cart) if own_units[i] >= line.quantity]
    missing = frozenset(i for i in range(n_lines) if i not in own)

    routes = planner.routes_to(store_id)
    transfers: dict[str, _Transfer] = {}
    share = network.policy.route_share
    for origin in sorted({route.origin_id for route, _ in routes}):
        if not missing:
            break
        if origin in request.excluded_locations:
            filtered[origin] = "excluded"
            continue
        if origin not in network.sites:
            continue
        units = tuple(usable(origin, line.sku) for line in cart)
        serves = frozenset(i for i in missing if units[i] >= cart[i].quantity)
        if not serves:
            filtered[origin] = "holds none of the missing lines whole"
            continue
        found = planner.transfer(store, tuple(cart[i] for i in sorted(serves)), origin)
        if isinstance(found, str):
            filtered[origin] = "no route departure within the horizon"
            continue
        km = found.shipment.distance_km
        # The truck drives anyway: the order pays its share of the ride, not the ride.
        parcel = (
            weights.km * km * share
            + weights.co2e_kg * found.co2e_g / 1000
            + _workload_cost(stock, policy, origin)
        )
        transfers[origin] = _Transfer(found, serves, units, parcel, unit_costs(origin, units))

    coverable = frozenset().union(*(t.serves for t in transfers.values())) if transfers else frozenset()
    best: tuple[tuple[int, float, tuple[str, ...]], dict[str, list[int]]] | None = None
    evaluated = 0
    for size in range(1, len(transfers) + 1):
        for combo in itertools.combinations(sorted(transfers), size):
            if frozenset().union(*(transfers[o].serves for o in combo)) != coverable:
                continue
            evaluated += 1
            assigned: dict[str, list[int]] = {}
            for i in sorted(coverable):
                origin = min(
                    (o for o in combo if i in transfers[o].serves),
                    key=lambda o: (
                        transfers[o].unit_costs[i],
                        transfers[o].transfer.received_at_ms,
                        o,
                    ),
                )
                assigned.setdefault(origin, []).append(i)
            if len(assigned) < size:
                continue  # a smaller set does the same
            received = max(transfers[o].transfer.received_at_ms for o in combo)
            cost = sum(
                transfers[o].parcel_cost + sum(cart[i].quantity * transfers[o].unit_costs[i] for i in lines)
                for o, lines in sorted(assigned.items())
            )
            key = (received, cost, combo)
            if best is None or key < best[0]:
                best = (key, assigned)
        if best is not None:
            break

    # What neither the store nor a route holds whole: the store's shelf as far as it goes.
    assigned_lines = best[1] if best is not None else {}
    partial = [i for i in missing - coverable if own_units[i] > 0]
    shipments: list[PlannedShipment] = []
    own_lines = sorted([*own, *partial])
    if own_lines and own_ready is not None:
        costs = unit_costs(store_id, own_units)
        taken = [(i, min(cart[i].quantity, own_units[i])) for i in own_lines]
        shipments.append(
            PlannedShipment(
                location_id=store_id,
                lines=tuple(CartLine(cart[i].sku, n) for i, n in taken),
                service_id=None,
                route_id=None,
                ready_at_ms=own_ready,
                handover_at_ms=own_ready,
                arrives_at_ms=own_ready,
                distance_km=0.0,
                co2e_g=0.0,
                cost=_workload_cost(stock, policy, store_id) + sum(n * costs[i] for i, n in taken),
                late=own_ready > request.promised_by_ms,
            )
        )
    for origin, lines in sorted(assigned_lines.items()):
        t = transfers[origin]
        s = t.transfer.shipment
        shipments.append(
            PlannedShipment(
                location_id=origin,
                lines=tuple(cart[i] for i in lines),
                service_id=None,
                route_id=s.route_id,
                ready_at_ms=s.ready_at_ms,
                handover_at_ms=s.handover_at_ms,
                arrives_at_ms=s.arrives_at_ms,
                distance_km=s.distance_km,
                co2e_g=t.transfer.co2e_g,
                cost=t.parcel_cost + sum(cart[i].quantity * t.unit_costs[i] for i in lines),
                late=t.transfer.received_at_ms > request.promised_by_ms,
            )
        )
    backorder = _backorder(cart, shipments)
    reasons: list[str] = []
    for short in backorder:
        tail = "no route serves it" if not routes else "no DC on a route to it holds it whole"
        reasons.append(f"{store_id} is short of {short.sku} and {tail}")
    if any(s.late for s in shipments):
        notes.append(f"ready for pickup after {_utc(request.promised_by_ms)}")
    cost = sum(s.cost for s in shipments)

    candidates: list[CandidateTrace] = []
    if store_id not in filtered:
        own_cost = _workload_cost(stock, policy, store_id)
        candidates.append(CandidateTrace(store_id, _held(cart, stock, store_id), None, own_cost, 0.0))
    for origin, t in transfers.items():
        km = t.transfer.shipment.distance_km
        candidates.append(CandidateTrace(origin, _held(cart, stock, origin), None, t.parcel_cost, km))
    candidates.sort(key=lambda c: (c.cost or 0.0, c.location_id))
    for location_id in sorted(filtered):
        candidates.append(
            CandidateTrace(location_id, _held(cart, stock, location_id), filtered[location_id], None, None)
        )
    trace = DecisionTrace(
        search=name,
        candidates=tuple(candidates[:TRACE_CANDIDATES]),
        candidates_total=len(candidates),
        filtered_counts=tuple(sorted(Counter(filtered.values()).items())),
        plans_evaluated=evaluated,
        splits=len(shipments),
        splits_lower_bound=len(shipments),
        cost=cost,
        cost_lower_bound=cost,
        gap=0.0,
        winning=_winning(shipments, cost),
        notes=tuple(notes),
    )
    return SourcingDecision(
        request.order_id,
        _outcome(shipments, backorder),
        tuple(shipments),
        backorder,
        "; ".join(reasons),
        trace,
    )
