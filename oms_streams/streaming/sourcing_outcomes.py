"""What a finished sourcing round publishes: one allocation per shipment, then the order's outcome.

Allocations carry the milestones derived from the promise for their shipment; the outcome lists
them. A finished round may be published again (a redelivered input after a crash), with the same
ids, so that consumers recognise the repeat.

A batch stores its rows before its outputs are produced, so a crash between the two can lose
outcomes that the row, stored, no longer shows: a round finished and the next one started in the
same batch (an allocation and a shed answered together, an edit or a cancellation that waited for
the round and was decided in a batch whose own input, read again, does not decide it again). So
each row keeps the outcomes and the allocation records (``cancel`` ones too) of the last batch that
published any for it (``last_outcomes``, ``last_allocations``, without their trace), and a worker
that touches a row it did not write itself (after a crash or a rebalance) publishes them again
first (the allocations but those cancelled in a later batch). (Cancellations that waited for the
round are answered again by ``OrderCancellations.answer_all_again``.)
"""

from __future__ import annotations

from typing import Any

import orjson

from oms_streams.adapters.sourcing import AllocationState, SourcingRow, allocation_record, sourced_record
from oms_streams.domain.network import DeliveryMethod
from oms_streams.domain.orders import derive_milestones
from oms_streams.domain.promise_types import CartLine, DeliveryOption, Shipment
from oms_streams.metrics import Metrics
from oms_streams.streaming.network import NetworkState
from oms_streams.streaming.outbox import Outbox


class RoundPublisher:
    def __init__(
        self, outbox: Outbox, allocations: str, sourced: str, network: NetworkState, metrics: Metrics
    ) -> None:
        self.outbox = outbox
        self.allocations_topic = allocations
        self.sourced_topic = sourced
        self.network = network
        self.metrics = metrics
        self._republished: set[str] = set()
        """Orders whose finished round this worker published again (once is enough)."""
        self._published_now: dict[str, list[dict[str, Any]]] = {}
        """Order -> the outcomes published for it since its row was last stored."""
        self._allocated_now: dict[str, list[dict[str, Any]]] = {}
        """Order -> the allocation records published for it since its row was last stored."""
        self._known: set[str] = set()
        """Orders whose last outcomes this worker published itself, or published again."""
        self._resent: set[str] = set()
        """Event ids of the outcomes and cancels this worker published again from a row's last ones
        (what the input read again would send once more)."""

    def forget(self) -> None:
        """After a rebalance: another worker may have owned these orders meanwhile and died before
        its last records left, so every row this worker touches next is one it did not write."""
        self._republished.clear()
        self._known.clear()
        self._resent.clear()

    def republish(self, row: SourcingRow, now: int) -> bool:
        """Publish a finished round's allocations and outcome again, with the same ids; whether it
        did (once per order and worker).

        A redelivered input means the batch that finished the round may not have reached Kafka: a
        crash can leave the local table (RocksDB, written at once) ahead of what was produced.
        Consumers recognise the repeat by its ids."""
        if row.status == "reserving" or row.order_id in self._republished:
            return False
        if len(self._republished) >= 10_000:
            self._republished.clear()
        self._republished.add(row.order_id)
        allocations = [a for a in row.allocations if a.round == row.round]
        event_id = f"{row.order_id}:sourced:{row.round}"
        # The outcome as it was published when there is a copy: the row may have moved on since
        # (a cancelled line leaves the backorder), and one event id must keep one content.
        published = [*self._published_now.get(row.order_id, []), *row.last_outcomes]
        as_published = next((o for o in published if o["event_id"] == event_id), None)
        self.publish(
            row, allocations, None, now, outcome=as_published is None and event_id not in self._resent
        )
        if as_published is not None and event_id not in self._resent:
            self.outbox.add(self.sourced_topic, row.order_id.encode(), orjson.dumps(as_published))
        self.metrics.sourcing_events.labels("republish", row.status).inc()
        return True

    def publish(
        self,
        row: SourcingRow,
        allocations: list[AllocationState],
        trace: dict[str, Any] | None,
        now: int,
        outcome: bool = True,
    ) -> None:
        """The round's allocations (but the cancelled ones), with their milestones, then its outcome."""
        plan = row.plan or {}
        shipments = plan.get("shipments", [])
        milestones = derive_milestones(self._option(row, shipments), self.network.promise_network)
        for allocation in allocations:
            if allocation.state == "cancelled":
                continue
            own = [m for m in milestones if m.shipment == allocation.shipment]
            shipment = shipments[allocation.shipment]
            record = allocation_record(row, allocation, shipment, own, trace, now)
            self.outbox.add(self.allocations_topic, row.order_id.encode(), record)
            self._allocated_now.setdefault(row.order_id, []).append(_without_trace(record))
        if not outcome:
            return
        ids = [allocation.allocation_id for allocation in allocations]
        record = sourced_record(row, row.status, ids, row.reason(), now)
        self.outbox.add(self.sourced_topic, row.order_id.encode(), record)
        # The row stays small; a repeat needs only the ids and the outcome.
        self._published_now.setdefault(row.order_id, []).append(_without_trace(record))

    def add_outcome(self, row: SourcingRow, record: bytes) -> None:
        """A record of the answers topic that is not a round's outcome (a refused edit), kept like
        one: published again by a worker that takes the row over."""
        self.outbox.add(self.sourced_topic, row.order_id.encode(), record)
        self._published_now.setdefault(row.order_id, []).append(orjson.loads(record))

    def add_cancel(self, row: SourcingRow, record: bytes) -> None:
        """An allocation's ``cancel`` record, kept with the batch's allocation records (not again if
        ``resend_outcomes`` sent it again already)."""
        kept = orjson.loads(record)
        if kept["event_id"] not in self._resent:
            self.outbox.add(self.allocations_topic, row.order_id.encode(), record)
            self._allocated_now.setdefault(row.order_id, []).append(kept)

    def keep_outcomes(self, row: SourcingRow) -> None:
        """At the row's store: the outcomes published for it since replace those it kept."""
        published = self._published_now.pop(row.order_id, None)
        if published:
            # A batch that published no outcome of the round in force (a refused edit, a preorder's
            # interim answer) keeps that outcome's copy beside its own: a repeat must not rebuild it
            # from a row that moved on since.
            round_id = f"{row.order_id}:sourced:{row.round}"
            if all(o["event_id"] != round_id for o in published):
                published = [*(o for o in row.last_outcomes if o["event_id"] == round_id), *published]
            row.last_outcomes = published
            self._remember(row.order_id)
        allocated = self._allocated_now.pop(row.order_id, None)
        if allocated:
            row.last_allocations = allocated
            self._remember(row.order_id)

    def resend_outcomes(self, row: SourcingRow) -> bool:
        """Before a worker first acts on a row it did not write: its last outcomes again."""
        if row.order_id in self._known:
            return False
        self._remember(row.order_id)
        # An allocation cancelled in that batch is published as it was, allocated then cancelled;
        # one cancelled in a later batch is not published again (its cancel went out then).
        cancels = {a["allocation_id"] for a in row.last_allocations if a.get("kind") == "cancel"}
        cancelled = {a.allocation_id for a in row.allocations if a.state == "cancelled"} - cancels
        for allocation in row.last_allocations:  # before the outcomes that list them, as published
            if allocation["allocation_id"] not in cancelled:
                self.outbox.add(self.allocations_topic, row.order_id.encode(), orjson.dumps(allocation))
                if allocation.get("kind") == "cancel":
                    self._note_resent(allocation["event_id"])
        for outcome in row.last_outcomes:
            self.outbox.add(self.sourced_topic, row.order_id.encode(), orjson.dumps(outcome))
            self._note_resent(outcome["event_id"])
        if row.last_outcomes or row.last_allocations:
            self.metrics.sourcing_events.labels("republish", "last_outcomes").inc()
        return bool(row.last_outcomes or row.last_allocations)

    def _note_resent(self, event_id: str) -> None:
        if len(self._resent) >= 100_000:
            self._resent.clear()  # a repeat more, at worst
        self._resent.add(event_id)

    def _remember(self, order_id: str) -> None:
        if len(self._known) >= 100_000:
            self._known.clear()  # a repeat more, at worst
        self._known.add(order_id)

    def _option(self, row: SourcingRow, shipments: list[dict[str, Any]]) -> DeliveryOption:
        """The allocated plan as a delivery option, to derive its milestones from the promise."""
        return DeliveryOption(
            option_id=row.method,
            method=DeliveryMethod(row.method),
            window_start_ms=row.window_start_ms,
            window_end_ms=row.promised_by_ms,
            confidence=self.network.promise_network.policy.quantile,
            parcels=len(shipments),
            co2e_g=0.0,
            shipments=tuple(
                Shipment(
                    location_id=s["location_id"],
                    lines=tuple(CartLine(sku, units) for sku, units in s["lines"]),
                    ready_at_ms=s["ready_at_ms"],
                    handover_at_ms=s["handover_at_ms"],
                    arrives_at_ms=s["arrives_at_ms"],
                    service_id=s["service_id"],
                    route_id=s["route_id"],
                    distance_km=s["distance_km"],
                )
                for s in shipments
            ),
            pickup_store_id=row.destination.get("pickup_store_id"),
        )


def _without_trace(record: bytes) -> dict[str, Any]:
    kept: dict[str, Any] = orjson.loads(record)
    if kept.get("trace") is not None:
        kept["trace"] = None
    return kept
