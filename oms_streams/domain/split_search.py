"""The split problem: which set of at most k locations allocates a cart, pure set optimisation.

Home delivery sourcing (``domain.sourcing_home_delivery``) turns an order into this problem:
candidates with the units of each line they can give, a cost per parcel and per unit;
:class:`SplitProblem` defines the cost of a set (the assignment rule) and finds the set. Within
``exact_max_lines`` x ``exact_max_candidates`` the search is exact (proven optimal); past the node
budget, and for larger problems, the bounded method runs: the exact search for
``BOUNDED_EXACT_NODES`` nodes, else a beam of children per node and a swap-one-location pass,
reporting honest lower bounds and the gap.

The plans and the order that compares them are in ``split_plans``; the branch and bound itself is in
``split_branch_and_bound``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from oms_streams.domain.split_branch_and_bound import (
    BEAM_WIDTH,
    BOUNDED_EXACT_NODES,
    _OutOfBudget,
    _Search,
)
from oms_streams.domain.split_plans import (
    _TOLERANCE,
    EMPTY_PLAN,
    SplitCandidate,
    SplitPlan,
    SplitResult,
    _better,
    _Key,
)

if TYPE_CHECKING:  # only its limits are read: no import cycle at run time
    from oms_streams.domain.sourcing_types import SourcingPolicy

# The plans and the limits stay importable from here: home delivery sourcing imports them from here.
__all__ = [
    "BEAM_WIDTH",
    "BOUNDED_EXACT_NODES",
    "EMPTY_PLAN",
    "SplitCandidate",
    "SplitPlan",
    "SplitProblem",
    "SplitResult",
]


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
