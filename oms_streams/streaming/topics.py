"""Every topic oms-streams reads or writes, in one registry.

Stock topics are keyed and partitioned by SKU so one worker owns all locations of a SKU; they must
share one partition count (faust co-partitions them with the ledger tables' changelogs).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from oms_streams.config import Settings
from oms_streams.schemas.availability import AvailabilityRecord
from oms_streams.schemas.cancellations import OrderCancellationOutcome, OrderCancellationRequested
from oms_streams.schemas.config import (
    CarrierServiceRecord,
    LocationRecord,
    PromisePolicyRecord,
    ReturnPolicyRecord,
    RouteRecord,
    VisibilityRulesRecord,
)
from oms_streams.schemas.dlq import DeadLetter
from oms_streams.schemas.holds import HoldRecord
from oms_streams.schemas.inventory import StockCount, StockMovement, SupplierStock
from oms_streams.schemas.orders import (
    CourierBooking,
    FulfilmentEvent,
    OrderAtRisk,
    OrderPlaced,
    OrderReturnable,
    TransitObservation,
)
from oms_streams.schemas.promise import PromiseRequested, PromiseResponse
from oms_streams.schemas.rerouted import ReroutedOrderEvent, ReroutedReturnEvent, ReroutedStockEvent
from oms_streams.schemas.returns import ReturnProcessed, ReturnReceived, ReturnRequested, ReturnRouted
from oms_streams.schemas.sourcing import (
    Allocation,
    CourierSlotRecord,
    OrderSourced,
    ReplyBatch,
    ReservationBatch,
)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    key: str
    model: type[BaseModel]
    description: str
    compacted: bool = False
    single_partition: bool = False
    """Config topics: one partition keeps their order total and their size tiny."""
    producers: tuple[str, ...] = ()
    consumers: tuple[str, ...] = ()
    retention_days: int | None = None
    """Time-bounded topics (a learning window); None keeps the broker's default."""
    broker_time: bool = False
    """Records carry the broker's time of arrival (``LogAppendTime``), not the producer's: what a
    consumer may trust about when a record arrived (a placement's promise token expiry)."""

    def partitions(self, settings: Settings) -> int:
        override = settings.topic_overrides.get(self.name)
        if override and override.partitions:
            return override.partitions
        return 1 if self.single_partition else settings.partitions

    def replication_factor(self, settings: Settings) -> int:
        override = settings.topic_overrides.get(self.name)
        if override and override.replication_factor:
            return override.replication_factor
        return settings.replication_factor

    def kafka_config(self) -> dict[str, str]:
        config = {"cleanup.policy": "compact"} if self.compacted else {}
        if self.retention_days is not None:
            config["retention.ms"] = str(self.retention_days * 86_400_000)
            if self.compacted:
                config["cleanup.policy"] = "compact,delete"
        if self.broker_time:
            config["message.timestamp.type"] = "LogAppendTime"
        return config


MOVEMENTS = TopicSpec(
    "oms.inventory.movements.v1",
    "sku",
    StockMovement,
    "Stock movements at a location: receipts, sales, returns, transfers, adjustments, unsellable.",
    producers=("ERP", "POS"),
    consumers=("apply_stock_events",),
)
COUNTS = TopicSpec(
    "oms.inventory.counts.v1",
    "sku",
    StockCount,
    "Full stock counts: absolute quantities per location as of a time.",
    producers=("ERP",),
    consumers=("apply_stock_events",),
)
SUPPLIER_STOCK = TopicSpec(
    "oms.inventory.supplier-stock.v1",
    "sku",
    SupplierStock,
    "Third-party stock snapshots with lead time.",
    producers=("suppliers", "marketplaces"),
    consumers=("apply_stock_events",),
)
LOCATIONS = TopicSpec(
    "oms.config.locations.v1",
    "location_id",
    LocationRecord,
    "Location master data; a tombstone removes a location.",
    compacted=True,
    single_partition=True,
    producers=("oms config publish", "ERP"),
    consumers=("config follower (every worker)",),
)
VISIBILITY_RULES = TopicSpec(
    "oms.config.visibility-rules.v1",
    "'default'",
    VisibilityRulesRecord,
    "Channel exposure, safety stock, store cap, publication thresholds.",
    compacted=True,
    single_partition=True,
    producers=("oms config publish",),
    consumers=("config follower (every worker)",),
)
AVAILABILITY = TopicSpec(
    "oms.availability.v1",
    "sku",
    AvailabilityRecord,
    "Visible availability per channel and location; published only when a visible quantity changes.",
    compacted=True,
    producers=("apply_stock_events", "resync (config change, rebalance)"),
    consumers=("webshop", "availability view (HTTP)"),
)
CARRIER_SERVICES = TopicSpec(
    "oms.config.carrier-services.v1",
    "service_id",
    CarrierServiceRecord,
    "Carrier services: pickups and cut-offs, delivery days, CO2e, transit prior; a tombstone removes one.",
    compacted=True,
    single_partition=True,
    producers=("oms config publish",),
    consumers=("config follower (every worker)",),
)
ROUTES = TopicSpec(
    "oms.config.routes.v1",
    "route_id",
    RouteRecord,
    "Fixed replenishment routes DC -> stores: weekly departures and travel times.",
    compacted=True,
    single_partition=True,
    producers=("oms config publish",),
    consumers=("config follower (every worker)",),
)
PROMISE_POLICY = TopicSpec(
    "oms.config.promise-policy.v1",
    "'default'",
    PromisePolicyRecord,
    "Promise quantile, lane history threshold, parcels, click & collect radius, horizon.",
    compacted=True,
    single_partition=True,
    producers=("oms config publish",),
    consumers=("config follower (every worker)",),
)
PROMISE_REQUESTS = TopicSpec(
    "oms.promise.requests.v1",
    "request_id",
    PromiseRequested,
    "Delivery promise requests for a whole cart (the event twin of POST /promise).",
    producers=("webshop",),
    consumers=("answer_promise_requests",),
)
PROMISE_RESPONSES = TopicSpec(
    "oms.promise.responses.v1",
    "request_id",
    PromiseResponse,
    "Every delivery option for a requested cart: window, confidence, parcels, CO2e, shipments.",
    producers=("answer_promise_requests",),
    consumers=("webshop",),
)
ORDERS_PLACED = TopicSpec(
    "oms.orders.placed.v1",
    "order_id",
    OrderPlaced,
    "Orders with the chosen delivery option; the same order again with a new event id re-promises it.",
    producers=("webshop",),
    consumers=("track_orders", "source_orders"),
    broker_time=True,
)
FULFILMENT_EVENTS = TopicSpec(
    "oms.fulfilment.events.v1",
    "order_id",
    FulfilmentEvent,
    "Pick, pack, handover, route departure, delivery, rejection, short pick, carrier delay.",
    producers=("WMS", "store apps", "carriers"),
    consumers=("track_orders", "source_orders"),
)
ORDERS_AT_RISK = TopicSpec(
    "oms.orders.at-risk.v1",
    "order_id",
    OrderAtRisk,
    "An order's promise in danger (reason, expected delay, suggested action), or cleared (with the "
    "reason when sourcing ended the risk: resourced, backordered, rejected).",
    producers=("track_orders",),
    consumers=("customer service", "fulfilment", "operators"),
)
TRANSIT_OBSERVATIONS = TopicSpec(
    "oms.promise.transit-observations.v1",
    "service|origin region|destination region",
    TransitObservation,
    "Carrier transit of every delivered parcel; every worker learns its lane statistics from it.",
    producers=("track_orders (on delivered)",),
    consumers=("transit learner (every worker)",),
    retention_days=180,  # the learning window: a restarted worker relearns from the last 180 days
)
COURIER_BOOKINGS = TopicSpec(
    "oms.promise.courier-bookings.v1",
    "store|slot start ms|order",
    CourierBooking,
    "Courier slots taken by placed orders; one key per booking, so workers never overwrite each other.",
    compacted=True,
    producers=("source_orders (the owner of the store's slots)",),
    consumers=("courier slots (every worker)",),
    retention_days=7,  # only today's slots matter
)
RESERVATIONS = TopicSpec(
    "oms.inventory.reservations.v2",
    "sku (of the first command: every command's SKU is in that partition)",
    ReservationBatch,
    "Reserve / release / fulfil commands to the owner of SKU ledgers (co-partitioned with stock), "
    "batched per partition; cart holds' commands too (reservation id 'hold-<uuid>').",
    producers=("source_orders", "POST /holds, DELETE /holds/{hold_id}"),
    consumers=("apply_stock_events",),
)
RESERVATION_REPLIES = TopicSpec(
    "oms.orders.reservation-replies.v2",
    "order_id (of the first reply: every reply's order is in that partition)",
    ReplyBatch,
    "The ledger's answer to each reservation command, back to the owner of the order, batched per partition.",
    producers=("apply_stock_events",),
    consumers=("source_orders",),
)
COURIER_SLOTS = TopicSpec(
    "oms.orders.courier-slots.v1",
    "store_id (book, release: to the slots' owner) or order_id (its answer: to the order's owner)",
    CourierSlotRecord,
    "A placed courier order's slot: booked by the one worker that owns the store's slots, with the "
    "capacity check in the same step (or the next free slot of the day, or a refusal); released when "
    "the order is cancelled or rejected.",
    producers=("source_orders",),
    consumers=("source_orders",),
    retention_days=7,  # a transport, like the saga's commands
)
ALLOCATIONS = TopicSpec(
    "oms.fulfilment.allocations.v1",
    "order_id",
    Allocation,
    "One allocation per shipment (location, lines, service or route, milestones, decision trace) or "
    "its cancellation.",
    producers=("source_orders",),
    consumers=("WMS", "store apps", "track_orders"),
)
ORDERS_SOURCED = TopicSpec(
    "oms.orders.sourced.v1",
    "order_id",
    OrderSourced,
    "One outcome per order and sourcing round: allocated, partially allocated with backorder, or rejected.",
    producers=("source_orders",),
    consumers=("webshop", "customer service", "oms audit", "track_orders"),
)
CANCELLATIONS = TopicSpec(
    "oms.orders.cancellations.v1",
    "order_id",
    OrderCancellationRequested,
    "Cancel an order, or some of its lines (every unit of a SKU), before they ship; the event twin of "
    "POST /orders/{order_id}/cancellations.",
    producers=("webshop", "customer service", "POST /orders/{order_id}/cancellations"),
    consumers=("source_orders",),
)
CANCELLATION_OUTCOMES = TopicSpec(
    "oms.orders.cancellation-outcomes.v1",
    "order_id",
    OrderCancellationOutcome,
    "One answer per cancellation request: per line cancelled, already cancelled or refused (shipped, "
    "not in the order) with the reason; allocations withdrawn and replaced; what is still to ship.",
    producers=("source_orders",),
    consumers=("webshop", "customer service", "track_orders (risk, courier slots)"),
)
RETURN_POLICY = TopicSpec(
    "oms.config.return-policy.v1",
    "'default'",
    ReturnPolicyRecord,
    "Disposition rules per inspection grade, and the weights of return routing.",
    compacted=True,
    single_partition=True,
    producers=("oms config publish",),
    consumers=("config follower (every worker)",),
)
RETURNS_REQUESTED = TopicSpec(
    "oms.returns.requested.v1",
    "return_id",
    ReturnRequested,
    "A customer announces a shipped return (items, where the parcel is handed in).",
    producers=("webshop",),
    consumers=("handle_returns",),
)
RETURNS_ROUTED = TopicSpec(
    "oms.returns.routed.v1",
    "return_id",
    ReturnRouted,
    "The return address of each item (the location that needs it most, within reach) and why.",
    producers=("handle_returns",),
    consumers=("label service", "returns load (every worker)"),
    retention_days=30,
)
RETURNS_RECEIVED = TopicSpec(
    "oms.returns.received.v1",
    "return_id",
    ReturnReceived,
    "Returned items registered and graded at a store till or a returns desk.",
    producers=("POS", "WMS"),
    consumers=("handle_returns",),
)
RETURNS_PROCESSED = TopicSpec(
    "oms.returns.processed.v1",
    "order_id (return_id without an order)",
    ReturnProcessed,
    "What became of each received item (restocked, unsellable, return to vendor, or refused: more than "
    "its order delivered), linked to its order.",
    producers=("handle_returns",),
    consumers=("track_orders", "vendor returns", "customer service"),
)
ORDERS_RETURNABLE = TopicSpec(
    "oms.orders.returnable.v1",
    "order_id",
    OrderReturnable,
    "What of an order can come back: units placed and shipped per SKU, and units each return brought "
    "back; republished when one changes.",
    compacted=True,
    producers=("track_orders",),
    consumers=("returnable orders (every worker)",),
    # Longer than any return window: an order older than this is unknown, and the return policy decides.
    retention_days=120,
)
HOLDS = TopicSpec(
    "oms.holds.v1",
    "'<hold id>' (the request) or '<hold id>|<sku>' (a ledger's word on one SKU)",
    HoldRecord,
    "Cart holds: each hold's request, and per SKU whether its ledger holds it, refused it, or released "
    "it (early, at expiry, or to the order that took it over). A hold spans SKUs of several ledgers.",
    compacted=True,
    producers=("POST /holds (the request)", "apply_stock_events"),
    consumers=("hold book (every worker): GET /holds/{hold_id}",),
    retention_days=1,  # a hold lasts minutes: a day answers every question about it
)
DLQ = TopicSpec(
    "oms.dlq.v1",
    "source topic",
    DeadLetter,
    "Input that could not be applied, with the reason, its origin and the original bytes.",
    producers=(
        "apply_stock_events",
        "answer_promise_requests",
        "track_orders",
        "source_orders",
        "handle_returns",
        "config follower (every worker)",
    ),
    consumers=("operators",),
)

_REROUTED = (
    "Internal: {what} a producer placed outside their key's partition (murmur2), moved there unchanged; "
    "header oms-origin = topic:partition:offset."
)
STOCK_REROUTED = TopicSpec(
    "oms.inventory.rerouted.v1",
    "sku",
    ReroutedStockEvent,
    _REROUTED.format(what="stock movements, counts and supplier snapshots"),
    producers=("apply_stock_events",),
    consumers=("apply_stock_events",),
    retention_days=7,  # a transport: each record is applied within seconds of its arrival
)
ORDERS_REROUTED = TopicSpec(
    "oms.orders.rerouted.v1",
    "order_id",
    ReroutedOrderEvent,
    _REROUTED.format(what="order placements, fulfilment events and cancellations"),
    producers=("track_orders", "source_orders (cancellations)"),
    consumers=("track_orders", "source_orders"),
    retention_days=7,
)
RETURNS_REROUTED = TopicSpec(
    "oms.returns.rerouted.v1",
    "return_id",
    ReroutedReturnEvent,
    _REROUTED.format(what="return announcements and receipts"),
    producers=("handle_returns",),
    consumers=("handle_returns",),
    retention_days=7,
)

STOCK_INPUTS = (MOVEMENTS, COUNTS, SUPPLIER_STOCK)
LEDGER_INPUTS = (*STOCK_INPUTS, RESERVATIONS)
ORDER_INPUTS = (ORDERS_PLACED, FULFILMENT_EVENTS)
CONFIG_INPUTS = (LOCATIONS, VISIBILITY_RULES, CARRIER_SERVICES, ROUTES, PROMISE_POLICY, RETURN_POLICY)
RETURN_INPUTS = (RETURNS_REQUESTED, RETURNS_RECEIVED)
ALL_TOPICS = (
    *STOCK_INPUTS,
    *CONFIG_INPUTS,
    AVAILABILITY,
    PROMISE_REQUESTS,
    PROMISE_RESPONSES,
    *ORDER_INPUTS,
    ORDERS_AT_RISK,
    TRANSIT_OBSERVATIONS,
    COURIER_BOOKINGS,
    RESERVATIONS,
    RESERVATION_REPLIES,
    COURIER_SLOTS,
    ALLOCATIONS,
    ORDERS_SOURCED,
    CANCELLATIONS,
    CANCELLATION_OUTCOMES,
    *RETURN_INPUTS,
    RETURNS_ROUTED,
    RETURNS_PROCESSED,
    ORDERS_RETURNABLE,
    HOLDS,
    DLQ,
    STOCK_REROUTED,
    ORDERS_REROUTED,
    RETURNS_REROUTED,
)
