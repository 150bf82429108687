"""Which of this worker's orders wait for answers from SKU ledgers, and until when.

Every command the sourcing saga sends is recorded in the order's row until it is answered
(``SourcingRow.outstanding``). The rows are in the table; this index keeps, per order, when the
next answer is overdue, so the timer reads only the rows it has to act on. It holds the orders of
the partitions this worker owns: cleared when partitions are revoked, rebuilt by the reload.
"""

from __future__ import annotations

from typing import Any

from oms_streams.adapters.sourcing import SourcingRow
from oms_streams.domain.saga import ReplyPolicy, chase, next_deadline
from oms_streams.metrics import Metrics


class ReplyWatch:
    def __init__(self, policy: ReplyPolicy, metrics: Metrics) -> None:
        self.policy = policy
        self.metrics = metrics
        self._deadlines: dict[str, int] = {}
        """Order id -> when ``chase`` next has something to do for it."""

    def __len__(self) -> int:
        return len(self._deadlines)

    def track(self, row: SourcingRow) -> None:
        """After the row changed (an answer, a new command): when to look at it again."""
        if not row.outstanding and row.order_id not in self._deadlines:
            return  # the common case on the hot path: nothing sent, nothing waited for
        deadline = next_deadline(row.awaited(), self.policy)
        if deadline is None:
            self._deadlines.pop(row.order_id, None)
        else:
            self._deadlines[row.order_id] = deadline

    def untrack(self, order_id: str) -> None:
        self._deadlines.pop(order_id, None)

    def due(self, now_ms: int) -> list[str]:
        return [order_id for order_id, deadline in self._deadlines.items() if deadline <= now_ms]

    def chase(self, row: SourcingRow, now_ms: int) -> tuple[list[dict[str, Any]], bool]:
        """(the row's commands to send again now, whether its attempt is given up); the entries
        sent again are marked so in the row."""
        decision = chase(row.awaited(), now_ms, self.policy)
        entries = [row.outstanding[i] for i in decision.resend]
        for entry in entries:
            row.resent(entry, now_ms)
            self.metrics.sourcing_resends.labels(entry["kind"], "timeout").inc()
        return entries, decision.give_up

    def all_again(self, row: SourcingRow, now_ms: int) -> list[dict[str, Any]]:
        """After a rebalance or a restart: every command of the row goes out again (the crash may
        have lost what was decided but not produced). Its reply timeout starts again, but the send
        is not counted: a burst of rebalances must not give attempts up before any timeout passed."""
        for entry in row.outstanding:
            row.resent(entry, now_ms, counted=False)
            self.metrics.sourcing_resends.labels(entry["kind"], "reload").inc()
        return list(row.outstanding)

    def forget(self) -> None:
        self._deadlines.clear()
