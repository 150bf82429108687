"""Delivery promise requests and responses (``oms.promise.*.v1``, HTTP ``POST /promise``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, model_validator

from oms_streams.schemas.envelope import Envelope, Identifier, WireModel

MethodName = Literal["standard", "green", "ship_from_store", "click_and_collect", "courier"]
MAX_CART_LINES = 100
PromiseToken = Annotated[
    str,
    Field(
        min_length=1,
        max_length=256,
        description="'p1.<key id>.<expires at, epoch ms>.<HMAC-SHA256, base64url>' (docs/promise-tokens.md).",
    ),
]


class CartLineModel(WireModel):
    sku: Identifier
    quantity: Annotated[int, Field(ge=1, le=10_000)]


class DestinationModel(WireModel):
    """A home address (coordinates; postal code and region help the lane statistics), or a pickup store."""

    postal_code: Annotated[str, Field(max_length=16)] = ""
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None
    region: Annotated[str, Field(max_length=64)] = ""
    timezone: Annotated[str, Field(max_length=64)] | None = None
    pickup_store_id: Identifier | None = None

    @model_validator(mode="after")
    def _somewhere(self) -> DestinationModel:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon go together")
        if self.lat is None and self.pickup_store_id is None:
            raise ValueError("a destination needs lat/lon or a pickup_store_id")
        return self


def _unique_skus(cart: list[CartLineModel]) -> list[CartLineModel]:
    skus = [line.sku for line in cart]
    if len(set(skus)) != len(skus):
        raise ValueError("each SKU appears once in a cart (add the quantities)")
    return cart


class PromiseQuery(WireModel):
    """The body of ``POST /promise``."""

    cart: Annotated[list[CartLineModel], Field(min_length=1, max_length=MAX_CART_LINES)]
    destination: DestinationModel
    asked_at: AwareDatetime | None = Field(default=None, description="Defaults to the server's now.")
    methods: list[MethodName] | None = Field(default=None, description="Only these methods; all by default.")
    request_id: Identifier | None = None

    @model_validator(mode="after")
    def _cart(self) -> PromiseQuery:
        _unique_skus(self.cart)
        return self


class PromiseRequested(Envelope):
    """A promise asked for over Kafka (``oms.promise.requests.v1``, keyed by request id)."""

    request_id: Identifier
    cart: Annotated[list[CartLineModel], Field(min_length=1, max_length=MAX_CART_LINES)]
    destination: DestinationModel
    asked_at: AwareDatetime | None = Field(default=None, description="Defaults to occurred_at.")
    methods: list[MethodName] | None = None

    @model_validator(mode="after")
    def _cart(self) -> PromiseRequested:
        _unique_skus(self.cart)
        return self


class ShipmentModel(WireModel):
    location_id: Identifier
    lines: list[CartLineModel]
    ready_at: AwareDatetime
    handover_at: AwareDatetime
    arrives_at: AwareDatetime
    service_id: str | None = None
    route_id: str | None = None
    distance_km: float = 0.0
    transit_source: Literal["lane", "band", "service", "prior"] | None = None


class DeliveryOptionModel(WireModel):
    option_id: Annotated[str, Field(min_length=1, max_length=160)]
    method: MethodName
    window_start: AwareDatetime
    window_end: AwareDatetime
    confidence: Annotated[float, Field(gt=0, le=1)] | None = Field(
        description="The probability the window is met; null when the transit was not learned "
        "(no lane or distance band with enough history): the window is then the carrier's claim."
    )
    parcels: Annotated[int, Field(ge=1)]
    co2e_g: Annotated[float, Field(ge=0)]
    shipments: Annotated[list[ShipmentModel], Field(min_length=1)]
    pickup_store_id: Identifier | None = None
    preorder: bool = Field(
        default=False,
        description="Served from announced inbound stock (with its ETA): the order holds inbound units "
        "when placed and is allocated when they arrive (docs/preorders.md).",
    )
    promise_token: PromiseToken | None = Field(
        default=None,
        description="POST /promise with a signing key configured: the OMS's signature of this option. "
        "Place the order with it (docs/promise-tokens.md).",
    )
    token_expires_at: AwareDatetime | None = Field(
        default=None, description="Until when the option may be placed with its promise_token."
    )

    @model_validator(mode="after")
    def _window(self) -> DeliveryOptionModel:
        if self.window_end < self.window_start:
            raise ValueError("window_end is before window_start")
        return self


class UnavailableModel(WireModel):
    method: MethodName
    reason: str


class PromiseResponse(WireModel):
    """Answer to a request (``oms.promise.responses.v1`` keyed by request id, and ``POST /promise``)."""

    request_id: str
    asked_at: AwareDatetime
    options: list[DeliveryOptionModel]
    unavailable: list[UnavailableModel] = []
    network_generation: int = Field(description="Which version of the network this worker computed with.")
