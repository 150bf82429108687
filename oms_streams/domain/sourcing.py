"""Sourcing (allocation): which locations ship which lines of a placed order, and why.

Pure: the caller passes the moment, the usable stock, the network and the learned transit model;
the decision carries its own explanation (candidates, filters, scores, bounds, the winning plan).

Home delivery (standard, ship from store) is a lexicographic optimisation over the candidate
locations (the method's sites that hold some of the cart):

1. fewest shipments, at most ``SourcingPolicy.max_splits``;
2. the least total cost: per shipment ``km * distance + co2e_kg * kg CO2e + workload * open /
   capacity``, plus per unit taken ``protection * protected / (protected + usable)`` at that
   (SKU, location): a unit the store keeps back for walk-in demand is expensive to ship away;
3. the smallest sorted tuple of location ids (determinism).

The cost of a *set* of locations is defined by a fixed assignment rule (``SplitProblem.evaluate``):
a line goes whole to the holder in the set with the lowest unit cost (then parcel cost, then id); a
line no member holds whole is split, cheapest units first (then most units, parcel cost, id).
Members that get nothing do not ship. With the fewest shipments every member ships, so the rule is
the cheapest assignment that keeps every line whole where the set allows it.

The search for the set is ``domain.split_search.SplitProblem``: exact (branch and bound, proven
optimal) within ``exact_max_lines`` x ``exact_max_candidates``, bounded beyond, with honest lower
bounds and the gap.

A cart that cannot be covered within ``max_splits`` gets the plan that allocates the most units
within it (then fewest shipments, then cost): PARTIAL with the rest backordered.

Timing: every parcel is timed with the promise engine's carrier-leg machinery (``LegPlanner``).
Candidates whose delivery window ends after the promised time are filtered; many candidates are
timed lazily: the search runs, the chosen locations are timed, a late one is filtered and the
search runs again. That gives the same plan as timing everyone first (the optimum over a superset
that is feasible in the subset is the subset's optimum) at a fraction of the work. When no plan
covers the cart on time the order is sourced over all candidates and the late parcels are marked.

Click & collect serves the pickup store's own stock first and sends missing lines on the next
replenishment route from a DC (near-zero marginal transport); a courier order is served whole
lines from its store only.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from oms_streams.domain.network import Capability, DeliveryMethod, PromiseNetwork, Site
from oms_streams.domain.promise_leg_planner import CarrierLeg, LegPlanner, RouteTransfer
from oms_streams.domain.promise_timing import courier_ride_ms
from oms_streams.domain.promise_types import CartLine, Destination
from oms_streams.domain.split_search import SplitCandidate, SplitProblem, SplitResult
from oms_streams.domain.transit import TransitModel


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

EAGER_TIMING_MAX = 24
"""Up to this many candidates every one is timed first (a complete trace); beyond, lazily."""

# --- sourcing an order ------------------------------------------------------------------------------


def source_order(
    request: SourcingRequest,
    stock: StockSnapshot,
    network: PromiseNetwork,
    transit: TransitModel,
    policy: SourcingPolicy = SourcingPolicy(),
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


# --- home delivery: standard, ship from store, green -----------------------------------------------


@dataclass(slots=True)
class _Candidate:
    site: Site
    units: list[int]
    distance_km: float
    parcel_cost: float
    co2e_g: float
    """The lowest of its services' CO2e until the leg is timed, then the timed service's."""
    unit_costs: tuple[float, ...] = ()


def _home_delivery(
    request: SourcingRequest,
    cart: tuple[CartLine, ...],
    stock: StockSnapshot,
    network: PromiseNetwork,
    transit: TransitModel,
    policy: SourcingPolicy,
) -> SourcingDecision:
    method = request.method
    green = method is DeliveryMethod.GREEN
    search_name = "single_site" if green else ""
    destination = request.destination
    if destination.lat is None or destination.lon is None:
        return _nothing(request, cart, "home delivery needs destination coordinates", search_name or "exact")
    planner = LegPlanner(cart, destination, request.now_ms, network, transit)
    services = planner.services(method)
    if not services:
        kind = "green" if green else "standard"
        return _nothing(request, cart, f"no {kind} carrier service", search_name or "exact")
    capability = Capability.SHIP_FROM_STORE if method is DeliveryMethod.SHIP_FROM_STORE else Capability.SHIPS
    where = "ship-from-store stores" if capability is Capability.SHIP_FROM_STORE else "sites that ship"
    pool = planner.sites_with(capability)
    weights = policy.weights

    # Who holds the cart: read from the stock, walking the smaller side (few DCs among many holders).
    held: dict[str, list[int]] = {}
    filtered: dict[str, str] = {}
    collects: dict[str, bool] = {}
    # A service without origins collects at every site: nothing to check per location then.
    everywhere = any(not s.origins for s in services)
    pair_excluded: set[str] = set()
    n_lines = len(cart)
    for i, line in enumerate(cart):
        at = stock.units.get(line.sku, {})
        # The set intersection walks the smaller side (a few DCs among many holders, or not).
        for location_id in at.keys() & pool:
            units = at[location_id]
            if units <= 0:
                continue
            if location_id in request.excluded_locations:
                filtered[location_id] = "excluded"
                continue
            if not everywhere:
                ok = collects.get(location_id)
                if ok is None:
                    ok = collects[location_id] = planner.collects(location_id, method)
                if not ok:
                    filtered[location_id] = "no carrier service collects here"
                    continue
            if request.excluded and (location_id, line.sku) in request.excluded:
                pair_excluded.add(location_id)
                continue
            row = held.get(location_id)
            if row is None:
                row = held[location_id] = [0] * n_lines
            row[i] = units
    for location_id in pair_excluded:
        if location_id not in held and location_id not in filtered:
            filtered[location_id] = "excluded for the cart SKUs it holds"
    skus = {line.sku for line in cart}
    excluded_pairs = sorted((loc, sku) for loc, sku in request.excluded if sku in skus)

    sites = network.sites
    candidates: dict[str, _Candidate] = {}
    lowest = min(s.co2e_g_per_parcel_km for s in services)
    # Only lines some store protects can carry a unit cost (most lines at most locations do not).
    protected = [(i, kept_at) for i, line in enumerate(cart) if (kept_at := stock.protected.get(line.sku))]
    per_open = weights.workload / max(1, policy.location_capacity)
    for location_id, row in held.items():
        site = sites[location_id]
        km = planner.distance_km(site)
        factor = lowest
        if not everywhere:
            factor = min(s.co2e_g_per_parcel_km for s in services if location_id in s.origins)
        co2e_g = km * factor
        parcel = weights.km * km + weights.co2e_kg * co2e_g / 1000
        if stock.workload:
            parcel += per_open * stock.workload.get(location_id, 0)
        unit_costs: list[float] | None = None
        for i, kept_at in protected:
            kept = kept_at.get(location_id, 0)
            if kept > 0 and row[i] > 0:
                if unit_costs is None:
                    unit_costs = [0.0] * n_lines
                unit_costs[i] = weights.protection * kept / (kept + row[i])
        candidates[location_id] = _Candidate(
            site, row, km, parcel, co2e_g, tuple(unit_costs) if unit_costs else ()
        )

    legs: dict[str, CarrierLeg | str] = {}
    late: set[str] = set()
    unusable: set[str] = set()
    notes: list[str] = []
    by = _utc(request.promised_by_ms)

    def time_leg(location_id: str, allow_late: bool) -> bool:
        """Time a candidate (once); True when that changes what this search may use or pay."""
        if location_id in legs:
            return False
        candidate = candidates[location_id]
        leg = legs[location_id] = planner.carrier_leg(candidate.site, cart, method)
        if isinstance(leg, str):
            unusable.add(location_id)
            filtered[location_id] = "no carrier pickup and delivery within the horizon"
            return True
        changed = False
        if leg.co2e_g != candidate.co2e_g:
            # The service chosen for timing is not the one with the lowest CO2e: pay its CO2e.
            candidate.parcel_cost += weights.co2e_kg * (leg.co2e_g - candidate.co2e_g) / 1000
            candidate.co2e_g = leg.co2e_g
            changed = True
        if leg.window_end_ms > request.promised_by_ms:
            late.add(location_id)
            changed = changed or not allow_late
        return changed

    if len(candidates) <= EAGER_TIMING_MAX:
        for location_id in sorted(candidates):
            time_leg(location_id, False)
    max_splits = 1 if green else policy.max_splits
    quantities = [line.quantity for line in cart]
    evaluated = 0

    def solve(allow_late: bool) -> SplitResult:
        """The search over the usable candidates (on time unless ``allow_late``), timing the chosen
        ones and searching again until the plan uses only timed, usable candidates."""
        nonlocal evaluated
        while True:
            skip = unusable if allow_late else unusable | late
            problem = SplitProblem(
                quantities,
                [
                    SplitCandidate(location_id, c.parcel_cost, tuple(c.units), c.unit_costs)
                    for location_id, c in candidates.items()
                    if location_id not in skip
                ],
                max_splits,
            )
            result = problem.solve(policy)
            evaluated += result.plans_evaluated
            changed = False
            for location_id in result.plan.location_ids:
                changed = time_leg(location_id, allow_late) or changed
            if not changed:
                return result

    result = solve(allow_late=False)
    full = sum(quantities)
    considered_late: set[str] = set()
    if result.plan.units < full and late:
        over_all = solve(allow_late=True)
        if over_all.plan.units > result.plan.units:
            result = over_all
            considered_late = set(late)
            n_late = len(late & set(result.plan.location_ids))
            notes.append(
                f"no plan covers the cart by {by}: sourced over all candidates, "
                f"{n_late} shipment{'s' if n_late != 1 else ''} late"
            )
    for location_id in late - considered_late:
        filtered[location_id] = f"cannot deliver by {by}"
    if len(candidates) > EAGER_TIMING_MAX:
        notes.append(
            f"{len(candidates)} candidates: timed lazily (the {len(legs)} the search chose or tried)"
        )
    if excluded_pairs:
        pairs = ", ".join(f"{sku} at {loc}" for loc, sku in excluded_pairs)
        notes.append(f"never used: {pairs}")
    notes.extend(result.notes)

    shipments: list[PlannedShipment] = []
    for location_id, allocations in result.plan.allocations:
        candidate = candidates[location_id]
        leg = legs[location_id]
        assert not isinstance(leg, str)
        lines = tuple(CartLine(cart[i].sku, n) for i, n in allocations)
        unit_cost = sum(n * candidate.unit_costs[i] for i, n in allocations) if candidate.unit_costs else 0.0
        shipment = leg.shipment
        shipments.append(
            PlannedShipment(
                location_id=location_id,
                lines=lines,
                service_id=shipment.service_id,
                route_id=None,
                ready_at_ms=shipment.ready_at_ms,
                handover_at_ms=shipment.handover_at_ms,
                arrives_at_ms=shipment.arrives_at_ms,
                distance_km=candidate.distance_km,
                co2e_g=leg.co2e_g,
                cost=candidate.parcel_cost + unit_cost,
                late=leg.window_end_ms > request.promised_by_ms,
            )
        )
    backorder = _backorder(cart, shipments)
    outcome = _outcome(shipments, backorder)
    reason = ""
    if backorder:
        usable = [c for loc, c in candidates.items() if loc not in unusable]
        reason = _home_reason(cart, backorder, usable, where, max_splits, green)
    considered = [
        loc for loc in candidates if loc not in unusable and (loc not in late or loc in considered_late)
    ]
    trace = DecisionTrace(
        search=search_name or result.search,
        candidates=_candidate_traces(cart, stock, candidates, considered, filtered),
        candidates_total=len(set(candidates) | set(filtered)),
        filtered_counts=tuple(sorted(Counter(filtered.values()).items())),
        plans_evaluated=evaluated,
        splits=result.plan.splits,
        splits_lower_bound=result.splits_lower_bound,
        cost=result.plan.cost,
        cost_lower_bound=result.cost_lower_bound,
        gap=result.gap,
        winning=_winning(shipments, result.plan.cost),
        notes=tuple(notes),
    )
    return SourcingDecision(request.order_id, outcome, tuple(shipments), backorder, reason, trace)


def _home_reason(
    cart: tuple[CartLine, ...],
    backorder: Sequence[CartLine],
    usable: Sequence[_Candidate],
    where: str,
    max_splits: int,
    green: bool,
) -> str:
    index = {line.sku: i for i, line in enumerate(cart)}
    reasons: list[str] = []
    for short in backorder:
        i = index[short.sku]
        quantity = cart[i].quantity
        total = sum(c.units[i] for c in usable)
        if total == 0:
            reasons.append(f"{short.sku} is not in stock at {where}")
        elif quantity - short.quantity >= total:
            reasons.append(f"only {total} of {quantity} {short.sku} in stock at {where}")
        elif green:
            reasons.append(f"green delivery is one parcel and no single site holds {short.sku} with the rest")
        else:
            shipments = f"{max_splits} shipment{'s' if max_splits != 1 else ''}"
            reasons.append(f"{short.sku} would need more than {shipments} from {where}")
    return "; ".join(reasons)


def _held(cart: tuple[CartLine, ...], stock: StockSnapshot, location_id: str) -> tuple[tuple[str, int], ...]:
    out: list[tuple[str, int]] = []
    for line in cart:
        units = stock.units.get(line.sku, {}).get(location_id, 0)
        if units > 0:
            out.append((line.sku, units))
    return tuple(out)


def _candidate_traces(
    cart: tuple[CartLine, ...],
    stock: StockSnapshot,
    candidates: Mapping[str, _Candidate],
    considered: Collection[str],
    filtered: Mapping[str, str],
) -> tuple[CandidateTrace, ...]:
    """Considered candidates by per-parcel cost, then filtered ones by id, at most TRACE_CANDIDATES."""
    out: list[CandidateTrace] = []
    for location_id in sorted(considered, key=lambda loc: (candidates[loc].parcel_cost, loc))[
        :TRACE_CANDIDATES
    ]:
        c = candidates[location_id]
        held = tuple((line.sku, u) for line, u in zip(cart, c.units, strict=True) if u > 0)
        out.append(CandidateTrace(location_id, held, None, c.parcel_cost, c.distance_km))
    for location_id in sorted(filtered)[: TRACE_CANDIDATES - len(out)]:
        known = candidates.get(location_id)
        out.append(
            CandidateTrace(
                location_id,
                _held(cart, stock, location_id),
                filtered[location_id],
                None,
                None if known is None else known.distance_km,
            )
        )
    return tuple(out)


# --- click & collect --------------------------------------------------------------------------------


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


# --- same-day courier -------------------------------------------------------------------------------


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
