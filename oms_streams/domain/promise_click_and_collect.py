"""Click & collect options: ready for pickup at a chosen (or a nearby) store from its own stock, or
with the missing lines on the route truck from a DC that gets them there soonest.
"""

from __future__ import annotations

from oms_streams.domain.calendar import HORIZON_DAYS, day_window, next_open
from oms_streams.domain.network import Capability, DeliveryMethod, Site
from oms_streams.domain.promise_plan import Plan
from oms_streams.domain.promise_timing import Leg, best_transfer
from oms_streams.domain.promise_types import DeliveryOption, Shipment


def click_and_collect_options(plan: Plan) -> list[DeliveryOption] | str:
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


def _collect_at(plan: Plan, store: Site) -> DeliveryOption | str:
    """Ready for pickup from the store's own stock, else with the missing lines on the next route
    truck from a DC that holds them all."""
    own_stock = plan.held_at(DeliveryMethod.CLICK_AND_COLLECT, store.location_id)
    cart = plan.cart
    own = tuple(line for line in cart if own_stock[line.sku] >= line.quantity)
    # A line the store holds only partly comes whole from the DC: one pick, one place.
    missing = tuple(line for line in cart if own_stock[line.sku] < line.quantity)
    legs: list[Leg] = []
    ready_for_pickup = plan.request.asked_at_ms
    if own:
        # Ready when the store's queue allows (policy), never before the pick itself is done.
        own_ready = plan.ready(store, max(store.pick_minutes, plan.network.policy.store_ready_minutes))
        if own_ready is None:
            return f"{store.location_id} does not open within {HORIZON_DAYS} days"
        ready_for_pickup = own_ready
        legs.append(Leg(Shipment(store.location_id, own, own_ready, own_ready, own_ready), (0, 0), 0.0))
    if missing:
        transfer = best_transfer(plan, store, missing)
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
