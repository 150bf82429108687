"""Sourcing's vocabulary: what is asked (the request, the stock snapshot, the policy and its cost
weights), what is answered (the decision, its planned shipments and the trace that explains it), and
the small helpers every delivery method builds its decision with (unit and workload costs, the
backorder, the outcome, the winning plan's summary, a decision that allocates nothing).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from oms_streams.domain.network import DeliveryMethod
from oms_streams.domain.promise_types import CartLine, Destination


class Outcome(StrEnum):
    ALLOCATED = "allocated"
    PARTIAL = "partially_allocated"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class SourcingWeights:
    """What one unit of each cost driver is worth, in abstract cost units (1 unit = 1 km of parcel
    haul). Only relative sizes matter; fewer shipments always come first whatever the weights."""

    km: float = 1.0
    """Per km of a parcel's origin -> destination great-circle distance."""
    co2e_kg: float = 2.0
    """Per kg CO2e. At a standard service's ~140 g per parcel-km this adds ~0.28 per km (a quarter
    on top of the distance), at a green service's ~35 g only 0.07: emissions tilt the choice
    towards cleaner services and nearer sites without overruling distance."""
    workload: float = 30.0
    """Per (open allocations / location_capacity): a location at full capacity costs like a 30 km
    detour, enough to spread work between sites at similar distances, never enough to send a
    parcel across the country to spare a busy store."""
    protection: float = 60.0
    """Per unit taken, times the share of that SKU's stock at the location the store protects for
    walk-in demand: a unit in a half-protected position costs like 30 km, in a (nearly) fully
    protected one like 60 km, so another holder a few tens of km further is preferred."""


@dataclass(frozen=True, slots=True)
class SourcingPolicy:
    max_splits: int = 3
    """Most shipments per order (the caller may pass PromisePolicy.max_parcels)."""
    exact_max_lines: int = 10
    exact_max_candidates: int = 100
    node_budget: int = 50_000
    """Exact search nodes before falling back to the bounded method."""
    location_capacity: int = 200
    """Open allocations at which a location counts as fully loaded (the workload cost's scale)."""
    weights: SourcingWeights = SourcingWeights()


@dataclass(frozen=True, slots=True)
class SourcingRequest:
    order_id: str
    lines: tuple[CartLine, ...]
    """Duplicate SKUs are merged, empty lines dropped."""
    method: DeliveryMethod
    destination: Destination
    promised_by_ms: int
    """The promise's window end: a parcel delivered (ready for pickup) after it is late."""
    now_ms: int
    courier_store_id: str | None = None
    """Courier orders: the promised store, the only allowed source."""
    excluded: frozenset[tuple[str, str]] = frozenset()
    """(location id, SKU) never to use again (a store rejection, a short pick)."""
    excluded_locations: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class StockSnapshot:
    units: Mapping[str, Mapping[str, int]]
    """SKU -> location id -> units usable now (visible to the order's channel)."""
    protected: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """SKU -> location id -> units the store protects for walk-in demand (already excluded from
    ``units``)."""
    workload: Mapping[str, int] = field(default_factory=dict)
    """Location id -> open allocations."""


@dataclass(frozen=True, slots=True)
class PlannedShipment:
    location_id: str
    lines: tuple[CartLine, ...]
    service_id: str | None
    """Carrier service (home delivery)."""
    route_id: str | None
    """Click & collect transfer riding a replenishment route."""
    ready_at_ms: int
    handover_at_ms: int
    arrives_at_ms: int
    """Expected delivery (home), arrival of the truck at the pickup store (transfer), the ready time
    (the pickup store's own stock), the courier's arrival."""
    distance_km: float
    co2e_g: float
    cost: float
    late: bool
    """After ``promised_by_ms``: the parcel's delivery window ends after it (home delivery), it is
    received at the pickup store after it (transfer), ready or delivered after it (others)."""


@dataclass(frozen=True, slots=True)
class CandidateTrace:
    location_id: str
    held: tuple[tuple[str, int], ...]
    """(SKU, usable units) for the cart's SKUs it holds."""
    filtered: str | None
    """Why it was not considered (None = considered)."""
    cost: float | None
    """Its per-parcel cost when considered (before unit costs)."""
    distance_km: float | None


@dataclass(frozen=True, slots=True)
class DecisionTrace:
    search: str
    """'exact' | 'bounded' | 'click_and_collect' | 'courier' | 'single_site' (green)."""
    candidates: tuple[CandidateTrace, ...]
    """At most ``TRACE_CANDIDATES``: considered ones by cost first, then filtered ones."""
    candidates_total: int
    filtered_counts: tuple[tuple[str, int], ...]
    """Reason -> number of locations filtered for it."""
    plans_evaluated: int
    splits: int
    splits_lower_bound: int
    cost: float
    cost_lower_bound: float
    gap: float
    """(cost - cost_lower_bound) / cost; 0.0 when proven optimal."""
    winning: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SourcingDecision:
    order_id: str
    outcome: Outcome
    shipments: tuple[PlannedShipment, ...]
    backorder: tuple[CartLine, ...]
    """Lines (or parts of lines) not allocated."""
    reason: str
    """Empty when fully allocated; else why not."""
    trace: DecisionTrace
    stock_short: bool = True
    """The backorder is for lack of stock (False: the order cannot be served this way whatever the
    stock: no carrier service, no coordinates, an unknown or unsuitable store)."""


TRACE_CANDIDATES = 25
"""Candidates listed in a decision's trace (all are counted)."""

# --- shared by every delivery method ------------------------------------------------------------


def _utc(t_ms: int) -> str:
    return datetime.fromtimestamp(t_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _protection_cost(stock: StockSnapshot, weight: float, sku: str, location_id: str, usable: int) -> float:
    protected = stock.protected.get(sku, {}).get(location_id, 0) if stock.protected else 0
    if protected <= 0 or weight == 0.0:
        return 0.0
    return weight * protected / (protected + max(usable, 0))


def _workload_cost(stock: StockSnapshot, policy: SourcingPolicy, location_id: str) -> float:
    open_allocations = stock.workload.get(location_id, 0) if stock.workload else 0
    return policy.weights.workload * open_allocations / max(1, policy.location_capacity)


def _winning(shipments: Sequence[PlannedShipment], cost: float) -> str:
    if not shipments:
        return "nothing allocated"
    n = len(shipments)
    parts = ", ".join(
        f"{s.location_id} ({len(s.lines)} line{'s' if len(s.lines) != 1 else ''})" for s in shipments
    )
    return f"{n} shipment{'s' if n != 1 else ''}: {parts}, cost {cost:.1f}"


def _backorder(cart: tuple[CartLine, ...], shipments: Sequence[PlannedShipment]) -> tuple[CartLine, ...]:
    taken: Counter[str] = Counter()
    for shipment in shipments:
        for line in shipment.lines:
            taken[line.sku] += line.quantity
    return tuple(
        CartLine(line.sku, line.quantity - taken[line.sku])
        for line in cart
        if taken[line.sku] < line.quantity
    )


def _outcome(shipments: Sequence[PlannedShipment], backorder: Sequence[CartLine]) -> Outcome:
    if not backorder:
        return Outcome.ALLOCATED
    return Outcome.PARTIAL if shipments else Outcome.REJECTED


def _nothing(
    request: SourcingRequest, cart: tuple[CartLine, ...], reason: str, search: str
) -> SourcingDecision:
    """Nothing allocated because the order cannot be served this way, whatever the stock."""
    trace = DecisionTrace(
        search=search,
        candidates=(),
        candidates_total=0,
        filtered_counts=(),
        plans_evaluated=0,
        splits=0,
        splits_lower_bound=0,
        cost=0.0,
        cost_lower_bound=0.0,
        gap=0.0,
        winning="nothing allocated",
    )
    return SourcingDecision(request.order_id, Outcome.REJECTED, (), cart, reason, trace, stock_short=False)


def _held(cart: tuple[CartLine, ...], stock: StockSnapshot, location_id: str) -> tuple[tuple[str, int], ...]:
    out: list[tuple[str, int]] = []
    for line in cart:
        units = stock.units.get(line.sku, {}).get(location_id, 0)
        if units > 0:
            out.append((line.sku, units))
    return tuple(out)
