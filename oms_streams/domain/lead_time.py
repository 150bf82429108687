"""Whole lead times (order -> delivery, in local days) learned per lane, parcels in transit included.

The quantity promised is the number of local days from the day an order is placed to the day it is
delivered, in the origin's time zone: what the customer experiences, handling and transit together.
It is learned per lane (carrier service, origin region, destination region), per distance band of
the service, and per service, and pooled from the most general level down (hierarchical shrinkage
on the daily hazard: a level with r orders at risk on day d keeps r / (r + k) of its own hazard
and takes k / (r + k) from its parent).

Two things make it honest about the present rather than the past:

- **Parcels still in transit count.** A parcel handed to the carrier and not yet delivered is a
  censored observation: its lead time is at least its age. The estimate is the Kaplan-Meier
  product-limit over delivered and in-transit parcels, so a slowdown shows at once as parcels that
  are already late, not weeks later when they are finally delivered.
- **Recency by order day.** A parcel weighs 2 ** (-(age in days) / half_life), by the day it was
  ordered: recent orders weigh more; a slow order is never weighted up for arriving late.

Memory per level is constant: one counter per lead day up to ``MAX_LEAD_DAYS`` (the last is open)
and a ring of ``MAX_LEAD_DAYS`` order days of parcels in transit (a parcel older than that is
forgotten as lost). An observation is O(1); an estimate walks the three levels' counters once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from oms_streams.domain.calendar import local_date

SOURCE_PRIOR = "prior"
MAX_LEAD_DAYS = 180
"""Lead-time counters 0 .. MAX_LEAD_DAYS - 1 days, then one open counter; in-transit ring length."""
_MAX_EXPONENT = 60.0
_MAX_MEMO = 20_000


def lead_days(placed_ms: int, delivered_ms: int, timezone: str) -> int:
    """Whole local days from the order's day to the delivery's day (0: delivered the day ordered)."""
    return max(0, (local_date(timezone, delivered_ms) - local_date(timezone, placed_ms)).days)


@dataclass(frozen=True, slots=True)
class LeadEstimate:
    days: int
    """Delivered by the end of the local day this many days after the order's day, at ``level``."""
    source: str
    """The most specific level with ``min_samples`` of (recency-weighted) delivered parcels:
    'lane', 'band', 'service'; 'prior' when none has."""
    samples: int
    level: float
    in_transit: int
    """Parcels in transit (weighted, rounded) on the level named by ``source``."""


class LeadLevel:
    """Delivered lead days and parcels in transit of one level (lane, band or service)."""

    __slots__ = ("_days", "_pending", "count", "delivered", "in_transit")

    def __init__(self) -> None:
        self.delivered = [0.0] * (MAX_LEAD_DAYS + 1)
        """Weight of the parcels delivered after d days, d = 0 .. MAX_LEAD_DAYS (the last: or more)."""
        self._pending = [0.0] * MAX_LEAD_DAYS
        self._days = [0] * MAX_LEAD_DAYS
        """Ring: the order day (ordinal) each in-transit slot holds; 0 for none."""
        self.count = 0
        """Delivered parcels observed (unweighted)."""
        self.in_transit = 0.0

    @property
    def slots(self) -> int:
        """Counters held: constant, whatever was observed."""
        return len(self.delivered) + len(self._pending) + len(self._days)

    @property
    def weight(self) -> float:
        return sum(self.delivered)

    def add_delivered(self, days: int, weight: float) -> None:
        self.delivered[min(days, MAX_LEAD_DAYS)] += weight
        self.count += 1

    def add_in_transit(self, day: int, weight: float) -> None:
        slot = day % MAX_LEAD_DAYS
        held = self._days[slot]
        if held > day:
            return  # ordered longer ago than the ring reaches: as good as lost
        if held != day:
            self.in_transit -= self._pending[slot]
            self._days[slot], self._pending[slot] = day, 0.0  # the slot's old day is forgotten
        self._pending[slot] += weight
        self.in_transit += weight

    def remove_in_transit(self, day: int, weight: float) -> None:
        slot = day % MAX_LEAD_DAYS
        if self._days[slot] == day:
            taken = min(weight, self._pending[slot])
            self._pending[slot] -= taken
            self.in_transit -= taken

    def rescale(self, factor: float) -> None:
        self.delivered = [w * factor for w in self.delivered]
        self._pending = [w * factor for w in self._pending]
        self.in_transit *= factor

    def at_risk_ends(self, today: int) -> list[float]:
        """Weight whose knowledge ends at each day d: delivered on d, or in transit and known to take
        at least d + 1 days (ordered d + 1 or more days before ``today``)."""
        ends = list(self.delivered)
        for slot, day in enumerate(self._days):
            weight = self._pending[slot]
            if day and weight > 0:
                age = today - day
                if age >= 1:
                    ends[min(age - 1, MAX_LEAD_DAYS)] += weight
        return ends


def hazards(
    level: LeadLevel, today: int, scale: float, parent: Sequence[float] | None, k: float
) -> list[float]:
    """Daily hazards of ``level`` (delivered on day d among those not delivered before d), pooled
    with ``parent``'s: h = (events + k * h_parent) / (at risk + k), counts as of ``scale``."""
    ends = level.at_risk_ends(today)
    out = [0.0] * (MAX_LEAD_DAYS + 1)
    risk = 0.0
    for d in range(MAX_LEAD_DAYS, -1, -1):
        risk += ends[d] * scale
        events = level.delivered[d] * scale
        if parent is None:
            out[d] = events / risk if risk > 0 else 0.0
        else:
            out[d] = (events + k * parent[d]) / (risk + k) if risk + k > 0 else parent[d]
    return out


def prior_hazards(prior_days: Sequence[int]) -> list[float]:
    """Hazards of the empirical distribution of ``prior_days``; 1 from the last of them on."""
    counts = [0] * (MAX_LEAD_DAYS + 1)
    for d in prior_days:
        counts[min(max(d, 0), MAX_LEAD_DAYS)] += 1
    out = [1.0] * (MAX_LEAD_DAYS + 1)
    left = len(prior_days)
    for d in range(MAX_LEAD_DAYS + 1):
        if left <= 0:
            break
        out[d] = counts[d] / left
        left -= counts[d]
    return out


def mixed_hazards(own: Sequence[float], n: float, other: Sequence[float], k: float) -> list[float]:
    """Hazards of the mixture n / (n + k) of ``own``'s distribution and k / (n + k) of ``other``'s."""
    out = [1.0] * len(own)
    survival_own = survival_other = survival = 1.0
    for d, (h_own, h_other) in enumerate(zip(own, other, strict=True)):
        survival_own *= 1.0 - min(1.0, max(0.0, h_own))
        survival_other *= 1.0 - min(1.0, max(0.0, h_other))
        mixed = (n * survival_own + k * survival_other) / (n + k) if n + k > 0 else survival_other
        out[d] = 1.0 - mixed / survival if survival > 0 else 1.0
        survival = mixed
    return out


def hazard_quantile(hazard: Sequence[float], quantile: float) -> int:
    """The smallest day d with P(lead <= d) >= quantile (MAX_LEAD_DAYS when never)."""
    survival = 1.0
    target = 1.0 - quantile + 1e-12
    for d, h in enumerate(hazard):
        survival *= 1.0 - min(1.0, max(0.0, h))
        if survival <= target:
            return d
    return MAX_LEAD_DAYS


class LeadTimes:
    """Lead days per lane / band / service with parcels in transit; recency by order day."""

    __slots__ = ("_levels", "_memo", "_now_day", "_ref_day", "half_life_days", "pooling", "version")

    def __init__(self, half_life_days: float | None = 60.0, pooling: float = 10.0) -> None:
        self.half_life_days = half_life_days
        self.pooling = pooling
        self._levels: dict[tuple[object, ...], LeadLevel] = {}
        self._ref_day: int | None = None
        self._now_day: int | None = None
        """The latest order day learned: weights count as effective parcels as of then."""
        self._memo: dict[tuple[object, ...], LeadEstimate | None] = {}
        self.version = 0

    def _weight(self, day: int) -> float:
        half_life = self.half_life_days
        if not half_life:
            return 1.0
        if self._ref_day is None:
            self._ref_day = day
        self._now_day = day if self._now_day is None else max(self._now_day, day)
        if (day - self._ref_day) / half_life > _MAX_EXPONENT:
            factor = 2.0 ** (-(day - self._ref_day) / half_life)
            for level in self._levels.values():
                level.rescale(factor)
            self._ref_day = day
        return float(2.0 ** ((day - self._ref_day) / half_life))

    def _scale(self) -> float:
        """Stored weights -> effective parcels as of the latest order day learned."""
        half_life = self.half_life_days
        if not half_life or self._ref_day is None or self._now_day is None:
            return 1.0
        return float(2.0 ** (-(self._now_day - self._ref_day) / half_life))

    def _touch(self, keys: Sequence[tuple[object, ...]]) -> list[LeadLevel]:
        self.version += 1
        self._memo.clear()
        return [self._levels.get(key) or self._levels.setdefault(key, LeadLevel()) for key in keys]

    def add_delivered(
        self, keys: Sequence[tuple[object, ...]], ordered: date, days: int, in_transit: bool
    ) -> None:
        """A delivered parcel ordered on ``ordered``, ``days`` local days after; ``in_transit``: it
        was announced as in transit before (it leaves the in-transit ring now)."""
        day = ordered.toordinal()
        weight = self._weight(day)
        for level in self._touch(keys):
            level.add_delivered(days, weight)
            if in_transit:
                level.remove_in_transit(day, weight)

    def add_in_transit(self, keys: Sequence[tuple[object, ...]], ordered: date) -> None:
        day = ordered.toordinal()
        weight = self._weight(day)
        for level in self._touch(keys):
            level.add_in_transit(day, weight)

    def level(self, key: tuple[object, ...]) -> LeadLevel | None:
        return self._levels.get(key)

    def estimate(
        self,
        keys: Sequence[tuple[object, ...]],
        names: Sequence[str],
        today: date,
        quantile: float,
        min_samples: int,
        prior_days: Sequence[int],
    ) -> LeadEstimate | None:
        """Lead days at ``quantile`` for an order placed on ``today`` (None: nothing learned on any
        level; the caller falls back to its prior)."""
        memo_key = (*keys, today, quantile, min_samples, tuple(prior_days))
        if memo_key in self._memo:
            return self._memo[memo_key]
        found = self._estimate(keys, names, today.toordinal(), quantile, max(1, min_samples), prior_days)
        if len(self._memo) >= _MAX_MEMO:
            self._memo.clear()
        self._memo[memo_key] = found
        return found

    def _estimate(
        self,
        keys: Sequence[tuple[object, ...]],
        names: Sequence[str],
        today: int,
        quantile: float,
        needed: int,
        prior_days: Sequence[int],
    ) -> LeadEstimate | None:
        levels = [self._levels.get(key) for key in keys]
        if not any(level is not None and level.count for level in levels):
            return None
        scale = self._scale()
        source, samples, in_transit = SOURCE_PRIOR, len(prior_days), 0
        for name, level in zip(names, levels, strict=True):
            if level is not None and level.weight * scale >= needed - 1e-9:
                source, samples, in_transit = (
                    name,
                    round(level.weight * scale),
                    round(level.in_transit * scale),
                )
                break
        # The prior stands in only until some level has min_samples of its own: it is mixed into the
        # most general level's distribution as ``pooling`` pseudo-parcels (a mixture, so a short prior
        # cannot cut the learned tail short); the levels below pool hazards with their parent.
        parent: list[float] | None = None
        for level in reversed(levels):
            if level is None or not level.count:
                continue
            own = hazards(level, today, scale, parent, self.pooling)
            if parent is None and source == SOURCE_PRIOR and prior_days:
                n = level.weight * scale
                own = mixed_hazards(own, n, prior_hazards(prior_days), self.pooling)
            parent = own
        assert parent is not None
        return LeadEstimate(hazard_quantile(parent, quantile), source, samples, quantile, in_transit)

    @property
    def level_count(self) -> int:
        return len(self._levels)
