"""The sourcing saga's side of cancellation: release, withdraw, replace, answer.

``source_orders`` reads ``oms.orders.cancellations.v1`` (keyed by order id, in the order's
partition) and hands each request to ``OrderCancellations.apply`` with the order's sourcing row: the
row knows every allocation and what it holds, so the decision (``domain.cancellation``) and its
effects are made by the order's one owner, in order with its placements, answers and fulfilment
events. What a decision causes:

- each cancelled line's holds are released through the ledger's own command path (a ``release``
  on ``oms.inventory.reservations.v2`` per SKU and location, as a short pick does);
- each allocation that loses lines gets a ``cancel`` record on ``oms.fulfilment.allocations.v1``;
  one that keeps some lines is replaced by a new allocation of the rest, in a new sourcing round
  with its outcome on ``oms.orders.sourced.v1`` (the same reservation keeps holding those units);
- the answer goes to ``oms.orders.cancellation-outcomes.v1`` and is kept in the row, which
  ``track_orders`` reads to close the order's cancelled shipments (risk, courier slot).

At least once: outputs leave after the row is durable (the saga's outbox); a request read again
after a crash is recognised by its id and answered again, with its withdrawals and releases, with
the same ids (releases and cancels are idempotent downstream). A request that arrives while a
sourcing round is under way waits in the row until the round is over.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oms_streams.adapters.cancellations import (
    KEPT_ANSWERS,
    Cancellation,
    cancellable,
    encode_outcome,
    outcome_record,
)
from oms_streams.adapters.sourcing import AllocationState, SourcingRow, allocation_record
from oms_streams.domain.cancellation import (
    CancellationDecision,
    Outcome,
    decide_cancellation,
    open_lines,
)
from oms_streams.metrics import Metrics
from oms_streams.streaming.outbox import Outbox
from oms_streams.streaming.sourcing_outcomes import RoundPublisher

SendReservation = Callable[[str, SourcingRow | None, str, str, list[list[Any]], int], None]
"""(kind, row, reservation id, SKU, [[location, units]], now): a command to the SKU's ledger."""


class OrderCancellations:
    def __init__(
        self,
        outbox: Outbox,
        outcomes_topic: str,
        metrics: Metrics,
        send_reservation: SendReservation,
        rounds: RoundPublisher,
        workload: dict[str, int],
    ) -> None:
        self.outbox = outbox
        self.outcomes_topic = outcomes_topic
        self.metrics = metrics
        self.send_reservation = send_reservation
        self.rounds = rounds
        self.workload = workload

    def apply(self, row: SourcingRow | None, cancellation: Cancellation, now: int) -> str:
        """Decide and carry out one request; the verdict for ``oms_sourcing_events``."""
        decision = decide_cancellation(cancellable(row) if row is not None else None, cancellation.request)
        self.metrics.cancellations.labels(decision.outcome.value).inc()
        if row is None:
            # Not stored anywhere: a redelivery is decided again, the same way, with the same id.
            record = outcome_record(cancellation, decision, (), False, [], now)
            self.outbox.add(self.outcomes_topic, cancellation.order_id.encode(), encode_outcome(record))
            return "unknown_order"
        if decision.outcome is Outcome.WAIT:
            row.parked.append(cancellation.parked())
            return "parked"
        if decision.outcome is Outcome.DUPLICATE:
            self._answer_again(row, cancellation.request.request_id, now)
            return "duplicate"
        self._carry_out(row, cancellation, decision, now)
        return "applied"

    def after_round(self, row: SourcingRow, now: int) -> None:
        """A sourcing round is over: decide the requests that waited for it."""
        while row.parked and row.status != "reserving":
            self.apply(row, Cancellation.unpark(row.order_id, row.parked.pop(0)), now)

    # --- carrying a decision out ------------------------------------------------------------------

    def _carry_out(
        self, row: SourcingRow, cancellation: Cancellation, decision: CancellationDecision, now: int
    ) -> None:
        by_id = {a.allocation_id: a for a in row.allocations}
        cancelled = decision.cancelled_skus
        touched = [by_id[aid] for aid in (*decision.withdrawn, *(aid for aid, _ in decision.reduced))]
        shipments = {a.allocation_id: row.shipment_of(a) for a in touched}
        for allocation in touched:
            allocation.state = "cancelled"
            self.workload[allocation.location_id] = max(0, self.workload[allocation.location_id] - 1)
        row.cancelled = [*row.cancelled, *cancelled]
        replacements = self._replace(row, decision, by_id, shipments, now) if decision.reduced else []
        order = cancellable(row)
        order_cancelled = all(sku in order.cancelled for sku, _ in order.ordered)
        record = outcome_record(cancellation, decision, open_lines(order), order_cancelled, replacements, now)
        row.cancellations = [*row.cancellations, record][-KEPT_ANSWERS:]
        self._emit(row, record, now, republish_round=False)

    def _replace(
        self,
        row: SourcingRow,
        decision: CancellationDecision,
        by_id: dict[str, AllocationState],
        shipments: dict[str, dict[str, Any] | None],
        now: int,
    ) -> list[str]:
        """Allocations that keep some lines are replaced by new ones of the rest (a new round)."""
        row.keep_live_shipments()
        row.round += 1
        row.round_attempts = 0
        row.backorder = [[sku, units] for sku, units in row.backorder if sku not in row.cancelled]
        row.status = "partially_allocated" if row.backorder else "allocated"
        planned, new = [], []
        for index, (allocation_id, kept) in enumerate(decision.reduced):
            old = by_id[allocation_id]
            lines = [[sku, units] for sku, units in kept]
            planned.append(
                {
                    **(shipments[allocation_id] or unplanned(row)),
                    "location_id": old.location_id,
                    "lines": lines,
                }
            )
            allocation = AllocationState(
                f"{row.order_id}:{row.round}:{index}",
                old.reservation_id,
                row.round,
                index,
                old.location_id,
                lines,
            )
            new.append(allocation)
            self.workload[allocation.location_id] += 1
        cancelled = ", ".join(decision.cancelled_skus)
        row.plan = {
            "outcome": row.status,
            "reason": f"lines cancelled: {cancelled}",
            "shipments": planned,
            "backorder": row.backorder,
            "trace": None,
        }
        row.allocations.extend(new)
        return [a.allocation_id for a in new]

    def answer_all_again(self, row: SourcingRow, now: int) -> None:
        """Every answer the row keeps, again with its releases and cancels (same ids). For a round's
        last reply read again: requests parked until that round was over were decided in its batch,
        and their outputs may have died with the worker; the requests themselves are not read again."""
        for record in row.cancellations:
            self._emit(row, record, now, republish_round=True)

    def _answer_again(self, row: SourcingRow, request_id: str, now: int) -> None:
        """A request read again (after a crash the outputs of its first reading may be lost)."""
        record = next(answer for answer in row.cancellations if answer["request_id"] == request_id)
        self._emit(row, record, now, republish_round=True)

    def _emit(self, row: SourcingRow, record: dict[str, Any], now: int, *, republish_round: bool) -> None:
        """Releases and cancels for the withdrawn allocations, the replacement round, the answer."""
        cancelled = {line["sku"] for line in record["lines"] if line["status"] == "cancelled"}
        by_id = {a.allocation_id: a for a in row.allocations}
        why = f"cancelled: {record['request_reason']}".rstrip(": ")
        for allocation_id in record["withdrawn_allocations"]:
            allocation = by_id[allocation_id]
            for sku, units in allocation.lines:
                if sku in cancelled:
                    lines = [[allocation.location_id, units]]
                    self.send_reservation("release", row, allocation.reservation_id, sku, lines, now)
            cancel = allocation_record(row, allocation, None, [], None, now, kind="cancel", reason=why)
            self.rounds.add_cancel(row, cancel)
        replacements = [by_id[aid] for aid in record["replacement_allocations"] if aid in by_id]
        if replacements and (not republish_round or replacements[0].round == row.round):
            self.rounds.publish(row, replacements, None, now)
        self.outbox.add(self.outcomes_topic, row.order_id.encode(), encode_outcome(record))


def unplanned(row: SourcingRow) -> dict[str, Any]:
    """A shipment whose plan is no longer kept (rows written before plans were kept): the promise's
    window stands in for its times."""
    return {
        "service_id": None,
        "route_id": None,
        "ready_at_ms": row.window_start_ms,
        "handover_at_ms": row.window_start_ms,
        "arrives_at_ms": row.promised_by_ms,
        "distance_km": 0.0,
        "co2e_g": 0.0,
        "late": False,
    }
