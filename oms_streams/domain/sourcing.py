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

The search (``SplitProblem``) deepens the number of shipments k = 1, 2, ... and at each k runs a
branch and bound over sets of k locations (bitmasks): branch on the holders of the most constrained
open line (fewest holders left), a sibling once tried is forbidden to the later ones; prune on an
upper bound of the units k locations can still allocate and on a cost lower bound (the parcels
chosen, then the dearer of the cheapest parcels left and the cheapest holder of each open line,
plus every line at its cheapest unit cost); the last location is taken only among those holding
everything still open. Problems within ``exact_max_lines`` x ``exact_max_candidates`` are solved
exactly (proven optimal); past ``node_budget`` nodes, and for larger problems, the bounded method
runs: the exact search for ``BOUNDED_EXACT_NODES`` nodes (most large carts are easy and come out
proven), else the same search keeping a beam of children per node, then a swap-one-location pass;
it reports honest lower bounds (what the beam dropped could not be cheaper than them) and the gap.

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
import math
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from oms_streams.domain.network import Capability, DeliveryMethod, PromiseNetwork, Site
from oms_streams.domain.promise import (
    CarrierLeg,
    CartLine,
    Destination,
    LegPlanner,
    RouteTransfer,
    courier_ride_ms,
)
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


TRACE_CANDIDATES = 25
"""Candidates listed in a decision's trace (all are counted)."""

EAGER_TIMING_MAX = 24
"""Up to this many candidates every one is timed first (a complete trace); beyond, lazily."""

BEAM_WIDTH = 6
"""Children kept per node by the bounded search's beam: half the cheapest, half the best covering."""

BOUNDED_EXACT_NODES = 600
"""The bounded search first tries the exact one for this many nodes (a few ms at most)."""

_TOLERANCE = 1e-9
"""Relative: costs closer than this are a tie (broken by location ids)."""


# --- the split problem: pure set optimisation ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SplitCandidate:
    """One location as the split search sees it."""

    location_id: str
    parcel_cost: float
    """Paid once if it ships anything."""
    units: tuple[int, ...]
    """Usable units per line of the problem (0 = does not hold it)."""
    unit_costs: tuple[float, ...] = ()
    """Cost per unit taken, per line; empty = all zero."""


@dataclass(frozen=True, slots=True)
class SplitPlan:
    allocations: tuple[tuple[str, tuple[tuple[int, int], ...]], ...]
    """Per shipping location (by id): ((line index, units), ...) in line order."""
    units: int
    cost: float

    @property
    def splits(self) -> int:
        return len(self.allocations)

    @property
    def location_ids(self) -> tuple[str, ...]:
        return tuple(location_id for location_id, _ in self.allocations)

    def is_better_than(self, other: SplitPlan | None) -> bool:
        """The order of the objective: most units, fewest shipments, least cost, smallest ids."""
        return other is None or _better(
            (self.units, self.splits, self.cost, self.location_ids),
            (other.units, other.splits, other.cost, other.location_ids),
        )


EMPTY_PLAN = SplitPlan((), 0, 0.0)


@dataclass(frozen=True, slots=True)
class SplitResult:
    plan: SplitPlan
    search: str
    """'exact' or 'bounded'."""
    proven: bool
    """The plan is proven optimal (the bounds equal it)."""
    nodes: int
    plans_evaluated: int
    splits_lower_bound: int
    cost_lower_bound: float
    """A lower bound on the optimum's cost (the optimum may have fewer shipments than the plan)."""
    notes: tuple[str, ...] = ()

    @property
    def gap(self) -> float:
        if self.proven or self.plan.cost <= 0.0:
            return 0.0
        return max(0.0, (self.plan.cost - self.cost_lower_bound) / self.plan.cost)


_Key = tuple[int, int, float, tuple[str, ...]]
"""(units, shipments, cost, location ids)."""


def _better(a: _Key, b: _Key) -> bool:
    if a[0] != b[0]:
        return a[0] > b[0]
    if a[1] != b[1]:
        return a[1] < b[1]
    if abs(a[2] - b[2]) > _TOLERANCE * max(1.0, abs(b[2])):
        return a[2] < b[2]
    return a[3] < b[3]


class _OutOfBudget(Exception):
    pass


def _bits(mask: int) -> Iterator[int]:
    """Indices of the set bits, lowest first."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


class SplitProblem:
    """Choose at most ``max_splits`` locations for a cart's lines (see the module docstring).

    ``quantities[i]`` is line i's quantity; a line is capped at the units all candidates hold
    together (what no choice can allocate is backordered whatever the choice). ``evaluate`` defines
    the cost of a set; ``exact`` and ``bounded`` search for the best set; ``exhaustive`` tries
    every set (for tests)."""

    __slots__ = (
        "_by_units",
        "_holders",
        "_ids",
        "_line_lb",
        "_pc",
        "_uc",
        "_units",
        "_whole",
        "candidates",
        "caps",
        "max_splits",
        "quantities",
        "target",
    )

    def __init__(
        self, quantities: Sequence[int], candidates: Sequence[SplitCandidate], max_splits: int
    ) -> None:
        lines = len(quantities)
        if len({c.location_id for c in candidates}) != len(candidates):
            raise ValueError("candidate location ids must be unique")
        for candidate in candidates:
            if len(candidate.units) != lines or len(candidate.unit_costs) not in (0, lines):
                raise ValueError(f"{candidate.location_id}: one units entry per line expected")
        self.quantities = tuple(quantities)
        self.max_splits = max_splits
        # Cheapest parcel first: the index order is the cost order the search relies on.
        self.candidates = tuple(sorted(candidates, key=lambda c: (c.parcel_cost, c.location_id)))
        totals = [0] * lines
        for candidate in self.candidates:
            for i, u in enumerate(candidate.units):
                if u > 0:
                    totals[i] += u
        caps = self.caps = tuple(max(0, min(q, t)) for q, t in zip(self.quantities, totals, strict=True))
        self.target = sum(caps)
        self._ids = tuple(c.location_id for c in self.candidates)
        self._pc = tuple(c.parcel_cost for c in self.candidates)
        zero = (0.0,) * lines
        self._uc = tuple(c.unit_costs or zero for c in self.candidates)
        holders = [0] * lines
        whole = [0] * lines
        ranked: list[list[tuple[int, int]]] = [[] for _ in range(lines)]
        rows: list[tuple[int, ...]] = []
        # Every line at its cheapest unit cost: a floor under any plan allocating everything.
        cheapest_unit = [math.inf] * lines
        for index, candidate in enumerate(self.candidates):
            bit = 1 << index
            row = [0] * lines
            unit_costs = candidate.unit_costs or zero
            for i, u in enumerate(candidate.units):
                if u > 0:
                    if u >= caps[i]:
                        u = caps[i]
                        whole[i] |= bit
                    row[i] = u
                    holders[i] |= bit
                    ranked[i].append((-u, index))
                    if unit_costs[i] < cheapest_unit[i]:
                        cheapest_unit[i] = unit_costs[i]
            rows.append(tuple(row))
        self._units = tuple(rows)
        self._holders = holders
        self._whole = whole
        # Per line, its holders by units (most first, then cheapest parcel).
        self._by_units = [[(-minus, index) for minus, index in sorted(held)] for held in ranked]
        self._line_lb = sum(cap * cheapest_unit[i] for i, cap in enumerate(caps) if cap > 0)

    # --- the cost of a set ---------------------------------------------------------------------

    def evaluate(self, location_ids: Collection[str]) -> SplitPlan:
        """The plan a set of locations makes under the assignment rule; members that get nothing
        do not ship (so the plan equals that of the members that do)."""
        index = {location_id: n for n, location_id in enumerate(self._ids)}
        unknown = [location_id for location_id in location_ids if location_id not in index]
        if unknown:
            raise KeyError(f"not candidates: {', '.join(sorted(unknown))}")
        return self._plan(sorted(index[location_id] for location_id in set(location_ids)))

    def _assign(self, members: Sequence[int]) -> tuple[int, float, dict[int, list[tuple[int, int]]]]:
        units_of, uc, pc, ids = self._units, self._uc, self._pc, self._ids
        taken: dict[int, list[tuple[int, int]]] = {}
        total = 0
        unit_cost = 0.0
        for i, cap in enumerate(self.caps):
            if cap == 0:
                continue
            whole = [c for c in members if units_of[c][i] >= cap]
            if whole:
                c = min(whole, key=lambda c: (uc[c][i], pc[c], ids[c]))
                taken.setdefault(c, []).append((i, cap))
                total += cap
                unit_cost += cap * uc[c][i]
                continue
            holders = sorted(
                (c for c in members if units_of[c][i] > 0),
                key=lambda c: (uc[c][i], -units_of[c][i], pc[c], ids[c]),
            )
            left = cap
            for c in holders:
                n = min(left, units_of[c][i])
                taken.setdefault(c, []).append((i, n))
                total += n
                unit_cost += n * uc[c][i]
                left -= n
                if not left:
                    break
        cost = sum(pc[c] for c in sorted(taken)) + unit_cost
        return total, cost, taken

    def _key(self, members: Sequence[int]) -> _Key:
        total, cost, taken = self._assign(members)
        return total, len(taken), cost, tuple(sorted(self._ids[c] for c in taken))

    def _plan(self, members: Sequence[int]) -> SplitPlan:
        total, cost, taken = self._assign(members)
        allocations = sorted((self._ids[c], tuple(lines)) for c, lines in taken.items())
        return SplitPlan(tuple(allocations), total, cost)

    # --- searches ------------------------------------------------------------------------------

    def exhaustive(self, max_splits: int | None = None) -> SplitPlan:
        """Every set of at most ``max_splits`` (default: the problem's) candidates, evaluated."""
        limit = self.max_splits if max_splits is None else max_splits
        best: _Key | None = None
        best_members: tuple[int, ...] = ()
        for size in range(1, min(limit, len(self._ids)) + 1):
            for members in itertools.combinations(range(len(self._ids)), size):
                key = self._key(members)
                if best is None or _better(key, best):
                    best, best_members = key, members
        return self._plan(best_members) if best is not None else EMPTY_PLAN

    def exact(self, node_budget: int = 50_000) -> SplitResult | None:
        """The optimum, proven; None when the search needs more than ``node_budget`` nodes."""
        search = _Search(self, node_budget, beam=None)
        try:
            plan = search.run()
        except _OutOfBudget:
            return None
        return SplitResult(
            plan, "exact", True, search.nodes, search.plans, plan.splits, plan.cost, tuple(search.notes)
        )

    def bounded(
        self, node_budget: int = 50_000, beam: int = BEAM_WIDTH, exact_nodes: int = BOUNDED_EXACT_NODES
    ) -> SplitResult:
        """A good plan in bounded time: the exact search for at most ``exact_nodes`` nodes (most
        large problems are easy: a proven optimum); past that the search keeping ``beam`` children
        per node, then swapping single locations, with lower bounds from what the beam dropped."""
        spent = 0
        if exact_nodes > 0:
            first = _Search(self, exact_nodes, beam=None)
            try:
                plan = first.run()
            except _OutOfBudget:
                spent = first.nodes
            else:
                notes = (*first.notes, f"proven optimal within {exact_nodes:,} nodes")
                return SplitResult(
                    plan, "bounded", True, first.nodes, first.plans, plan.splits, plan.cost, notes
                )
        search = _Search(self, node_budget, beam=beam)
        plan = search.run()
        plan = search.improve(plan)
        splits_lb, cost_lb = search.lower_bounds(plan)
        proven = (
            search.units_proven
            # the beam may miss every set reaching the unit target and fall back to greedy
            and plan.units >= search.target
            and splits_lb == plan.splits
            and cost_lb >= plan.cost - _TOLERANCE * max(1.0, plan.cost)
        )
        if proven:
            cost_lb = plan.cost
        notes = tuple(search.notes)
        if spent:
            notes = (f"not proven within {exact_nodes:,} exact nodes: beam of {beam}", *notes)
        return SplitResult(
            plan, "bounded", proven, spent + search.nodes, search.plans, splits_lb, cost_lb, notes
        )

    def solve(self, policy: SourcingPolicy) -> SplitResult:
        """Exact for problems within the policy's limits (falling back when the node budget runs
        out), bounded otherwise."""
        lines = sum(1 for cap in self.caps if cap > 0)
        if lines <= policy.exact_max_lines and len(self._ids) <= policy.exact_max_candidates:
            result = self.exact(policy.node_budget)
            if result is not None:
                return result
            bounded = self.bounded(policy.node_budget, exact_nodes=0)
            note = f"exact search stopped at the node budget ({policy.node_budget:,}): bounded search"
            return SplitResult(
                bounded.plan,
                bounded.search,
                bounded.proven,
                bounded.nodes + policy.node_budget,
                bounded.plans_evaluated,
                bounded.splits_lower_bound,
                bounded.cost_lower_bound,
                (note, *bounded.notes),
            )
        return self.bounded(policy.node_budget)


class _Search:
    """Branch and bound over sets of locations, deepening the number of shipments.

    With ``beam`` set it keeps at most that many children per node and records the lowest cost
    bound of what it dropped, so the caller can state honest lower bounds."""

    def __init__(self, problem: SplitProblem, budget: int, beam: int | None) -> None:
        self.p = problem
        self.budget = budget
        self.beam = beam
        self.nodes = 0
        self.stop_at = budget
        self.plans = 0
        self.notes: list[str] = []
        self.best: _Key | None = None
        self.best_members: tuple[int, ...] = ()
        self.k = 0
        self.target = 0
        self.line_lb = 0.0
        self.truncated = False
        self.dropped_lb = math.inf
        self.levels: list[tuple[int, bool, bool, float]] = []
        """Per level searched: (k, found, truncated, lowest cost bound of what was dropped)."""
        self.most = 0
        self.units_proven = True

    # --- driver -------------------------------------------------------------------------------

    def run(self) -> SplitPlan:
        p = self.p
        if p.target == 0 or not p._ids:
            return EMPTY_PLAN
        limit = min(p.max_splits, len(p._ids))
        self.line_lb = p._line_lb
        if self._levels(limit, p.target):
            return p._plan(self.best_members)
        # Not coverable within the limit: the most units first, then as few shipments and as
        # little cost as allocate them.
        greedy = self._most_units(limit)
        self.line_lb = 0.0
        self.levels.clear()
        if self.most > 0 and self._levels(limit, self.most):
            return p._plan(self.best_members)
        return p._plan(greedy)  # only when a bounded search ran out of nodes

    def _levels(self, limit: int, target: int) -> bool:
        self.target = target
        if self.beam is not None:  # bounded: every phase gets the budget, so it always answers
            self.stop_at = self.nodes + self.budget
        for k in range(1, limit + 1):
            self.k = k
            self.truncated = False
            self.dropped_lb = math.inf
            try:
                self._node((), (0,) * len(self.p.caps), (1 << len(self.p._ids)) - 1, 0.0)
            except _OutOfBudget:
                if self.beam is None:
                    raise
                self.notes.append(f"bounded search stopped at the node budget ({self.budget:,})")
                self.levels.append((k, self.best is not None, True, self._floor(k)))
                return self.best is not None
            self.levels.append((k, self.best is not None, self.truncated, self.dropped_lb))
            if self.best is not None:
                return True
        return False

    def _floor(self, k: int) -> float:
        """The cheapest k parcels plus every line at its cheapest: under any k-location plan."""
        return sum(self.p._pc[:k]) + self.line_lb

    def _tick(self) -> None:
        self.nodes += 1
        if self.nodes > self.stop_at:
            raise _OutOfBudget

    def _cheapest(self, r: int, mask: int) -> float:
        pc = self.p._pc
        total = 0.0
        for _ in range(r):
            if not mask:
                return math.inf
            low = mask & -mask
            total += pc[low.bit_length() - 1]
            mask ^= low
        return total

    def _rest_lb(self, have: Sequence[int], allowed: int, r: int) -> float:
        """A floor under the parcels of the ``r`` more locations a full plan takes from ``allowed``:
        the r cheapest, and (when everything must be allocated) a holder of each open line, whose
        cheapest holder is the dearest, plus the r - 1 cheapest."""
        cheapest = self._cheapest(r, allowed)
        p = self.p
        if self.target < p.target or r == 0:
            return cheapest
        pc = p._pc
        dearest = 0.0
        for i, cap in enumerate(p.caps):
            if have[i] < cap:
                holders = p._holders[i] & allowed
                if not holders:
                    return math.inf
                low = pc[(holders & -holders).bit_length() - 1]
                if low > dearest:
                    dearest = low
        return max(cheapest, dearest + self._cheapest(r - 1, allowed))

    def _leaf(self, members: Sequence[int]) -> bool:
        self.plans += 1
        key = self.p._key(members)
        if key[0] >= self.target and (self.best is None or _better(key, self.best)):
            self.best = key
            self.best_members = tuple(sorted(members))
            return True
        return False

    def _prune_cost(self, lb: float) -> bool:
        best = self.best
        return best is not None and lb > best[2] + _TOLERANCE * max(1.0, abs(best[2]))

    def _open_lines(self, have: Sequence[int], allowed: int, r: int) -> tuple[int, int, int]:
        """(upper bound on the units r more allowed locations reach, the open line with the
        fewest allowed holders or -1, its holders)."""
        p = self.p
        ub = sum(have)
        line = -1
        fewest = 0
        line_holders = 0
        for i, cap in enumerate(p.caps):
            need = cap - have[i]
            if need <= 0:
                continue
            holders = p._holders[i] & allowed
            if not holders:
                continue
            added = 0
            n = 0
            for units, c in p._by_units[i]:
                if allowed >> c & 1:
                    added += units
                    n += 1
                    if n == r or added >= need:
                        break
            ub += min(need, added)
            count = holders.bit_count()
            if line < 0 or count < fewest:
                line, fewest, line_holders = i, count, holders
        return ub, line, line_holders

    # --- one level: sets of k locations allocating the target ---------------------------------

    def _node(self, members: tuple[int, ...], have: tuple[int, ...], allowed: int, parcels: float) -> None:
        self._tick()
        p = self.p
        if sum(have) >= self.target:
            self._leaf(members)
            return
        r = self.k - len(members)
        if r == 0:
            return
        if r == 1:
            if self.target == p.target:
                self._last(members, have, allowed, parcels)
            else:
                self._last_units(members, have, allowed, parcels)
            return
        ub, line, line_holders = self._open_lines(have, allowed, r)
        if ub < self.target or line < 0:
            return
        children = list(_bits(line_holders))
        if self.beam is not None and len(children) > self.beam:
            children = self._beam(children, have, allowed, parcels, r)
        rest = allowed
        caps = p.caps
        for c in children:
            without = rest & ~(1 << c)
            rest = without  # later siblings never take c: its subtree had every set with it
            parcels_c = parcels + p._pc[c]
            # Sorted by parcel cost, so this simple bound only grows: past it, no sibling is better.
            if self._prune_cost(parcels_c + self._cheapest(r - 1, without) + self.line_lb):
                break
            grown = tuple(min(cap, h + u) for cap, h, u in zip(caps, have, p._units[c], strict=True))
            if self._prune_cost(parcels_c + self._rest_lb(grown, without, r - 1) + self.line_lb):
                continue
            self._node((*members, c), grown, without, parcels_c)
        if self.target < p.target:
            # The line may also stay short: no further holder of it is taken.
            self._node(members, have, rest & ~line_holders, parcels)

    def _cover(self, have: Sequence[int], mask: int) -> int:
        """The locations of ``mask`` that hold everything still open (units to the target)."""
        p = self.p
        for i, cap in enumerate(p.caps):
            need = cap - have[i]
            if need <= 0:
                continue
            if need == cap:
                mask &= p._whole[i]
            else:
                enough = 0
                for units, c in p._by_units[i]:
                    if units < need:
                        break
                    enough |= 1 << c
                mask &= enough
            if not mask:
                break
        return mask

    def _last(self, members: tuple[int, ...], have: tuple[int, ...], candidates: int, parcels: float) -> None:
        """One location left: it must hold everything still open, so only those are tried."""
        pc = self.p._pc
        for c in _bits(self._cover(have, candidates)):
            if self._prune_cost(parcels + pc[c] + self.line_lb):
                break
            self._tick()
            self._leaf((*members, c))

    def _last_units(
        self, members: tuple[int, ...], have: tuple[int, ...], allowed: int, parcels: float
    ) -> None:
        """One location left and the target is less than everything: the holders of an open line
        that bring the units to the target (a scan is cheaper than branching line by line)."""
        p = self.p
        short = self.target - sum(have)
        open_lines = [(i, cap - h) for i, (cap, h) in enumerate(zip(p.caps, have, strict=True)) if h < cap]
        holders = 0
        for i, _ in open_lines:
            holders |= p._holders[i]
        pc = p._pc
        units = p._units
        for c in _bits(holders & allowed):
            if self._prune_cost(parcels + pc[c] + self.line_lb):
                break
            row = units[c]
            gain = 0
            for i, need in open_lines:
                u = row[i]
                gain += u if u < need else need
            if gain >= short:
                self._tick()
                self._leaf((*members, c))

    def _beam(
        self, children: list[int], have: tuple[int, ...], allowed: int, parcels: float, r: int
    ) -> list[int]:
        """Keep half the cheapest children and half the best covering ones; remember the lowest
        cost bound of what is dropped (the search is no longer exhaustive there)."""
        assert self.beam is not None
        p = self.p
        cheap = max(1, self.beam // 2)
        kept = set(children[:cheap])

        def coverage(c: int) -> tuple[float, int]:
            gain = sum(
                min(u, cap - h) / cap for u, cap, h in zip(p._units[c], p.caps, have, strict=True) if cap > h
            )
            return -gain, c

        kept.update(sorted(children[cheap:], key=coverage)[: self.beam - cheap])
        dropped = [c for c in children if c not in kept]
        if dropped:
            self.truncated = True
            for c in dropped:
                without = allowed & ~(1 << c)
                grown = tuple(min(cap, h + u) for cap, h, u in zip(p.caps, have, p._units[c], strict=True))
                lb = parcels + p._pc[c] + self._rest_lb(grown, without, r - 1) + self.line_lb
                self.dropped_lb = min(self.dropped_lb, lb)
        return [c for c in children if c in kept]

    # --- the most units k locations can allocate -----------------------------------------------

    def _most_units(self, limit: int) -> tuple[int, ...]:
        """Sets ``most`` to the most units ``limit`` locations allocate: the exact search (whose
        first dive is greedy), or when bounded, as far as it gets in a few hundred nodes, starting
        from the greedy choice, which it returns (the fallback plan)."""
        p = self.p
        self.k = limit
        everyone = (1 << len(p._ids)) - 1
        greedy: tuple[int, ...] = ()
        self.most = 0
        if self.beam is not None:
            greedy = self._greedy(limit)
            have = [0] * len(p.caps)
            for c in greedy:
                for i, u in enumerate(p._units[c]):
                    have[i] = min(p.caps[i], have[i] + u)
            self.most = sum(have)
            root_ub, _, _ = self._open_lines((0,) * len(p.caps), everyone, limit)
            if self.most >= root_ub:
                return greedy
            self.stop_at = self.nodes + min(self.budget, BOUNDED_EXACT_NODES)
        try:
            self._units_node(0, (0,) * len(p.caps), everyone)
        except _OutOfBudget:
            if self.beam is None:
                raise
            self.units_proven = False
            self.notes.append("the most units allocatable is not proven (bounded search)")
        return greedy

    def _greedy(self, limit: int) -> tuple[int, ...]:
        """Each round the location adding the most units (the cheaper on a tie)."""
        p = self.p
        have = [0] * len(p.caps)
        chosen: list[int] = []
        for _ in range(limit):
            best_gain, best_c = 0, -1
            for c, units in enumerate(p._units):
                if c in chosen:
                    continue
                gain = sum(min(u, cap - h) for u, cap, h in zip(units, p.caps, have, strict=True))
                if gain > best_gain:
                    best_gain, best_c = gain, c
            if best_c < 0:
                break
            chosen.append(best_c)
            for i, u in enumerate(p._units[best_c]):
                have[i] = min(p.caps[i], have[i] + u)
        return tuple(chosen)

    def _units_node(self, size: int, have: tuple[int, ...], allowed: int) -> None:
        self._tick()
        p = self.p
        self.most = max(self.most, sum(have))
        r = self.k - size
        if r == 0:
            return
        ub, line, line_holders = self._open_lines(have, allowed, r)
        if ub <= self.most or line < 0:
            return

        def gain(c: int) -> tuple[int, int]:
            return -sum(min(u, cap - h) for u, cap, h in zip(p._units[c], p.caps, have, strict=True)), c

        rest = allowed
        for c in sorted(_bits(line_holders), key=gain):
            without = rest & ~(1 << c)
            grown = tuple(min(cap, h + u) for cap, h, u in zip(p.caps, have, p._units[c], strict=True))
            self._units_node(size + 1, grown, without)
            rest = without
        # Or no further holder of the line is taken.
        self._units_node(size, have, rest & ~line_holders)

    # --- bounded: improvement and honest bounds -----------------------------------------------

    def improve(self, plan: SplitPlan) -> SplitPlan:
        """Swap one location of the plan for another while that improves it (bounded search)."""
        p = self.p
        if plan.splits < 2 or self.target != p.target:
            return plan
        index = {location_id: n for n, location_id in enumerate(p._ids)}
        members = tuple(sorted(index[location_id] for location_id in plan.location_ids))
        best = p._key(members)
        everyone = (1 << len(p._ids)) - 1
        for _ in range(8):
            found: tuple[int, ...] | None = None
            for out in members:
                others = tuple(c for c in members if c != out)
                have = [0] * len(p.caps)
                taken = 0
                for c in others:
                    taken |= 1 << c
                    for i, u in enumerate(p._units[c]):
                        have[i] = min(p.caps[i], have[i] + u)
                parcels = sum(p._pc[c] for c in others)
                for c in _bits(self._cover(have, everyone & ~taken & ~(1 << out))):
                    if parcels + p._pc[c] + self.line_lb > best[2] + _TOLERANCE * max(1.0, best[2]):
                        break
                    self.plans += 1
                    key = p._key((*others, c))
                    if key[0] >= p.target and _better(key, best):
                        best, found = key, tuple(sorted((*others, c)))
                if found is not None:
                    break
            if found is None:
                break
            members = found
        return p._plan(members)

    def lower_bounds(self, plan: SplitPlan) -> tuple[int, float]:
        """Fewest shipments any plan could have (levels searched in full and found empty are
        ruled out) and a cost no better plan can beat: the least bound of what each level still
        in play may hold."""
        splits_lb = plan.splits
        for k, found, truncated, _ in self.levels:
            if found or truncated:
                splits_lb = min(splits_lb, k)
                break
        cost_lb = plan.cost
        for k, _, truncated, dropped in self.levels:
            if splits_lb <= k <= plan.splits and truncated:
                cost_lb = min(cost_lb, dropped)
        if not self.units_proven:
            # The unit target itself is a guess: only the cheapest parcels are a sure floor.
            cost_lb = min(cost_lb, sum(self.p._pc[:splits_lb]))
        return splits_lb, max(0.0, cost_lb)


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
    return SourcingDecision(request.order_id, Outcome.REJECTED, (), cart, reason, trace)


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
