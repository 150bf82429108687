"""Prometheus metrics: one registry, bounded labels (never a SKU, order or event id as a label)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """All of a worker's metrics. Tests build their own instance; a worker builds exactly one."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.stock_events = Counter(
            "oms_stock_events",
            "Stock events by kind and verdict (applied, duplicate, superseded, dead_lettered).",
            ["kind", "verdict"],
            registry=r,
        )
        self.dead_letters = Counter(
            "oms_dead_letters",
            "Messages sent to the dead-letter topic, by source topic and reason class.",
            ["topic", "reason"],
            registry=r,
        )
        self.config_updates = Counter(
            "oms_config_updates",
            "Config records applied, by kind (location, rules) and verdict.",
            ["kind", "verdict"],
            registry=r,
        )
        self.availability_published = Counter(
            "oms_availability_published",
            "Availability records published, by trigger (stock, resync, hold_expiry).",
            ["trigger"],
            registry=r,
        )
        self.event_to_availability = Histogram(
            "oms_event_to_availability_seconds",
            "From a stock event's Kafka timestamp to the publication of the availability it changed.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.batch_size = Histogram(
            "oms_stock_batch_events",
            "Stock events applied per batch.",
            buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000),
            registry=r,
        )
        self.ledger_batch_seconds = Histogram(
            "oms_ledger_batch_seconds",
            "One chunk of fetched stock records in the ledger, by phase: apply (decode, apply, hand "
            "the outputs to the producer) and ack (wait until the broker acknowledged them all).",
            ["phase"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.units_hidden = Gauge(
            "oms_units_hidden",
            "ATP units hidden from a channel, by location type and rule, over the SKUs this worker owns.",
            ["channel", "location_type", "rule"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "oms_consumer_lag",
            "Messages not yet processed, per input topic (summed over partitions).",
            ["topic"],
            registry=r,
        )
        self.stalled_partitions = Gauge(
            "oms_stalled_partitions",
            "Input partitions with messages waiting and no progress for OMS_STALL_AFTER_S.",
            registry=r,
        )
        self.partitions_reread = Counter(
            "oms_partitions_reread_total",
            "Times a partition was read again because a rebalance had dropped a record before it "
            "was processed: from its committed offset (faust_fixes.heal_dropped_records), or from "
            "the record an agent met a later one before (agents.in_order).",
            ["topic"],
            registry=r,
        )
        self.positions = Gauge("oms_ledger_positions", "Stock positions held in memory.", registry=r)
        self.rerouted = Counter(
            "oms_rerouted_total",
            "Input records a producer placed outside their key's partition, moved to it.",
            ["topic"],
            registry=r,
        )
        self.local_state_rebuilt = Gauge(
            "oms_local_state_rebuilt",
            "1 when this run found its last stop unclean and restored its tables from their changelogs.",
            registry=r,
        )
        self.gc_frozen_objects = Gauge(
            "oms_gc_frozen_objects",
            "Objects moved out of the garbage collector's reach (gc.freeze).",
            registry=r,
        )

        self.promise_requests = Counter(
            "oms_promise_requests",
            "Promise requests by path (http, topic) and outcome (answered, rejected).",
            ["path", "outcome"],
            registry=r,
        )
        self.promise_seconds = Histogram(
            "oms_promise_seconds",
            "Server-side time to answer one promise: stock lookup, options, the JSON body (not the "
            "HTTP parsing and socket write around it).",
            buckets=(0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
            registry=r,
        )
        self.promise_options = Counter(
            "oms_promise_options",
            "Delivery options offered, by method.",
            ["method"],
            registry=r,
        )
        self.order_events = Counter(
            "oms_order_events",
            "Order placements and fulfilment events by kind and verdict (applied, duplicate, parked, "
            "dead_lettered; interim: a preorder's interim answer, not a round's outcome).",
            ["kind", "verdict"],
            registry=r,
        )
        self.orders_at_risk = Gauge(
            "oms_orders_at_risk",
            "Open orders of this worker whose promise is in danger, by reason.",
            ["reason"],
            registry=r,
        )
        self.risk_transitions = Counter(
            "oms_order_risk_transitions",
            "At-risk events published, by status (at_risk, cleared) and reason.",
            ["status", "reason"],
            registry=r,
        )
        self.open_orders = Gauge(
            "oms_open_orders", "Orders this worker tracks that are not finished.", registry=r
        )
        self.transit_observations = Counter(
            "oms_transit_observations",
            "Delivered parcels learned from (lane statistics), by verdict (learned, invalid).",
            ["verdict"],
            registry=r,
        )
        self.sourcing_events = Counter(
            "oms_sourcing_events",
            "Events the sourcing saga read, by source (placed, reply, fulfilment) and verdict (applied, "
            "duplicate, ignored, invalid, released_stray).",
            ["source", "verdict"],
            registry=r,
        )
        self.sourcing_decision_seconds = Histogram(
            "oms_sourcing_decision_seconds",
            "Time of one sourcing decision (snapshot of the availability view + the engine).",
            buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1),
            registry=r,
        )
        self.promise_tokens = Counter(
            "oms_promise_tokens",
            "Placements' promise tokens checked before sourcing, by verdict (valid; refused: missing, "
            "malformed, unknown_key, mismatch, expired). Only with OMS_PROMISE_SIGNING_KEYS set.",
            ["verdict"],
            registry=r,
        )
        self.orders_sourced = Counter(
            "oms_orders_sourced",
            "Sourcing rounds finished, by outcome (allocated, partially_allocated, rejected).",
            ["outcome"],
            registry=r,
        )
        self.reservations_refused = Counter(
            "oms_reservations_refused",
            "Reservation answers that refused (another order was faster): each costs a re-plan.",
            registry=r,
        )
        self.resourced = Counter(
            "oms_resourced",
            "Allocations withdrawn and sourced again, by cause (store_rejected, short_pick, shed: the "
            "ledger gave the hold back because the stock under it went).",
            ["cause"],
            registry=r,
        )
        self.backorders = Counter(
            "oms_backorders",
            "Backorders of this worker's orders by event: resourced (the availability showed stock the "
            "planner can use: a new round sources the backorder), unusable (it showed stock the planner "
            "could not use for the order), expired (not in stock within OMS_BACKORDER_HORIZON_H of "
            "placement: final), final (never sourced again: a courier order, not for lack of stock, "
            "placed before this was done, a horizon of 0).",
            ["event"],
            registry=r,
        )
        self.open_backorders = Gauge(
            "oms_open_backorders",
            "Orders of this worker whose backorder waits for stock within its horizon (one being "
            "sourced again right now not counted).",
            registry=r,
        )
        self.preorders = Counter(
            "oms_preorders",
            "Preorders of this worker's orders by event (docs/preorders.md): held (every ledger held "
            "the inbound: the interim answer 'preordered' left), arrived (the goods arrived: the round "
            "allocates), refused (the inbound went to others, or a converted hold was shed: sourced "
            "from stock on hand), given_up (not arrived within OMS_PREORDER_GRACE_H after the ETA: "
            "rejected), cancelled (the order cancelled while it waited), line_cancelled (one per line "
            "cancelled while it waited: its hold released at once).",
            ["event"],
            registry=r,
        )
        self.preorders_waiting = Gauge(
            "oms_preorders_waiting",
            "Preorders of this worker's orders held on announced inbound, waiting for their goods.",
            registry=r,
        )
        self.preorder_units_waiting = Gauge(
            "oms_preorder_units_waiting",
            "Units those preorders wait for (held on announced inbound, not arrived yet).",
            registry=r,
        )
        self.sourcing_resends = Counter(
            "oms_sourcing_resends",
            "Saga commands sent again to a ledger, by kind (reserve, release, fulfil) and cause (timeout: "
            "not answered in time; reload: after a rebalance or restart).",
            ["kind", "cause"],
            registry=r,
        )
        self.sourcing_attempt_timeouts = Counter(
            "oms_sourcing_attempt_timeouts",
            "Reservation attempts given up because a ledger never answered a reserve: what they may "
            "hold is released and the order is planned again (a new attempt).",
            registry=r,
        )
        self.sourcing_awaiting = Gauge(
            "oms_sourcing_orders_awaiting_replies",
            "Orders of this worker with commands sent to ledgers and not answered yet.",
            registry=r,
        )
        self.courier_slots = Counter(
            "oms_courier_slots",
            "Courier slots asked at placement, by the slots' owner's answer: booked (the chosen slot), "
            "moved (the next free slot of that day), refused (none left: the order is rejected).",
            ["outcome"],
            registry=r,
        )
        self.retention_removed = Counter(
            "oms_retention_removed",
            "Finished rows removed after their retention (a tombstone in the table's changelog), by "
            "table (orders, sourcing, returns) and ending (delivered, cancelled, rejected, orphaned, "
            "returned).",
            ["table", "ending"],
            registry=r,
        )
        self.retention_rows = Gauge(
            "oms_retention_rows",
            "Rows of this worker's partitions a reload looks at, by table and state: open (watched "
            "at every reload) or finished (only waiting for its retention to pass).",
            ["table", "state"],
            registry=r,
        )
        self.live_allocations = Gauge(
            "oms_live_allocations",
            "Allocations of this worker's orders not yet shipped or cancelled.",
            registry=r,
        )
        self.holds = Counter(
            "oms_holds",
            "Cart holds by channel and outcome, one per SKU of a hold as its ledger decides: held "
            "(placed), refused, expired, taken_over (by the order placed with it), released (early).",
            ["channel", "outcome"],
            registry=r,
        )
        self.holds_shed = Counter(
            "oms_holds_shed",
            "Holds the ledger gave back because a count or movement left fewer sellable units on hand "
            "than were held (domain.shortfall), by location type and owner (order, cart).",
            ["location_type", "owner"],
            registry=r,
        )
        self.hold_requests = Counter(
            "oms_hold_requests",
            "POST /holds calls by channel and answer (held, refused, pending: not answered in time, "
            "bad_request).",
            ["channel", "answer"],
            registry=r,
        )
        self.edits = Counter(
            "oms_order_edits",
            "Order edits (a placement of a known order with a new event id) by verdict: accepted, "
            "refused (the reason is on oms.orders.sourced.v1), parked (waits for the round under way), "
            "superseded (a newer version waited behind it), duplicate, stale (a later version came after "
            "it).",
            ["verdict"],
            registry=r,
        )
        self.cancellations = Counter(
            "oms_order_cancellations",
            "Cancellation requests by outcome (cancelled, partially_cancelled, already_cancelled, "
            "refused; duplicate: a request read again; wait: parked until the sourcing round under way "
            "is over; dead_lettered).",
            ["outcome"],
            registry=r,
        )
        self.cancellation_requests = Counter(
            "oms_cancellation_requests",
            "POST /orders/{id}/cancellations calls by verdict (accepted, forwarded to the order's owner, "
            "bad_request, unknown_order, unavailable).",
            ["verdict"],
            registry=r,
        )

        self.returns_events = Counter(
            "oms_returns_events",
            "Return events read, by kind (requested, received) and verdict (applied, duplicate, "
            "dead_lettered).",
            ["kind", "verdict"],
            registry=r,
        )
        self.returned_units = Counter(
            "oms_returned_units",
            "Returned units received, by the original order's channel, inspection grade, disposition "
            "(restock, unsellable, return_to_vendor, refused: not accepted against the order) and "
            "handling (in_store: restocked where the customer brought it, no transport; shipped: "
            "transported to the location routing chose).",
            ["channel", "grade", "disposition", "handling"],
            registry=r,
        )
        self.returns_refused_units = Counter(
            "oms_returns_refused_units",
            "Returned units refused against their known order, by kind (requested: not routed; "
            "received: not restocked, no stock moved) and reason (more_than_delivered, not_shipped, "
            "not_in_order).",
            ["kind", "reason"],
            registry=r,
        )
        self.returns_routed = Counter(
            "oms_returns_routed_units",
            "Units of shipped returns routed, by basis (need: a location short of the SKU; nearest: no "
            "location within reach needs it; central: the central DC as the last resort; unroutable).",
            ["basis"],
            registry=r,
        )
        self.returns_km_avoided = Counter(
            "oms_returns_km_avoided",
            "Item-km of transport avoided against sending every return to the central returns DC "
            "(store returns restocked in place; shipped returns sent nearer than the central DC).",
            registry=r,
        )
        self.returns_km_extra = Counter(
            "oms_returns_km_extra",
            "Item-km added where routing sent a shipped return farther than the central DC (to a "
            "location that needs it); net saving = km_avoided - km_extra.",
            registry=r,
        )
        self.returns_routing_seconds = Histogram(
            "oms_returns_routing_seconds",
            "Time of one return routing decision (all lines of a return).",
            buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05),
            registry=r,
        )

    def scrape(self) -> bytes:
        return generate_latest(self.registry)


def reason_class(reason: str) -> str:
    """A bounded label for a dead-letter reason (the full reason travels in the message)."""
    for prefix, label in (
        ("malformed JSON", "malformed"),
        ("schema violation", "schema"),
        ("empty message", "schema"),
        ("message key", "key"),
        ("unknown location", "unknown_location"),
        ("supplier feed for", "wrong_location_type"),
        ("impossible", "impossible_quantity"),
        ("adjustment of zero", "impossible_quantity"),
        ("counted unsellable", "impossible_quantity"),
        ("count as of", "stale_count"),
        ("invalid", "schema"),
        ("impossible option", "impossible_option"),
        ("unknown pickup store", "unknown_location"),
    ):
        if reason.startswith(prefix):
            return label
    return "other"
