"""Config records to the promise network: calendars (with public holidays), sites, carriers, routes.

Public holidays come from python-holidays (maintained per country and subdivision), resolved here
for a span of years so the domain sees plain dates.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from oms_streams.domain.network import (
    Calendar,
    Capability,
    CarrierService,
    CourierProfile,
    DayTime,
    DeliveryMethod,
    Interval,
    PromiseNetwork,
    PromisePolicy,
    Route,
    Site,
)
from oms_streams.schemas.config import (
    DAY_GROUPS,
    WEEKDAYS,
    CarrierServiceRecord,
    LocationRecord,
    PromisePolicyRecord,
    RouteRecord,
)

ALWAYS = {"daily": ["00:00-24:00"]}


class NetworkConfigError(ValueError):
    """A record that validates but cannot be used (unknown time zone or holiday country)."""


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _per_weekday(value: Mapping[str, list[str]]) -> list[list[str]]:
    """Groups first (daily < weekdays/weekend), then single days override them."""
    days: list[list[str]] = [[] for _ in WEEKDAYS]
    order = sorted(value, key=lambda name: (name in WEEKDAYS, name != "daily"))
    for name in order:
        for day in DAY_GROUPS.get(name, (name,)):
            days[WEEKDAYS.index(day)] = list(value[name])
    return days


def weekly_hours(value: Mapping[str, list[str]]) -> tuple[tuple[Interval, ...], ...]:
    return tuple(
        tuple(sorted((_minutes(a), _minutes(b)) for a, b in (entry.split("-") for entry in entries)))
        for entries in _per_weekday(value)
    )


def weekly_times(value: Mapping[str, list[str]]) -> tuple[DayTime, ...]:
    return tuple(
        sorted((day, _minutes(clock)) for day, entries in enumerate(_per_weekday(value)) for clock in entries)
    )


@functools.lru_cache(maxsize=256)
def public_holidays(country: str, subdivision: str | None, years: tuple[int, ...]) -> frozenset[date]:
    try:
        return frozenset(holidays.country_holidays(country, subdiv=subdivision, years=years))
    except NotImplementedError as error:
        raise NetworkConfigError(
            f"no public holiday calendar for {country}/{subdivision}: {error}"
        ) from error


def _timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise NetworkConfigError(f"unknown time zone {name!r}") from error
    return name


def calendar(
    timezone: str,
    hours: Mapping[str, list[str]] | None,
    country: str | None,
    subdivision: str | None,
    extra_closed: Iterable[date],
    years: tuple[int, ...],
) -> Calendar:
    closed = frozenset(extra_closed)
    if country:
        closed |= public_holidays(country, subdivision, years)
    return Calendar(_timezone(timezone), weekly_hours(hours or ALWAYS), closed)


def to_site(record: LocationRecord, years: tuple[int, ...]) -> Site | None:
    """The location's operational profile; None when it cannot fulfil (inactive or no coordinates).

    Raises NetworkConfigError for a time zone or holiday calendar that does not exist, whether or
    not the location can fulfil today."""
    site_calendar = calendar(
        record.timezone, record.opening_hours, record.country, record.subdivision, record.closed_dates, years
    )
    if not record.active or record.lat is None or record.lon is None:
        return None
    courier = record.courier
    return Site(
        location_id=record.location_id,
        lat=record.lat,
        lon=record.lon,
        region=record.region,
        calendar=site_calendar,
        pick_minutes=record.pick_minutes,
        pack_minutes=record.pack_minutes,
        capabilities=frozenset(Capability(c) for c in record.capabilities),
        courier=CourierProfile(
            courier.radius_km, courier.slot_minutes, courier.slot_capacity, courier.ride_kmh
        )
        if courier is not None
        else None,
        is_store=record.type == "store",
        returns_per_day=record.returns_per_day,
    )


def to_service(record: CarrierServiceRecord, years: tuple[int, ...]) -> CarrierService:
    return CarrierService(
        service_id=record.service_id,
        carrier=record.carrier,
        method=DeliveryMethod(record.method),
        pickups=weekly_times(record.pickups),
        cutoff_minutes=record.cutoff_minutes,
        delivery_calendar=calendar(
            record.timezone, record.delivery_hours, record.country, record.subdivision, (), years
        ),
        co2e_g_per_parcel_km=record.co2e_g_per_parcel_km,
        origins=frozenset(record.origins),
        prior_transit_hours=tuple(record.prior_transit_hours),
        max_km=record.max_km,
        regions=frozenset(record.regions),
    )


def to_route(record: RouteRecord) -> Route:
    return Route(
        route_id=record.route_id,
        origin_id=record.origin_id,
        departures=weekly_times(record.departures),
        stops=tuple((stop.location_id, stop.travel_minutes) for stop in record.stops),
    )


def to_policy(record: PromisePolicyRecord) -> PromisePolicy:
    return PromisePolicy(**record.model_dump())


def promise_network(
    locations: Iterable[LocationRecord],
    services: Iterable[CarrierServiceRecord],
    routes: Iterable[RouteRecord],
    policy: PromisePolicyRecord | None,
    years: tuple[int, ...],
) -> PromiseNetwork:
    sites = {}
    for record in locations:
        site = to_site(record, years)
        if site is not None:
            sites[site.location_id] = site
    return PromiseNetwork(
        sites=sites,
        services=tuple(to_service(s, years) for s in sorted(services, key=lambda s: s.service_id)),
        routes=tuple(to_route(r) for r in sorted(routes, key=lambda r: r.route_id)),
        policy=to_policy(policy) if policy is not None else PromisePolicy(),
    )
