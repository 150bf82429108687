"""Same-day courier options: the first slot today with capacity, after pick, pack and the ride, at
the store in range holding the whole cart that can come soonest (or the most hopeful reason why
none can).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from oms_streams.domain.calendar import MS_PER_MINUTE, local_date, opening_intervals
from oms_streams.domain.network import Calendar, Capability, DeliveryMethod, Site
from oms_streams.domain.promise_plan import Plan
from oms_streams.domain.promise_timing import courier_ride_ms
from oms_streams.domain.promise_types import DeliveryOption, Shipment


def _courier_radius(site: Site) -> float | None:
    return None if site.courier is None else site.courier.radius_km


def courier_options(plan: Plan) -> list[DeliveryOption] | str:
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


def _courier_slot(plan: Plan, store: Site, km: float) -> DeliveryOption | str:
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


# --- booking at placement: the owner of a store's slots decides, in order ---------------------------


@dataclass(frozen=True, slots=True)
class SlotBooking:
    status: str
    """booked (the slot asked for) | moved (the next free slot of that day) | refused."""
    slot_ms: int | None
    reason: str = ""


def day_slots(calendar: Calendar, slot_minutes: int, from_ms: int) -> list[int]:
    """The starts of the store's slots on ``from_ms``'s local day, from the slot holding it on
    (slots are cut from each opening interval's start, as promises cut them)."""
    length = slot_minutes * MS_PER_MINUTE
    starts = []
    for start, end in opening_intervals(calendar, local_date(calendar.timezone, from_ms)):
        slot = start if from_ms <= start else start + (from_ms - start) // length * length
        while slot + length <= end:
            starts.append(slot)
            slot += length
    return starts


def book_slot(
    booked: Mapping[int, Collection[str]],
    order_id: str,
    wanted_ms: int,
    slots: Sequence[int],
    capacity: int,
) -> SlotBooking:
    """The slot an order gets: the one it asked for while it has room, else the next one of the day
    with room, else none (with the reason). An order that holds a slot keeps it (a repeat)."""
    for slot, orders in booked.items():
        if order_id in orders:
            return SlotBooking("booked" if slot == wanted_ms else "moved", slot)
    for slot in sorted({wanted_ms, *(s for s in slots if s > wanted_ms)}):
        if len(booked.get(slot, ())) < capacity:
            return SlotBooking("booked" if slot == wanted_ms else "moved", slot)
    return SlotBooking(
        "refused",
        None,
        f"courier slot full: the chosen slot and every later one that day are booked "
        f"({capacity} deliveries per slot)",
    )
