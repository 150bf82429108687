"""Home delivery sourcing (standard, ship from store, green): a lexicographic optimisation over the
candidate locations (the method's sites that hold some of the cart):

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
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from oms_streams.domain.network import Capability, DeliveryMethod, PromiseNetwork, Site
from oms_streams.domain.promise_leg_planner import CarrierLeg, LegPlanner
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
    _utc,
    _winning,
)
from oms_streams.domain.split_search import SplitCandidate, SplitProblem, SplitResult
from oms_streams.domain.transit import TransitModel

EAGER_TIMING_MAX = 24
"""Up to this many candidates every one is timed first (a complete trace); beyond, lazily."""


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
