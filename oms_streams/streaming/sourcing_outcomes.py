"""What a finished sourcing round publishes: one allocation per shipment, then the order's outcome.

Allocations carry the milestones derived from the promise for their shipment; the outcome lists
them. A finished round may be published again (a redelivered input after a crash), with the same
ids, so that consumers recognise the repeat.
"""

from __future__ import annotations

from typing import Any

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
        self.publish(row, allocations, None, now)
        self.metrics.sourcing_events.labels("republish", row.status).inc()
        return True

    def publish(
        self, row: SourcingRow, allocations: list[AllocationState], trace: dict[str, Any] | None, now: int
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
        ids = [allocation.allocation_id for allocation in allocations]
        record = sourced_record(row, row.status, ids, row.reason(), now)
        self.outbox.add(self.sourced_topic, row.order_id.encode(), record)

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
