"""The promise's timing for planners that choose their own sources (sourcing): carrier legs and
route transfers timed exactly as ``promise_options`` times them, memoised per minute.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from oms_streams.domain.calendar import MS_PER_MINUTE
from oms_streams.domain.network import Capability, CarrierService, DeliveryMethod, PromiseNetwork, Route, Site
from oms_streams.domain.promise_plan import Plan
from oms_streams.domain.promise_timing import best_transfer, carrier_leg
from oms_streams.domain.promise_types import (
    CHANNEL_FOR_METHOD,
    CartLine,
    Destination,
    PromiseRequest,
    Shipment,
)
from oms_streams.domain.transit import TransitModel, distance_band


@dataclass(frozen=True, slots=True)
class CarrierLeg:
    """A parcel from one site as a promise would plan it: timeline, delivery window and CO2e."""

    shipment: Shipment
    window_start_ms: int
    window_end_ms: int
    """The delivery day's hours the arrival falls in (the promise's window for this parcel)."""
    co2e_g: float


@dataclass(frozen=True, slots=True)
class RouteTransfer:
    """Lines riding a replenishment route from a DC to a pickup store, as a promise plans it."""

    shipment: Shipment
    """handover = the truck's departure, arrives = its arrival at the store."""
    received_at_ms: int
    """Unloaded and put aside for pickup (the store's receiving minutes after the arrival)."""
    co2e_g: float
    """The order's marginal share of the truck's emissions (see PromisePolicy.route_share)."""


_LEGS: dict[tuple[object, ...], tuple[PromiseNetwork, TransitModel, CarrierLeg | str]] = {}
"""Carrier legs by what their timing depends on; co2e_g holds grams per km here."""
_MAX_LEGS = 50_000


class LegPlanner:
    """The promise engine's per-request timing machinery for a planner that picks its own sources.

    Carrier legs and route transfers are computed exactly as ``promise_options`` computes them
    (same ready times, cut-offs, transit quantile, delivery-day windows), so a plan made with them
    keeps the promise's clock (as of the next whole minute). Ready times and distances are cached
    for the planner's lifetime: build one per decision."""

    __slots__ = ("_plan",)

    def __init__(
        self,
        cart: Sequence[CartLine],
        destination: Destination,
        now_ms: int,
        network: PromiseNetwork,
        transit: TransitModel,
    ) -> None:
        # Timed as of the next whole minute: at most a minute conservative (a later start never
        # promises earlier), and the same for every order decided within that minute, so a leg is
        # computed once per site, destination region and distance band per minute (see _LEGS).
        moment = -(-now_ms // MS_PER_MINUTE) * MS_PER_MINUTE
        request = PromiseRequest("legs", tuple(cart), destination, moment)
        self._plan = Plan(request, {}, network, transit, {})

    def sites_with(self, capability: Capability) -> frozenset[str]:
        """Location ids of the network's sites with a capability (derived once per network)."""
        return self._plan.index.by_capability[capability]

    def services(self, method: DeliveryMethod) -> Sequence[CarrierService]:
        """The carrier services a home-delivery method ships with (ship from store uses standard)."""
        kind = DeliveryMethod.GREEN if method is DeliveryMethod.GREEN else DeliveryMethod.STANDARD
        return self._plan.index.services[kind]

    def collects(self, location_id: str, method: DeliveryMethod) -> bool:
        """Some carrier service of the method collects at the location."""
        return any(not s.origins or location_id in s.origins for s in self.services(method))

    def routes_to(self, store_id: str) -> Sequence[tuple[Route, int]]:
        """The routes stopping at a store, with the index of its stop."""
        return self._plan.index.routes_to.get(store_id, [])

    def distance_km(self, site: Site) -> float:
        return self._plan.distance_km(site)

    def ready(self, site: Site, minutes: int) -> int | None:
        """When ``minutes`` of working time at ``site``, started now, are done (None: not within the
        calendar horizon)."""
        return self._plan.ready(site, minutes)

    def carrier_leg(
        self, site: Site, lines: tuple[CartLine, ...], method: DeliveryMethod
    ) -> CarrierLeg | str:
        """The parcel's best service from ``site`` (earliest window end, then arrival, then CO2e),
        or why there is none."""
        kind = "green" if method is DeliveryMethod.GREEN else "standard"
        plan = self._plan
        distance = plan.distance_km(site)
        destination = plan.request.destination
        # A leg's timing depends on the site, the moment, the destination's region and time zone and
        # the distance band, not on the lines: orders decided in one batch share the moment.
        key = (
            id(plan.network),
            id(plan.transit),
            getattr(plan.transit, "version", 0),  # test doubles of the model never change
            plan.request.asked_at_ms,
            site.location_id,
            kind,
            destination.region,
            destination.timezone,
            distance_band(distance),
        )
        entry = _LEGS.get(key)
        # The entry holds the network and model it was computed with: an id is only unique while
        # its object lives, so a hit must be for these very objects.
        if entry is not None and entry[0] is plan.network and entry[1] is plan.transit:
            cached = entry[2]
        else:
            leg = carrier_leg(plan, site, lines, self.services(method), kind)
            if len(_LEGS) >= _MAX_LEGS:
                _LEGS.clear()
            cached = (
                leg
                if isinstance(leg, str)
                else CarrierLeg(leg.shipment, leg.window[0], leg.window[1], leg.co2e_g / max(distance, 1e-9))
            )
            _LEGS[key] = (plan.network, plan.transit, cached)
        if isinstance(cached, str):
            return cached
        shipment = replace(cached.shipment, lines=lines, distance_km=distance)
        return CarrierLeg(shipment, cached.window_start_ms, cached.window_end_ms, cached.co2e_g * distance)

    def transfer(self, store: Site, lines: tuple[CartLine, ...], origin_id: str) -> RouteTransfer | str:
        """The route truck from ``origin_id`` that gets ``lines`` ready for pickup at ``store``
        soonest (the origin is taken to hold them), or why there is none."""
        held = {line.sku: {origin_id: line.quantity} for line in lines}
        plan = Plan(
            PromiseRequest("legs", lines, self._plan.request.destination, self._plan.request.asked_at_ms),
            {CHANNEL_FOR_METHOD[DeliveryMethod.STANDARD]: held},
            self._plan.network,
            self._plan.transit,
            {},
        )
        plan._ready = self._plan._ready  # the same moment and sites: share the ready times
        found = best_transfer(plan, store, lines)
        if isinstance(found, str):
            return found
        leg, received = found
        return RouteTransfer(leg.shipment, received, leg.co2e_g)
