"""Delivery promise for a whole cart: every option the retailer can really meet, and when.

Pure: the caller passes the moment of asking, the visible stock per channel, the network and the
learned transit model. A promise never claims what physics forbids: it is never earlier than
pick + pack + handover + the fastest transit ever observed, and never lands on a day the location
or the carrier does not work.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

from oms_streams.domain.calendar import (
    HORIZON_DAYS,
    MS_PER_DAY,
    MS_PER_HOUR,
    MS_PER_MINUTE,
    Window,
    add_working_minutes,
    day_window,
    local_date,
    local_time_ms,
    next_open,
    next_weekly,
    opening_intervals,
)
from oms_streams.domain.network import (
    Calendar,
    Capability,
    CarrierService,
    CourierProfile,
    DeliveryMethod,
    PromiseNetwork,
    Route,
    Site,
)
from oms_streams.domain.transit import SOURCE_BAND, SOURCE_LANE, Lane, TransitModel, distance_band
from oms_streams.domain.visibility import haversine_km

Stock = Mapping[str, Mapping[str, Mapping[str, int]]]
"""channel -> SKU -> location id -> visible units (the availability feed's per-location view)."""

CHANNEL_FOR_METHOD: Mapping[DeliveryMethod, str] = {
    DeliveryMethod.STANDARD: "webshop",
    DeliveryMethod.GREEN: "webshop",
    DeliveryMethod.SHIP_FROM_STORE: "webshop",
    DeliveryMethod.COURIER: "webshop",
    DeliveryMethod.CLICK_AND_COLLECT: "click_and_collect",
}


@dataclass(frozen=True, slots=True)
class CartLine:
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class Destination:
    """Where the cart goes: a home address (coordinates + region), or a chosen pickup store."""

    lat: float | None = None
    lon: float | None = None
    postal_code: str = ""
    region: str = ""
    timezone: str | None = None
    """For the home-delivery window; the carrier calendar's time zone when absent."""
    pickup_store_id: str | None = None


@dataclass(frozen=True, slots=True)
class PromiseRequest:
    request_id: str
    cart: tuple[CartLine, ...]
    destination: Destination
    asked_at_ms: int
    methods: frozenset[DeliveryMethod] = frozenset(DeliveryMethod)


@dataclass(frozen=True, slots=True)
class Shipment:
    """One parcel (or one route transfer) of an option: where from, what, and its timeline."""

    location_id: str
    lines: tuple[CartLine, ...]
    ready_at_ms: int
    """Picked and packed (working time at the origin)."""
    handover_at_ms: int
    """Carrier pickup, route departure, courier departure, or (click & collect from own stock)
    the ready time."""
    arrives_at_ms: int
    """Expected delivery / arrival at the pickup store, at the promise's quantile."""
    service_id: str | None = None
    route_id: str | None = None
    distance_km: float = 0.0
    transit_source: str | None = None
    """'lane' | 'band' | 'service' | 'prior' for carrier legs (see ``TransitEstimate.source``)."""


@dataclass(frozen=True, slots=True)
class DeliveryOption:
    option_id: str
    """Stable within a response: 'standard', 'green', 'ship_from_store', 'click_and_collect:<store>',
    'courier:<store>'."""
    method: DeliveryMethod
    window_start_ms: int
    window_end_ms: int
    """Delivered (or ready for pickup) within [start, end] with probability >= confidence."""
    confidence: float | None
    """None when a carrier leg was timed without evidence (no lane or distance band with
    ``min_lane_samples`` of history): the window is the carrier's claim, not a learned quantile."""
    parcels: int
    co2e_g: float
    shipments: tuple[Shipment, ...]
    pickup_store_id: str | None = None


@dataclass(frozen=True, slots=True)
class Unavailable:
    method: DeliveryMethod
    reason: str


@dataclass(frozen=True, slots=True)
class PromiseResult:
    request_id: str
    asked_at_ms: int
    options: tuple[DeliveryOption, ...]
    unavailable: tuple[Unavailable, ...] = field(default=())
    """Methods not offered, each with why (no stock, out of courier range, no slot, ...)."""


def promise_options(
    request: PromiseRequest,
    stock: Stock,
    network: PromiseNetwork,
    transit: TransitModel,
    booked_courier_slots: Mapping[tuple[str, int], int] | None = None,
) -> PromiseResult:
    """Every option for the cart; ``booked_courier_slots`` maps (store, slot start ms) to bookings.

    Options are sorted by window end, then CO2e; a requested method that cannot be offered gets
    one ``Unavailable`` entry saying why."""
    plan = _Plan(request, stock, network, transit, booked_courier_slots or {})
    options: list[DeliveryOption] = []
    unavailable: list[Unavailable] = []
    unknown = _unknown_skus(plan.need, stock)
    if unknown:
        # Not "out of stock": the availability feed has never heard of it (a typo, a retired SKU).
        why = f"unknown SKU {', '.join(unknown)}"
        missing = tuple(Unavailable(m, why) for m in _METHOD_ORDER if m in request.methods)
        return PromiseResult(request.request_id, request.asked_at_ms, (), missing)
    horizon_end = request.asked_at_ms + network.policy.horizon_days * MS_PER_DAY
    for method in _METHOD_ORDER:
        if method not in request.methods:
            continue
        found = _PLANNERS[method](plan) if plan.need else "the cart is empty"
        if isinstance(found, str):
            unavailable.append(Unavailable(method, found))
            continue
        in_horizon = [option for option in found if option.window_end_ms <= horizon_end]
        if in_horizon:
            options.extend(in_horizon)
        else:
            days = network.policy.horizon_days
            unavailable.append(Unavailable(method, f"cannot be met within the {days}-day horizon"))
    options.sort(key=lambda o: (o.window_end_ms, o.co2e_g, o.option_id))
    return PromiseResult(request.request_id, request.asked_at_ms, tuple(options), tuple(unavailable))


def _unknown_skus(need: Mapping[str, int], stock: Stock) -> list[str]:
    """Cart SKUs no channel of the stock mapping knows (not even with zero units)."""
    return [sku for sku in need if not any(sku in by_sku for by_sku in stock.values())]


def courier_ride_ms(profile: CourierProfile, distance_km: float) -> int:
    """Riding time from the store to the customer, rounded up to the millisecond."""
    return math.ceil(distance_km / profile.ride_kmh * MS_PER_HOUR)


# --- what a network derives once -------------------------------------------------------------------

_CELL_DEGREES = 0.25
"""Grid cell of the spatial index (about 28 km north-south)."""
_KM_PER_DEGREE = 111.0
"""A little under a degree of latitude (111.19 km), so the grid search never looks too short."""


class _Index:
    """Lookups one network derives once and every promise over it reuses: which sites have a
    capability, a coarse lat/lon grid of them, the routes stopping at each store, services per
    method. The streaming layer builds a new PromiseNetwork on every config change, so a memo
    keyed by the network object is never stale."""

    __slots__ = ("by_capability", "grid", "radius_km", "routes_to", "services")

    def __init__(self, network: PromiseNetwork) -> None:
        self.by_capability: dict[Capability, frozenset[str]] = {
            capability: frozenset(
                s.location_id for s in network.sites.values() if capability in s.capabilities
            )
            for capability in Capability
        }
        self.grid: dict[Capability, dict[tuple[int, int], list[Site]]] = {}
        for capability in (Capability.CLICK_AND_COLLECT, Capability.COURIER):
            cells: dict[tuple[int, int], list[Site]] = {}
            for site in network.sites.values():
                if capability in site.capabilities:
                    cells.setdefault(_cell(site.lat, site.lon), []).append(site)
            self.grid[capability] = cells
        self.radius_km = max(
            (s.courier.radius_km for s in network.sites.values() if s.courier is not None), default=0.0
        )
        """The largest courier radius: how far to look for courier stores."""
        self.routes_to: dict[str, list[tuple[Route, int]]] = {}
        for route in network.routes:
            for index, (stop_id, _) in enumerate(route.stops):
                self.routes_to.setdefault(stop_id, []).append((route, index))
        self.services: dict[DeliveryMethod, list[CarrierService]] = {
            method: [s for s in network.services if s.method is method] for method in DeliveryMethod
        }


def _cell(lat: float, lon: float) -> tuple[int, int]:
    return math.floor(lat / _CELL_DEGREES), math.floor(lon / _CELL_DEGREES)


_INDEXES: dict[int, tuple[PromiseNetwork, _Index]] = {}
_MAX_INDEXES = 8


def _index(network: PromiseNetwork) -> _Index:
    # Keyed by id but holding the network itself: the id cannot be reused while the entry lives.
    entry = _INDEXES.get(id(network))
    if entry is not None and entry[0] is network:
        return entry[1]
    if len(_INDEXES) >= _MAX_INDEXES:
        _INDEXES.pop(next(iter(_INDEXES), 0), None)
    index = _Index(network)
    _INDEXES[id(network)] = (network, index)
    return index


# --- the per-request working state -----------------------------------------------------------------

_Holders = dict[str, dict[str, int]]
"""SKU -> location id -> units > 0, for every eligible location holding it; the cart's SKUs only."""

_EXACT_NEAREST = 8
"""Up to this many candidates, the nearest is found with great-circle distances only."""

_GREEN_CANDIDATES = 5
"""Green delivery compares this many of the nearest single-parcel sources (bounded work)."""

_RadiusOf = Callable[[Site], "float | None"]
"""A site's service radius in km, or None when it has none."""


class _Plan:
    """What one request computes at most once: merged cart, distances, ready times."""

    __slots__ = (
        "_candidates",
        "_distance",
        "_ready",
        "booked",
        "index",
        "need",
        "network",
        "request",
        "stock",
        "transit",
    )

    def __init__(
        self,
        request: PromiseRequest,
        stock: Stock,
        network: PromiseNetwork,
        transit: TransitModel,
        booked: Mapping[tuple[str, int], int],
    ) -> None:
        self.request = request
        self.stock = stock
        self.network = network
        self.transit = transit
        self.booked = booked
        self.index = _index(network)
        # One line per SKU, in cart order: duplicates are merged, empty lines dropped.
        self.need: dict[str, int] = {}
        for line in request.cart:
            if line.quantity > 0:
                self.need[line.sku] = self.need.get(line.sku, 0) + line.quantity
        self._candidates: dict[tuple[str, Capability], _Holders] = {}
        self._distance: dict[str, float] = {}
        self._ready: dict[tuple[str, int], int | None] = {}

    @property
    def has_coordinates(self) -> bool:
        return self.request.destination.lat is not None and self.request.destination.lon is not None

    @property
    def cart(self) -> tuple[CartLine, ...]:
        return tuple(CartLine(sku, quantity) for sku, quantity in self.need.items())

    def candidates(self, method: DeliveryMethod, capability: Capability) -> _Holders:
        """Who holds each cart SKU among the locations with the capability, read from the stock
        mapping: candidates come from where the stock is, never from scanning the whole network."""
        key = (CHANNEL_FOR_METHOD[method], capability)
        cached = self._candidates.get(key)
        if cached is not None:
            return cached
        allowed = self.index.by_capability[capability]
        by_sku = self.stock.get(key[0], {})
        holders: _Holders = {}
        for sku in self.need:
            units_at = by_sku.get(sku, {})
            # Walk whichever side is smaller: a few DCs among many holders, or the other way round.
            if len(allowed) < len(units_at):
                holders[sku] = {loc: units for loc in allowed if (units := units_at.get(loc, 0)) > 0}
            else:
                holders[sku] = {loc: units for loc, units in units_at.items() if units > 0 and loc in allowed}
        self._candidates[key] = holders
        return holders

    def held_at(self, method: DeliveryMethod, location_id: str) -> dict[str, int]:
        """Units of each cart SKU at one location in the method's channel."""
        by_sku = self.stock.get(CHANNEL_FOR_METHOD[method], {})
        return {sku: by_sku.get(sku, {}).get(location_id, 0) for sku in self.need}

    def covers(self, held: Mapping[str, int]) -> bool:
        return all(held.get(sku, 0) >= quantity for sku, quantity in self.need.items())

    def distance_km(self, site: Site) -> float:
        """Great-circle km from a site to the destination (0 without destination coordinates)."""
        km = self._distance.get(site.location_id)
        if km is None:
            destination = self.request.destination
            if destination.lat is None or destination.lon is None:
                km = 0.0
            else:
                km = haversine_km(site.lat, site.lon, destination.lat, destination.lon)
            self._distance[site.location_id] = km
        return km

    def ready(self, site: Site, minutes: int) -> int | None:
        """When ``minutes`` of work at ``site`` started at the asking moment is done."""
        key = (site.location_id, minutes)
        if key not in self._ready:
            self._ready[key] = add_working_minutes(site.calendar, self.request.asked_at_ms, minutes)
        return self._ready[key]

    def nearest(self, location_ids: Collection[str]) -> str:
        """The location nearest the destination (great circle; the smaller id on a tie).

        Many candidates (a fast mover in most stores) are first narrowed with a flat-earth
        distance, which is within a few per cent of the great circle at these scales, so only a
        short list needs the trigonometry."""
        sites = self.network.sites
        lat, lon = self.request.destination.lat, self.request.destination.lon
        if len(location_ids) > _EXACT_NEAREST and lat is not None and lon is not None:
            flat: list[tuple[float, str]] = []
            for location_id in location_ids:
                site = sites[location_id]
                dx = (site.lon - lon) * math.cos(math.radians((site.lat + lat) / 2))
                dy = site.lat - lat
                flat.append((dx * dx + dy * dy, location_id))
            closest = min(flat)[0]
            # 25 % in squared distance is about 12 % in distance; 1e-4 square degrees about a km.
            location_ids = [location_id for d2, location_id in flat if d2 <= closest * 1.25 + 1e-4]
        return min(location_ids, key=lambda location_id: (self.distance_km(sites[location_id]), location_id))

    def near(
        self, capability: Capability, search_km: float, radius_of: _RadiusOf
    ) -> list[tuple[Site, float]]:
        """Sites with the capability within their own radius of the destination, nearest first;
        only grid cells within ``search_km`` are looked at."""
        lat, lon = self.request.destination.lat, self.request.destination.lon
        if lat is None or lon is None:
            return []
        cells = self.index.grid[capability]
        row, column = _cell(lat, lon)
        rows = math.ceil(search_km / (_KM_PER_DEGREE * _CELL_DEGREES))
        # Longitude degrees shrink towards the poles: size the columns for the most poleward
        # latitude in reach, plus one for the great circle's shortcut; never more than a full turn.
        poleward = min(abs(lat) + (rows + 1) * _CELL_DEGREES, 90.0)
        lon_km = _KM_PER_DEGREE * _CELL_DEGREES * max(math.cos(math.radians(poleward)), 1e-6)
        columns = min(math.ceil(search_km / lon_km) + 1, int(180 / _CELL_DEGREES))
        sites: list[Site] = []
        if (2 * rows + 1) * (2 * columns + 1) > len(cells):
            for bucket in cells.values():
                sites.extend(bucket)
        else:
            wrap = int(360 / _CELL_DEGREES)
            for r in range(row - rows, row + rows + 1):
                for c in range(column - columns, column + columns + 1):
                    here = cells.get((r, (c + wrap // 2) % wrap - wrap // 2))
                    if here:
                        sites.extend(here)
        found: list[tuple[Site, float]] = []
        for site in sites:
            radius = radius_of(site)
            if radius is not None:
                km = self.distance_km(site)
                if km <= radius:
                    found.append((site, km))
        found.sort(key=lambda pair: (pair[1], pair[0].location_id))
        return found


@lru_cache(maxsize=1024)
def _in_timezone(calendar: Calendar, timezone: str) -> Calendar:
    return replace(calendar, timezone=timezone)


@dataclass(frozen=True, slots=True)
class _Leg:
    shipment: Shipment
    window: Window
    co2e_g: float


_EVIDENCE = frozenset({SOURCE_LANE, SOURCE_BAND})
"""Transit learned on the lane or its distance band; the service as a whole says nothing about a
distance it has never delivered over."""


def _option(option_id: str, method: DeliveryMethod, legs: Sequence[_Leg], plan: _Plan) -> DeliveryOption:
    # Parcels travel independently: the cart is delivered when the last one is.
    last = max(legs, key=lambda leg: (leg.window[1], leg.window[0]))
    learned = all(leg.shipment.transit_source in _EVIDENCE for leg in legs)
    return DeliveryOption(
        option_id=option_id,
        method=method,
        window_start_ms=last.window[0],
        window_end_ms=last.window[1],
        confidence=plan.network.policy.quantile if learned else None,
        parcels=len(legs),
        co2e_g=sum(leg.co2e_g for leg in legs),
        shipments=tuple(leg.shipment for leg in legs),
    )


# --- home delivery: standard, green, ship from store ----------------------------------------------


def _cover(plan: _Plan, holders: _Holders, where: str) -> list[tuple[Site, tuple[CartLine, ...]]] | str:
    """Fewest locations covering the cart (greedy set cover): each round takes the location that
    covers the most remaining units, the nearest on a tie. A line is split across locations only
    when no single location holds it whole."""
    need = plan.need
    if not any(holders.values()):
        return f"none of the cart is in stock at {where}"
    whole: set[str] = set()
    for sku, quantity in need.items():
        total = sum(holders[sku].values())
        if total < quantity:
            return f"not enough {sku} at {where} ({total} of {quantity})"
        if max(holders[sku].values()) >= quantity:
            whole.add(sku)
    sites = plan.network.sites
    # The common case first: somewhere holds it all, so the nearest such place ships one parcel.
    whole_cart = _whole_cart_holders(plan, holders)
    if whole_cart:
        return [(sites[plan.nearest(whole_cart)], plan.cart)]
    max_parcels = plan.network.policy.max_parcels
    remaining = dict(need)
    taken: dict[str, list[CartLine]] = {}
    while remaining:
        if len(taken) == max_parcels:
            return f"the cart would need more than {max_parcels} parcels from {where}"
        # Score only the holders of what is still missing: later rounds look at few SKUs.
        scores: dict[str, int] = {}
        for sku, left in remaining.items():
            split = sku not in whole
            for location_id, units in holders[sku].items():
                if location_id in taken:
                    continue
                if units >= left:
                    scores[location_id] = scores.get(location_id, 0) + left
                elif split:
                    scores[location_id] = scores.get(location_id, 0) + units
        if not scores:  # pragma: no cover - the totals above guarantee progress
            return f"not enough stock at {where}"
        best_score = max(scores.values())
        if not taken and best_score * max_parcels < sum(remaining.values()):
            # No location ever covers more than the best does now: too many parcels whatever the
            # choice. Saves the remaining rounds when the cart is spread thin (typical of stores).
            return f"the cart would need more than {max_parcels} parcels from {where}"
        best = plan.nearest([location_id for location_id, score in scores.items() if score == best_score])
        lines = taken[best] = []
        for sku, left in list(remaining.items()):
            units = holders[sku].get(best, 0)
            if units >= left:
                lines.append(CartLine(sku, left))
                del remaining[sku]
            elif units and sku not in whole:
                lines.append(CartLine(sku, units))
                remaining[sku] = left - units
    return [(sites[location_id], tuple(lines)) for location_id, lines in taken.items()]


def _collected(holders: _Holders, services: Sequence[CarrierService]) -> _Holders:
    """Only the holders some service collects from: a site no carrier visits does not ship."""
    if any(not service.origins for service in services):
        return holders
    visited = frozenset().union(*(service.origins for service in services))
    return {
        sku: {loc: units for loc, units in held.items() if loc in visited} for sku, held in holders.items()
    }


def _whole_cart_holders(plan: _Plan, holders: _Holders) -> set[str]:
    """Locations holding every line of the cart whole."""
    holding: set[str] | None = None
    for sku, quantity in plan.need.items():
        enough = {location_id for location_id, units in holders[sku].items() if units >= quantity}
        holding = enough if holding is None else holding & enough
        if not holding:
            return set()
    return holding or set()


def _carrier_leg(
    plan: _Plan, site: Site, lines: tuple[CartLine, ...], services: Sequence[CarrierService], kind: str
) -> _Leg | str:
    """The parcel's best carrier service at a site: earliest window end, then arrival, then CO2e.

    Choosing by the promised window end (not the raw arrival) keeps promises monotonic in the
    asking time: the minimum over services of a non-decreasing function is non-decreasing."""
    eligible = [s for s in services if not s.origins or site.location_id in s.origins]
    if not eligible:
        return f"no {kind} carrier service collects at {site.location_id}"
    destination = plan.request.destination
    distance = plan.distance_km(site)
    eligible = [s for s in eligible if s.serves(destination.region, distance)]
    if not eligible:
        return (
            f"the destination ({destination.region or 'no region'}, {distance:,.0f} km from "
            f"{site.location_id}) is outside every {kind} carrier's service area"
        )
    ready = plan.ready(site, site.pick_minutes + site.pack_minutes)
    if ready is None:
        return f"{site.location_id} does not open within {HORIZON_DAYS} days"
    policy = plan.network.policy
    tz = site.calendar.timezone
    best: tuple[tuple[int, int, float, str], _Leg] | None = None
    for service in eligible:
        # Packed cutoff_minutes before the pickup, on a day the site works.
        handover = next_weekly(
            service.pickups, tz, ready + service.cutoff_minutes * MS_PER_MINUTE, site.calendar
        )
        if handover is None:
            continue
        lane = Lane(service.service_id, site.region, destination.region, distance)
        try:
            estimate = plan.transit.estimate(
                lane, policy.quantile, policy.min_lane_samples, service.prior_transit_hours
            )
        except ValueError:  # no history and no prior: this service cannot be promised on
            continue
        calendar = service.delivery_calendar
        if destination.timezone:
            calendar = _in_timezone(calendar, destination.timezone)
        source = estimate.source
        # The promise: the lane's learned whole lead time (order -> delivery, local days at the
        # origin), the rule the backtest scores; before any is learned, the carrier leg's transit.
        learned = _learned_arrival(plan, lane, site, handover, service, calendar.timezone)
        if learned is None:
            # Never faster than the fastest transit ever seen: the physical floor.
            arrival = handover + math.ceil(max(estimate.hours, estimate.fastest_hours) * MS_PER_HOUR)
        else:
            arrival = max(handover + math.ceil(estimate.fastest_hours * MS_PER_HOUR), learned[0])
            source = learned[1]
        window = day_window(calendar, arrival)
        if window is None:
            continue
        co2e = distance * service.co2e_g_per_parcel_km
        key = (window[1], arrival, co2e, service.service_id)
        if best is None or key < best[0]:
            shipment = Shipment(
                location_id=site.location_id,
                lines=lines,
                ready_at_ms=ready,
                handover_at_ms=handover,
                arrives_at_ms=arrival,
                service_id=service.service_id,
                distance_km=distance,
                transit_source=source,
            )
            best = (key, _Leg(shipment, window, co2e))
    if best is None:
        return f"no {kind} pickup and delivery from {site.location_id} within {HORIZON_DAYS} days"
    return best[1]


def _learned_arrival(
    plan: _Plan, lane: Lane, site: Site, handover: int, service: CarrierService, delivery_tz: str
) -> tuple[int, str] | None:
    """The start (in the delivery calendar's zone) of the local day by whose end the lane's learned
    lead time delivers an order placed now, and the level it came from; None before any is learned.
    Days are counted in the origin's zone, as the worker learns them (``TransitLearner``)."""
    policy = plan.network.policy
    asked = plan.request.asked_at_ms
    tz = site.calendar.timezone
    ordered = local_date(tz, asked)
    # The carrier's prior, in lead days: to the day of the handover plus its stated transit.
    prior = tuple(
        (local_date(tz, handover + math.ceil(h * MS_PER_HOUR)) - ordered).days
        for h in service.prior_transit_hours
    )
    found = plan.transit.lead(lane, asked, tz, policy.quantile, policy.min_lane_samples, prior)
    if found is None:
        return None
    day, estimate = found
    return local_time_ms(delivery_tz, day, 0), estimate.source


def _parcels(
    plan: _Plan, method: DeliveryMethod, capability: Capability, where: str
) -> list[DeliveryOption] | str:
    if not plan.has_coordinates:
        return "home delivery needs destination coordinates"
    services = plan.index.services[DeliveryMethod.STANDARD]
    if not services:
        return "no standard carrier service"
    cover = _cover(plan, _collected(plan.candidates(method, capability), services), where)
    if isinstance(cover, str):
        return cover
    legs: list[_Leg] = []
    for site, lines in cover:
        leg = _carrier_leg(plan, site, lines, services, "standard")
        if isinstance(leg, str):
            return leg
        legs.append(leg)
    return [_option(method.value, method, legs, plan)]


def _standard(plan: _Plan) -> list[DeliveryOption] | str:
    return _parcels(plan, DeliveryMethod.STANDARD, Capability.SHIPS, "sites that ship")


def _ship_from_store(plan: _Plan) -> list[DeliveryOption] | str:
    return _parcels(
        plan, DeliveryMethod.SHIP_FROM_STORE, Capability.SHIP_FROM_STORE, "ship-from-store stores"
    )


def _green(plan: _Plan) -> list[DeliveryOption] | str:
    """One consolidated parcel on a green service: only from a site that holds the whole cart."""
    if not plan.has_coordinates:
        return "home delivery needs destination coordinates"
    services = plan.index.services[DeliveryMethod.GREEN]
    if not services:
        return "no green carrier service"
    sites = plan.network.sites
    holders = _collected(plan.candidates(DeliveryMethod.GREEN, Capability.SHIPS), services)
    whole = [sites[location_id] for location_id in _whole_cart_holders(plan, holders)]
    if not whole:
        return "green delivery is one parcel and no single site that ships holds the whole cart"
    whole.sort(key=lambda site: (plan.distance_km(site), site.location_id))
    best: _Leg | None = None
    reason = ""
    cart = plan.cart
    for site in whole[:_GREEN_CANDIDATES]:
        leg = _carrier_leg(plan, site, cart, services, "green")
        if isinstance(leg, str):
            reason = reason or leg
        elif best is None or (leg.window[1], leg.co2e_g) < (best.window[1], best.co2e_g):
            best = leg
    if best is None:
        return reason
    return [_option(DeliveryMethod.GREEN.value, DeliveryMethod.GREEN, [best], plan)]


# --- click & collect -------------------------------------------------------------------------------


def _click_and_collect(plan: _Plan) -> list[DeliveryOption] | str:
    policy = plan.network.policy
    store_id = plan.request.destination.pickup_store_id
    if store_id is not None:
        store = plan.network.sites.get(store_id)
        if store is None:
            return f"unknown pickup store {store_id}"
        if Capability.CLICK_AND_COLLECT not in store.capabilities:
            return f"{store_id} does not offer click & collect"
        stores = [store]
    elif not plan.has_coordinates:
        return "no pickup store chosen and no destination coordinates to find one"
    else:
        radius = policy.click_and_collect_radius_km
        nearby = plan.near(Capability.CLICK_AND_COLLECT, radius, lambda _: radius)
        if not nearby:
            return f"no click & collect store within {radius:g} km"
        stores = [site for site, _ in nearby[: policy.click_and_collect_max_stores]]
    options: list[DeliveryOption] = []
    reasons: list[str] = []
    for store in stores:
        found = _collect_at(plan, store)
        if isinstance(found, str):
            reasons.append(found)
        else:
            options.append(found)
    if options:
        return options
    # One reason per store looked at (at most click_and_collect_max_stores), each naming its store.
    return "; ".join(reasons)


def _collect_at(plan: _Plan, store: Site) -> DeliveryOption | str:
    """Ready for pickup from the store's own stock, else with the missing lines on the next route
    truck from a DC that holds them all."""
    own_stock = plan.held_at(DeliveryMethod.CLICK_AND_COLLECT, store.location_id)
    cart = plan.cart
    own = tuple(line for line in cart if own_stock[line.sku] >= line.quantity)
    # A line the store holds only partly comes whole from the DC: one pick, one place.
    missing = tuple(line for line in cart if own_stock[line.sku] < line.quantity)
    legs: list[_Leg] = []
    ready_for_pickup = plan.request.asked_at_ms
    if own:
        own_ready = plan.ready(store, store.pick_minutes)
        if own_ready is None:
            return f"{store.location_id} does not open within {HORIZON_DAYS} days"
        ready_for_pickup = own_ready
        legs.append(_Leg(Shipment(store.location_id, own, own_ready, own_ready, own_ready), (0, 0), 0.0))
    if missing:
        transfer = _best_transfer(plan, store, missing)
        if isinstance(transfer, str):
            return transfer
        leg, received = transfer
        ready_for_pickup = max(ready_for_pickup, received)
        legs.append(leg)
    # Customers collect while the store is open: ready at closing time means the next opening.
    opens = next_open(store.calendar, ready_for_pickup)
    window = None if opens is None else day_window(store.calendar, opens)
    if opens is None or window is None:
        return f"{store.location_id} does not open within {HORIZON_DAYS} days"
    return DeliveryOption(
        option_id=f"{DeliveryMethod.CLICK_AND_COLLECT.value}:{store.location_id}",
        method=DeliveryMethod.CLICK_AND_COLLECT,
        window_start_ms=opens,
        window_end_ms=window[1],
        confidence=plan.network.policy.quantile,
        parcels=1,
        co2e_g=sum(leg.co2e_g for leg in legs),
        shipments=tuple(leg.shipment for leg in legs),
        pickup_store_id=store.location_id,
    )


def _route_km(plan: _Plan, route: Route, stop_index: int) -> float:
    """Driving distance (great circle, leg by leg) from the route's origin to one of its stops."""
    sites = plan.network.sites
    here = sites.get(route.origin_id)
    km = 0.0
    for stop_id, _ in route.stops[: stop_index + 1]:
        stop = sites.get(stop_id)
        if stop is None:
            continue
        if here is not None:
            km += haversine_km(here.lat, here.lon, stop.lat, stop.lon)
        here = stop
    return km


def _best_transfer(plan: _Plan, store: Site, missing: tuple[CartLine, ...]) -> tuple[_Leg, int] | str:
    """The route truck that makes the missing lines ready for pickup soonest."""
    routes = plan.index.routes_to.get(store.location_id, [])
    skus = ", ".join(line.sku for line in missing)
    if not routes:
        return f"{store.location_id} is short of {skus} and no route serves it"
    policy = plan.network.policy
    sites = plan.network.sites
    best: tuple[tuple[int, str], _Leg, int] | None = None
    for route, stop_index in routes:
        dc = sites.get(route.origin_id)
        if dc is None:
            continue
        held = plan.held_at(DeliveryMethod.STANDARD, dc.location_id)
        if any(held[line.sku] < line.quantity for line in missing):
            continue
        dc_ready = plan.ready(dc, dc.pick_minutes + dc.pack_minutes)
        if dc_ready is None:
            continue
        departure = next_weekly(route.departures, dc.calendar.timezone, dc_ready, dc.calendar)
        if departure is None:
            continue
        arrival = departure + route.stops[stop_index][1] * MS_PER_MINUTE
        received = add_working_minutes(store.calendar, arrival, policy.store_receiving_minutes)
        if received is None:
            continue
        key = (received, route.route_id)
        if best is None or key < best[0]:
            km = _route_km(plan, route, stop_index)
            shipment = Shipment(
                location_id=dc.location_id,
                lines=missing,
                ready_at_ms=dc_ready,
                handover_at_ms=departure,
                arrives_at_ms=arrival,
                route_id=route.route_id,
                distance_km=km,
            )
            # The truck drives anyway: the order carries its marginal share of the emissions.
            co2e = policy.van_co2e_g_per_km * km * policy.route_share
            best = (key, _Leg(shipment, (0, 0), co2e), received)
    if best is None:
        return f"{store.location_id} is short of {skus} and no DC on a route to it holds them"
    return best[1], best[2]


# --- same-day courier ------------------------------------------------------------------------------


def _courier_radius(site: Site) -> float | None:
    return None if site.courier is None else site.courier.radius_km


def _courier(plan: _Plan) -> list[DeliveryOption] | str:
    if not plan.has_coordinates:
        return "courier delivery needs destination coordinates"
    in_range = plan.near(Capability.COURIER, plan.index.radius_km, _courier_radius)
    if not in_range:
        return "the destination is outside every courier store's radius"
    holders = [
        (site, km)
        for site, km in in_range
        if plan.covers(plan.held_at(DeliveryMethod.COURIER, site.location_id))
    ]
    if not holders:
        return "no courier store in range holds the whole cart"
    best: tuple[tuple[int, float, str], DeliveryOption] | None = None
    reasons: set[str] = set()
    for site, km in holders:
        option = _courier_slot(plan, site, km)
        if isinstance(option, str):
            reasons.add(option)
            continue
        key = (option.window_start_ms, km, site.location_id)
        if best is None or key < best[0]:
            best = (key, option)
    if best is None:
        # The most hopeful reason among the stores in range: booked beats too late beats closed.
        for reason in (_SLOTS_BOOKED, _TOO_LATE_TODAY, _CLOSED_TODAY):
            if reason in reasons:
                return reason
    assert best is not None
    return [best[1]]


_SLOTS_BOOKED = "every courier slot left today is booked"
_TOO_LATE_TODAY = "too late today for a courier slot after picking, packing and the ride"
_CLOSED_TODAY = "the courier stores in range are closed for the rest of today"


def _courier_slot(plan: _Plan, store: Site, km: float) -> DeliveryOption | str:
    """The first slot today, after pick, pack and the ride, that still has capacity (or why none)."""
    profile = store.courier
    if profile is None:  # pragma: no cover - filtered by the radius
        return _CLOSED_TODAY
    ready = plan.ready(store, store.pick_minutes + store.pack_minutes)
    if ready is None:
        return _CLOSED_TODAY
    ride = courier_ride_ms(profile, km)
    earliest = ready + ride
    length = profile.slot_minutes * MS_PER_MINUTE
    today = local_date(store.calendar.timezone, plan.request.asked_at_ms)
    hours_today = opening_intervals(store.calendar, today)
    if not hours_today or plan.request.asked_at_ms >= hours_today[-1][1]:
        return _CLOSED_TODAY
    booked_out = False
    # Same day only: the slots of the asking day's opening hours, in the store's time zone.
    for start, end in hours_today:
        slot = start if earliest <= start else start + -(-(earliest - start) // length) * length
        while slot + length <= end:
            booked_out = True
            if plan.booked.get((store.location_id, slot), 0) < profile.slot_capacity:
                shipment = Shipment(
                    location_id=store.location_id,
                    lines=plan.cart,
                    ready_at_ms=ready,
                    handover_at_ms=slot - ride,
                    arrives_at_ms=slot,
                    distance_km=km,
                )
                return DeliveryOption(
                    option_id=f"{DeliveryMethod.COURIER.value}:{store.location_id}",
                    method=DeliveryMethod.COURIER,
                    window_start_ms=slot,
                    window_end_ms=slot + length,
                    confidence=plan.network.policy.quantile,
                    parcels=1,
                    co2e_g=0.0,
                    shipments=(shipment,),
                )
            slot += length
    return _SLOTS_BOOKED if booked_out else _TOO_LATE_TODAY


_METHOD_ORDER = (
    DeliveryMethod.STANDARD,
    DeliveryMethod.GREEN,
    DeliveryMethod.SHIP_FROM_STORE,
    DeliveryMethod.CLICK_AND_COLLECT,
    DeliveryMethod.COURIER,
)

_PLANNERS: Mapping[DeliveryMethod, Callable[[_Plan], list[DeliveryOption] | str]] = {
    DeliveryMethod.STANDARD: _standard,
    DeliveryMethod.GREEN: _green,
    DeliveryMethod.SHIP_FROM_STORE: _ship_from_store,
    DeliveryMethod.CLICK_AND_COLLECT: _click_and_collect,
    DeliveryMethod.COURIER: _courier,
}


# --- for planners that choose their own sources (sourcing) ------------------------------------------


@dataclass(frozen=True, slots=True)
class CarrierLeg:
    """A parcel from one site as a promise would plan it: timeline, delivery window and CO2e."""

    shipment: Shipment
    window_start_ms: int
    window_end_ms: int
    """The delivery day's hours the arrival falls in (the promise's window for this parcel)."""
    co2e_g: float


@dataclass(frozen=True, slots=True)
class RouteTransfer:
    """Lines riding a replenishment route from a DC to a pickup store, as a promise plans it."""

    shipment: Shipment
    """handover = the truck's departure, arrives = its arrival at the store."""
    received_at_ms: int
    """Unloaded and put aside for pickup (the store's receiving minutes after the arrival)."""
    co2e_g: float
    """The order's marginal share of the truck's emissions (see PromisePolicy.route_share)."""


_LEGS: dict[tuple[object, ...], tuple[PromiseNetwork, TransitModel, CarrierLeg | str]] = {}
"""Carrier legs by what their timing depends on; co2e_g holds grams per km here."""
_MAX_LEGS = 50_000


class LegPlanner:
    """The promise engine's per-request timing machinery for a planner that picks its own sources.

    Carrier legs and route transfers are computed exactly as ``promise_options`` computes them
    (same ready times, cut-offs, transit quantile, delivery-day windows), so a plan made with them
    keeps the promise's clock (as of the next whole minute). Ready times and distances are cached
    for the planner's lifetime: build one per decision."""

    __slots__ = ("_plan",)

    def __init__(
        self,
        cart: Sequence[CartLine],
        destination: Destination,
        now_ms: int,
        network: PromiseNetwork,
        transit: TransitModel,
    ) -> None:
        # Timed as of the next whole minute: at most a minute conservative (a later start never
        # promises earlier), and the same for every order decided within that minute, so a leg is
        # computed once per site, destination region and distance band per minute (see _LEGS).
        moment = -(-now_ms // MS_PER_MINUTE) * MS_PER_MINUTE
        request = PromiseRequest("legs", tuple(cart), destination, moment)
        self._plan = _Plan(request, {}, network, transit, {})

    def sites_with(self, capability: Capability) -> frozenset[str]:
        """Location ids of the network's sites with a capability (derived once per network)."""
        return self._plan.index.by_capability[capability]

    def services(self, method: DeliveryMethod) -> Sequence[CarrierService]:
        """The carrier services a home-delivery method ships with (ship from store uses standard)."""
        kind = DeliveryMethod.GREEN if method is DeliveryMethod.GREEN else DeliveryMethod.STANDARD
        return self._plan.index.services[kind]

    def collects(self, location_id: str, method: DeliveryMethod) -> bool:
        """Some carrier service of the method collects at the location."""
        return any(not s.origins or location_id in s.origins for s in self.services(method))

    def routes_to(self, store_id: str) -> Sequence[tuple[Route, int]]:
        """The routes stopping at a store, with the index of its stop."""
        return self._plan.index.routes_to.get(store_id, [])

    def distance_km(self, site: Site) -> float:
        return self._plan.distance_km(site)

    def ready(self, site: Site, minutes: int) -> int | None:
        """When ``minutes`` of working time at ``site``, started now, are done (None: not within the
        calendar horizon)."""
        return self._plan.ready(site, minutes)

    def carrier_leg(
        self, site: Site, lines: tuple[CartLine, ...], method: DeliveryMethod
    ) -> CarrierLeg | str:
        """The parcel's best service from ``site`` (earliest window end, then arrival, then CO2e),
        or why there is none."""
        kind = "green" if method is DeliveryMethod.GREEN else "standard"
        plan = self._plan
        distance = plan.distance_km(site)
        destination = plan.request.destination
        # A leg's timing depends on the site, the moment, the destination's region and time zone and
        # the distance band, not on the lines: orders decided in one batch share the moment.
        key = (
            id(plan.network),
            id(plan.transit),
            getattr(plan.transit, "version", 0),  # test doubles of the model never change
            plan.request.asked_at_ms,
            site.location_id,
            kind,
            destination.region,
            destination.timezone,
            distance_band(distance),
        )
        entry = _LEGS.get(key)
        # The entry holds the network and model it was computed with: an id is only unique while
        # its object lives, so a hit must be for these very objects.
        if entry is not None and entry[0] is plan.network and entry[1] is plan.transit:
            cached = entry[2]
        else:
            leg = _carrier_leg(plan, site, lines, self.services(method), kind)
            if len(_LEGS) >= _MAX_LEGS:
                _LEGS.clear()
            cached = (
                leg
                if isinstance(leg, str)
                else CarrierLeg(leg.shipment, leg.window[0], leg.window[1], leg.co2e_g / max(distance, 1e-9))
            )
            _LEGS[key] = (plan.network, plan.transit, cached)
        if isinstance(cached, str):
            return cached
        shipment = replace(cached.shipment, lines=lines, distance_km=distance)
        return CarrierLeg(shipment, cached.window_start_ms, cached.window_end_ms, cached.co2e_g * distance)

    def transfer(self, store: Site, lines: tuple[CartLine, ...], origin_id: str) -> RouteTransfer | str:
        """The route truck from ``origin_id`` that gets ``lines`` ready for pickup at ``store``
        soonest (the origin is taken to hold them), or why there is none."""
        held = {line.sku: {origin_id: line.quantity} for line in lines}
        plan = _Plan(
            PromiseRequest("legs", lines, self._plan.request.destination, self._plan.request.asked_at_ms),
            {CHANNEL_FOR_METHOD[DeliveryMethod.STANDARD]: held},
            self._plan.network,
            self._plan.transit,
            {},
        )
        plan._ready = self._plan._ready  # the same moment and sites: share the ready times
        found = _best_transfer(plan, store, lines)
        if isinstance(found, str):
            return found
        leg, received = found
        return RouteTransfer(leg.shipment, received, leg.co2e_g)
