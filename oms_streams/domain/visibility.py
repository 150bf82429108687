"""What each sales channel may see of the physical stock.

Visibility never changes a physical position; it is a view over ATP decided by rules that are data:
channel exposure (which location types a channel sees), hierarchical safety stock (most specific
wins), a cap on how much of a store's stock goes online, and a maximum lead time for third-party
stock. Every unit a rule hides is accounted for, so operators can see what each rule costs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from oms_streams.domain.inventory import StockPosition, available_to_promise, free_lots
from oms_streams.domain.values import value


class LocationType(StrEnum):
    DC = "dc"
    STORE = "store"
    THIRD_PARTY = "third_party"


class HiddenBy(StrEnum):
    """The rule that kept units of ATP out of a channel's view."""

    EXPOSURE = "exposure"
    LEAD_TIME = "lead_time"
    SAFETY_STOCK = "safety_stock"
    STORE_CAP = "store_cap"
    PROTECTION = "protection"
    """Kept for the store's walk-in shoppers (forecast-aware protection)."""


# Read per position and channel: module constants, as reading an enum member costs 0.3 µs in
# CPython 3.11 (a global 0.05) and location_view read about 15 per position.
_STORE, _THIRD_PARTY = LocationType.STORE, LocationType.THIRD_PARTY
_EXPOSURE, _LEAD_TIME, _SAFETY_STOCK, _STORE_CAP, _PROTECTION = (
    HiddenBy.EXPOSURE,
    HiddenBy.LEAD_TIME,
    HiddenBy.SAFETY_STOCK,
    HiddenBy.STORE_CAP,
    HiddenBy.PROTECTION,
)


@dataclass(frozen=True, slots=True)
class Location:
    location_id: str
    type: LocationType
    name: str = ""
    lat: float | None = None
    lon: float | None = None
    region: str = ""
    active: bool = True
    online_cap_pct: float | None = None
    """Overrides the rules' store cap for this store."""


@dataclass(frozen=True, slots=True)
class ChannelRule:
    channel: str
    location_types: frozenset[LocationType]
    store_cap_applies: bool = False
    """Whether the per-store cap on online exposure limits this channel."""
    max_lead_time_hours: int | None = None
    """Third-party stock slower than this is hidden; None shows any lead time."""
    low_stock: int = 0
    """Quantity at or below which the webshop shows 'low stock'; a publication threshold."""


@dataclass(frozen=True, slots=True)
class SafetyStock:
    """Units held back per position; the most specific entry wins."""

    default: int = 0
    by_location_type: Mapping[LocationType, int] = field(default_factory=dict)
    by_sku_location: Mapping[tuple[str, str], int] = field(default_factory=dict)
    by_sku_location_channel: Mapping[tuple[str, str, str], int] = field(default_factory=dict)

    def for_position(self, sku: str, location: Location, channel: str) -> int:
        if not self.by_sku_location_channel and not self.by_sku_location:  # the usual case: no tuples
            return self.by_location_type.get(location.type, self.default)
        key = (sku, location.location_id)
        if (sku, location.location_id, channel) in self.by_sku_location_channel:
            return self.by_sku_location_channel[(sku, location.location_id, channel)]
        if key in self.by_sku_location:
            return self.by_sku_location[key]
        return self.by_location_type.get(location.type, self.default)


@dataclass(frozen=True, slots=True)
class VisibilityRules:
    channels: tuple[ChannelRule, ...]
    safety_stock: SafetyStock = SafetyStock()
    store_online_cap_pct: float = 100.0
    thresholds_only: bool = False
    """Publish only when a visible quantity crosses 0 or its channel's low-stock level."""
    version: str = "builtin"


DEFAULT_RULES = VisibilityRules(
    channels=(
        ChannelRule(
            "webshop",
            frozenset({LocationType.DC, LocationType.STORE, LocationType.THIRD_PARTY}),
            store_cap_applies=True,
            max_lead_time_hours=72,
            low_stock=3,
        ),
        ChannelRule("marketplace", frozenset({LocationType.DC}), low_stock=3),
        ChannelRule("click_and_collect", frozenset({LocationType.STORE}), low_stock=1),
    ),
)
"""Used until a rules document arrives on the config topic: DCs and stores for the webshop,
DCs only for marketplaces, each pickup store for click & collect."""


@dataclass(frozen=True, slots=True)
class ChannelView:
    channel: str
    total: int
    by_location: Mapping[str, int]
    """Visible units per location, only where positive."""


@dataclass(frozen=True, slots=True)
class SkuAvailability:
    sku: str
    network_atp: int
    channels: tuple[ChannelView, ...]
    lead_time_hours: Mapping[str, int]
    """Lead time of each visible third-party location."""
    hidden: Mapping[tuple[str, LocationType, HiddenBy], int]
    """Units of ATP hidden per (channel, location type, rule)."""
    protected: Mapping[str, int] = field(default_factory=dict)
    """Units each store protects for walk-in demand (already out of every channel's view)."""
    short: Mapping[str, int] = field(default_factory=dict)
    """Units each location lacks to reach its target stock (see ``LocationView.short``): where
    return routing sends returned items."""
    inbound: Mapping[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    """Location -> (ETA, units) of the announced inbound lots not preordered yet, earliest first:
    what a preorder may promise (``docs/preorders.md``)."""

    def channel(self, name: str) -> ChannelView | None:
        return next((c for c in self.channels if c.channel == name), None)


def visible_quantity(
    sku: str,
    location: Location,
    position: StockPosition,
    rule: ChannelRule,
    rules: VisibilityRules,
    protection: int = 0,
) -> tuple[int, dict[HiddenBy, int]]:
    """Units of one position a channel may see, and how many units each rule hid."""
    safety = rules.safety_stock.for_position(sku, location, rule.channel)
    full, atp = available_to_promise(position), available_to_promise(position, protection)
    visible, hidden = _seen(location, position, rule, rules, full, atp, safety)
    return visible, dict(hidden)


def _seen(
    location: Location,
    position: StockPosition,
    rule: ChannelRule,
    rules: VisibilityRules,
    full: int,
    atp: int,
    safety: int,
) -> tuple[int, list[tuple[HiddenBy, int]]]:
    """``visible_quantity`` given the position's ATP without (``full``) and with protection (``atp``)
    and the channel's safety stock there: a location's view works these out once for all channels."""
    if not location.active or location.type not in rule.location_types:
        return 0, [(_EXPOSURE, full)]
    if (
        location.type is _THIRD_PARTY
        and rule.max_lead_time_hours is not None
        and (position.lead_time_hours or 0) > rule.max_lead_time_hours
    ):
        return 0, [(_LEAD_TIME, full)]
    hidden = [(_PROTECTION, full - atp)] if full > atp else []
    visible = max(0, atp - max(0, safety))
    hidden.append((_SAFETY_STOCK, atp - visible))
    if rule.store_cap_applies and location.type is _STORE:
        pct = location.online_cap_pct if location.online_cap_pct is not None else rules.store_online_cap_pct
        cap = math.floor(atp * min(max(pct, 0.0), 100.0) / 100.0)
        if visible > cap:
            hidden.append((_STORE_CAP, visible - cap))
            visible = cap
    return visible, hidden


@value(frozen=True)
class LocationView:
    """One position seen through every channel: the unit a worker caches and recomputes on change."""

    location_id: str
    type: LocationType
    atp: int
    visible: tuple[int, ...]
    """Visible units per channel, in the order of ``rules.channels``."""
    hidden: tuple[tuple[str, HiddenBy, int], ...]
    """(channel, rule, units) for every rule that hid units here."""
    lead_time_hours: int | None
    protected: int = 0
    """Units of ATP the store keeps for walk-in demand."""
    short: int = 0
    """Units below the location's target stock: its forecast demand until the next replenishment
    (the protection quantity) plus the largest safety stock any channel keeps there."""
    inbound: tuple[tuple[int, int], ...] | None = None
    """(ETA, units) of the inbound lots not preordered yet, earliest first; None without any."""


def location_view(
    sku: str, location: Location, position: StockPosition, rules: VisibilityRules, protection: int = 0
) -> LocationView:
    """The position through every channel; the hot path of availability (once per changed position):
    ATP and each channel's safety stock are worked out once here, not per rule."""
    full = available_to_promise(position)
    atp = available_to_promise(position, protection) if protection > 0 else full
    safety_of = rules.safety_stock.for_position
    visible: list[int] = []
    hidden: list[tuple[str, HiddenBy, int]] = []
    largest_safety = 0  # one physical buffer serves every channel: the target keeps the largest
    for rule in rules.channels:
        safety = safety_of(sku, location, rule.channel)
        if safety > largest_safety:
            largest_safety = safety
        qty, hidden_here = _seen(location, position, rule, rules, full, atp, safety)
        visible.append(qty)
        for why, units in hidden_here:  # a loop, not a generator: once per position and channel
            if units:
                hidden.append((rule.channel, why, units))
    is_third_party = location.type is _THIRD_PARTY
    return LocationView(
        location_id=location.location_id,
        type=location.type,
        atp=atp,
        visible=tuple(visible),
        hidden=tuple(hidden),
        lead_time_hours=position.lead_time_hours if is_third_party else None,
        protected=full - atp,
        short=max(0, max(0, protection) + largest_safety - full) if location.active else 0,
        inbound=(free_lots(position) or None) if position.lots and location.active else None,
    )


def combine(sku: str, views: Iterable[LocationView], rules: VisibilityRules) -> SkuAvailability:
    """The SKU's availability from the views of its locations (cheap: no rule is evaluated here)."""
    by_location: list[dict[str, int]] = [{} for _ in rules.channels]
    hidden: dict[tuple[str, LocationType, HiddenBy], int] = {}
    lead_times: dict[str, int] = {}
    protected: dict[str, int] = {}
    short: dict[str, int] = {}
    inbound: dict[str, tuple[tuple[int, int], ...]] = {}
    network_atp = 0
    for view in sorted(views, key=lambda v: v.location_id):
        network_atp += view.atp
        for index, qty in enumerate(view.visible):
            if qty > 0:
                by_location[index][view.location_id] = qty
        for channel, why, units in view.hidden:
            key = (channel, view.type, why)
            hidden[key] = hidden.get(key, 0) + units
        if view.protected:
            protected[view.location_id] = view.protected
        if view.short:
            short[view.location_id] = view.short
        if view.inbound is not None:
            inbound[view.location_id] = view.inbound
        if view.lead_time_hours is not None and any(view.visible):
            lead_times[view.location_id] = view.lead_time_hours
    return SkuAvailability(
        sku=sku,
        network_atp=network_atp,
        channels=tuple(
            ChannelView(rule.channel, sum(shown.values()), shown)
            for rule, shown in zip(rules.channels, by_location, strict=True)
        ),
        lead_time_hours=lead_times,
        hidden=hidden,
        protected=protected,
        short=short,
        inbound=inbound,
    )


class RunningAvailability:
    """A SKU's availability kept up to date one location at a time.

    Replacing one location's view costs O(channels), not O(locations): a reservation or a till
    sale of a fast mover changes one of its hundreds of locations. ``availability()`` gives the
    same figures as ``combine`` over the current views (location order aside). ``changed`` says
    whether what a publication shows (visible units per channel and location, shortfalls) moved
    since ``published()``, so an unchanged SKU costs no comparison of all its locations.
    ``hidden_totals``, when given, is kept in step with the units hidden here (a worker's sum over
    its SKUs: the view adds and takes away its own share as locations change).
    """

    __slots__ = (
        "by_location",
        "changed",
        "hidden",
        "hidden_totals",
        "inbound",
        "lead_times",
        "network_atp",
        "protected",
        "rules",
        "short",
        "sku",
        "totals",
        "views",
    )

    def __init__(
        self,
        sku: str,
        rules: VisibilityRules,
        hidden_totals: dict[tuple[str, LocationType, HiddenBy], int] | None = None,
    ) -> None:
        self.sku = sku
        self.rules = rules
        self.views: dict[str, LocationView] = {}
        self.by_location: list[dict[str, int]] = [{} for _ in rules.channels]
        self.totals: list[int] = [0 for _ in rules.channels]
        self.hidden: dict[tuple[str, LocationType, HiddenBy], int] = {}
        self.hidden_totals = hidden_totals
        self.lead_times: dict[str, int] = {}
        self.protected: dict[str, int] = {}
        self.short: dict[str, int] = {}
        self.inbound: dict[str, tuple[tuple[int, int], ...]] = {}
        self.network_atp = 0
        self.changed = True
        """Whether the visible units or shortfalls moved since ``published()`` (or ever)."""

    def put(self, view: LocationView) -> None:
        location_id = view.location_id
        before = self.views.get(location_id)
        if (
            before is None
            or before.visible != view.visible
            or before.short != view.short
            or before.inbound != view.inbound
        ):
            self.changed = True
        self._take_out(location_id)
        self.views[location_id] = view
        self.network_atp += view.atp
        for index, qty in enumerate(view.visible):
            if qty > 0:
                self.by_location[index][location_id] = qty
                self.totals[index] += qty
        self._count_hidden(view, 1)
        if view.protected:
            self.protected[location_id] = view.protected
        if view.short:
            self.short[location_id] = view.short
        if view.inbound is not None:
            self.inbound[location_id] = view.inbound
        if view.lead_time_hours is not None and any(view.visible):
            self.lead_times[location_id] = view.lead_time_hours

    def remove(self, location_id: str) -> None:
        if location_id in self.views:
            self.changed = True
            self._take_out(location_id)

    def published(self) -> None:
        """What the views show now is what was last published (or found already published)."""
        self.changed = False

    def _take_out(self, location_id: str) -> None:
        view = self.views.pop(location_id, None)
        if view is None:
            return
        self.network_atp -= view.atp
        for index, qty in enumerate(view.visible):
            if qty > 0:
                del self.by_location[index][location_id]
                self.totals[index] -= qty
        self._count_hidden(view, -1)
        self.protected.pop(location_id, None)
        self.short.pop(location_id, None)
        self.inbound.pop(location_id, None)
        self.lead_times.pop(location_id, None)

    def _count_hidden(self, view: LocationView, sign: int) -> None:
        hidden, totals = self.hidden, self.hidden_totals
        for channel, why, units in view.hidden:
            key = (channel, view.type, why)
            left = hidden.get(key, 0) + sign * units
            if left:
                hidden[key] = left
            else:
                del hidden[key]
            if totals is not None:  # zeros kept: a gauge that drops to 0 must say so
                totals[key] = totals.get(key, 0) + sign * units

    def availability(self) -> SkuAvailability:
        return SkuAvailability(
            sku=self.sku,
            network_atp=self.network_atp,
            channels=tuple(
                ChannelView(rule.channel, total, dict(shown))
                for rule, total, shown in zip(self.rules.channels, self.totals, self.by_location, strict=True)
            ),
            lead_time_hours=dict(self.lead_times),
            hidden=dict(self.hidden),
            protected=dict(self.protected),
            short=dict(self.short),
            inbound=dict(self.inbound),
        )


def sku_availability(
    sku: str,
    positions: Mapping[str, StockPosition],
    locations: Mapping[str, Location],
    rules: VisibilityRules,
    protection: Mapping[str, int] | None = None,
) -> SkuAvailability:
    """The view of one SKU across the network. Positions at unknown locations are never visible."""
    protection = protection or {}
    return combine(
        sku,
        (
            location_view(sku, locations[loc_id], position, rules, protection.get(loc_id, 0))
            for loc_id, position in positions.items()
            if loc_id in locations
        ),
        rules,
    )


def _level(quantity: int, low_stock: int) -> int:
    """0 = out of stock, 1 = low stock, 2 = in stock."""
    return 0 if quantity <= 0 else 1 if quantity <= low_stock else 2


def publication_signature(availability: SkuAvailability, rules: VisibilityRules) -> tuple[object, ...]:
    """What must differ from the last publication for a new one to be worth sending.

    Exact visible quantities by default; with ``thresholds_only`` just the stock level (out / low /
    in stock) of every visible quantity, so a busy till does not flood the webshop. Either way, the
    locations short of their target stock (what return routing reads) are part of it.
    """
    if not rules.thresholds_only:
        # Compared with ==, never hashed: the mappings compare by content, without sorting them.
        by_channel = ((view.channel, view.by_location) for view in availability.channels)
        return (*by_channel, availability.short, availability.inbound)
    low = {r.channel: r.low_stock for r in rules.channels}
    # Where stock is short of target matters to return routing; by how much, only at the next publication.
    return (
        frozenset(availability.short),
        frozenset(availability.inbound.items()),
        *(
            (
                view.channel,
                _level(view.total, low[view.channel]),
                tuple(sorted((loc, _level(q, low[view.channel])) for loc, q in view.by_location.items())),
            )
            for view in availability.channels
        ),
    )


def distances_within(
    locations: Iterable[Location], lat: float, lon: float, radius_km: float
) -> dict[str, float]:
    """Great-circle km to each location with coordinates within ``radius_km`` of a point, by id."""
    distances = {
        loc.location_id: haversine_km(lat, lon, loc.lat, loc.lon)
        for loc in locations
        if loc.lat is not None and loc.lon is not None
    }
    return {location_id: km for location_id, km in distances.items() if km <= radius_km}


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(min(1.0, a)))
