"""Timing a shipment along calendars and the learned transit: a carrier parcel (ready after pick and
pack, the service's cut-off and pickup, the lane's learned arrival never earlier than the fastest
transit ever seen, the delivery day's window, only within the service's area), a route truck to a
pickup store (departure, arrival, receiving) and a courier's ride.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from oms_streams.domain.calendar import (
    HORIZON_DAYS,
    MS_PER_HOUR,
    MS_PER_MINUTE,
    Window,
    add_working_minutes,
    day_window,
    local_date,
    local_time_ms,
    next_weekly,
)
from oms_streams.domain.network import Calendar, CarrierService, CourierProfile, DeliveryMethod, Route, Site
from oms_streams.domain.promise_plan import Plan
from oms_streams.domain.promise_types import CartLine, Shipment
from oms_streams.domain.transit import Lane
from oms_streams.domain.visibility import haversine_km


@dataclass(frozen=True, slots=True)
class Leg:
    """One shipment of an option being built: its timeline, its delivery window ((0, 0) where the
    option's window comes from elsewhere: a route transfer, a store's own stock) and its CO2e."""

    shipment: Shipment
    window: Window
    co2e_g: float


def courier_ride_ms(profile: CourierProfile, distance_km: float) -> int:
    """Riding time from the store to the customer, rounded up to the millisecond."""
    return math.ceil(distance_km / profile.ride_kmh * MS_PER_HOUR)


@lru_cache(maxsize=1024)
def _in_timezone(calendar: Calendar, timezone: str) -> Calendar:
    return replace(calendar, timezone=timezone)


def carrier_leg(
    plan: Plan, site: Site, lines: tuple[CartLine, ...], services: Sequence[CarrierService], kind: str
) -> Leg | str:
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
    best: tuple[tuple[int, int, float, str], Leg] | None = None
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
            best = (key, Leg(shipment, window, co2e))
    if best is None:
        return f"no {kind} pickup and delivery from {site.location_id} within {HORIZON_DAYS} days"
    return best[1]


def _learned_arrival(
    plan: Plan, lane: Lane, site: Site, handover: int, service: CarrierService, delivery_tz: str
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


def _route_km(plan: Plan, route: Route, stop_index: int) -> float:
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


def best_transfer(plan: Plan, store: Site, missing: tuple[CartLine, ...]) -> tuple[Leg, int] | str:
    """The route truck that makes the missing lines ready for pickup soonest."""
    routes = plan.index.routes_to.get(store.location_id, [])
    skus = ", ".join(line.sku for line in missing)
    if not routes:
        return f"{store.location_id} is short of {skus} and no route serves it"
    policy = plan.network.policy
    sites = plan.network.sites
    best: tuple[tuple[int, str], Leg, int] | None = None
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
            best = (key, Leg(shipment, (0, 0), co2e), received)
    if best is None:
        return f"{store.location_id} is short of {skus} and no DC on a route to it holds them"
    return best[1], best[2]
