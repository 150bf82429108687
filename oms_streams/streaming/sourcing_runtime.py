"""The order owner's side of the reservation saga: plan, reserve, allocate, re-source.

``apply_batch`` is called by the ``source_orders`` agent with placements, reservation replies and
fulfilment events, all keyed by order id, so one worker owns an order's whole saga and keeps it in
the ``sourcing`` table (one row per order, written whole, in the order's partition).

1. A placement is planned by the pure sourcing engine over the replicated availability view
   (``sourcing_planner``), and each SKU of the plan is asked of its ledger owner (reserve commands
   keyed by SKU, ``sourcing_commands``).
2. When every SKU has answered: all reserved -> one allocation per shipment and the order's outcome
   are published; any refused -> what was held is released and the order is planned again with what
   the refusals said is left (a fresher view than the feed), up to ``MAX_ATTEMPTS``
   (``sourcing_answers``).
3. A store's rejection or short pick cancels that allocation, releases its holds and sources its
   lines again without that store (a new round); a pickup store's rejection is left to the at-risk
   flow. A shipment leaving its location (handover, route departure, collection, or a courier's
   delivery) fulfils its holds (``sourcing_withdrawals``).
4. Lines a round could not allocate for lack of stock are sourced again in a new round when the
   availability view shows stock the planner can use, until a horizon after placement; then the
   backorder is final (a timer, ``streaming.backorders``).
5. A placement of a known order with a new event id is an edit: the difference with the order as
   sourced is withdrawn and sourced in a new round, after the round under way if any
   (``sourcing_edits``).

Every command carries a deterministic event id and every ledger command is idempotent, and every
command waits in the row until it is answered (``SourcingRow.outstanding``): the new owner after a
crash sends all of them again, and a timer sends again what goes unanswered too long and gives an
attempt up when a reserve never is (``domain.saga``), so no order waits for an answer forever and
nothing is taken twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

from oms_streams import clock
from oms_streams.adapters.cancellations import Cancellation
from oms_streams.adapters.courier_slots import SlotMessage
from oms_streams.adapters.edits import what_is_ordered
from oms_streams.adapters.lifecycle import saga_retention
from oms_streams.adapters.orders import Fulfilment, Placement
from oms_streams.adapters.sourcing import (
    AllocationState,
    Reply,
    SourcingRow,
    decision_to_plan,
    reservations_by_sku,
)
from oms_streams.domain.backorders import BackorderPolicy
from oms_streams.domain.placement import PlacementLimits
from oms_streams.domain.promise import CHANNEL_FOR_METHOD
from oms_streams.domain.retention import RetentionPolicy
from oms_streams.domain.saga import ReplyPolicy
from oms_streams.domain.sourcing import Outcome, SourcingDecision, SourcingPolicy
from oms_streams.domain.transit import TransitModel
from oms_streams.metrics import Metrics
from oms_streams.streaming.backorders import Backorders
from oms_streams.streaming.cancellation_runtime import OrderCancellations
from oms_streams.streaming.claims import Claims
from oms_streams.streaming.courier_slots import CourierSlots
from oms_streams.streaming.holds import HoldBook
from oms_streams.streaming.ledger_runtime import AvailabilityView
from oms_streams.streaming.network import NetworkState
from oms_streams.streaming.outbox import Durable, Outbox, Produce
from oms_streams.streaming.placement_gate import PlacementGate, Unreadable
from oms_streams.streaming.retention import RetentionIndex
from oms_streams.streaming.sourcing_answers import MAX_ATTEMPTS as MAX_ATTEMPTS  # re-exported
from oms_streams.streaming.sourcing_answers import LedgerAnswers
from oms_streams.streaming.sourcing_commands import LedgerCommands
from oms_streams.streaming.sourcing_edits import OrderEdits
from oms_streams.streaming.sourcing_inputs import SourcingInputs, label
from oms_streams.streaming.sourcing_inputs import SourcingTopics as SourcingTopics  # re-exported
from oms_streams.streaming.sourcing_outcomes import RoundPublisher
from oms_streams.streaming.sourcing_planner import RoundPlanner
from oms_streams.streaming.sourcing_preorders import Preorders
from oms_streams.streaming.sourcing_replies import ReplyWatch
from oms_streams.streaming.sourcing_shed import ShedReplies
from oms_streams.streaming.sourcing_withdrawals import Withdrawals
from oms_streams.streaming.table_context import in_partition, in_partition_of

log = logging.getLogger(__name__)


def now_ms() -> int:
    return clock.now_ms()


def placed_at(event: Any, now: int) -> int:
    """When the placement reached the topic (the broker's time: ``TopicSpec.broker_time``), never
    later than now: a placement that waited out an outage was still placed in time."""
    stamp = getattr(event.message, "timestamp", None)
    return min(now, clock.business_ms(int(stamp * 1000))) if stamp else now


def _awaited(row: SourcingRow | None) -> dict[tuple[str, str, str], int]:
    """The answers the row waits for, per outstanding command (kind, reservation, SKU)."""
    if row is None or not row.outstanding:
        return {}
    return {(e["kind"], e["reservation_id"], e["sku"]): e["awaiting"] for e in row.outstanding}


def _settled_since(row: SourcingRow | None, awaited: dict[tuple[str, str, str], int]) -> bool:
    """Whether the row waits for fewer answers to a command than it did (``awaited``)."""
    now = _awaited(row)
    return any(now.get(command, 0) < answers for command, answers in awaited.items())


class SourcingRuntime:
    def __init__(
        self,
        table: Any,
        network: NetworkState,
        view: AvailabilityView,
        transit: TransitModel,
        topics: SourcingTopics,
        produce: Produce,
        metrics: Metrics,
        policy: SourcingPolicy | None = None,
        partitions: int | None = None,
        durable: Durable | None = None,
        replies: ReplyPolicy | None = None,
        holds: HoldBook | None = None,
        limits: PlacementLimits | None = None,
        retention: RetentionIndex | None = None,
        slots: Any = None,
        backorders: BackorderPolicy | None = None,
        preorder_grace_ms: int = 24 * 3_600_000,
    ) -> None:
        self.table = table
        self.partitions = partitions
        self.topics = topics
        self.metrics = metrics
        self.lock = asyncio.Lock()
        self.claims = Claims()
        self.workload: dict[str, int] = defaultdict(int)
        """Live allocations per location among this worker's orders (a sourcing cost)."""
        self.planner = RoundPlanner(
            network, view, transit, policy, holds, self.claims, self.workload, metrics
        )
        """What a round plans on (the view corrected by claims, cart holds, workload), and its plan."""
        self.outbox = Outbox(produce, topics.dlq, metrics, durable)
        self.commands = LedgerCommands(topics.reservations, partitions, self.outbox)
        """Every path's reserves, releases and fulfils; each waits in its row for its answer."""
        self.watch = ReplyWatch(replies or ReplyPolicy(), metrics)
        self.rounds = RoundPublisher(self.outbox, topics.allocations, topics.sourced, network, metrics)
        self.withdrawals = Withdrawals(
            metrics,
            self.commands,
            self.rounds,
            self.workload,
            self._plan_and_reserve,
        )
        """Fulfilment events: a shipment that left is fulfilled, a short pick or rejection re-sourced."""
        self.sheds = ShedReplies(self.withdrawals.withdraw, self.withdrawals.withdrawn_again)
        self.gate = PlacementGate(self.rounds, limits or PlacementLimits(), metrics)
        self.inputs = SourcingInputs(topics, self.outbox, metrics)
        self.courier = CourierSlots(
            slots if slots is not None else {},
            network,
            self.outbox,
            topics.courier_slots,
            topics.courier_bookings,
            metrics,
            ask_again_ms=self.watch.policy.timeout_ms,
        )
        """The slots of the stores whose partitions this worker owns; a courier order's booking."""
        self.retention = (
            retention
            if retention is not None
            else RetentionIndex({}, table, topics.placed, "sourcing", RetentionPolicy(), metrics)
        )
        """Open and finished sagas (reloads read only the open rows); removes finished rows."""
        self.cancellations = OrderCancellations(
            self.outbox,
            topics.cancellation_outcomes,
            metrics,
            self.commands.send,
            self.rounds,
            self.workload,
        )
        self.preorders = Preorders(
            self.commands, preorder_grace_ms, self._plan_and_reserve, self._finish, self.rounds, metrics
        )
        """Preorders: inbound held at placement, the round allocated when the goods arrive."""
        self.answers = LedgerAnswers(
            self.outbox,
            topics.replies,
            metrics,
            self.commands,
            self.claims,
            self.watch,
            self.sheds,
            self.rounds,
            self.cancellations,
            self._plan_and_reserve,
            self._finish,
            self.preorders,
        )
        """The ledgers' answers (an attempt closed, retried or given up) and the reply timer's chase."""
        self.backorders = Backorders(
            backorders or BackorderPolicy(),
            view,
            metrics,
            self.planner.snapshot,
            self.planner.decide,
            self._plan_and_reserve,
            self.rounds.publish,
        )
        """This worker's backorders: sourced again when stock arrives, within their horizon."""
        self.edits = OrderEdits(
            self.gate,
            self.planner.decide,
            self.commands,
            self.rounds,
            self.workload,
            metrics,
            self._reserve_plan,
        )
        """Placements of known orders (edits): the difference withdrawn and sourced, then answered."""

    # --- events ---------------------------------------------------------------------------------

    async def apply_batch(self, events: list[Any]) -> None:
        # Answers first, and their allocations out before the batch's new orders are planned: an
        # order waiting for its last answer should not also wait for every placement behind it.
        # (An answer is always for a placement handled in an earlier batch.)
        replies = [event for event in events if event.message.topic == self.topics.replies]
        # Cancellations after the batch's placements: one of an order placed in the same batch waits
        # for its round instead of finding no order.
        others = sorted(
            (event for event in events if event.message.topic != self.topics.replies),
            key=lambda event: event.message.topic == self.topics.cancellations,
        )
        async with self.lock:
            for part in (replies, others):
                if part:
                    now = now_ms()
                    self._apply_part(part, now)
                    self.commands.drain(now)
                    await self.outbox.flush()

    def _apply_part(self, events: list[Any], now: int) -> None:
        rows: dict[str, tuple[SourcingRow, Any]] = {}
        for event in events:
            # A bug must not stop every order behind this one: what fails goes to the DLQ.
            try:
                items = self.inputs.decode(event, now, self.partitions)
            except Exception as error:
                log.exception("sourcing could not decode %s", event.message.topic)
                self.outbox.dead_letter(f"could not be processed: {error!r}", event.message, now)
                continue
            for item in items:
                try:
                    self._apply_item(item, event, rows, now)
                except Exception as error:
                    log.exception("sourcing could not process %s", event.message.topic)
                    reason = f"could not be processed (order {item.order_id}): {error!r}"
                    self.outbox.dead_letter(reason, event.message, now)
        for row, event in rows.values():
            self._store(row, now, event)

    def _apply_item(
        self,
        decoded: Placement | Fulfilment | Reply | Cancellation | SlotMessage | Unreadable,
        event: Any,
        rows: dict[str, tuple[SourcingRow, Any]],
        now: int,
    ) -> None:
        if isinstance(decoded, SlotMessage) and decoded.is_request:
            # Keyed by store: this worker owns the store's slots, not (necessarily) the order.
            verdict = self.courier.decide(decoded, event, now)
            self.metrics.sourcing_events.labels("courier_slot", verdict).inc()
            return
        order_id = decoded.order_id
        cached = rows.get(order_id)
        row = cached[0] if cached is not None else self._load(order_id)
        if row is not None:
            self.rounds.resend_outcomes(row)  # what a crash before they left may have lost
        if row is not None and order_id not in self.retention:
            # No index entry (a crash kept the row's changelog record, not the entry's): index it.
            self.retention.mark(order_id, row.partition, saga_retention(row, now))
        awaited = _awaited(row)
        if isinstance(decoded, Placement):
            row, verdict = self._place(row, decoded, event.message.partition, now, placed_at(event, now))
        elif isinstance(decoded, Reply):
            verdict = (
                self.answers.apply(row, decoded, now)
                if row is not None
                else self.answers.stray(None, decoded, now)
            )
        elif isinstance(decoded, Cancellation):
            if row is not None and not decoded.request.skus:
                self.preorders.cancelled(row, now)  # a whole order does not wait for its inbound
            elif row is not None:
                self.preorders.cancel_lines(row, decoded.request.skus, now)  # nor do its lines
            verdict = self.cancellations.apply(row, decoded, now)
            if row is not None:
                self.courier.give_back(row, now)
        elif isinstance(decoded, SlotMessage):
            verdict = self._slot_answer(row, decoded, now) if row is not None else "ignored"
        elif isinstance(decoded, Unreadable):
            row, verdict = self._refuse_unreadable(row, decoded, event.message.partition, now)
        else:
            verdict = self.withdrawals.progress(row, decoded, now) if row is not None else "ignored"
        self.metrics.sourcing_events.labels(label(event.message.topic, self.topics), verdict).inc()
        if row is not None and (
            verdict in ("applied", "parked", "released_stray", "rejected") or _settled_since(row, awaited)
        ):
            # Also an answer judged a duplicate that settles a command the row waits for: unstored,
            # the timer sent that command again every reply timeout for ever (the chaos run saw a
            # preorder re-sent for 20 minutes, until the ledger had forgotten its release).
            rows[order_id] = (row, event)

    def _load(self, order_id: str) -> SourcingRow | None:
        raw = self.table.get(order_id)
        return SourcingRow.decode(raw) if raw is not None else None

    def _store(self, row: SourcingRow, now: int, event: Any = None) -> None:
        """The row whole, in its partition, indexed as open or finished (``domain.retention``)."""
        finished = saga_retention(row, now)
        self.rounds.keep_outcomes(row)
        with in_partition_of(event) if event is not None else in_partition(self.topics.placed, row.partition):
            self.table[row.order_id] = row.encode()
        self.retention.mark(row.order_id, row.partition, finished)
        self.watch.track(row)
        self.backorders.track(row, now)
        self.preorders.track(row)

    # --- placement --------------------------------------------------------------------------------

    def _place(
        self, row: SourcingRow | None, placement: Placement, partition: int, now: int, placed_at: int
    ) -> tuple[SourcingRow | None, str]:
        if row is not None:
            # A new version of a known order (an edit), or one read again (``sourcing_edits``).
            return row, self.edits.apply(row, placement, now, placed_at)
        problem = self.gate.problem(placement, placed_at)
        if problem is not None:
            return self.gate.refuse(placement, partition, problem, now), "rejected"
        option = placement.option
        lines, courier_store, destination = what_is_ordered(placement)
        row = SourcingRow(
            order_id=placement.order_id,
            placement=placement.event_id,
            partition=partition,
            method=option.method.value,
            lines=[[sku, units] for sku, units in lines.items()],
            ordered=[[sku, units] for sku, units in lines.items()],
            destination=destination,
            window_start_ms=option.window_start_ms,
            promised_by_ms=option.window_end_ms,
            channel=CHANNEL_FOR_METHOD[option.method],
            courier_store_id=courier_store,
            hold_id=placement.hold_id,
            placed_at_ms=placed_at,
        )
        if courier_store is not None and self.topics.courier_slots:
            self.courier.ask(row, now)  # its stock is sourced once the slot is booked
        elif option.preorder:
            self.preorders.start(row, option, now)  # inbound held; allocated when it arrives
        else:
            self._plan_and_reserve(row, now)
        return row, "applied"

    def _slot_answer(self, row: SourcingRow, answer: SlotMessage, now: int) -> str:
        """The slots' owner answered: source the order for its slot, or reject it (nothing held)."""
        if not self.courier.settle(row, answer):
            return "duplicate"
        if row.courier is not None and row.courier["status"] == "refused":
            row.round = 0  # refused before any stock was asked for
            row.plan = {
                "outcome": Outcome.REJECTED.value,
                "reason": answer.reason,
                "shipments": [],
                "backorder": row.lines,
                "trace": None,
            }
            self._finish(row, now)
        else:
            self._plan_and_reserve(row, now)
        return "applied"

    def _refuse_unreadable(
        self, row: SourcingRow | None, bad: Unreadable, partition: int, now: int
    ) -> tuple[SourcingRow | None, str]:
        """An unreadable placement is answered 'rejected' unless its order has an answer already
        (then only a refusal's answer is published again: one that sourced the order stands)."""
        if row is None:
            return self.gate.refuse_unreadable(bad, partition, now), "rejected"
        if row.round == 0:
            self.rounds.republish(row, now)
        return row, self.edits.refuse_unreadable(row, bad.event_id, bad.reason, now)

    def _plan_and_reserve(self, row: SourcingRow, now: int, decision: SourcingDecision | None = None) -> None:
        """The row's next attempt: planned now, or with ``decision`` (made on this same row and
        snapshot a moment ago: a backorder's round is only started on a plan that allocates)."""
        self._reserve_plan(row, decision_to_plan(decision or self.planner.decide(row, now)), now)

    def _reserve_plan(self, row: SourcingRow, plan: dict[str, Any], now: int) -> None:
        """The row's next attempt with ``plan`` (``decision_to_plan``): its reserves sent, or the
        round finished when it ships nothing."""
        row.attempt += 1
        row.round_attempts += 1
        row.pending, row.held, row.refused = [], {}, False
        row.stop_awaiting_reserves()
        row.plan = plan
        if not plan["shipments"]:
            self._finish(row, now)
            return
        for sku, lines in reservations_by_sku(row.plan, row.channel).items():
            row.pending.append(sku)
            self.claims.asked(sku, lines)
            self.commands.send("reserve", row, row.reservation_id, sku, lines, now)

    # --- outcome ----------------------------------------------------------------------------------

    def _finish(self, row: SourcingRow, now: int) -> None:
        plan = row.plan or {}
        shipments = plan.get("shipments", [])
        allocations = [
            AllocationState(
                allocation_id=f"{row.order_id}:{row.round}:{index}",
                reservation_id=row.reservation_id,
                round=row.round,
                shipment=index,
                location_id=shipment["location_id"],
                lines=shipment["lines"],
            )
            for index, shipment in enumerate(shipments)
        ]
        row.allocations.extend(allocations)
        for allocation in allocations:
            self.workload[allocation.location_id] += 1
        self.backorders.close_round(row, plan, bool(shipments), now)  # backorder, status, horizon
        if (
            row.edit_round == row.round
            and row.status == "rejected"
            and any(a.state != "cancelled" for a in row.allocations)
        ):  # an edit's round that allocates nothing new leaves the order as it was allocated
            row.status = "partially_allocated" if row.open_backorder() else "allocated"
        row.pending, row.held = [], {}
        row.stop_awaiting_reserves()
        self.rounds.publish(row, allocations, plan.get("trace"), now)
        self.metrics.orders_sourced.labels(row.status).inc()
        row.plan = {**plan, "trace": None}  # published with the outcome: the row stays small
        while row.deferred and row.status != "reserving":
            kind, ids, why, *only = row.deferred.pop(0)
            hit = [a for a in row.allocations if a.allocation_id in ids and a.state == "live"]
            if hit:
                self.withdrawals.withdraw(row, hit, kind, why, now, only_skus=only)
        self.cancellations.after_round(row, now)
        self.edits.after_round(row, now)
        self.courier.give_back(row, now)

    # --- ownership --------------------------------------------------------------------------------

    def forget_ownership(self) -> None:
        self.rounds.forget()
        self.claims.clear()
        self.workload.clear()
        self.watch.forget()
        self.retention.forget()
        self.backorders.forget()
        self.courier.forget()
        self.preorders.forget()

    async def reload(self) -> int:
        """After a rebalance: re-send every unanswered command of the orders this worker now owns.

        A crash may have lost commands that were decided but not produced; the ledgers answer a
        repeat as they did the first time, so re-sending is always safe."""
        async with self.lock:
            now = now_ms()
            self.watch.forget()
            self.backorders.forget()
            self.courier.forget()
            waiting = []
            for _, raw in self.retention.open_rows():  # finished sagas hold nothing, await nothing
                row = SourcingRow.decode(raw)
                for allocation in row.allocations:
                    if allocation.state == "live":
                        self.workload[allocation.location_id] += 1
                if row.courier is not None and row.courier["status"] == "asking":
                    self.courier.ask(row, now)  # the slot's answer may have been lost
                self.backorders.track(row, now)
                self.preorders.track(row)
                self.preorders.ask_again(row, now, send=False)  # its arrival answer may be lost
                if row.outstanding or (row.status == "reserving" and row.pending):
                    waiting.append(row)
                elif row.order_id not in self.retention:  # no index yet: index it
                    self.retention.mark(row.order_id, row.partition, saga_retention(row, now))
            resent = 0
            for row in waiting:
                if row.status == "reserving" and row.plan is not None:
                    row.await_pending(reservations_by_sku(row.plan, row.channel), now)
                with in_partition(self.topics.placed, row.partition):
                    for entry in self.watch.all_again(row, now):
                        self.commands.again(entry, row, now)
                        resent += 1
                self._store(row, now)
            self.commands.drain(now)
            await self.outbox.flush()
            return resent

    async def check_replies(self) -> int:
        """Timer: send again the commands not answered in time, and give up the attempts whose
        reserves never were (``domain.saga``); returns how many orders it acted on."""
        async with self.lock:
            now = now_ms()
            due = self.watch.due(now)
            for order_id in due:
                row = self._load(order_id)
                if row is None:
                    self.watch.untrack(order_id)
                    continue
                try:
                    with in_partition(self.topics.placed, row.partition):
                        self.answers.chase(row, now)
                    self._store(row, now)
                except Exception:  # one order's bug must not stop the timer for every other one
                    log.exception("sourcing could not chase the answers of %s", order_id)
                    self.watch.untrack(order_id)
                    continue
            self._ask_slots_again(now)
            self.commands.drain(now)
            await self.outbox.flush()
            return len(due)

    def _ask_slots_again(self, now: int) -> None:
        """A courier order whose slot answer is overdue asks again (the same request: its owner
        answers a repeat as the first time)."""
        for order_id in self.courier.overdue(now):
            row = self._load(order_id)
            if row is None or row.courier is None or row.courier["status"] != "asking":
                self.courier.stop_asking(order_id)
                continue
            self.metrics.sourcing_resends.labels("courier_slot", "timeout").inc()
            self.courier.ask(row, now)

    async def check_backorders(self) -> int:
        """Timer: source again the backorders the availability view now shows usable stock for, and
        make final those past their horizon (``streaming.backorders``); returns the rows changed."""
        async with self.lock:
            now = now_ms()
            changed = 0
            for order_id in self.preorders.due(now):  # late inbound: the preorder is given up
                row = self._load(order_id)
                if row is not None:
                    with in_partition(self.topics.placed, row.partition):
                        if self.preorders.act(row, now):
                            if not row.preordered():
                                # Given up: said before the row says so, as a final backorder is
                                # (a timer has no input to read again; a crash decides it again).
                                await self.outbox.flush()
                            self._store(row, now)
                            changed += 1
            for order_id in self.backorders.due(now):
                row = self._load(order_id)
                if row is None:
                    continue
                try:
                    with in_partition(self.topics.placed, row.partition):
                        if self.backorders.act(row, now):
                            if row.backorder_final:
                                # A timer has no input to read again: the final outcome leaves
                                # before the row says so (a crash in between decides it again).
                                await self.outbox.flush()
                            self._store(row, now)
                            changed += 1
                except Exception:  # one order's bug must not stop the timer for every other one
                    log.exception("sourcing could not look at the backorder of %s", order_id)
                    self.backorders.untrack(order_id)
            self.commands.drain(now)
            await self.outbox.flush()
            return changed

    async def sweep(self) -> int:
        """Timer: remove the finished sagas whose retention has passed (tombstones in the
        ``sourcing`` and index changelogs); returns how many rows were removed."""
        async with self.lock:
            now = now_ms()
            return len(self.retention.sweep(now, lambda _, raw: saga_retention(SourcingRow.decode(raw), now)))

    # --- helpers ----------------------------------------------------------------------------------

    def lookup(self, order_id: str) -> SourcingRow | None:
        return self._load(order_id)

    def export_gauges(self) -> None:
        self.metrics.live_allocations.set(sum(self.workload.values()))
        self.metrics.sourcing_awaiting.set(len(self.watch))
        self.metrics.open_backorders.set(len(self.backorders))
        preorders, units = self.preorders.waiting()
        self.metrics.preorders_waiting.set(preorders)
        self.metrics.preorder_units_waiting.set(units)
