"""The order owner's side of fulfilment events: a live allocation is fulfilled or withdrawn.

A shipment leaving its location (handover, route departure, collection, or a courier's delivery)
fulfils its holds (``fulfil`` commands, at the handover's time). A store's rejection or short pick
withdraws the allocation: a ``cancel`` record, its holds released, and its lines sourced again in
a new round that never asks that location for them again; a pickup store's rejection is left to the
at-risk flow. A ledger's ``shed`` withdraws through the same path (``sourcing_shed``). A withdrawal
reported while a round is under way waits in the row until the round is over (``deferred``).

A withdrawal read again (after a crash that may have lost its first reading's outputs) says its
``cancel`` records again, with the same ids, and publishes the round it started again if over.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from oms_streams.adapters.orders import Fulfilment
from oms_streams.adapters.sourcing import AllocationState, SourcingRow, allocation_record
from oms_streams.domain.risk import FulfilmentKind
from oms_streams.metrics import Metrics
from oms_streams.streaming.sourcing_commands import LedgerCommands
from oms_streams.streaming.sourcing_outcomes import RoundPublisher

LEFT_LOCATION = frozenset(
    {
        FulfilmentKind.HANDED_TO_CARRIER,
        FulfilmentKind.ROUTE_DEPARTED,
        FulfilmentKind.COLLECTED,
        FulfilmentKind.DELIVERED,  # a courier reports no handover; for the others it comes after one
    }
)
"""The shipment's units left the location: its holds are fulfilled (out of on hand and reserved)."""
WITHDRAWN = frozenset({FulfilmentKind.STORE_REJECTED, FulfilmentKind.SHORT_PICK})

PlanAndReserve = Callable[[SourcingRow, int], None]
"""(row, now): the row's next attempt, planned now (reserves sent)."""


class Withdrawals:
    def __init__(
        self,
        metrics: Metrics,
        commands: LedgerCommands,
        rounds: RoundPublisher,
        workload: dict[str, int],
        plan_and_reserve: PlanAndReserve,
    ) -> None:
        self.metrics = metrics
        self.commands = commands
        self.rounds = rounds
        self.workload = workload
        """Live allocations per location (the runtime's: a sourcing cost)."""
        self.plan_and_reserve = plan_and_reserve

    def progress(self, row: SourcingRow, fulfilment: Fulfilment, now: int) -> str:
        """A fulfilment event of the order; the verdict for ``oms_sourcing_events``."""
        event = fulfilment.event
        kind = event.kind
        if kind not in LEFT_LOCATION and kind not in WITHDRAWN:
            return "ignored"
        live = [a for a in row.allocations if a.state == "live"]
        if event.location_id is not None:
            hit = [a for a in live if a.location_id == event.location_id]
        elif event.shipment is not None:
            hit = [a for a in live if a.shipment == event.shipment and a.round == row.round]
        else:
            hit = []
        if not hit:
            if kind in WITHDRAWN and event.location_id is not None:
                self.withdrawn_again(row, kind.value, event.location_id, event.reason, now)
            return "ignored"  # repeated, or about a shipment already settled
        if kind in LEFT_LOCATION:
            for allocation in hit:
                # At the handover's time: a count taken since already left these units out.
                self.settle(row, allocation, "fulfil", "fulfilled", now, at_ms=event.occurred_at_ms)
            return "applied"
        pickup = row.destination.get("pickup_store_id")
        if (
            kind is FulfilmentKind.STORE_REJECTED
            and event.location_id is not None
            and event.location_id == pickup
        ):
            # The customer chose this store: customer service decides (the at-risk flow), not sourcing.
            return "ignored"
        if row.status == "reserving":
            # A re-sourcing is under way: withdraw these once it is over (``SourcingRuntime._finish``).
            row.deferred.append([kind.value, [a.allocation_id for a in hit], event.reason])
            return "parked"
        self.withdraw(row, hit, kind.value, event.reason, now)
        return "applied"

    def withdrawn_again(
        self,
        row: SourcingRow,
        kind: str,
        location_id: str,
        why: str,
        now: int,
        skus: Sequence[str] = (),
        reservation_id: str | None = None,
    ) -> None:
        """A short pick, rejection or shed read again: its ``cancel`` records again (same ids), and
        the round it started if over. Its first reading may have stored the row and died before its
        outputs left (``Outbox``); the reload re-sends its commands, but only this brings these.
        ``skus``, ``reservation_id``: a shed's (it withdraws only the allocations holding them)."""
        withdrawn = [
            a
            for a in row.allocations
            if a.state == "cancelled"
            and a.location_id == location_id
            and reservation_id in (None, a.reservation_id)
            and _withdrawn_there(row, a, skus)
        ]
        for allocation in withdrawn:
            reason = f"{kind} at {location_id}: {why}".rstrip(": ")
            record = allocation_record(row, allocation, None, [], None, now, kind="cancel", reason=reason)
            self.rounds.add_cancel(row, record)
        if withdrawn:
            self.rounds.republish(row, now)

    def withdraw(
        self,
        row: SourcingRow,
        hit: list[AllocationState],
        kind: str,
        why: str,
        now: int,
        only_skus: Sequence[str] = (),
    ) -> None:
        """Cancel the allocations, release their holds, source their lines again without them.
        ``kind``: a fulfilment kind (short_pick, store_rejected) or ``shed`` (the ledger gave the
        hold back, ``sourcing_shed``); ``only_skus``: the SKUs never to source there again (all)."""
        missing: dict[str, int] = {}
        reasons = []
        for allocation in hit:
            self.settle(row, allocation, "release", "cancelled", now)
            reason = f"{kind} at {allocation.location_id}: {why}".rstrip(": ")
            reasons.append(reason)
            record = allocation_record(row, allocation, None, [], None, now, kind="cancel", reason=reason)
            self.rounds.add_cancel(row, record)
            for sku, units in allocation.lines:
                missing[sku] = missing.get(sku, 0) + units
                if not only_skus or sku in only_skus:
                    row.excluded.append([allocation.location_id, sku])
        row.keep_live_shipments()
        row.round += 1
        row.round_attempts = 0
        row.status = "reserving"
        row.lines = [[sku, units] for sku, units in missing.items()]
        row.resourced = [row.round, "; ".join(reasons)]  # the round's outcome says why it happened
        self.metrics.resourced.labels(kind).inc()
        self.plan_and_reserve(row, now)

    def settle(
        self,
        row: SourcingRow,
        allocation: AllocationState,
        command: str,
        state: str,
        now: int,
        at_ms: int | None = None,
    ) -> None:
        """The allocation is over (``state``): its holds are fulfilled or released (``command``)."""
        allocation.state = state
        self.workload[allocation.location_id] = max(0, self.workload[allocation.location_id] - 1)
        for sku, units in allocation.lines:
            lines = [[allocation.location_id, units]]
            self.commands.send(command, row, allocation.reservation_id, sku, lines, now, at_ms=at_ms)


def _withdrawn_there(row: SourcingRow, allocation: AllocationState, skus: Sequence[str]) -> bool:
    """Withdrawn (a short pick, rejection or shed: its SKUs, or ``skus`` among them, are never asked
    at its location again), not cancelled by the customer."""
    held = [sku for sku, _ in allocation.lines if not skus or sku in skus]
    return any([allocation.location_id, sku] in row.excluded for sku in held)
