"""Home-delivery options: standard and ship from store (the fewest parcels that cover the cart, each
on its best carrier service; the cart is delivered when the last parcel is) and green (one
consolidated parcel from a site holding the whole cart, lowest CO2e among the soonest).
"""

from __future__ import annotations

from collections.abc import Sequence

from oms_streams.domain.network import Capability, CarrierService, DeliveryMethod, Site
from oms_streams.domain.promise_plan import Holders, Plan
from oms_streams.domain.promise_timing import Leg, carrier_leg
from oms_streams.domain.promise_types import CartLine, DeliveryOption
from oms_streams.domain.transit import SOURCE_BAND, SOURCE_LANE

_GREEN_CANDIDATES = 5
"""Green delivery compares this many of the nearest single-parcel sources (bounded work)."""

_EVIDENCE = frozenset({SOURCE_LANE, SOURCE_BAND})
"""Transit learned on the lane or its distance band; the service as a whole says nothing about a
distance it has never delivered over."""


def _option(option_id: str, method: DeliveryMethod, legs: Sequence[Leg], plan: Plan) -> DeliveryOption:
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


def _cover(plan: Plan, holders: Holders, where: str) -> list[tuple[Site, tuple[CartLine, ...]]] | str:
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


def _collected(holders: Holders, services: Sequence[CarrierService]) -> Holders:
    """Only the holders some service collects from: a site no carrier visits does not ship."""
    if any(not service.origins for service in services):
        return holders
    visited = frozenset().union(*(service.origins for service in services))
    return {
        sku: {loc: units for loc, units in held.items() if loc in visited} for sku, held in holders.items()
    }


def _whole_cart_holders(plan: Plan, holders: Holders) -> set[str]:
    """Locations holding every line of the cart whole."""
    holding: set[str] | None = None
    for sku, quantity in plan.need.items():
        enough = {location_id for location_id, units in holders[sku].items() if units >= quantity}
        holding = enough if holding is None else holding & enough
        if not holding:
            return set()
    return holding or set()


def _parcels(
    plan: Plan, method: DeliveryMethod, capability: Capability, where: str
) -> list[DeliveryOption] | str:
    if not plan.has_coordinates:
        return "home delivery needs destination coordinates"
    services = plan.index.services[DeliveryMethod.STANDARD]
    if not services:
        return "no standard carrier service"
    cover = _cover(plan, _collected(plan.candidates(method, capability), services), where)
    if isinstance(cover, str):
        return cover
    legs: list[Leg] = []
    for site, lines in cover:
        leg = carrier_leg(plan, site, lines, services, "standard")
        if isinstance(leg, str):
            return leg
        legs.append(leg)
    return [_option(method.value, method, legs, plan)]


def standard_options(plan: Plan) -> list[DeliveryOption] | str:
    return _parcels(plan, DeliveryMethod.STANDARD, Capability.SHIPS, "sites that ship")


def ship_from_store_options(plan: Plan) -> list[DeliveryOption] | str:
    return _parcels(
        plan, DeliveryMethod.SHIP_FROM_STORE, Capability.SHIP_FROM_STORE, "ship-from-store stores"
    )


def green_options(plan: Plan) -> list[DeliveryOption] | str:
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
    best: Leg | None = None
    reason = ""
    cart = plan.cart
    for site in whole[:_GREEN_CANDIDATES]:
        leg = carrier_leg(plan, site, cart, services, "green")
        if isinstance(leg, str):
            reason = reason or leg
        elif best is None or (leg.window[1], leg.co2e_g) < (best.window[1], best.co2e_g):
            best = leg
    if best is None:
        return reason
    return [_option(DeliveryMethod.GREEN.value, DeliveryMethod.GREEN, [best], plan)]
