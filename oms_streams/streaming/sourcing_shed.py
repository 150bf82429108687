"""The order owner's side of a shed hold: the ledger gave back units it could no longer cover.

A ``shed`` reply (``domain.shortfall``) is no answer to a command: it says the stock under one of
the order's holds went (a count, a transfer out). The order reacts as to a short pick, through the
same path (``Withdrawals.withdraw``): the allocation that shipped those units is cancelled
(fulfilment gets a ``cancel`` with the ledger's reason), its other holds are released, and its lines
are sourced again in a new round that never asks that location for that SKU again; the new round's
outcome on ``oms.orders.sourced.v1`` (and ``GET /orders/{id}``) starts with the reason.

Only the shed SKU is excluded at the location: the location's other SKUs are still there. A shed
read again (after a crash that may have lost its first reading's outputs) says its cancel again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from oms_streams.adapters.sourcing import AllocationState, Reply, SourcingRow

Withdraw = Callable[[SourcingRow, list[AllocationState], str, str, int, Sequence[str]], None]
WithdrawnAgain = Callable[[SourcingRow, str, str, str, int, Sequence[str], str | None], None]
"""(row, kind, location, why, now, SKUs, reservation id): the cancels of a withdrawal read again."""


class ShedReplies:
    def __init__(self, withdraw: Withdraw, again: WithdrawnAgain | None = None) -> None:
        self.withdraw = withdraw
        self.again = again

    def apply(self, row: SourcingRow, reply: Reply, now: int) -> str:
        where = {loc for loc, _, _ in reply.lines}
        hit = [
            a
            for a in row.allocations
            if a.state == "live"
            and a.reservation_id == reply.reservation_id
            and a.location_id in where
            and any(sku == reply.sku for sku, _ in a.lines)
        ]
        if hit:
            if row.status == "reserving":
                # A re-sourcing is under way: withdraw these once it is over (as a short pick).
                row.deferred.append(["shed", [a.allocation_id for a in hit], reply.reason, reply.sku])
                return "parked"
            self.withdraw(row, hit, "shed", reply.reason, now, (reply.sku,))
            return "applied"
        if reply.reservation_id == row.reservation_id and row.status == "reserving" and reply.sku in row.held:
            # The attempt still under way lost a hold it had: as if the SKU had been refused. Its
            # release (with the others') is answered as a repeat: the ledger settled the id.
            row.refused = True
            return "applied"
        if self.again is not None:
            # Read again after a crash: the cancel its first reading decided may not have left.
            for location_id in sorted(where):
                self.again(row, "shed", location_id, reply.reason, now, (reply.sku,), reply.reservation_id)
        return "ignored"  # already cancelled, fulfilled or given up: nothing holds for it here
