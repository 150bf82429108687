"""The operational network a promise is computed over: calendars, sites, carrier services, routes.

All instants are epoch milliseconds (UTC). Weekly schedules are local wall-clock times in the
owner's time zone (a location's, or a carrier service's), so daylight-saving changes move them
with the clock as they do in real life. Closed dates (public holidays from a holidays library,
plus explicit closures) are resolved by the adapters and arrive here as plain dates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

MINUTES_PER_DAY = 24 * 60

Interval = tuple[int, int]
"""[start, end) in local minutes after midnight, 0 <= start < end <= 1440."""

DayTime = tuple[int, int]
"""(weekday 0=Monday..6=Sunday, local minutes after midnight)."""


@dataclass(frozen=True, slots=True)
class Calendar:
    """When a location (or a carrier) works: weekly opening intervals minus closed dates."""

    timezone: str = "UTC"
    weekly: tuple[tuple[Interval, ...], ...] = (((0, MINUTES_PER_DAY),),) * 7
    """Seven entries, Monday first; an empty entry is a closed weekday."""
    closed_dates: frozenset[date] = frozenset()
    """Public holidays and explicit closures, as local dates."""


ALWAYS_OPEN = Calendar()


class Capability(StrEnum):
    SHIPS = "ships"
    """Hands parcels to carriers (DCs, typically)."""
    SHIP_FROM_STORE = "ship_from_store"
    """A store that packs online orders from its own shelves."""
    CLICK_AND_COLLECT = "click_and_collect"
    COURIER = "courier"
    """Same-day bike courier from this store within its radius."""
    ACCEPTS_RETURNS = "accepts_returns"


class DeliveryMethod(StrEnum):
    STANDARD = "standard"
    GREEN = "green"
    SHIP_FROM_STORE = "ship_from_store"
    CLICK_AND_COLLECT = "click_and_collect"
    COURIER = "courier"


@dataclass(frozen=True, slots=True)
class CourierProfile:
    radius_km: float
    slot_minutes: int = 120
    """Delivery windows are consecutive slots of this length inside opening hours."""
    slot_capacity: int = 4
    """Deliveries one store's couriers can make per slot."""
    ride_kmh: float = 15.0


@dataclass(frozen=True, slots=True)
class Site:
    """A location's operational profile (its stock comes from the ledger, not from here)."""

    location_id: str
    lat: float
    lon: float
    region: str = ""
    calendar: Calendar = ALWAYS_OPEN
    pick_minutes: int = 30
    """Working minutes from release to picked, per order."""
    pack_minutes: int = 15
    capabilities: frozenset[Capability] = frozenset()
    courier: CourierProfile | None = None
    is_store: bool = False
    returns_per_day: int | None = None
    """Shipped return items it can receive per local day (with ``accepts_returns``); None: no limit."""


@dataclass(frozen=True, slots=True)
class CarrierService:
    """A carrier product: when it collects, when it delivers, what it emits."""

    service_id: str
    carrier: str
    method: DeliveryMethod
    """STANDARD or GREEN (home delivery). SHIP_FROM_STORE uses STANDARD services from stores."""
    pickups: tuple[DayTime, ...]
    """Collection times at the origin, in the origin site's time zone."""
    cutoff_minutes: int = 60
    """A parcel must be packed this long before a pickup to make it."""
    delivery_calendar: Calendar = ALWAYS_OPEN
    """Days and hours the carrier delivers (its time zone, holidays); the promised window is the
    delivery day's hours."""
    co2e_g_per_parcel_km: float = 10.0
    """A parcel's share of the van and trunk emissions per km of its origin-destination distance."""
    origins: frozenset[str] = frozenset()
    """Location ids it collects from; empty = every site that ships."""
    prior_transit_hours: tuple[float, ...] = (24.0, 48.0)
    """Transit the carrier claims (samples), used for lanes without enough history."""
    max_km: float | None = None
    """Service area: the farthest it delivers from the origin (great circle); None: no limit."""
    regions: frozenset[str] = frozenset()
    """Service area: destination regions it delivers to, or their prefixes ('NL' covers 'NL-UT');
    empty: any region."""

    def serves(self, region: str, distance_km: float) -> bool:
        """Whether a destination in ``region``, ``distance_km`` from the origin, is in the area."""
        if self.max_km is not None and distance_km > self.max_km:
            return False
        return not self.regions or any(region == r or region.startswith(r + "-") for r in self.regions)


@dataclass(frozen=True, slots=True)
class Route:
    """A fixed replenishment route: a truck leaves a DC at set weekly times and drives to stores."""

    route_id: str
    origin_id: str
    departures: tuple[DayTime, ...]
    """In the origin's time zone."""
    stops: tuple[tuple[str, int], ...]
    """(store location id, minutes of driving from departure to arrival), in driving order."""


@dataclass(frozen=True, slots=True)
class PromisePolicy:
    quantile: float = 0.95
    """A promise is 'delivered by D with at least this probability'."""
    min_lane_samples: int = 30
    """A lane with fewer observations falls back to its distance band, then to the carrier prior."""
    max_parcels: int = 3
    click_and_collect_radius_km: float = 25.0
    click_and_collect_max_stores: int = 5
    store_receiving_minutes: int = 60
    """After a route truck arrives: unloading and putting the order aside for pickup (working time)."""
    store_ready_minutes: int = 120
    """A click & collect order from the pickup store's own shelf is promised ready this many working
    minutes after it is asked for (at least the store's pick time): the store's queue of web orders
    and walk-in customers, not the pick alone. With the pick time alone every such order would be due
    to start picking the moment it is placed, and at risk a moment later."""
    van_co2e_g_per_km: float = 900.0
    """A route truck's emissions per km, shared by everything it carries: the marginal CO2e of one
    click & collect order riding it is this times the order's share (see route_share)."""
    route_share: float = 0.01
    horizon_days: int = 21
    """No option is offered that cannot be met within this many days."""


@dataclass(frozen=True, slots=True)
class PromiseNetwork:
    sites: Mapping[str, Site] = field(default_factory=dict)
    services: tuple[CarrierService, ...] = ()
    routes: tuple[Route, ...] = ()
    policy: PromisePolicy = PromisePolicy()
