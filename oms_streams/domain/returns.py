"""Returns: what happens to a returned item (disposition) and where a shipped return goes (routing).

Disposition is data: an ordered list of rules, the first that matches an item (grade, SKU prefix,
the original order's channel, where it is received, days since the sale) decides; when none does,
the defaults decide (sellable grades back to stock, damaged unsellable, defective back to the
vendor), so a decision always exists and always names the rule behind it.

Routing sends each line of an announced return to the location that needs that SKU most (units
short of its target stock), weighed against the customer's distance and the location's receiving
load, and explains the choice. Score, lower is better (all in km-equivalents)::

    km_weight * km - need_weight * min(quantity, need) + load_weight * load / capacity - parcel bonus

Only locations that accept returns, lie within ``max_km``, are open at some point within the
horizon and have room today (``load + quantity <= returns_per_day``) are candidates; the others are
counted per reason. When no location qualifies the line goes to the central returns DC (the catch-all,
its capacity ignored) if it can receive at all, else nowhere, with the reason. Ties break on
location id, so a decision is a pure function of its inputs.

The baseline for "km avoided" is the central returns DC: the policy's, or else the nearest non-store
site that accepts returns, which is where every return would go without need-based routing.

Speed: ``ReturnNetwork`` is built once per network version and keeps the accepting sites as flat
lists; distances are computed once per return (not per line) with a latitude pre-filter, and
"open within the horizon" is cached per distinct calendar for as long as the answer cannot change.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from oms_streams.domain.calendar import MS_PER_DAY, local_date, opening_intervals
from oms_streams.domain.network import Calendar, Capability, Site
from oms_streams.domain.visibility import haversine_km

# --- disposition ----------------------------------------------------------------------------------


class Grade(StrEnum):
    """The inspection grade a store (or the returns DC) gives a returned item."""

    AS_NEW = "as_new"
    RESELLABLE = "resellable"
    DAMAGED = "damaged"
    DEFECTIVE = "defective"


class Disposition(StrEnum):
    RESTOCK = "restock"
    """Back into the receiving location's sellable stock, at once."""
    UNSELLABLE = "unsellable"
    RETURN_TO_VENDOR = "return_to_vendor"


@dataclass(frozen=True, slots=True)
class DispositionRule:
    grade: Grade
    disposition: Disposition
    sku_prefix: str = ""
    """"" matches every SKU."""
    channel: str | None = None
    """The original order's sales channel; None matches any."""
    location_type: str | None = None
    """Where the item is received ("store", "dc", ...); None matches any."""
    max_days_since_sale: int | None = None
    """The rule applies only while the days since the order are at most this (known, too)."""
    name: str = ""
    """For the explanation; empty: a description built from the fields."""

    @property
    def label(self) -> str:
        """The rule's name, or a description such as ``as_new SKU-FOOD* via web -> unsellable``."""
        if self.name:
            return self.name
        parts = [self.grade.value]
        if self.sku_prefix:
            parts.append(f"{self.sku_prefix}*")
        if self.channel is not None:
            parts.append(f"via {self.channel}")
        if self.location_type is not None:
            parts.append(f"at {self.location_type}")
        if self.max_days_since_sale is not None:
            parts.append(f"within {self.max_days_since_sale} days")
        return f"{' '.join(parts)} -> {self.disposition.value}"

    def matches(self, item: ReturnedItem) -> bool:
        if item.grade is not self.grade or not item.sku.startswith(self.sku_prefix):
            return False
        if self.channel is not None and item.channel != self.channel:
            return False
        if self.location_type is not None and item.location_type != self.location_type:
            return False
        if self.max_days_since_sale is not None:
            # Unknown age cannot prove the item is within the window.
            return item.days_since_sale is not None and item.days_since_sale <= self.max_days_since_sale
        return True


DEFAULT_RULES: tuple[DispositionRule, ...] = (
    DispositionRule(Grade.AS_NEW, Disposition.RESTOCK, name="default for as_new"),
    DispositionRule(Grade.RESELLABLE, Disposition.RESTOCK, name="default for resellable"),
    DispositionRule(Grade.DAMAGED, Disposition.UNSELLABLE, name="default for damaged"),
    DispositionRule(Grade.DEFECTIVE, Disposition.RETURN_TO_VENDOR, name="default for defective"),
)
"""One rule per grade, so every item has a disposition whatever the configured rules say."""


@dataclass(frozen=True, slots=True)
class ReturnedItem:
    """What the disposition looks at."""

    sku: str
    grade: Grade
    channel: str | None = None
    location_type: str | None = None
    days_since_sale: int | None = None
    """None: unknown, so rules with ``max_days_since_sale`` do not match."""


@dataclass(frozen=True, slots=True)
class DispositionDecision:
    disposition: Disposition
    rule: str
    """The name (or description) of the rule that decided, e.g. ``default for damaged``."""


def decide_disposition(
    item: ReturnedItem, rules: Sequence[DispositionRule] = DEFAULT_RULES
) -> DispositionDecision:
    """The first rule in order that matches decides; when none does, ``DEFAULT_RULES`` decide."""
    for rule in (*rules, *DEFAULT_RULES):
        if rule.matches(item):
            return DispositionDecision(rule.disposition, rule.label)
    # Unreachable: DEFAULT_RULES cover every grade; kept total for a Grade added without a default.
    return DispositionDecision(Disposition.UNSELLABLE, f"default for {item.grade.value}")


# --- routing --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    km_weight: float = 1.0
    """Cost per km from the customer (the unit of every other weight: km-equivalents)."""
    need_weight: float = 100.0
    """Value of one unit of the location's need that the item covers."""
    load_weight: float = 50.0
    """Cost at a full day's receiving capacity, scaled by the load fraction."""
    parcel_weight: float = 40.0
    """Bonus for a location another line of the same return already goes to (one parcel)."""
    max_km: float = 400.0
    """Candidates farther than this from the customer are not considered."""
    central_location: str | None = None
    """The central returns DC; None: the nearest non-store site that accepts returns."""
    horizon_days: int = 7
    """A location must be open (its calendar, closed dates included) within this many days."""
    trace_top: int = 5
    """Candidates kept in the explanation."""


@dataclass(frozen=True, slots=True)
class ReturnLine:
    line_id: str
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class CandidateTrace:
    """One scored location in the explanation."""

    location_id: str
    km: float
    need: int
    """Units short of target there (0 when none)."""
    load: int
    """Items already routed there today, before this line."""
    capacity: int | None
    score: float


@dataclass(frozen=True, slots=True)
class RoutedLine:
    line_id: str
    sku: str
    quantity: int
    location_id: str | None
    """None: nowhere can receive it."""
    km: float | None
    """Customer -> chosen location."""
    central_location: str | None
    central_km: float | None
    """Customer -> the central returns DC: the baseline for km avoided."""
    need_covered: int
    """min(quantity, need at the chosen location)."""
    reason: str
    """One sentence: why this location (or why none)."""
    candidates: tuple[CandidateTrace, ...]
    """The best ``trace_top`` scored candidates, best first."""
    excluded: Mapping[str, int]
    """Reason (``EXCLUDED_*``) -> how many locations were excluded for it, each location counted
    once under its first failing check (accepting, distance, opening, capacity); reasons with no
    location are left out."""
    fallback: bool = False
    """Sent to the central returns DC because no location qualified."""


EXCLUDED_NOT_ACCEPTING = "does not accept returns"
EXCLUDED_TOO_FAR = "beyond max_km"
EXCLUDED_CLOSED = "closed"
"""Not open at any moment within the horizon (weekly hours and closed dates)."""
EXCLUDED_FULL = "full"
"""This line would take it over its receiving capacity for the day."""

_KM_PER_DEGREE_LAT = 6371.0088 * math.pi / 180 * (1 - 1e-9)
"""Great-circle km per degree of latitude, a hair under so the pre-filter never excludes wrongly."""


class ReturnNetwork:
    """The sites that can receive returns, prepared once per network version so a decision is fast."""

    def __init__(self, sites: Mapping[str, Site], policy: RoutingPolicy = RoutingPolicy()) -> None:
        self.sites = sites
        self.policy = policy
        accepting = sorted(
            (s for s in sites.values() if Capability.ACCEPTS_RETURNS in s.capabilities),
            key=lambda s: s.location_id,
        )
        self._not_accepting = len(sites) - len(accepting)
        self._ids = [s.location_id for s in accepting]
        self._index = {location_id: i for i, location_id in enumerate(self._ids)}
        self._lats = [s.lat for s in accepting]
        self._lons = [s.lon for s in accepting]
        self._capacity = [s.returns_per_day for s in accepting]
        # Many sites share one calendar (a format's opening hours): check each distinct one once.
        calendars: dict[Calendar, int] = {}
        self._calendar_of = [calendars.setdefault(s.calendar, len(calendars)) for s in accepting]
        self._calendars = list(calendars)
        self._open_cache: list[tuple[int, int, int | None]] = [(0, 0, None)] * len(self._calendars)
        # The default baseline: non-store sites that accept returns (returns DCs, DCs).
        self._hubs = [i for i, s in enumerate(accepting) if not s.is_store]

    # -- the baseline --------------------------------------------------------------------------------

    def central_for(self, lat: float, lon: float) -> tuple[str, float] | None:
        """The central returns DC for a point and its km: the policy's, or else the nearest non-store
        site that accepts returns (ties on id); None when there is none."""
        central = self.policy.central_location
        if central is not None:
            site = self.sites.get(central)
            return None if site is None else (central, haversine_km(lat, lon, site.lat, site.lon))
        best: tuple[float, str] | None = None
        for i in self._hubs:
            candidate = (haversine_km(lat, lon, self._lats[i], self._lons[i]), self._ids[i])
            if best is None or candidate < best:
                best = candidate
        return None if best is None else (best[1], best[0])

    # -- calendars -----------------------------------------------------------------------------------

    def _opens_within(self, calendar: int, now_ms: int, horizon_ms: int) -> bool:
        valid_from, valid_until, opens_at = self._open_cache[calendar]
        if not valid_from <= now_ms < valid_until:
            valid_from, valid_until, opens_at = _next_opening(
                self._calendars[calendar], now_ms, self.policy.horizon_days
            )
            self._open_cache[calendar] = (valid_from, valid_until, opens_at)
        # Within [valid_from, valid_until) the next opening is max(opens_at, now).
        return opens_at is not None and opens_at < now_ms + horizon_ms

    def opens_within_horizon(self, site: Site, now_ms: int) -> bool:
        """Whether a site is open at some moment of [now, now + horizon_days)."""
        _, _, opens_at = _next_opening(site.calendar, now_ms, self.policy.horizon_days)
        return opens_at is not None and opens_at < now_ms + self.policy.horizon_days * MS_PER_DAY

    # -- routing -------------------------------------------------------------------------------------

    def route(
        self,
        lines: Sequence[ReturnLine],
        lat: float,
        lon: float,
        need: Callable[[str], Mapping[str, int]],
        load: Mapping[str, int],
        now_ms: int,
    ) -> tuple[RoutedLine, ...]:
        """Where each line of a return from (lat, lon) goes, in order (see the module docstring).

        ``need``: SKU -> {location id: units short of target}; ``load``: location id -> items
        already routed there today. Each routed line adds to a local copy of the load, so later
        lines of the same return see it (capacity, load cost) and get the parcel bonus."""
        for line in lines:
            if line.quantity < 1:
                raise ValueError(f"return line {line.line_id}: quantity must be >= 1, got {line.quantity}")
        policy = self.policy
        horizon_ms = policy.horizon_days * MS_PER_DAY
        central = self.central_for(lat, lon)

        # Per return, not per line: who is near enough and open at all, and how far.
        lat_gap = policy.max_km / _KM_PER_DEGREE_LAT
        too_far = closed = 0
        reachable: list[tuple[int, float]] = []
        for i, site_lat in enumerate(self._lats):
            if abs(site_lat - lat) > lat_gap:
                too_far += 1
                continue
            km = haversine_km(lat, lon, site_lat, self._lons[i])
            if km > policy.max_km:
                too_far += 1
            elif not self._opens_within(self._calendar_of[i], now_ms, horizon_ms):
                closed += 1
            else:
                reachable.append((i, km))
        base_excluded = {
            EXCLUDED_NOT_ACCEPTING: self._not_accepting,
            EXCLUDED_TOO_FAR: too_far,
            EXCLUDED_CLOSED: closed,
        }

        running = dict(load)
        parcels: dict[str, str] = {}
        """Location id -> the first line of this return routed there."""
        needs: dict[str, Mapping[str, int]] = {}
        routed: list[RoutedLine] = []
        for line in lines:
            short = needs.get(line.sku)
            if short is None:
                short = needs[line.sku] = need(line.sku)
            routed.append(
                self._route_line(
                    line, reachable, short, running, parcels, base_excluded, central, now_ms, horizon_ms
                )
            )
            chosen = routed[-1].location_id
            if chosen is not None:
                running[chosen] = running.get(chosen, 0) + line.quantity
                parcels.setdefault(chosen, line.line_id)
        return tuple(routed)

    def _route_line(
        self,
        line: ReturnLine,
        reachable: Sequence[tuple[int, float]],
        short: Mapping[str, int],
        running: Mapping[str, int],
        parcels: Mapping[str, str],
        base_excluded: Mapping[str, int],
        central: tuple[str, float] | None,
        now_ms: int,
        horizon_ms: int,
    ) -> RoutedLine:
        policy = self.policy
        quantity = line.quantity
        full = 0
        # (score, location id, km, need, load, capacity): tuples sort on score, then id.
        scored: list[tuple[float, str, float, int, int, int | None]] = []
        for i, km in reachable:
            location_id = self._ids[i]
            capacity = self._capacity[i]
            current = running.get(location_id, 0)
            if capacity is not None and current + quantity > capacity:
                full += 1
                continue
            units_short = max(0, short.get(location_id, 0))
            score = policy.km_weight * km - policy.need_weight * min(quantity, units_short)
            if capacity:
                score += policy.load_weight * current / capacity
            if location_id in parcels:
                score -= policy.parcel_weight
            scored.append((score, location_id, km, units_short, current, capacity))
        excluded = {**base_excluded, EXCLUDED_FULL: full}
        excluded = {reason: n for reason, n in excluded.items() if n}
        best = heapq.nsmallest(policy.trace_top, scored) if policy.trace_top > 0 else []
        if scored and not best:
            best = [min(scored)]
        trace = tuple(
            CandidateTrace(loc, km, n, ld, cap, score)
            for score, loc, km, n, ld, cap in best[: policy.trace_top]
        )
        central_id, central_km = central if central is not None else (None, None)

        def routed_to(
            location_id: str | None, km: float | None, covered: int, reason: str, fallback: bool = False
        ) -> RoutedLine:
            return RoutedLine(
                line.line_id,
                line.sku,
                quantity,
                location_id,
                km,
                central_id,
                central_km,
                covered,
                reason,
                trace,
                excluded,
                fallback,
            )

        if best:
            _, location_id, km, units_short, _, _ = best[0]
            covered = min(quantity, units_short)
            return routed_to(location_id, km, covered, self._reason(best[0], scored, parcels))
        if central_id is not None and central_km is not None:
            # The catch-all: its capacity and max_km do not apply, accepting and opening do.
            index = self._index.get(central_id)
            if index is not None and self._opens_within(self._calendar_of[index], now_ms, horizon_ms):
                km = central_km
                covered = min(quantity, max(0, short.get(central_id, 0)))
                reason = f"fallback: central returns DC {central_id} (no other location can receive it)"
                return routed_to(central_id, km, covered, reason, fallback=True)
            why_not = (
                "does not accept returns"
                if index is None
                else f"is closed for the next {policy.horizon_days} days"
            )
            return routed_to(
                None,
                None,
                0,
                f"nowhere can receive it: no location qualifies and central {central_id} {why_not}",
            )
        return routed_to(
            None, None, 0, "nowhere can receive it: no location qualifies and there is no central returns DC"
        )

    def _reason(
        self,
        chosen: tuple[float, str, float, int, int, int | None],
        scored: Sequence[tuple[float, str, float, int, int, int | None]],
        parcels: Mapping[str, str],
    ) -> str:
        _, location_id, km, units_short, current, capacity = chosen
        joins = f", joins line {parcels[location_id]}'s parcel" if location_id in parcels else ""
        if units_short > 0:
            return f"needs {units_short} (stock below target), {km:.0f} km{joins}"
        nearest = min(scored, key=lambda c: (c[2], c[1]))
        needy = [c for c in scored if c[3] > 0]
        if needy:
            _, needy_id, needy_km, *_ = min(needy, key=lambda c: (c[2], c[1]))
            why = f"{needy_id} needs it but scores worse at {needy_km:.0f} km"
        else:
            why = "no location needs it"
        if nearest[1] == location_id:
            return f"nearest that accepts returns, {km:.0f} km ({why}){joins}"
        load_note = f", load {current}/{capacity}" if capacity else ""
        return f"best on distance and load, {km:.0f} km{load_note} ({why}){joins}"


def _next_opening(cal: Calendar, now_ms: int, days: int) -> tuple[int, int, int | None]:
    """(valid_from, valid_until, opens_at): for every ``t`` in [valid_from, valid_until) the
    calendar's next opening at or after ``t`` is ``max(opens_at, t)``; opens_at None: none within
    ``days`` days of ``now_ms``.

    The first opening interval [start, end) that has not ended at ``now_ms``: nothing opens between
    now and ``start``, and [start, end) is open, so the answer holds until ``end``."""
    first = local_date(cal.timezone, now_ms) - timedelta(days=1)
    for offset in range(days + 3):
        for start, end in opening_intervals(cal, first + timedelta(days=offset)):
            if end > now_ms:
                return now_ms, end, start
    # Searched past now + days (a DST hour aside): none within the horizon for at least half a day.
    return now_ms, now_ms + MS_PER_DAY // 2, None


# --- km avoided -----------------------------------------------------------------------------------


def km_avoided(central_km: float | None, km: float | None) -> float:
    """Km not travelled against sending the item to the central returns DC (never negative)."""
    if central_km is None or km is None:
        return 0.0
    return max(0.0, central_km - km)


def store_return_km_avoided(network: ReturnNetwork, store_id: str) -> float:
    """An item returned over a store's till and restocked there: the km from that store to the
    central returns DC (the trip it would otherwise have made); 0 for an unknown store or none."""
    store = network.sites.get(store_id)
    if store is None:
        return 0.0
    central = network.central_for(store.lat, store.lon)
    if central is None or central[0] == store_id:
        return 0.0
    return central[1]
