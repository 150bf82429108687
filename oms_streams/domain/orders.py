"""An order's promise as an immutable, versioned record, and the milestones derived backwards from it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from oms_streams.domain.calendar import MS_PER_MINUTE, previous_weekly, subtract_working_minutes
from oms_streams.domain.network import CarrierService, DeliveryMethod, PromiseNetwork, Site
from oms_streams.domain.promise_timing import courier_ride_ms
from oms_streams.domain.promise_types import DeliveryOption, Shipment


class MilestoneKind(StrEnum):
    PICK_START = "pick_start"
    """Latest moment picking may start (for a shipment's location)."""
    CARRIER_HANDOVER = "carrier_handover"
    ROUTE_DEPARTURE = "route_departure"
    READY_FOR_PICKUP = "ready_for_pickup"
    COURIER_DEPARTURE = "courier_departure"
    DELIVERED = "delivered"


@dataclass(frozen=True, slots=True)
class Milestone:
    kind: MilestoneKind
    location_id: str
    due_ms: int
    """The latest time this step may happen for the promise to still hold."""
    shipment: int
    """Index of the shipment in the promised option."""


@dataclass(frozen=True, slots=True)
class PromiseRecord:
    order_id: str
    version: int
    placed_at_ms: int
    option: DeliveryOption
    milestones: tuple[Milestone, ...]


def derive_milestones(option: DeliveryOption, network: PromiseNetwork) -> tuple[Milestone, ...]:
    """Backwards from the promised window end: latest pick start, carrier handover / route
    departure / courier departure, ready for pickup, delivered; sorted by due time.

    Each due time is the latest the step may happen with the promise still holding, so it is never
    earlier than the forward plan the promise was computed from. Where the network no longer knows
    a site or service (changed since the promise), the forward plan's own instant is used."""
    services = {service.service_id: service for service in network.services}
    milestones: list[Milestone] = []
    for index, shipment in enumerate(option.shipments):
        site = network.sites.get(shipment.location_id)
        if shipment.service_id is not None:
            milestones.extend(_carrier_leg(option, index, shipment, site, services.get(shipment.service_id)))
        elif shipment.route_id is not None:
            milestones.extend(_route_leg(option, index, shipment, site))
        elif option.method is DeliveryMethod.COURIER:
            milestones.extend(_courier_leg(option, index, shipment, site))
        else:
            milestones.extend(_own_stock_leg(option, index, shipment, site))
    order = list(MilestoneKind)
    milestones.sort(key=lambda m: (m.due_ms, m.shipment, order.index(m.kind)))
    return tuple(milestones)


def _latest_start(site: Site | None, done_by: int, minutes: int, fallback: int) -> int:
    """The latest moment work of ``minutes`` at the site may start to be done by ``done_by``."""
    if site is None:
        return min(fallback, done_by)
    start = subtract_working_minutes(site.calendar, done_by, minutes)
    return min(fallback, done_by) if start is None else start


def _carrier_leg(
    option: DeliveryOption, index: int, shipment: Shipment, site: Site | None, service: CarrierService | None
) -> list[Milestone]:
    location = shipment.location_id
    transit_ms = shipment.arrives_at_ms - shipment.handover_at_ms
    handover = shipment.handover_at_ms
    cutoff_ms = 0
    if service is not None and site is not None:
        cutoff_ms = service.cutoff_minutes * MS_PER_MINUTE
        # The last pickup from which the same transit still lands inside the promised window.
        latest = previous_weekly(
            service.pickups, site.calendar.timezone, option.window_end_ms - transit_ms, site.calendar
        )
        if latest is not None:
            handover = max(latest, shipment.handover_at_ms)
    pick_minutes = 0 if site is None else site.pick_minutes + site.pack_minutes
    pick_start = _latest_start(site, handover - cutoff_ms, pick_minutes, shipment.ready_at_ms)
    return [
        Milestone(MilestoneKind.PICK_START, location, pick_start, index),
        Milestone(MilestoneKind.CARRIER_HANDOVER, location, handover, index),
        Milestone(MilestoneKind.DELIVERED, location, option.window_end_ms, index),
    ]


def _route_leg(option: DeliveryOption, index: int, shipment: Shipment, dc: Site | None) -> list[Milestone]:
    # A route departure is a fixed timetable event: the departure planned on is also the latest.
    departure = shipment.handover_at_ms
    pick_minutes = 0 if dc is None else dc.pick_minutes + dc.pack_minutes
    store = option.pickup_store_id or shipment.location_id
    return [
        Milestone(
            MilestoneKind.PICK_START,
            shipment.location_id,
            _latest_start(dc, departure, pick_minutes, shipment.ready_at_ms),
            index,
        ),
        Milestone(MilestoneKind.ROUTE_DEPARTURE, shipment.location_id, departure, index),
        Milestone(MilestoneKind.READY_FOR_PICKUP, store, option.window_start_ms, index),
    ]


def _own_stock_leg(
    option: DeliveryOption, index: int, shipment: Shipment, store: Site | None
) -> list[Milestone]:
    pick_minutes = 0 if store is None else store.pick_minutes
    pick_start = _latest_start(store, option.window_start_ms, pick_minutes, shipment.ready_at_ms)
    return [
        Milestone(MilestoneKind.PICK_START, shipment.location_id, pick_start, index),
        Milestone(MilestoneKind.READY_FOR_PICKUP, shipment.location_id, option.window_start_ms, index),
    ]


def _courier_leg(
    option: DeliveryOption, index: int, shipment: Shipment, store: Site | None
) -> list[Milestone]:
    if store is not None and store.courier is not None:
        departure = option.window_start_ms - courier_ride_ms(store.courier, shipment.distance_km)
    else:
        departure = shipment.handover_at_ms
    pick_minutes = 0 if store is None else store.pick_minutes + store.pack_minutes
    pick_start = _latest_start(store, departure, pick_minutes, shipment.ready_at_ms)
    return [
        Milestone(MilestoneKind.PICK_START, shipment.location_id, pick_start, index),
        Milestone(MilestoneKind.COURIER_DEPARTURE, shipment.location_id, departure, index),
        Milestone(MilestoneKind.DELIVERED, shipment.location_id, option.window_end_ms, index),
    ]
