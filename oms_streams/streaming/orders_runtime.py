"""The imperative shell around orders at risk: decode, load, decide (domain), store, emit, measure.

``apply_batch`` is called by the ``track_orders`` agent with placements and fulfilment events (both
keyed by order id, so an order's whole story is in one partition), and with sourcing's allocations
and round outcomes, which move the watched shipments and their milestones where sourcing allocated
them (``domain.allocated_plan``); ``check_due`` is called by a
timer and looks at the orders whose next milestone has passed. Both run under one lock and store
each order's row whole in the ``orders`` table, in the order's own partition.

Published risk states carry a deterministic event id (order, promise version, state): after a
crash, a state published but not yet stored is published again with the same id, so consumers can
recognise the repeat.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import orjson

from oms_streams import clock
from oms_streams.adapters.allocated import decode_allocation, decode_edit, decode_round
from oms_streams.adapters.cancellations import decode_cancelled
from oms_streams.adapters.lifecycle import all_cancelled, order_lifecycle
from oms_streams.adapters.orders import (
    Fulfilment,
    OrderRow,
    Placement,
    at_risk_record,
    decode_fulfilment,
    decode_placement,
    decode_return_link,
    option_of_wire,
)
from oms_streams.adapters.preorder_answers import is_interim_value
from oms_streams.adapters.returnable import fingerprint, returnable_of, returnable_record
from oms_streams.adapters.sourcing import SourcingRow
from oms_streams.adapters.stock import Failure
from oms_streams.adapters.timestamps import epoch_ms_from_iso, utc_from_epoch_ms
from oms_streams.domain.allocated_plan import clearance_reason
from oms_streams.domain.lifecycle import Lifecycle
from oms_streams.domain.orders import PromiseRecord, derive_milestones
from oms_streams.domain.promise_types import DeliveryOption
from oms_streams.domain.retention import Ending, Finished, RetentionPolicy, order_finished
from oms_streams.domain.risk import (
    FulfilmentEvent,
    FulfilmentKind,
    OrderTracking,
    Risk,
    apply_fulfilment,
    assess,
    event_targets,
    latest_event_ms,
    next_check_ms,
    risk_event_id,
)
from oms_streams.domain.visibility import haversine_km
from oms_streams.metrics import Metrics
from oms_streams.streaming.network import NetworkState
from oms_streams.streaming.outbox import Durable, Outbox, Produce
from oms_streams.streaming.partitioning import misrouted
from oms_streams.streaming.retention import RetentionIndex
from oms_streams.streaming.table_context import in_partition, in_partition_of

log = logging.getLogger(__name__)

SOURCE = "oms-streams:track_orders"


@dataclass(frozen=True, slots=True)
class OrderTopics:
    placed: str
    fulfilment: str
    at_risk: str
    transit_observations: str
    courier_bookings: str
    dlq: str
    returns_processed: str = ""
    cancellations: str = ""
    cancellation_outcomes: str = ""
    returnable: str = ""
    allocations: str = ""
    sourced: str = ""


@dataclass(slots=True)
class OpenOrder:
    row: OrderRow
    tracking: OrderTracking | None
    partition: int
    risk: Risk | None = None


def now_ms() -> int:
    return clock.now_ms()


class OrdersRuntime:
    def __init__(
        self,
        table: Any,
        network: NetworkState,
        topics: OrderTopics,
        produce: Produce,
        metrics: Metrics,
        partitions: int | None = None,
        durable: Durable | None = None,
        retention: RetentionIndex | None = None,
        sourcing: Callable[[str], SourcingRow | None] | None = None,
    ) -> None:
        self.table = table
        self.partitions = partitions
        self.network = network
        self.topics = topics
        self.metrics = metrics
        self.lock = asyncio.Lock()
        self._open: dict[str, OpenOrder] = {}
        """Orders with something still pending, with their decoded tracking (rows are in the table)."""
        self._due: list[tuple[int, str]] = []
        self._linked: set[str] = set()
        self.outbox = Outbox(produce, topics.dlq, metrics, durable)
        self.retention = (
            retention
            if retention is not None
            else RetentionIndex({}, table, topics.placed, "orders", RetentionPolicy(), metrics)
        )
        """Open and finished order keys (reloads read it, not the rows); removes finished rows."""
        self.sourcing = sourcing
        """The order's sourcing row (same partitions, same worker): whether it was rejected."""

    # --- events ---------------------------------------------------------------------------------

    async def apply_batch(self, events: list[Any]) -> None:
        async with self.lock:
            by_partition: dict[int, list[Any]] = defaultdict(list)
            for event in events:
                by_partition[event.message.partition].append(event)
            now = now_ms()
            for partition, group in by_partition.items():
                touched: dict[str, Any] = {}
                for event in group:
                    order_id, changed = self._apply_one(event, partition, now)
                    if order_id is None:
                        continue
                    if changed:
                        touched[order_id] = event
                    elif order_id not in touched:
                        self._forget_if_idle(order_id, now)  # loaded for a duplicate: nothing to watch
                with in_partition_of(group[-1]):
                    for order_id in touched:
                        self._decide_and_store(order_id, now)
                for order_id in self._linked:  # loaded to link a return: keep it only if watched
                    self._forget_if_idle(order_id, now)
                self._linked.clear()
            await self.outbox.flush()

    def _forget_if_idle(self, order_id: str, now: int) -> None:
        order = self._open.get(order_id)
        if order is None:
            return
        if order.tracking is None:
            idle = not order.row.events
        else:
            idle = order.risk is None and next_check_ms(order.tracking, now) is None
        if idle:
            del self._open[order_id]

    def _apply_one(self, event: Any, partition: int, now: int) -> tuple[str | None, bool]:
        """(the order's id when it could be read, whether the order changed)."""
        message = event.message
        if message.topic == self.topics.returns_processed:
            return self._link_return(message, partition)
        if message.topic == self.topics.cancellation_outcomes:
            return self._close_cancelled(message, partition, now)
        if message.topic == self.topics.cancellations:
            return None, False  # a request rerouted for source_orders, which decides it
        if message.topic in (self.topics.allocations, self.topics.sourced):
            return self._sourced(message, partition, now)
        wrong = misrouted(message, self.partitions)
        if wrong is not None:
            decoded: Placement | Fulfilment | Failure = Failure(wrong)
            kind = "placed" if message.topic == self.topics.placed else "fulfilment"
        elif message.topic == self.topics.placed:
            decoded = decode_placement(message.key, message.value)
            kind = "placed"
        else:
            decoded = decode_fulfilment(message.key, message.value)
            kind = decoded.event.kind.value if isinstance(decoded, Fulfilment) else "fulfilment"
        if isinstance(decoded, Failure):
            self.outbox.dead_letter(decoded.reason, message, now)
            self.metrics.order_events.labels(kind, "dead_lettered").inc()
            return None, False
        order = self._load(decoded.order_id, partition)
        if isinstance(decoded, Placement):
            verdict = self._place(order, decoded, message, now)
        else:
            verdict = self._progress(order, decoded)
        self.metrics.order_events.labels(kind, verdict).inc()
        return decoded.order_id, verdict in ("applied", "parked")

    def _link_return(self, message: Any, partition: int) -> tuple[str | None, bool]:
        """A processed return (our own record) joins its order's row; one without an order is not ours."""
        link = decode_return_link(message.value)
        if link is None:
            self.metrics.order_events.labels("return", "ignored").inc()
            return None, False
        order = self._load(link.order_id, partition)
        self._linked.add(link.order_id)
        applied = order.row.add_return(link)
        self.metrics.order_events.labels("return", "applied" if applied else "duplicate").inc()
        return link.order_id, applied

    def _place(self, order: OpenOrder, placement: Placement, message: Any, now: int) -> str:
        row = order.row
        if placement.event_id in row.placements:
            return "duplicate"
        option = placement.option
        if option.pickup_store_id is not None and option.pickup_store_id not in self.network.locations:
            self.outbox.dead_letter(f"unknown pickup store {option.pickup_store_id!r}", message, now)
            return "dead_lettered"
        row.placements.append(placement.event_id)
        version = [placement.placed_at_ms, placement.option_wire, placement.destination]
        if row.option is not None and self.topics.sourced:
            # An edit: the new version becomes the promise once sourcing accepted it (docs/edits.md).
            row.pending_edits = {**(row.pending_edits or {}), placement.event_id: version}
            answer = (row.edits or {}).get(placement.event_id)
            if answer is None:
                return "parked"
            self._edit_answered(order, placement.event_id, answer)
            return "applied"
        # A courier slot is booked by the owner of the store's slots (source_orders, courier_slots).
        self._promise(order, version, option=option)
        return "applied"

    def _promise(
        self,
        order: OpenOrder,
        version: list[Any],
        number: int | None = None,
        option: DeliveryOption | None = None,
    ) -> None:
        """The order's promise becomes ``version`` ([placed at ms, option as sent, destination]),
        numbered ``number`` (by default the next one)."""
        row = order.row
        placed_at_ms, option_wire, destination = version
        option = option or option_of_wire(option_wire)
        milestones = derive_milestones(option, self.network.promise_network)
        number = row.version + 1 if number is None else number
        record = PromiseRecord(row.order_id, number, placed_at_ms, option, milestones)
        row.set_promise(record, option_wire, destination)
        order.tracking = row.tracking_of(record)

    def _edit_answered(self, order: OpenOrder, event_id: str, answer: list[Any]) -> None:
        """Sourcing answered an edit: an accepted one waiting here becomes the promise."""
        row = order.row
        waiting = (row.pending_edits or {}).pop(event_id, None)
        status, number = answer
        if waiting is not None and status == "accepted" and number > row.version:
            self._promise(order, waiting, number)

    def _close_cancelled(self, message: Any, partition: int, now: int) -> tuple[str | None, bool]:
        """Our own answer to a cancellation: the shipments it withdrew are closed (their risk is
        cleared when nothing else is open). (A withdrawn courier delivery's slot is given back by
        source_orders to the slots' owner.)"""
        cancelled = decode_cancelled(message.value)
        if cancelled is None:
            self.metrics.order_events.labels("cancellation", "ignored").inc()
            return None, False
        order = self._load(cancelled.order_id, partition)
        row = order.row
        new = [sku for sku in cancelled.skus if sku not in (row.cancelled or ())]
        if new:
            row.cancelled = [*(row.cancelled or ()), *new]
            row.cancelled_at_ms = max(row.cancelled_at_ms or 0, cancelled.at_ms)
            if order.tracking is not None:
                order.tracking = row.tracking()
        elif order.tracking is not None and row.risk_id is not None and not row.at_risk:
            # Read again after a crash: the 'cleared' it caused may not have left (same id again).
            record = at_risk_record(row.risk_id, order.tracking.record, None, now, SOURCE)
            self.outbox.add(self.topics.at_risk, cancelled.order_id.encode(), record)
        self.metrics.order_events.labels("cancellation", "applied" if new else "duplicate").inc()
        return cancelled.order_id, bool(new)

    def _sourced(self, message: Any, partition: int, now: int) -> tuple[str | None, bool]:
        """Our own allocation, withdrawal or round outcome: the order's shipments move where sourcing
        allocated them, and their milestones with them (``domain.allocated_plan``)."""
        outcome = message.topic == self.topics.sourced
        fact = decode_round(message.value) if outcome else decode_allocation(message.value)
        edit = decode_edit(message.value) if outcome else None
        kind = "sourced" if outcome else "allocation"
        if fact is None and edit is None:
            # A preorder's interim answer is the webshop's: the round's outcome follows.
            verdict = "interim" if outcome and is_interim_value(message.value) else "ignored"
            self.metrics.order_events.labels(kind, verdict).inc()
            return None, False
        order = self._load((fact or edit).order_id, partition)  # type: ignore[union-attr]
        applied = fact is not None and order.row.add_sourcing(fact)
        if edit is not None and order.row.add_sourcing(edit):
            applied = True
            self._edit_answered(order, edit.key, edit.entry)
        if fact is None:
            self.metrics.order_events.labels("edit", "applied" if applied else "duplicate").inc()
            return edit.order_id if edit is not None else None, applied
        if applied and order.tracking is not None:
            order.tracking = order.row.tracking()
        elif not applied and outcome and order.tracking is not None:
            self._republish_clearance(fact.order_id, order, now)
        self.metrics.order_events.labels(kind, "applied" if applied else "duplicate").inc()
        return fact.order_id, applied

    def _republish_clearance(self, order_id: str, order: OpenOrder, now: int) -> None:
        """A round read again after a crash: the 'cleared' it caused may not have left (same id)."""
        row, tracking = order.row, order.tracking
        if tracking is None or row.risk_id is None or row.at_risk or row.plan is None:
            return
        why = clearance_reason(row.plan, row.risk_shipment)
        if why is not None:
            record = at_risk_record(row.risk_id, tracking.record, None, now, SOURCE, why)
            self.outbox.add(self.topics.at_risk, order_id.encode(), record)

    def _progress(self, order: OpenOrder, fulfilment: Fulfilment) -> str:
        event = fulfilment.event
        if order.tracking is None:
            # The placement has not arrived yet (two topics are not ordered with each other): park.
            known = order.row.fulfilment_events()
            if any(e.event_id == event.event_id for e in known):
                return "duplicate"
            order.row.set_events((*known, event))
            return "parked"
        tracking, applied = apply_fulfilment(order.tracking, event)
        if not applied:
            return "duplicate"
        order.tracking = tracking
        order.row.set_events(tracking.events)
        if event.kind is FulfilmentKind.DELIVERED:
            self._observe_transit(
                order, tracking, event.occurred_at_ms, event_targets(event, tracking.record)
            )
        elif event.kind is FulfilmentKind.HANDED_TO_CARRIER:
            self._observe_transit(order, tracking, None, event_targets(event, tracking.record))
        return "applied"

    def _observe_transit(
        self,
        order: OpenOrder,
        tracking: OrderTracking,
        delivered_ms: int | None,
        targets: Collection[int],
    ) -> None:
        """Every carrier parcel becomes a lane observation every worker learns from: once when first
        handed to the carrier (in transit, ``delivered_ms`` None) and once delivered. ``targets``:
        the shipments the event is about (``risk.event_targets``); a withdrawn one shipped nothing."""
        option = tracking.record.option
        destination = order.row.destination or {}
        network = self.network.promise_network
        for i, shipment in enumerate(option.shipments):
            if shipment.service_id is None or i not in targets or i in tracking.withdrawn:
                continue
            handed = [e.occurred_at_ms for e in _events_of(tracking, FulfilmentKind.HANDED_TO_CARRIER, i)]
            handed_ms = min(handed) if handed else shipment.handover_at_ms
            site = network.sites.get(shipment.location_id)
            if site is None or (delivered_ms is not None and delivered_ms < handed_ms):
                continue
            if delivered_ms is None and (
                len(handed) != 1 or _events_of(tracking, FulfilmentKind.DELIVERED, i)
            ):
                continue  # in transit is reported once, at the first handover, and never after delivery
            distance = shipment.distance_km
            if not distance and destination.get("lat") is not None:
                distance = haversine_km(site.lat, site.lon, destination["lat"], destination["lon"])
            what, at = ("in_transit", handed_ms) if delivered_ms is None else ("delivered", delivered_ms)
            observation = {
                "event_id": f"{tracking.record.order_id}:{i}:{what}",
                "occurred_at": utc_from_epoch_ms(at).isoformat(),
                "source": SOURCE,
                "schema_version": 1,
                "order_id": tracking.record.order_id,
                "service_id": shipment.service_id,
                "origin_id": shipment.location_id,
                "origin_region": site.region,
                "dest_region": destination.get("region") or "",
                "distance_km": round(distance, 3),
                "handed_to_carrier_at": utc_from_epoch_ms(handed_ms).isoformat(),
                "delivered_at": None if delivered_ms is None else utc_from_epoch_ms(delivered_ms).isoformat(),
                "placed_at": utc_from_epoch_ms(tracking.record.placed_at_ms).isoformat(),
                "origin_timezone": site.calendar.timezone,
                "in_transit_reported": delivered_ms is not None and bool(handed),
            }
            lane = f"{shipment.service_id}|{site.region}|{observation['dest_region']}".encode()
            self.outbox.add(self.topics.transit_observations, lane, orjson.dumps(observation))

    # --- risk -----------------------------------------------------------------------------------

    def _decide_and_store(self, order_id: str, now: int, timer: bool = False) -> None:
        """Assess, publish the risk state if it changed, store the row, schedule the next check,
        index it as open or finished. The timer also asks sourcing whether the order was rejected
        (the row keeps it: rejection is final); events do not, to keep the hot path short."""
        order = self._open[order_id]
        if timer and not order.row.rejected and self._lifecycle(order, True) is Lifecycle.REJECTED:
            order.row.rejected = True
        if order.tracking is not None:
            risk = assess(order.tracking, now)
            if risk is not None or order.row.at_risk:
                self._publish_risk(order_id, order, risk, now)
            order.risk = risk
            self._publish_returnable(order_id, order, now)
        order.row.partition = order.partition
        self.table[order_id] = order.row.encode()
        self._schedule(order_id, order, now)
        self._retain(order_id, order)

    def _retain(self, order_id: str, order: OpenOrder) -> Finished | None:
        """Index the order as open, or as finished with the time it may leave (``domain.retention``);
        a finished order is no longer watched (a rejected one still is, for its risk, until removed)."""
        watched = order_id in self._open and order.tracking is not None
        state = self._lifecycle(order, ask_sourcing=not watched)
        finished = order_finished(state, watched, _ended_at(order.row, order.tracking))
        if finished is not None and finished.ending is not Ending.REJECTED:
            self._open.pop(order_id, None)
        self.retention.mark(order_id, order.partition, finished)
        return finished

    def _lifecycle(self, order: OpenOrder, ask_sourcing: bool) -> Lifecycle | None:
        """From the tracking alone when that says delivered or cancelled, else with the sourcing row."""
        if order.row.rejected:
            return Lifecycle.REJECTED
        tracking = order.tracking
        skus = [line.sku for s in tracking.record.option.shipments for line in s.lines] if tracking else []
        cancelled = all_cancelled(skus, order.row.cancelled)
        state = order_lifecycle(tracking, None, cancelled)
        if state in (Lifecycle.DELIVERED, Lifecycle.CANCELLED) or not ask_sourcing or self.sourcing is None:
            return state
        return order_lifecycle(tracking, self.sourcing(order.row.order_id), cancelled)

    def _publish_risk(self, order_id: str, order: OpenOrder, risk: Risk | None, now: int) -> None:
        """Publish the order's risk state if it is not the one published last."""
        assert order.tracking is not None
        record = order.tracking.record
        # 'cleared' is identified by the latest event that cleared it, so each clearing has its own id.
        state_id = risk_event_id(order_id, risk, record.version, as_of_ms=latest_event_ms(order.tracking))
        if state_id == order.row.risk_id:
            return
        row = order.row
        why = clearance_reason(row.plan, row.risk_shipment) if risk is None and row.plan is not None else None
        self.outbox.add(
            self.topics.at_risk, order_id.encode(), at_risk_record(state_id, record, risk, now, SOURCE, why)
        )
        if risk is not None:
            row.risk_shipment = risk.shipment
            self.metrics.risk_transitions.labels("at_risk", risk.reason.value).inc()
        else:
            previous = order.risk.reason.value if order.risk is not None else ""
            self.metrics.risk_transitions.labels("cleared", previous).inc()
        order.row.risk_id = state_id
        order.row.at_risk = risk is not None

    def _publish_returnable(self, order_id: str, order: OpenOrder, now: int) -> None:
        """What of the order can come back, for every returns worker: returns are keyed by return
        id, so the worker that receives one never holds its order's row; it follows this compacted
        topic instead. Published at placement (the order is known) and when shipped or returned
        units change; the row keeps a fingerprint, so a repeat or a timer check publishes nothing."""
        if not self.topics.returnable or order.tracking is None:
            return
        returnable = returnable_of(order.row, order.tracking)
        digest = fingerprint(returnable)
        if digest == order.row.returnable:
            return
        self.outbox.add(self.topics.returnable, order_id.encode(), returnable_record(returnable, now))
        order.row.returnable = digest

    def _schedule(self, order_id: str, order: OpenOrder, now: int) -> None:
        if order.tracking is None:
            return  # parked events only: nothing to check until the placement arrives
        due = next_check_ms(order.tracking, now)
        if due is None and order.risk is None:
            del self._open[order_id]  # finished: the row stays in the table for GET /orders
            return
        if due is not None:
            heapq.heappush(self._due, (due, order_id))

    async def check_due(self) -> int:
        """Timer: re-assess the orders whose next milestone has passed; returns how many changed."""
        async with self.lock:
            now = now_ms()
            seen: set[str] = set()
            while self._due and self._due[0][0] <= now:
                _, order_id = heapq.heappop(self._due)
                if order_id not in seen and order_id in self._open:
                    seen.add(order_id)
            changed = 0
            for order_id in seen:
                order = self._open[order_id]  # no await since the heap was read: still owned
                before = order.row.risk_id
                with in_partition(self.topics.placed, order.partition):
                    self._decide_and_store(order_id, now, timer=True)
                changed += order.row.risk_id != before
            await self.outbox.flush()
            return changed

    def export_gauges(self) -> None:
        by_reason = Counter(order.risk.reason.value for order in self._open.values() if order.risk)
        self.metrics.orders_at_risk.clear()
        for reason, count in by_reason.items():
            self.metrics.orders_at_risk.labels(reason).set(count)
        self.metrics.open_orders.set(len(self._open))

    # --- ownership --------------------------------------------------------------------------------

    def forget_ownership(self) -> None:
        """Partitions are being revoked: watch nothing until ``reload`` says what is owned now."""
        self._open.clear()
        self._due.clear()
        self.retention.forget()

    async def reload(self) -> int:
        """After a rebalance: forget what this worker no longer owns, pick up what it now owns.

        The local tables hold only the partitions assigned now (no standby replicas). The index
        says which orders are open: only their rows are read, and each is checked at once, which
        also catches what went overdue while no one owned it; finished ones only wait for their
        retention. Without an index (the first start of a worker that had none) every row is read
        once, and the checks index them.
        """
        async with self.lock:
            self._open.clear()
            self._due.clear()
            now = now_ms()
            for _, raw in self.retention.open_rows():
                row = OrderRow.decode(raw)
                self._open[row.order_id] = OpenOrder(row, row.tracking(), row.partition)
                heapq.heappush(self._due, (now, row.order_id))
            return len(self._open)

    async def sweep(self) -> int:
        """Timer: remove the finished orders whose retention has passed (tombstones in the
        ``orders`` and index changelogs); returns how many rows were removed."""
        async with self.lock:
            removed = self.retention.sweep(now_ms(), self._finished_row)
            for order_id in removed:
                self._open.pop(order_id, None)
            return len(removed)

    def _finished_row(self, order_id: str, raw: bytes) -> Finished | None:
        row = OrderRow.decode(raw)
        if order_id in self._open and not row.rejected:
            return None  # watched again since it was marked
        order = OpenOrder(row, row.tracking(), row.partition)
        state = self._lifecycle(order, ask_sourcing=True)
        return order_finished(state, False, _ended_at(row, order.tracking))

    # --- helpers ----------------------------------------------------------------------------------

    def _load(self, order_id: str, partition: int) -> OpenOrder:
        order = self._open.get(order_id)
        if order is None:
            raw = self.table.get(order_id)
            row = OrderRow.decode(raw) if raw is not None else OrderRow(order_id, [])
            order = self._open[order_id] = OpenOrder(row, row.tracking(), partition)
            if raw is not None and order_id not in self.retention:
                # A row without an index entry (a crash kept one changelog record and not the
                # other): index it open; its next store or check says what it is.
                self.retention.mark(order_id, partition, None)
        order.partition = partition
        return order

    def lookup(self, order_id: str) -> tuple[OrderRow, OrderTracking | None] | None:
        order = self._open.get(order_id)
        if order is not None:
            return order.row, order.tracking
        raw = self.table.get(order_id)
        if raw is None:
            return None
        row = OrderRow.decode(raw)
        return row, row.tracking()


def _ended_at(row: OrderRow, tracking: OrderTracking | None) -> int | None:
    """The order's latest moment: placement, event, cancellation, linked return or sourcing round
    (a placement this tracker could not read may leave only sourcing's answer)."""
    events = tracking.events if tracking is not None else row.fulfilment_events()
    moments = [e.occurred_at_ms for e in events]
    moments += [entry[4] for entry in (row.rounds or {}).values()]
    moments += [epoch_ms_from_iso(r["processed_at"]) for r in row.returns or ()]
    if row.cancelled_at_ms is not None:
        moments.append(row.cancelled_at_ms)
    if tracking is not None:
        moments.append(tracking.record.placed_at_ms)
    return max(moments, default=None)


def _events_of(tracking: OrderTracking, kind: FulfilmentKind, index: int) -> list[FulfilmentEvent]:
    """The applied events of ``kind`` about the order's shipment ``index`` (``risk.event_targets``)."""
    return [e for e in tracking.events if e.kind is kind and index in event_targets(e, tracking.record)]
