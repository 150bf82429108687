"""The delivery promise's vocabulary: what is asked (cart lines, destination, request), what is
answered (shipments, options, why a method is unavailable), and the stock view it is asked against."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from oms_streams.domain.network import DeliveryMethod

Stock = Mapping[str, Mapping[str, Mapping[str, int]]]
"""channel -> SKU -> location id -> visible units (the availability feed's per-location view)."""

CHANNEL_FOR_METHOD: Mapping[DeliveryMethod, str] = {
    DeliveryMethod.STANDARD: "webshop",
    DeliveryMethod.GREEN: "webshop",
    DeliveryMethod.SHIP_FROM_STORE: "webshop",
    DeliveryMethod.COURIER: "webshop",
    DeliveryMethod.CLICK_AND_COLLECT: "click_and_collect",
}


@dataclass(frozen=True, slots=True)
class CartLine:
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class Destination:
    """Where the cart goes: a home address (coordinates + region), or a chosen pickup store."""

    lat: float | None = None
    lon: float | None = None
    postal_code: str = ""
    region: str = ""
    timezone: str | None = None
    """For the home-delivery window; the carrier calendar's time zone when absent."""
    pickup_store_id: str | None = None


@dataclass(frozen=True, slots=True)
class PromiseRequest:
    request_id: str
    cart: tuple[CartLine, ...]
    destination: Destination
    asked_at_ms: int
    methods: frozenset[DeliveryMethod] = frozenset(DeliveryMethod)


@dataclass(frozen=True, slots=True)
class Shipment:
    """One parcel (or one route transfer) of an option: where from, what, and its timeline."""

    location_id: str
    lines: tuple[CartLine, ...]
    ready_at_ms: int
    """Picked and packed (working time at the origin)."""
    handover_at_ms: int
    """Carrier pickup, route departure, courier departure, or (click & collect from own stock)
    the ready time."""
    arrives_at_ms: int
    """Expected delivery / arrival at the pickup store, at the promise's quantile."""
    service_id: str | None = None
    route_id: str | None = None
    distance_km: float = 0.0
    transit_source: str | None = None
    """'lane' | 'band' | 'service' | 'prior' for carrier legs (see ``TransitEstimate.source``)."""


@dataclass(frozen=True, slots=True)
class DeliveryOption:
    option_id: str
    """Stable within a response: 'standard', 'green', 'ship_from_store', 'click_and_collect:<store>',
    'courier:<store>'."""
    method: DeliveryMethod
    window_start_ms: int
    window_end_ms: int
    """Delivered (or ready for pickup) within [start, end] with probability >= confidence."""
    confidence: float | None
    """None when a carrier leg was timed without evidence (no lane or distance band with
    ``min_lane_samples`` of history): the window is the carrier's claim, not a learned quantile."""
    parcels: int
    co2e_g: float
    shipments: tuple[Shipment, ...]
    pickup_store_id: str | None = None
    preorder: bool = False
    """Served from announced inbound (with an ETA) at the shipments' locations: placing it holds
    inbound units, and the order is allocated when they arrive (``docs/preorders.md``)."""


@dataclass(frozen=True, slots=True)
class Unavailable:
    method: DeliveryMethod
    reason: str


@dataclass(frozen=True, slots=True)
class PromiseResult:
    request_id: str
    asked_at_ms: int
    options: tuple[DeliveryOption, ...]
    unavailable: tuple[Unavailable, ...] = field(default=())
    """Methods not offered, each with why (no stock, out of courier range, no slot, ...)."""
