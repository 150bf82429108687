"""The branch and bound behind ``SplitProblem.exact`` and ``SplitProblem.bounded`` (``split_search``).

It deepens the number of shipments k = 1, 2, ... and at each k searches the sets of k locations
(bitmasks): branch on the holders of the most constrained open line (fewest holders left), a sibling
once tried is forbidden to the later ones; prune on an upper bound of the units k locations can still
allocate and on a cost lower bound. When no set covers the cart it first finds the most units the
locations can allocate. With a beam it keeps a few children per node, then swaps single locations,
and records the cost bound of what it dropped, so the caller can state honest lower bounds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from oms_streams.domain.split_plans import _TOLERANCE, EMPTY_PLAN, SplitPlan, _better, _Key

if TYPE_CHECKING:  # the problem it searches imports this module
    from oms_streams.domain.split_search import SplitProblem

BEAM_WIDTH = 6
"""Children kept per node by the bounded search's beam: half the cheapest, half the best covering."""

BOUNDED_EXACT_NODES = 600
"""The bounded search first tries the exact one for this many nodes (a few ms at most)."""


class _OutOfBudget(Exception):
    pass


def _bits(mask: int) -> Iterator[int]:
    """Indices of the set bits, lowest first."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


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
