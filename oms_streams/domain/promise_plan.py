"""What a promise computes once per network and once per request.

Per network: a site index (sites by capability, a coarse lat/lon grid, the routes stopping at each
store, services per method), memoised by network object. Per request: the merged cart, who holds
each SKU, distances, ready times and the nearest sites (``Plan``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping

from oms_streams.domain.calendar import add_working_minutes
from oms_streams.domain.network import Capability, CarrierService, DeliveryMethod, PromiseNetwork, Route, Site
from oms_streams.domain.promise_types import CHANNEL_FOR_METHOD, CartLine, PromiseRequest, Stock
from oms_streams.domain.transit import TransitModel
from oms_streams.domain.visibility import haversine_km

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

Holders = dict[str, dict[str, int]]
"""SKU -> location id -> units > 0, for every eligible location holding it; the cart's SKUs only."""

_EXACT_NEAREST = 8
"""Up to this many candidates, the nearest is found with great-circle distances only."""


_RadiusOf = Callable[[Site], "float | None"]
"""A site's service radius in km, or None when it has none."""


class Plan:
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
        self._candidates: dict[tuple[str, Capability], Holders] = {}
        self._distance: dict[str, float] = {}
        self._ready: dict[tuple[str, int], int | None] = {}

    @property
    def has_coordinates(self) -> bool:
        return self.request.destination.lat is not None and self.request.destination.lon is not None

    @property
    def cart(self) -> tuple[CartLine, ...]:
        return tuple(CartLine(sku, quantity) for sku, quantity in self.need.items())

    def candidates(self, method: DeliveryMethod, capability: Capability) -> Holders:
        """Who holds each cart SKU among the locations with the capability, read from the stock
        mapping: candidates come from where the stock is, never from scanning the whole network."""
        key = (CHANNEL_FOR_METHOD[method], capability)
        cached = self._candidates.get(key)
        if cached is not None:
            return cached
        allowed = self.index.by_capability[capability]
        by_sku = self.stock.get(key[0], {})
        holders: Holders = {}
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
