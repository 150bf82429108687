"""What the split search works with and answers: a candidate location, a plan (which location ships
which units of which line), a result (the plan, how it was found and how far it is proven), and the
order of the objective that says which plan is better: most units, fewest shipments, least cost,
smallest location ids. Costs closer than a relative tolerance are a tie.
"""

from __future__ import annotations

from dataclasses import dataclass

_TOLERANCE = 1e-9
"""Relative: costs closer than this are a tie (broken by location ids)."""


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
