"""Orders with their promise, fulfilment events, orders at risk (``oms.orders.*``, ``oms.fulfilment.*``).

All keyed by order id, so an order's placement and its fulfilment events meet in one partition.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, model_validator

from oms_streams.schemas.envelope import Envelope, Identifier, WireModel
from oms_streams.schemas.promise import CartLineModel, DeliveryOptionModel, DestinationModel, PromiseToken

FulfilmentKindName = Literal[
    "pick_started",
    "picked",
    "packed",
    "handed_to_carrier",
    "route_departed",
    "ready_for_pickup",
    "delivered",
    "collected",
    "store_rejected",
    "short_pick",
    "carrier_delay",
]


class OrderPlaced(Envelope):
    """An order placed with the delivery option the customer chose (as ``POST /promise`` returned it),
    and the option's promise token.

    Placing the same order again with another event id is an edit: a new version of the whole order,
    checked like a placement, its difference withdrawn and sourced, and answered on
    ``oms.orders.sourced.v1`` (``edit``: accepted or refused with the reason; docs/edits.md).
    """

    order_id: Identifier
    cart: Annotated[list[CartLineModel], Field(min_length=1, max_length=100)]
    destination: DestinationModel
    option: DeliveryOptionModel
    channel: Annotated[str, Field(max_length=64)] = "webshop"
    hold_id: Annotated[str, Field(pattern=r"^hold-[A-Za-z0-9-]{1,64}$")] | None = Field(
        default=None, description="The cart hold (POST /holds) the order takes over, if any."
    )
    promise_token: PromiseToken | None = Field(
        default=None,
        description="The chosen option's promise_token as POST /promise returned it (or leave it in the "
        "option). Required when the OMS has a signing key: without a valid one the order is rejected.",
    )

    @model_validator(mode="after")
    def _one_token(self) -> OrderPlaced:
        if None not in (self.promise_token, self.option.promise_token) and (
            self.promise_token != self.option.promise_token
        ):
            raise ValueError("promise_token and option.promise_token differ")
        return self


class FulfilmentEvent(Envelope):
    """Progress (or trouble) reported by a WMS, a store app or a carrier."""

    order_id: Identifier
    kind: FulfilmentKindName
    location_id: Identifier | None = None
    shipment: Annotated[int, Field(ge=0, le=100)] | None = Field(
        default=None, description="Index of the promised shipment; default: the one at location_id."
    )
    new_eta: AwareDatetime | None = Field(
        default=None, description="carrier_delay: the new expected delivery."
    )
    reason: Annotated[str, Field(max_length=256)] = ""


class OrderAtRisk(Envelope):
    """An order's risk state changed (``oms.orders.at-risk.v1``): at risk with why and what to do, or cleared.

    event_id is deterministic per (order, promise version, state), so a state re-published after a
    restart is recognisable as a duplicate.
    """

    order_id: Identifier
    status: Literal["at_risk", "cleared"]
    reason: str | None = None
    suggested_action: Literal["re-source", "expedite", "inform_customer"] | None = None
    milestone: str | None = None
    location_id: str | None = None
    shipment: int | None = None
    expected_delay_minutes: int | None = Field(
        default=None, description="How late the order is expected to be (a lower bound); null when unknown."
    )
    promised_by: AwareDatetime
    promise_version: int


class TransitObservation(Envelope):
    """One carrier parcel's progress (``oms.promise.transit-observations.v1``, keyed by lane): delivered
    (its transit and whole lead time), or handed to the carrier and still in transit."""

    order_id: Identifier
    service_id: str
    origin_id: Identifier
    origin_region: str
    dest_region: str
    distance_km: Annotated[float, Field(ge=0)]
    handed_to_carrier_at: AwareDatetime
    delivered_at: AwareDatetime | None = Field(
        default=None, description="None: handed to the carrier and not delivered yet (in transit)."
    )
    placed_at: AwareDatetime | None = Field(
        default=None, description="When the order was placed: the lead time is learned from it."
    )
    origin_timezone: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="The origin's time zone: lead times are counted in its local days."
    )
    in_transit_reported: bool = Field(
        default=False,
        description="Delivered, and reported in transit before (by an observation without delivered_at).",
    )


class CourierBooking(WireModel):
    """A courier slot taken by an order (compacted ``oms.promise.courier-bookings.v1``,
    key ``STORE|SLOT_START_MS|ORDER``; a tombstone frees it)."""

    store_id: Identifier
    slot_start: AwareDatetime
    order_id: Identifier


class OrderReturnable(WireModel):
    """What of an order can come back (compacted ``oms.orders.returnable.v1``, key order id): the
    returns workers check receipts and announced returns against it."""

    order_id: Identifier
    updated_at: AwareDatetime
    ordered: dict[str, int] = Field(description="SKU -> units placed.")
    shipped: dict[str, int] = Field(
        description="SKU -> units that left for the customer (handed to a carrier or courier, on the "
        "route to the pickup store, ready for pickup, delivered or collected)."
    )
    returned: dict[str, dict[str, int]] = Field(
        description="Return id -> SKU -> units accepted back (refused units are not counted)."
    )
