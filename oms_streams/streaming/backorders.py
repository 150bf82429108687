"""The order owner's side of backorders: sourced again when stock arrives (``domain.backorders``).

``SourcingRuntime`` calls three hooks: ``close_round`` when a round finishes (the backorder it
leaves, with what earlier rounds left, and until when that waits for stock), ``track`` whenever it
stores a row, and, from its timer ``check_backorders``, ``act`` for each order due.

``BackorderWatch`` is an in-memory schedule of this worker's orders whose backorder waits for
stock, and when to look at each next. Like the reply deadlines it is cleared when partitions are
revoked and rebuilt at reload from the open rows (a backorder within its horizon keeps its row
open: ``adapters.lifecycle.saga_facts``). A look is cheap: the backordered SKUs' units in the
same snapshot a round plans on (the availability view corrected by the worker's own claims). Only
when it shows units where the order may take them from does the planner run, and only a plan that
allocates something starts a round, with that plan as its first attempt: no round is published
for nothing. A plan that could not use what the view showed is remembered with the view records
it saw; the planner runs again for that order once one of them changed (or an hour passed).

Crash-safe like the rest of the saga: a round is decided in the row (round + 1, a new attempt and
reservation id, the backorder moved into the round's lines) and its commands and outcome leave
only once the row is durable (``Outbox``). A worker that dies before that loses the decision with
the row, and the next owner decides it again from the stored row, with the same ids; one that dies
after it re-sends the round's commands at reload. A round is never doubled: the row is
``reserving`` until it finishes, and the timer leaves such a row alone.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from oms_streams.adapters.sourcing import AllocationState, SourcingRow
from oms_streams.domain.backorders import (
    HOUR_MS,
    Backorder,
    BackorderPolicy,
    Final,
    Step,
    carry_backorder,
    deadline_ms,
    describe,
    final_outcome,
    final_reason,
    look_again_ms,
    next_step,
    open_lines,
    round_outcome,
    with_stock,
)
from oms_streams.domain.network import DeliveryMethod
from oms_streams.domain.promise_types import CartLine
from oms_streams.domain.sourcing import SourcingDecision, StockSnapshot
from oms_streams.metrics import Metrics
from oms_streams.streaming.ledger_runtime import AvailabilityView

MAX_LOOKS = 500
"""Orders looked at per timer tick: the tick holds the saga's lock, so its work is bounded."""
MAX_PLANS = 50
"""Planner runs per tick (0.3-3 ms each); orders beyond wait for the next tick."""

Snapshot = Callable[[str, list[str], int], StockSnapshot]
"""(channel, SKUs, now): the stock a round of an order of that channel would plan on."""
Decide = Callable[[SourcingRow, int], SourcingDecision]
"""(row, now): the planner's decision for the row's lines, nothing sent."""
PlanAndReserve = Callable[[SourcingRow, int, SourcingDecision], None]
"""(row, now, decision): start the row's next attempt with that decision (reserves sent)."""
PublishRound = Callable[[SourcingRow, list[AllocationState], dict[str, Any] | None, int], None]


class BackorderWatch:
    """Order id -> when to look at its backorder next, for this worker's partitions."""

    def __init__(self) -> None:
        self._at: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self._at)

    def __contains__(self, order_id: str) -> bool:
        return order_id in self._at

    def schedule(self, order_id: str, at_ms: int) -> None:
        if self._at.get(order_id) != at_ms:
            self._at[order_id] = at_ms
            heapq.heappush(self._heap, (at_ms, order_id))

    def untrack(self, order_id: str) -> None:
        self._at.pop(order_id, None)

    def due(self, now_ms: int, limit: int = MAX_LOOKS) -> list[str]:
        """The orders to look at now (at most ``limit``, earliest first), taken off the schedule:
        the look schedules each again (or not)."""
        found: list[str] = []
        while self._heap and self._heap[0][0] <= now_ms and len(found) < limit:
            at, order_id = heapq.heappop(self._heap)
            if self._at.get(order_id) == at:
                del self._at[order_id]
                found.append(order_id)
        if len(self._heap) > 4 * len(self._at) + 1024:  # stale entries of rescheduled orders
            self._heap = [(at, order_id) for order_id, at in self._at.items()]
            heapq.heapify(self._heap)
        return found

    def forget(self) -> None:
        self._at.clear()
        self._heap.clear()


class Backorders:
    def __init__(
        self,
        policy: BackorderPolicy,
        view: AvailabilityView,
        metrics: Metrics,
        snapshot: Snapshot,
        decide: Decide,
        plan_and_reserve: PlanAndReserve,
        publish_round: PublishRound,
    ) -> None:
        self.policy = policy
        self.view = view
        self.metrics = metrics
        self.snapshot = snapshot
        self.decide = decide
        self.plan_and_reserve = plan_and_reserve
        self.publish_round = publish_round
        self.watch = BackorderWatch()
        self._unusable: dict[str, tuple[Any, ...]] = {}
        """Order id -> the view records its last plan could not use (the planner waits for a change)."""
        self._plans = 0
        """Planner runs in this tick."""

    def __len__(self) -> int:
        return len(self.watch)

    # --- hooks of the saga ------------------------------------------------------------------------

    def close_round(self, row: SourcingRow, plan: dict[str, Any], allocated: bool, now: int) -> None:
        """A round finished: the order's backorder is what earlier rounds left plus what this one
        could not allocate (a round that sources the backorder took it out when it started); the
        round's outcome; until when the backorder waits for stock, or why it does not."""
        backorder = carry_backorder(_cart(row.backorder), _cart(plan.get("backorder", [])))
        row.backorder = _wire(backorder)
        row.status = round_outcome(str(plan.get("outcome", "rejected")), allocated, bool(backorder))
        self._settle(row, bool(plan.get("stock_short", True)), now)
        if plan.get("final_reason") and row.open_backorder():  # a preorder given up (late inbound)
            row.backorder_until_ms, row.backorder_final = None, str(plan["final_reason"])

    def track(self, row: SourcingRow, now: int) -> None:
        """After the row was stored (or read at reload): when to look at its backorder next."""
        if not row.backorder and row.order_id not in self.watch:
            return  # the common case on the hot path: no backorder, not watched
        after = next_step(self._state(row), now, self.policy)
        if after.at_ms is None:
            self.untrack(row.order_id)
        else:
            self.watch.schedule(row.order_id, after.at_ms)

    def due(self, now: int) -> list[str]:
        """The orders to look at in this tick."""
        self._plans = 0
        return self.watch.due(now)

    def act(self, row: SourcingRow, now: int) -> bool:
        """Look at a due order: start a round for its backorder when the planner can use the stock
        the view shows, make it final at its horizon, or schedule the next look. Whether the row
        changed (the caller stores it)."""
        state = self._state(row)
        after = next_step(state, now, self.policy)
        if after.step is Step.EXPIRE:
            self._expire(row, state, now)
            return True
        if after.step is Step.CHECK:
            return self._look(row, state, now)
        if after.at_ms is not None:
            self.watch.schedule(row.order_id, after.at_ms)
        else:
            self.untrack(row.order_id)
        return False

    def untrack(self, order_id: str) -> None:
        self.watch.untrack(order_id)
        self._unusable.pop(order_id, None)

    def forget(self) -> None:
        self.watch.forget()
        self._unusable.clear()

    # --- decisions --------------------------------------------------------------------------------

    def _state(self, row: SourcingRow) -> Backorder:
        return Backorder(
            lines=open_lines(_cart(row.backorder), row.cancelled),
            until_ms=row.backorder_until_ms,
            final=bool(row.backorder_final),
            busy=row.status == "reserving",
            rounds=row.backorder_rounds,
            tried_ms=row.backorder_tried_ms,
        )

    def _settle(self, row: SourcingRow, stock_short: bool, now: int) -> None:
        """Until when the backorder waits for stock, or why it is final (counted once)."""
        if not row.open_backorder():
            row.backorder_until_ms, row.backorder_final = None, ""
            return
        if row.placed_at_ms is not None:
            row.backorder_until_ms = deadline_ms(row.placed_at_ms, self.policy)
        final = self._final_reason(row, stock_short, now)
        if final is not None and not row.backorder_final and row.round > 0:
            self.metrics.backorders.labels("expired" if final.expired else "final").inc()
        row.backorder_final = "" if final is None else final.reason

    def _look(self, row: SourcingRow, state: Backorder, now: int) -> bool:
        """Start a round for the backorder if the planner can use what the view shows for it (True),
        else schedule the next look."""
        assert state.until_ms is not None  # a backorder that is looked at waits until then
        later = look_again_ms(now, state.until_ms, self.policy)
        skus = [line.sku for line in state.lines]
        snapshot = self.snapshot(row.channel, skus, now)
        excluded = {(loc, sku) for loc, sku in row.excluded}
        seen = (now // HOUR_MS, *((self.view.get(sku) or {}).get("published_at") for sku in skus))
        if not with_stock(state.lines, snapshot.units, excluded) or self._unusable.get(row.order_id) == seen:
            self.watch.schedule(row.order_id, later)
            return False
        if self._plans >= MAX_PLANS:
            self.watch.schedule(row.order_id, now)  # planned in the next tick
            return False
        self._plans += 1
        decision = self.decide(replace(row, lines=_wire(state.lines)), now)
        if not decision.shipments:
            self._unusable[row.order_id] = seen
            self.metrics.backorders.labels("unusable").inc()
            self.watch.schedule(row.order_id, later)
            return False
        self._start(row, state, decision, now)
        return True

    def _start(self, row: SourcingRow, state: Backorder, decision: SourcingDecision, now: int) -> None:
        """A new round sources the backorder, with ``decision`` as its first attempt."""
        self.untrack(row.order_id)
        row.keep_live_shipments()
        row.round += 1
        row.round_attempts = 0
        row.status = "reserving"
        row.lines = _wire(state.lines)
        row.backorder = []  # the round sources it: what it cannot allocate is the backorder after it
        row.backorder_rounds += 1
        row.backorder_tried_ms = now
        row.resourced = [row.round, f"stock arrived for the backorder ({describe(state.lines)})"]
        self.metrics.backorders.labels("resourced").inc()
        self.plan_and_reserve(row, now, decision)

    def _final_reason(self, row: SourcingRow, stock_short: bool, now: int) -> Final | None:
        """Why the row's backorder is no longer sourced again (``domain.backorders.final_reason``)."""
        return final_reason(
            method=DeliveryMethod(row.method),
            round=row.round,
            stock_short=stock_short,
            placed_at_ms=row.placed_at_ms,
            now_ms=now,
            policy=self.policy,
        )

    def _expire(self, row: SourcingRow, state: Backorder, now: int) -> None:
        """The horizon passed: a round that allocates nothing says the backorder is final."""
        self.untrack(row.order_id)
        final = self._final_reason(row, True, now)
        reason = final.reason if final is not None else "not in stock within its horizon"
        row.keep_live_shipments()
        row.round += 1
        row.round_attempts = 0
        row.backorder = _wire(state.lines)
        row.status = final_outcome(any(a.state != "cancelled" for a in row.allocations))
        row.backorder_final = reason
        row.resourced = [row.round, f"backorder final: {describe(state.lines)} {reason}"]
        row.plan = {
            "outcome": row.status,
            "reason": "",
            "shipments": [],
            "backorder": row.backorder,
            "trace": None,
        }
        self.metrics.backorders.labels("expired").inc()
        self.publish_round(row, [], None, now)


def _cart(lines: Iterable[list[Any]]) -> tuple[CartLine, ...]:
    return tuple(CartLine(str(sku), int(units)) for sku, units in lines)


def _wire(lines: Iterable[CartLine]) -> list[list[Any]]:
    return [[line.sku, line.quantity] for line in lines]
