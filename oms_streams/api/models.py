"""Response bodies of the HTTP API (documented in the OpenAPI description)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field

from oms_streams.schemas.cancellations import OrderCancellationOutcome
from oms_streams.schemas.promise import DeliveryOptionModel
from oms_streams.schemas.sourcing import CourierSlotModel, EditAnswerModel


class LocationAvailability(BaseModel):
    location_id: str
    quantity: int
    type: str | None = None
    name: str | None = None
    distance_km: float | None = Field(default=None, description="Only with ?near=")
    lead_time_hours: int | None = Field(default=None, description="Third-party stock only.")


class ChannelAvailabilityResponse(BaseModel):
    sku: str
    channel: str
    total: int
    locations: list[LocationAvailability]
    published_at: AwareDatetime
    rules_version: str


class ApiError(BaseModel):
    error: str


class MilestoneView(BaseModel):
    kind: str
    location_id: str
    shipment: int
    due: AwareDatetime = Field(description="The latest time this step may happen for the promise to hold.")
    reached: bool


class FulfilmentEventView(BaseModel):
    event_id: str
    kind: str
    occurred_at: AwareDatetime
    location_id: str | None = None
    shipment: int | None = None


class RiskView(BaseModel):
    reason: str
    suggested_action: str
    milestone: str | None = None
    location_id: str
    shipment: int
    expected_delay_minutes: int | None = None


class PromiseView(BaseModel):
    version: int
    placed_at: AwareDatetime
    option: DeliveryOptionModel


class ShipmentView(BaseModel):
    """One of the order's shipments as sourcing allocated it."""

    shipment: int = Field(
        description="Its index: the promise's shipments first, then those re-sourcing added."
    )
    location_id: str
    lines: list[dict[str, Any]] = Field(description="What it ships now (a withdrawn one: what nothing took).")
    service_id: str | None = None
    route_id: str | None = None
    handover_at: AwareDatetime | None = None
    arrives_at: AwareDatetime | None = Field(default=None, description="As planned (promised or allocated).")
    round: int = Field(description="The sourcing round that added it; 0: the promise.")
    state: Literal["current", "withdrawn", "cancelled"] = Field(
        description="withdrawn: sourcing moved its units elsewhere (or found none): its milestones and "
        "events no longer count; cancelled: every SKU it carries was cancelled."
    )
    late_minutes: int | None = Field(
        default=None,
        description="Its allocation arrives this long after the promised window (the promise stands: "
        "the order is at risk, allocated_late).",
    )


class MoveView(BaseModel):
    """Units of a shipment a sourcing round put elsewhere (or withdrew without a new place)."""

    round: int
    shipment: int
    from_location_id: str
    to: list[dict[str, Any]] = Field(
        description="The shipments (index, location) that took them; empty: none."
    )
    lines: list[dict[str, Any]] = Field(description="What moved to them.")
    withdrawn: bool = Field(description="The whole shipment was withdrawn (else it ships its other lines).")
    reason: str = Field(
        description="Why: the short pick, rejection or shed that withdrew it, else the round's."
    )
    at: AwareDatetime | None = None


class AllocationView(BaseModel):
    allocation_id: str
    location_id: str
    lines: list[dict[str, Any]]
    state: str = Field(description="live, fulfilled (left the location) or cancelled")


class OutstandingCommandView(BaseModel):
    kind: str = Field(description="reserve, release or fulfil")
    reservation_id: str
    sku: str
    since: AwareDatetime = Field(description="When it was first sent.")
    last_sent: AwareDatetime
    sends: int = Field(
        description="Sends so far: the first, and one more after each reply timeout (a re-send after a "
        "rebalance restarts the timeout without counting)."
    )


class PreorderView(BaseModel):
    status: Literal["asking", "waiting", "arrived", "late", "refused", "cancelled"] = Field(
        description="asking: the ledgers have not all answered; waiting: inbound held, allocated when it "
        "arrives; arrived: allocated; late: given up past its ETA plus OMS_PREORDER_GRACE_H; refused: "
        "the inbound was promised to others, the order was sourced from stock on hand instead; "
        "cancelled: the whole order was cancelled while it waited (its holds released at once)."
    )
    expected_at: AwareDatetime | None = Field(
        default=None, description="The latest ETA its ledgers answered."
    )
    given_up_at: AwareDatetime | None = Field(
        default=None, description="When the preorder is given up unless the goods arrived (ETA + grace)."
    )


class SourcingView(BaseModel):
    status: str = Field(description="reserving, allocated, partially_allocated or rejected")
    version: int = Field(
        default=1, description="The order's version in force: 1 as placed, +1 per accepted edit."
    )
    lines: list[dict[str, Any]] = Field(
        default=[], description="The lines of that version, [{sku, quantity}] (docs/edits.md)."
    )
    edits: list[EditAnswerModel] = Field(
        default=[], description="The latest answers to edits of the order, oldest first (docs/edits.md)."
    )
    round: int = Field(description="1 for the first sourcing, +1 per re-sourcing; 0: refused at placement.")
    attempts: int = Field(description="Reservation attempts of the current round (one per plan).")
    allocations: list[AllocationView]
    backorder: list[dict[str, Any]]
    backorder_until: AwareDatetime | None = Field(
        default=None,
        description="The backorder is sourced again when the availability shows stock for it until then "
        "(placement plus OMS_BACKORDER_HORIZON_H); null without a backorder or once it is final.",
    )
    backorder_final: str | None = Field(
        default=None,
        description="Why the backorder is no longer sourced again (not in stock within the horizon, a "
        "courier order, not for lack of stock, refused at placement); null while it waits or without one.",
    )
    backorder_rounds: int = Field(default=0, description="Rounds started to source the backorder again.")
    preorder: PreorderView | None = Field(
        default=None, description="A preorder's round: inbound held for the order until the goods arrive."
    )
    reason: str
    outstanding: list[OutstandingCommandView] = Field(
        default=[], description="Commands sent to SKU ledgers and not answered yet."
    )
    courier_slot: CourierSlotModel | None = Field(
        default=None,
        description="A courier delivery's slot as the owner of the store's slots booked it: the one "
        "chosen, or (moved) the next free one of that day. Null when none is booked (a full day: "
        "the order is rejected and the reason says so).",
    )


class ReturnedItemView(BaseModel):
    sku: str
    quantity: int
    grade: str = Field(description="as_new, resellable, damaged, defective")
    disposition: str = Field(
        description="restock, unsellable, return_to_vendor, or refused: not accepted against the order "
        "(more than it delivered, not shipped yet, not in it; no stock moved)"
    )
    reason: str | None = Field(default=None, description="Why the units were refused.")


class ReturnedView(BaseModel):
    event_id: str
    return_id: str
    location_id: str
    handling: str = Field(description="in_store (handed in there) or shipped (routed there)")
    processed_at: str
    items: list[ReturnedItemView]


class ReturnResponse(BaseModel):
    """A return as its owning worker keeps it: the routing decision and each receipt."""

    return_id: str
    order_id: str | None
    channel: str | None
    routing: dict[str, Any] | None = Field(
        description="at_ms, event_id, origin [lat, lon], lines (as on oms.returns.routed.v1)"
    )
    receipts: dict[str, Any] = Field(
        description="Per received event id: location, handling, items with dispositions, km avoided"
    )


class OrderLineView(BaseModel):
    sku: str
    quantity: int = Field(description="As ordered.")
    state: str = Field(description="sourcing, allocated, backordered, shipped or cancelled")
    allocated: int = Field(description="Units in live allocations (not shipped yet).")
    shipped: int = Field(description="Units that left their location.")
    cancelled: int = Field(description="Units cancelled (a line is cancelled whole, but shipped units stay).")


class CancellationPending(BaseModel):
    request_id: str
    status: Literal["pending"]
    detail: str


class CancellationRefused(OrderCancellationOutcome):
    error: str = Field(description="Why nothing was cancelled.")


class OrderResponse(BaseModel):
    order_id: str
    status: str = Field(
        description="on_track, at_risk, cancelled (every line), awaiting_placement (events came first), "
        "or rejected (a placement refused before it could be read: no promise to track)"
    )
    lifecycle: (
        Literal[
            "placed",
            "allocated",
            "partially_allocated",
            "preordered",
            "backordered",
            "shipped",
            "delivered",
            "cancelled",
            "rejected",
        ]
        | None
    ) = Field(
        default=None,
        description="Where the order is in its life (status keeps the risk view: an allocated or shipped "
        "order can be at risk); null while only fulfilment events arrived.",
    )
    promise: PromiseView | None = None
    milestones: list[MilestoneView] = Field(
        default=[],
        description="The current milestones: the promise's, or where sourcing moved a shipment, those of "
        "its new location (against the same promised window).",
    )
    shipments: list[ShipmentView] = Field(
        default=[], description="The shipments as allocated, with the round that added each and its state."
    )
    moves: list[MoveView] = Field(default=[], description="What sourcing moved, in which round and why.")
    events: list[FulfilmentEventView] | int = []
    risk: RiskView | None = None
    sourcing: SourcingView | None = None
    returns: list[ReturnedView] = Field(default=[], description="Processed returns of the order's items.")
    lines: list[OrderLineView] = Field(default=[], description="Each line (SKU) of the order and its state.")
    cancellations: list[dict[str, Any]] = Field(
        default=[],
        description="Each cancellation request's answer (as on oms.orders.cancellation-outcomes.v1, without "
        "the envelope), or outcome 'pending' while it waits for a sourcing round.",
    )


class HoldLocationView(BaseModel):
    location_id: str
    quantity: int


class HoldSkuView(BaseModel):
    sku: str
    status: Literal["pending", "held", "refused", "released", "expired", "taken_over"] = Field(
        description="What the SKU's ledger said last (pending: nothing yet)."
    )
    lines: list[HoldLocationView] = Field(
        description="Units held, released, expired or taken over (asked for, when refused)."
    )


class HoldResponse(BaseModel):
    """A cart hold as the ledgers of its SKUs answered it (any worker answers for any hold)."""

    hold_id: str = Field(description="'hold-<uuid>': place the order with it (hold_id) to take it over.")
    status: Literal["pending", "held", "refused", "released", "expired", "taken_over"] = Field(
        description="refused if any SKU was refused (the others are given back); pending while a SKU is "
        "unanswered; held when every SKU is; else how it ended (taken_over, released, expired)."
    )
    channel: str
    expires_at: AwareDatetime = Field(
        description="When the ledgers release it unless an order takes it over."
    )
    skus: list[HoldSkuView]
    reason: str = ""
    order_id: str | None = Field(default=None, description="taken_over: the order placed with it.")
    detail: str | None = Field(default=None, description="202: how to learn the answer.")


class HoldRefused(HoldResponse):
    error: str = Field(description="Why: each refused SKU's ledger's reason.")
