"""Builders for the delivery-promise tests: a small Dutch network with readable defaults.

Every builder takes keyword arguments; what a test does not mention is a sensible default. Times are
written as local wall-clock text, ``at("2024-05-06 10:00")`` (Europe/Amsterdam unless a time zone is
given), and read back with ``local(t_ms)``. The reference week starts Monday 2024-05-06.

The default network:
- ``DC-NORTH`` (Zwolle) and ``DC-SOUTH`` (Eindhoven) ship; open Mon-Sat 06:00-22:00, pick 30 + pack 15.
- ``STORE-UTRECHT-01`` and ``STORE-AMSTERDAM-02``: ship from store, click & collect, bike courier;
  open Mon-Sat 09:00-18:00, Sun 12:00-17:00, pick 30 + pack 15.
- ``POSTNL-STANDARD`` collects Mon-Fri 18:00 (cut-off 60 min) and delivers Mon-Fri 08:00-21:00;
  ``POSTNL-GREEN`` collects Tue and Thu 18:00 and delivers Wed and Fri 08:00-21:00 at a third of
  the CO2e.
- ``ROUTE-NORTH-MID`` leaves ``DC-NORTH`` Tue and Thu 05:00: Utrecht after 90 min, Amsterdam after 150.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from oms_streams.domain.lead_time import LeadEstimate
from oms_streams.domain.network import (
    Calendar,
    Capability,
    CarrierService,
    CourierProfile,
    DayTime,
    DeliveryMethod,
    PromiseNetwork,
    PromisePolicy,
    Route,
    Site,
)
from oms_streams.domain.promise_types import CartLine, Destination, PromiseRequest, Stock
from oms_streams.domain.transit import Lane, TransitEstimate, TransitModel

AMS = "Europe/Amsterdam"
NY = "America/New_York"

MON, TUE, WED, THU, FRI, SAT, SUN = range(7)
WEEKDAYS = (MON, TUE, WED, THU, FRI)
MON_SAT = (*WEEKDAYS, SAT)

BIKE_LIGHT, PUMP, HELMET, LOCK = "SKU-BIKE-LIGHT", "SKU-PUMP", "SKU-HELMET", "SKU-LOCK"
CATALOGUE = (BIKE_LIGHT, PUMP, HELMET, LOCK)

BIKE_COURIER = CourierProfile(radius_km=8.0, slot_minutes=120, slot_capacity=4, ride_kmh=15.0)

UTRECHT_HOME = (52.0800, 5.1300)
"""A customer's address in Utrecht, about 1.3 km from STORE-UTRECHT-01."""
ASCENSION_DAY = date(2024, 5, 9)
"""A Dutch public holiday, on the Thursday of the reference week."""


# --- time -----------------------------------------------------------------------------------------


def at(text: str, tz: str = AMS) -> int:
    """Local wall-clock time (``YYYY-MM-DD HH:MM``) in ``tz`` as epoch milliseconds UTC."""
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp() * 1000)


def local(t_ms: int, tz: str = AMS) -> str:
    """An instant as local wall-clock text, for readable assertions."""
    return datetime.fromtimestamp(t_ms / 1000, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


def hm(text: str) -> int:
    """``"18:30"`` as minutes after midnight."""
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


# --- calendars and network -------------------------------------------------------------------------


def a_calendar(
    *,
    tz: str = AMS,
    hours: tuple[str, str] = ("09:00", "18:00"),
    days: Iterable[int] = MON_SAT,
    extra: Mapping[int, tuple[str, str]] | None = None,
    closed: Iterable[date] = (),
) -> Calendar:
    """Open ``hours`` on ``days``; ``extra`` gives other hours for some weekdays (e.g. Sunday)."""
    open_days = set(days)
    weekly: list[tuple[tuple[int, int], ...]] = []
    for weekday in range(7):
        if extra and weekday in extra:
            start, end = extra[weekday]
            weekly.append(((hm(start), hm(end)),))
        elif weekday in open_days:
            weekly.append(((hm(hours[0]), hm(hours[1])),))
        else:
            weekly.append(())
    return Calendar(timezone=tz, weekly=tuple(weekly), closed_dates=frozenset(closed))


def weekly(days: Iterable[int], time: str) -> tuple[DayTime, ...]:
    """The same local time on each of ``days``."""
    return tuple((day, hm(time)) for day in days)


def a_dc(
    location_id: str = "DC-NORTH",
    *,
    lat: float = 52.5168,
    lon: float = 6.0830,
    region: str = "NL-NORTH",
    calendar: Calendar | None = None,
    pick_minutes: int = 30,
    pack_minutes: int = 15,
    capabilities: Iterable[Capability] = (Capability.SHIPS,),
) -> Site:
    return Site(
        location_id=location_id,
        lat=lat,
        lon=lon,
        region=region,
        calendar=calendar or a_calendar(hours=("06:00", "22:00")),
        pick_minutes=pick_minutes,
        pack_minutes=pack_minutes,
        capabilities=frozenset(capabilities),
    )


def a_store(
    location_id: str = "STORE-UTRECHT-01",
    *,
    lat: float = 52.0907,
    lon: float = 5.1214,
    region: str = "NL-MID",
    calendar: Calendar | None = None,
    pick_minutes: int = 30,
    pack_minutes: int = 15,
    capabilities: Iterable[Capability] = (
        Capability.SHIP_FROM_STORE,
        Capability.CLICK_AND_COLLECT,
        Capability.COURIER,
    ),
    courier: CourierProfile | None = BIKE_COURIER,
) -> Site:
    return Site(
        location_id=location_id,
        lat=lat,
        lon=lon,
        region=region,
        calendar=calendar or a_calendar(extra={SUN: ("12:00", "17:00")}),
        pick_minutes=pick_minutes,
        pack_minutes=pack_minutes,
        capabilities=frozenset(capabilities),
        courier=courier,
        is_store=True,
    )


def a_service(
    service_id: str = "POSTNL-STANDARD",
    *,
    method: DeliveryMethod = DeliveryMethod.STANDARD,
    pickups: tuple[DayTime, ...] = weekly(WEEKDAYS, "18:00"),
    cutoff_minutes: int = 60,
    delivery_calendar: Calendar | None = None,
    co2e_g_per_parcel_km: float = 120.0,
    origins: Iterable[str] = (),
    carrier: str = "POSTNL",
) -> CarrierService:
    return CarrierService(
        service_id=service_id,
        carrier=carrier,
        method=method,
        pickups=pickups,
        cutoff_minutes=cutoff_minutes,
        delivery_calendar=delivery_calendar or a_calendar(hours=("08:00", "21:00"), days=WEEKDAYS),
        co2e_g_per_parcel_km=co2e_g_per_parcel_km,
        origins=frozenset(origins),
    )


def a_green_service(
    service_id: str = "POSTNL-GREEN",
    *,
    pickups: tuple[DayTime, ...] = weekly((TUE, THU), "18:00"),
    delivery_days: Iterable[int] = (WED, FRI),
    co2e_g_per_parcel_km: float = 40.0,
) -> CarrierService:
    return a_service(
        service_id,
        method=DeliveryMethod.GREEN,
        pickups=pickups,
        delivery_calendar=a_calendar(hours=("08:00", "21:00"), days=delivery_days),
        co2e_g_per_parcel_km=co2e_g_per_parcel_km,
    )


def a_route(
    route_id: str = "ROUTE-NORTH-MID",
    *,
    origin_id: str = "DC-NORTH",
    departures: tuple[DayTime, ...] = weekly((TUE, THU), "05:00"),
    stops: tuple[tuple[str, int], ...] = (("STORE-UTRECHT-01", 90), ("STORE-AMSTERDAM-02", 150)),
) -> Route:
    return Route(route_id=route_id, origin_id=origin_id, departures=departures, stops=stops)


def default_sites() -> list[Site]:
    return [
        a_dc("DC-NORTH"),
        a_dc("DC-SOUTH", lat=51.4416, lon=5.4697, region="NL-SOUTH"),
        a_store("STORE-UTRECHT-01"),
        a_store("STORE-AMSTERDAM-02", lat=52.3676, lon=4.9041, region="NL-WEST"),
    ]


def a_network(
    *,
    sites: Iterable[Site] | None = None,
    services: Sequence[CarrierService] | None = None,
    routes: Sequence[Route] | None = None,
    policy: PromisePolicy | None = None,
) -> PromiseNetwork:
    return PromiseNetwork(
        sites={site.location_id: site for site in (default_sites() if sites is None else sites)},
        services=tuple((a_service(), a_green_service()) if services is None else services),
        routes=tuple((a_route(),) if routes is None else routes),
        policy=policy or PromisePolicy(),
    )


# --- stock, cart, request -----------------------------------------------------------------------------


def a_stock(
    *,
    webshop: Mapping[str, Mapping[str, int]] | None = None,
    click_and_collect: Mapping[str, Mapping[str, int]] | None = None,
) -> Stock:
    """Per channel, ``{location id: {sku: units}}`` (as tests think of it) turned into the engine's
    channel -> SKU -> location view. The catalogue's SKUs are known (the feed has a record for
    them) even where no location holds any."""
    stock: dict[str, dict[str, dict[str, int]]] = {}
    for channel, by_location in (("webshop", webshop), ("click_and_collect", click_and_collect)):
        view: dict[str, dict[str, int]] = {sku: {} for sku in CATALOGUE}
        for location_id, units in (by_location or {}).items():
            for sku, quantity in units.items():
                view.setdefault(sku, {})[location_id] = quantity
        stock[channel] = view
    return stock


def a_cart(*lines: tuple[str, int]) -> tuple[CartLine, ...]:
    return tuple(CartLine(sku, quantity) for sku, quantity in (lines or ((BIKE_LIGHT, 1),)))


def home(
    *, lat: float = UTRECHT_HOME[0], lon: float = UTRECHT_HOME[1], region: str = "NL-MID"
) -> Destination:
    return Destination(lat=lat, lon=lon, postal_code="3511 AB", region=region)


def a_request(
    *,
    cart: tuple[CartLine, ...] | None = None,
    destination: Destination | None = None,
    asked_at: int | str = "2024-05-06 10:00",
    methods: Iterable[DeliveryMethod] = DeliveryMethod,
    request_id: str = "REQ-000001",
) -> PromiseRequest:
    return PromiseRequest(
        request_id=request_id,
        cart=cart or a_cart(),
        destination=destination or home(),
        asked_at_ms=at(asked_at) if isinstance(asked_at, str) else asked_at,
        methods=frozenset(methods),
    )


# --- transit ----------------------------------------------------------------------------------------


@dataclass
class FixedTransit(TransitModel):
    """A transit model with fixed answers, remembering the lanes it was asked about."""

    hours: float = 20.0
    fastest: float = 16.0
    source: str = "lane"
    per_service: Mapping[str, float] = field(default_factory=dict)
    """Transit hours for particular services, overriding ``hours``."""
    asked: list[Lane] = field(default_factory=list)

    def observe(self, lane: Lane, hours: float, at_ms: int | None = None) -> None:
        raise AssertionError("the promise engine never teaches the transit model")

    def estimate(
        self, lane: Lane, quantile: float, min_samples: int, prior_hours: Sequence[float]
    ) -> TransitEstimate:
        self.asked.append(lane)
        hours = self.per_service.get(lane.service_id, self.hours)
        return TransitEstimate(hours=hours, fastest_hours=self.fastest, source=self.source, samples=100)

    def lead(
        self,
        lane: Lane,
        placed_ms: int,
        timezone: str,
        quantile: float,
        min_samples: int,
        prior_days: Sequence[int],
    ) -> tuple[date, LeadEstimate] | None:
        return None  # no lead time learned: the promise is timed by the fixed carrier leg


# --- random scenarios for the property tests ---------------------------------------------------------

PROPERTY_SKUS = (BIKE_LIGHT, PUMP, HELMET)
PROPERTY_WEEKS = (
    "2024-03-25 00:00",  # Amsterdam springs forward on Sunday 31 March
    "2024-05-06 00:00",  # Ascension Day on Thursday 9 May
    "2024-10-21 00:00",  # Amsterdam falls back on Sunday 27 October
    "2024-10-28 00:00",  # New York falls back on Sunday 3 November
)
HOLIDAYS = (date(2024, 3, 29), date(2024, 4, 1), ASCENSION_DAY, date(2024, 10, 28), date(2024, 11, 1))


@dataclass(frozen=True)
class Scenario:
    """Everything a promise depends on except the asking moment."""

    network: PromiseNetwork
    stock: Stock
    cart: tuple[CartLine, ...]
    destination: Destination
    transit: FixedTransit
    booked: Mapping[tuple[str, int], int]

    def request(self, asked_at: int) -> PromiseRequest:
        return PromiseRequest("REQ-PROPERTY", self.cart, self.destination, asked_at)


def property_network(
    *, holidays: Iterable[date] = (), pick_minutes: int = 30, cutoff_minutes: int = 60
) -> PromiseNetwork:
    """The default network plus a New York DC, with holidays closing sites and carriers alike."""
    closed = tuple(holidays)
    dc_hours = a_calendar(hours=("06:00", "22:00"), closed=closed)
    store_hours = a_calendar(extra={SUN: ("12:00", "17:00")}, closed=closed)
    sites = [
        a_dc("DC-NORTH", calendar=dc_hours, pick_minutes=pick_minutes),
        a_dc(
            "DC-SOUTH",
            lat=51.4416,
            lon=5.4697,
            region="NL-SOUTH",
            calendar=dc_hours,
            pick_minutes=pick_minutes,
        ),
        a_dc(
            "DC-NEWARK",
            lat=40.7357,
            lon=-74.1724,
            region="US-NJ",
            calendar=a_calendar(tz=NY, hours=("07:00", "19:00"), days=WEEKDAYS, closed=closed),
        ),
        a_store("STORE-UTRECHT-01", calendar=store_hours, pick_minutes=pick_minutes),
        a_store("STORE-UTRECHT-02", lat=52.0850, lon=5.1000, calendar=store_hours, courier=BIKE_COURIER),
        a_store("STORE-AMSTERDAM-02", lat=52.3676, lon=4.9041, region="NL-WEST", calendar=store_hours),
    ]
    carrier_days = a_calendar(hours=("08:00", "21:00"), days=WEEKDAYS, closed=closed)
    services = [
        a_service(cutoff_minutes=cutoff_minutes, delivery_calendar=carrier_days),
        a_service(
            "DHL-EVENING",
            carrier="DHL",
            pickups=weekly(MON_SAT, "21:00"),
            cutoff_minutes=30,
            delivery_calendar=a_calendar(
                hours=("09:00", "17:00"), days=(TUE, WED, THU, FRI, SAT), closed=closed
            ),
            co2e_g_per_parcel_km=150.0,
        ),
        a_green_service(),
    ]
    routes = [
        a_route(),
        a_route(
            "ROUTE-SOUTH-MID",
            origin_id="DC-SOUTH",
            departures=weekly((MON, WED, FRI), "14:00"),
            stops=(("STORE-UTRECHT-02", 70),),
        ),
    ]
    return a_network(sites=sites, services=services, routes=routes)


def scenarios() -> st.SearchStrategy[Scenario]:
    """A hypothesis strategy of ``Scenario``s: random stock, cart, holidays, transit and bookings."""
    location_ids = (
        "DC-NORTH",
        "DC-SOUTH",
        "DC-NEWARK",
        "STORE-UTRECHT-01",
        "STORE-UTRECHT-02",
        "STORE-AMSTERDAM-02",
    )
    units = st.integers(0, 3)
    by_location = st.fixed_dictionaries(
        {
            location_id: st.fixed_dictionaries({sku: units for sku in PROPERTY_SKUS})
            for location_id in location_ids
        }
    )

    @st.composite
    def build(draw: st.DrawFn) -> Scenario:
        network = property_network(
            holidays=draw(st.lists(st.sampled_from(HOLIDAYS), unique=True, max_size=3)),
            pick_minutes=draw(st.integers(0, 240)),
            cutoff_minutes=draw(st.integers(0, 180)),
        )
        skus = draw(st.lists(st.sampled_from(PROPERTY_SKUS), min_size=1, max_size=3, unique=True))
        cart = tuple(CartLine(sku, draw(st.integers(1, 2))) for sku in skus)
        destination = draw(
            st.sampled_from(
                (
                    home(),
                    Destination(pickup_store_id="STORE-UTRECHT-01"),
                    Destination(lat=52.37, lon=4.90, region="NL-WEST", timezone=AMS),
                )
            )
        )
        hours = draw(st.floats(1.0, 80.0))
        transit = FixedTransit(hours=hours, fastest=draw(st.floats(0.5, 80.0)))
        week = draw(st.sampled_from(PROPERTY_WEEKS))
        slot_starts = [at(f"{week[:10]} {hour:02d}:00") for hour in (9, 11, 13)]
        booked = {("STORE-UTRECHT-01", start): 4 for start in slot_starts if draw(st.booleans())}
        stock = a_stock(webshop=draw(by_location), click_and_collect=draw(by_location))
        return Scenario(network, stock, cart, destination, transit, booked)

    return build()


def asking_times() -> st.SearchStrategy[int]:
    """A hypothesis strategy of asking moments: a minute in one of the ``PROPERTY_WEEKS`` (+ 10 days)."""
    return st.builds(
        lambda week, minute: at(week) + minute * 60_000,
        st.sampled_from(PROPERTY_WEEKS),
        st.integers(0, 10 * 24 * 60),
    )
