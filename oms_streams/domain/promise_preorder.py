"""Preorder options: a cart that stock on hand cannot serve, promised from announced inbound.

A site that ships and expects every line of the cart as announced inbound (lots with an ETA not
promised to other preorders) offers one parcel, timed exactly like a standard parcel from that site
asked for at the moment the cart's last unit is expected there: ETA + pick and pack along the
site's calendar + the carrier's cutoff, pickup and learned transit (``promise_timing``). Preorders
take the earliest free units first, so the cart's ETA at a site is, per SKU, the ETA of the lot
its last unit comes from, and the latest over the SKUs. The earliest window among the sites wins.

Deliberately small: home delivery (standard) only, the whole cart from one site, and only when the
standard method has no option from stock on hand. The horizon of on-hand promises does not apply:
preorders are for goods further out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from oms_streams.domain.network import Capability, DeliveryMethod
from oms_streams.domain.promise_plan import Plan
from oms_streams.domain.promise_timing import carrier_leg
from oms_streams.domain.promise_types import DeliveryOption
from oms_streams.domain.transit import SOURCE_BAND, SOURCE_LANE

Inbound = Mapping[str, Mapping[str, tuple[tuple[int, int], ...]]]
"""SKU -> location -> (ETA ms, units) of its free inbound lots, earliest first."""


def eta_of(lots: tuple[tuple[int, int], ...], units: int) -> int | None:
    """When the ``units``-th free unit is expected (None: the lots hold fewer)."""
    for eta, free in lots:
        units -= free
        if units <= 0:
            return eta
    return None


def cart_etas(plan: Plan, inbound: Inbound) -> dict[str, int]:
    """Sites that ship and expect the whole cart -> when its last unit is expected there."""
    if not plan.need:
        return {}
    sites: set[str] = set(plan.index.by_capability[Capability.SHIPS])
    for sku in plan.need:
        sites &= set(inbound.get(sku, {}))
    etas: dict[str, int] = {}
    for location_id in sorted(sites):
        each = [eta_of(inbound[sku][location_id], units) for sku, units in plan.need.items()]
        if all(eta is not None for eta in each):
            etas[location_id] = max(eta for eta in each if eta is not None)
    return etas


def preorder_options(plan: Plan, inbound: Inbound) -> list[DeliveryOption] | str:
    if not plan.has_coordinates:
        return "home delivery needs destination coordinates"
    services = plan.index.services[DeliveryMethod.STANDARD]
    if not services:
        return "no standard carrier service"
    etas = cart_etas(plan, inbound)
    if not etas:
        return "no site that ships expects the whole cart as announced inbound"
    best: DeliveryOption | None = None
    why = ""
    for location_id, eta in etas.items():
        asked = max(eta, plan.request.asked_at_ms)
        later = Plan(
            replace(plan.request, asked_at_ms=asked), plan.stock, plan.network, plan.transit, plan.booked
        )
        leg = carrier_leg(later, plan.network.sites[location_id], plan.cart, services, "standard")
        if isinstance(leg, str):
            why = leg
            continue
        learned = leg.shipment.transit_source in (SOURCE_LANE, SOURCE_BAND)
        option = DeliveryOption(
            option_id=f"preorder:{location_id}",
            method=DeliveryMethod.STANDARD,
            window_start_ms=leg.window[0],
            window_end_ms=leg.window[1],
            confidence=plan.network.policy.quantile if learned else None,
            parcels=1,
            co2e_g=leg.co2e_g,
            shipments=(leg.shipment,),
            preorder=True,
        )
        if best is None or (option.window_end_ms, option.option_id) < (best.window_end_ms, best.option_id):
            best = option
    return [best] if best is not None else why
