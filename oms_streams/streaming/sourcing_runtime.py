"""The order owner's side of the reservation saga: plan, reserve, allocate, re-source.

``apply_batch`` is called by the ``source_orders`` agent with placements, reservation replies and
fulfilment events, all keyed by order id, so one worker owns an order's whole saga and keeps it in
the ``sourcing`` table (one row per order, written whole, in the order's partition).

1. A placement is planned by the pure sourcing engine over the replicated availability view, and
   each SKU of the plan is asked of its ledger owner (reserve commands keyed by SKU).
2. When every SKU has answered: all reserved -> one allocation per shipment and the order's outcome
   are published; any refused -> what was held is released and the order is planned again with what
   the refusals said is left (a fresher view than the feed), up to ``MAX_ATTEMPTS``.
3. A store's rejection or short pick cancels that allocation, releases its holds and sources its
   lines again without that store (a new round); a pickup store's rejection is left to the at-risk
   flow. A shipment leaving its location (handover, route departure, collection, or a courier's
   delivery) fulfils its holds.
4. Lines a round could not allocate for lack of stock are sourced again in a new round when the
   availability view shows stock the planner can use, until a horizon after placement; then the
   backorder is final (a timer, ``streaming.backorders``).

Every command carries a deterministic event id and every ledger command is idempotent, and every
command waits in the row until it is answered (``SourcingRow.outstanding``): the new owner after a
crash sends all of them again, and a timer sends again what goes unanswered too long and gives an
attempt up when a reserve never is (``domain.saga``), so no order waits for an answer forever and
nothing is taken twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from oms_streams.adapters.cancellations import Cancellation
from oms_streams.adapters.courier_slots import SlotMessage
from oms_streams.adapters.lifecycle import saga_retention
from oms_streams.adapters.orders import Fulfilment, Placement
from oms_streams.adapters.sourcing import (
    AllocationState,
    Reply,
    SourcingRow,
    allocation_record,
    decision_to_plan,
    reservation_batch_record,
    reservation_command,
    reservations_by_sku,
    timeout_record,
)
from oms_streams.adapters.timestamps import epoch_ms_from_iso
from oms_streams.domain.backorders import BackorderPolicy
from oms_streams.domain.network import DeliveryMethod
from oms_streams.domain.placement import PlacementLimits
from oms_streams.domain.promise import CHANNEL_FOR_METHOD
from oms_streams.domain.retention import RetentionPolicy
from oms_streams.domain.risk import FulfilmentKind
from oms_streams.domain.saga import ReplyPolicy
from oms_streams.domain.sourcing import (
    Outcome,
    SourcingDecision,
    SourcingPolicy,
    StockSnapshot,
    source_order,
)
from oms_streams.domain.transit import TransitModel
from oms_streams.metrics import Metrics
from oms_streams.streaming.backorders import Backorders
from oms_streams.streaming.cancellation_runtime import OrderCancellations
from oms_streams.streaming.claims import Claims
from oms_streams.streaming.courier_slots import CourierSlots
from oms_streams.streaming.holds import HoldBook
from oms_streams.streaming.ledger_runtime import AvailabilityView
from oms_streams.streaming.network import NetworkState
from oms_streams.streaming.outbox import Durable, Outbox, PartitionBatches, Produce
from oms_streams.streaming.placement_gate import PlacementGate, Unreadable
from oms_streams.streaming.retention import RetentionIndex
from oms_streams.streaming.sourcing_inputs import SourcingInputs, label
from oms_streams.streaming.sourcing_inputs import SourcingTopics as SourcingTopics  # re-exported
from oms_streams.streaming.sourcing_outcomes import RoundPublisher
from oms_streams.streaming.sourcing_replies import ReplyWatch
from oms_streams.streaming.sourcing_shed import ShedReplies
from oms_streams.streaming.table_context import in_partition, in_partition_of

log = logging.getLogger(__name__)


MAX_ATTEMPTS = 8
"""Reservation attempts per round before the order is rejected as unsourceable for now."""

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
TRANSFER_CHANNEL = CHANNEL_FOR_METHOD[DeliveryMethod.STANDARD]
"""Whose view of a DC a click & collect transfer takes (the pickup channel sees stores only)."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def placed_at(event: Any, now: int) -> int:
    """When the placement reached the topic (the broker's time: ``TopicSpec.broker_time``), never
    later than now: a placement that waited out an outage was still placed in time."""
    stamp = getattr(event.message, "timestamp", None)
    return min(now, int(stamp * 1000)) if stamp else now


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
    ) -> None:
        self.table = table
        self.partitions = partitions
        self.network = network
        self.view = view
        self.transit = transit
        self.topics = topics
        self.metrics = metrics
        self.policy = policy
        self.holds = holds
        """Cart holds: an order placed with one plans on its held units too (availability hides them)."""
        self.lock = asyncio.Lock()
        self.claims = Claims()
        self.workload: dict[str, int] = defaultdict(int)
        """Live allocations per location among this worker's orders (a sourcing cost)."""
        self.outbox = Outbox(produce, topics.dlq, metrics, durable)
        self.commands = PartitionBatches(topics.reservations, partitions, reservation_batch_record)
        self.watch = ReplyWatch(replies or ReplyPolicy(), metrics)
        self.rounds = RoundPublisher(self.outbox, topics.allocations, topics.sourced, network, metrics)
        self.sheds = ShedReplies(self._withdraw, self._withdrawn_again)
        self.gate = PlacementGate(self.rounds, limits or PlacementLimits(), metrics)
        self.inputs = SourcingInputs(topics, self.outbox, metrics)
        self.courier = CourierSlots(
            slots if slots is not None else {},
            network,
            self.outbox,
            topics.courier_slots,
            topics.courier_bookings,
            metrics,
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
            topics.allocations,
            topics.cancellation_outcomes,
            metrics,
            self._send_reservation,
            self.rounds.publish,
            self.workload,
        )
        self.backorders = Backorders(
            backorders or BackorderPolicy(),
            view,
            metrics,
            self._snapshot,
            self._decide,
            self._plan_and_reserve,
            self.rounds.publish,
        )
        """This worker's backorders: sourced again when stock arrives, within their horizon."""

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
                    self.commands.drain_into(self.outbox, now)
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
        if isinstance(decoded, Placement):
            row, verdict = self._place(row, decoded, event.message.partition, now, placed_at(event, now))
        elif isinstance(decoded, Reply):
            verdict = self._answer(row, decoded, now) if row is not None else self._stray(None, decoded, now)
        elif isinstance(decoded, Cancellation):
            verdict = self.cancellations.apply(row, decoded, now)
            if row is not None:
                self.courier.give_back(row, now)
        elif isinstance(decoded, SlotMessage):
            verdict = self._slot_answer(row, decoded, now) if row is not None else "ignored"
        elif isinstance(decoded, Unreadable):
            row, verdict = self._refuse_unreadable(row, decoded, event.message.partition, now)
        else:
            verdict = self._progress(row, decoded, now) if row is not None else "ignored"
        self.metrics.sourcing_events.labels(label(event.message.topic, self.topics), verdict).inc()
        if row is not None and verdict in ("applied", "parked", "released_stray", "rejected"):
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

    # --- placement --------------------------------------------------------------------------------

    def _place(
        self, row: SourcingRow | None, placement: Placement, partition: int, now: int, placed_at: int
    ) -> tuple[SourcingRow | None, str]:
        if row is not None:
            # Sourced once per order: a re-promise changes the promise (track_orders), not the stock.
            if placement.event_id == row.placement:
                self.rounds.republish(row, now)
            return row, "duplicate"
        problem = self.gate.problem(placement, placed_at)
        if problem is not None:
            return self.gate.refuse(placement, partition, problem, now), "rejected"
        option = placement.option
        lines: dict[str, int] = {}
        for shipment in option.shipments:
            for line in shipment.lines:
                lines[line.sku] = lines.get(line.sku, 0) + line.quantity
        courier_store = option.shipments[0].location_id if option.method is DeliveryMethod.COURIER else None
        destination = dict(placement.destination)
        if option.pickup_store_id is not None:
            destination["pickup_store_id"] = option.pickup_store_id
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
        return row, "duplicate"

    def _plan_and_reserve(self, row: SourcingRow, now: int, decision: SourcingDecision | None = None) -> None:
        """The row's next attempt: planned now, or with ``decision`` (made on this same row and
        snapshot a moment ago: a backorder's round is only started on a plan that allocates)."""
        row.attempt += 1
        row.round_attempts += 1
        row.pending, row.held, row.refused = [], {}, False
        row.stop_awaiting_reserves()
        decision = decision or self._decide(row, now)
        row.plan = decision_to_plan(decision)
        if not decision.shipments:
            self._finish(row, now)
            return
        for sku, lines in reservations_by_sku(row.plan, row.channel).items():
            row.pending.append(sku)
            self.claims.asked(sku, lines)
            self._send_reservation("reserve", row, row.reservation_id, sku, lines, now)

    def _decide(self, row: SourcingRow, now: int) -> SourcingDecision:
        started = time.perf_counter()
        request = row.request(now)
        decision = source_order(
            request,
            self._snapshot(row.channel, [line.sku for line in request.lines], now, row.hold_id),
            self.network.promise_network,
            self.transit,
            self._policy(),
        )
        self.metrics.sourcing_decision_seconds.observe(time.perf_counter() - started)
        return decision

    def _policy(self) -> SourcingPolicy:
        if self.policy is not None:
            return self.policy
        return SourcingPolicy(max_splits=self.network.promise_network.policy.max_parcels)

    def _snapshot(self, channel: str, skus: list[str], now: int, hold_id: str | None = None) -> StockSnapshot:
        units: dict[str, Mapping[str, int]] = {}
        held = self.holds.held_units(hold_id) if self.holds is not None and hold_id else {}
        protected: dict[str, dict[str, int]] = {}
        for sku in skus:
            record = self.view.get(sku)
            shown: dict[str, int] = {}
            at_ms = 0
            if record is not None:
                channels = record["channels"]
                shown = channels.get(channel, {}).get("locations", {})
                if channel != TRANSFER_CHANNEL:
                    # A pickup store's missing lines come from DCs, as the webshop sees them.
                    transfer = channels.get(TRANSFER_CHANNEL, {}).get("locations", {})
                    shown = {**transfer, **shown}
                at_ms = epoch_ms_from_iso(record["published_at"])
                protected[sku] = record.get("protected", {})
            units[sku] = self.claims.adjust(sku, shown, at_ms, now)
            if sku in held:  # the reserve takes the hold over: its units are the order's to plan on
                mine = held[sku]
                units[sku] = {loc: units[sku].get(loc, 0) + mine.get(loc, 0) for loc in {*units[sku], *mine}}
        return StockSnapshot(units=units, protected=protected, workload=self.workload)

    # --- replies ----------------------------------------------------------------------------------

    def _answer(self, row: SourcingRow, reply: Reply, now: int) -> str:
        if reply.kind == "shed":
            return self.sheds.apply(row, reply, now)
        if reply.kind == "timeout":
            return self._timed_out(row, reply, now)
        if reply.kind != "reserve":
            # No follow-up, but the command is no longer sent again.
            return "applied" if row.replied(reply) else "ignored"
        current = reply.reservation_id == row.reservation_id
        if not current or row.status != "reserving" or reply.sku not in row.pending:
            # A redelivered answer: the batch that ended the round on it (an allocation, or a
            # rejection once nothing was left to try) may have stored the row and died before its
            # outcome left. The round's outcome goes out again (same ids; once per order here).
            if self.rounds.republish(row, now):
                self.cancellations.answer_all_again(row, now)  # decided after the round (parked)
            allocated = any(a.reservation_id == reply.reservation_id for a in row.allocations)
            if allocated or (current and reply.sku in row.held):
                return "duplicate"  # what it holds is the order's
            return self._stray(row, reply, now)
        asked = reservations_by_sku(row.plan or {"shipments": []}, row.channel).get(reply.sku, [])
        self.claims.answered(reply, asked, now)
        row.replied(reply)
        row.pending.remove(reply.sku)
        if reply.status == "reserved":
            row.held[reply.sku] = [[loc, units] for loc, units, _ in reply.lines]
        else:
            row.refused = True
            self.metrics.reservations_refused.inc()
        if row.pending:
            return "applied"
        if not row.refused:
            self._finish(row, now)
            return "applied"
        self._retry(row, now, "stock kept being taken by other orders")
        return "applied"

    def _timed_out(self, row: SourcingRow, reply: Reply, now: int) -> str:
        """The timer's record (``_chase``): the attempt it names is given up, if still the current
        one; read again after the decision was stored, it publishes the round's outcome again."""
        if row.status != "reserving" or reply.reservation_id != row.reservation_id:
            if self.rounds.republish(row, now):
                self.cancellations.answer_all_again(row, now)
            return "duplicate"
        self.metrics.sourcing_attempt_timeouts.inc()
        self._retry(row, now, reply.reason)
        return "applied"

    def _retry(self, row: SourcingRow, now: int, why: str) -> None:
        """The attempt is over without every SKU: give back what it holds, and whatever its
        unanswered SKUs may hold; then plan again, or after the last attempt reject the order."""
        asked = reservations_by_sku(row.plan or {"shipments": []}, row.channel)
        for sku, lines in row.held.items():
            self._send_reservation("release", row, row.reservation_id, sku, lines, now)
        for sku in row.pending:
            # Named, so that the ledger refuses the reserve if it arrives after this release.
            lines = [[loc, units] for loc, units, *_ in asked.get(sku, [])]
            self.claims.withdrawn(sku, asked.get(sku, []))
            self._send_reservation("release", row, row.reservation_id, sku, lines, now)
        if row.round_attempts >= MAX_ATTEMPTS:
            row.plan = {
                "outcome": "rejected",
                "reason": f"{why}: gave up after {MAX_ATTEMPTS} attempts",
                "shipments": [],
                "backorder": row.lines,
                "trace": (row.plan or {}).get("trace"),
            }
            row.held = {}
            self._finish(row, now)
        else:
            self._plan_and_reserve(row, now)

    def _stray(self, row: SourcingRow | None, reply: Reply, now: int) -> str:
        """An answer to an attempt that is over (a resend after a crash, or an old attempt): give
        back anything it holds."""
        if reply.kind == "reserve" and reply.status == "reserved":
            lines = [[loc, units] for loc, units, _ in reply.lines]
            self._send_reservation(
                "release", row, reply.reservation_id, reply.sku, lines, now, reply.order_id
            )
            return "released_stray"
        return "ignored"

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
        row.pending, row.held = [], {}
        row.stop_awaiting_reserves()
        self.rounds.publish(row, allocations, plan.get("trace"), now)
        self.metrics.orders_sourced.labels(row.status).inc()
        row.plan = {**plan, "trace": None}  # published with the outcome: the row stays small
        while row.deferred and row.status != "reserving":
            kind, ids, why, *only = row.deferred.pop(0)
            hit = [a for a in row.allocations if a.allocation_id in ids and a.state == "live"]
            if hit:
                self._withdraw(row, hit, kind, why, now, only_skus=only)
        self.cancellations.after_round(row, now)
        self.courier.give_back(row, now)

    # --- fulfilment -------------------------------------------------------------------------------

    def _progress(self, row: SourcingRow, fulfilment: Fulfilment, now: int) -> str:
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
                self._withdrawn_again(row, kind.value, event.location_id, event.reason, now)
            return "ignored"  # repeated, or about a shipment already settled
        if kind in LEFT_LOCATION:
            for allocation in hit:
                # At the handover's time: a count taken since already left these units out.
                self._settle(row, allocation, "fulfil", "fulfilled", now, at_ms=event.occurred_at_ms)
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
            # A re-sourcing is under way: withdraw these once it is over (see _finish).
            row.deferred.append([kind.value, [a.allocation_id for a in hit], event.reason])
            return "parked"
        self._withdraw(row, hit, kind.value, event.reason, now)
        return "applied"

    def _withdrawn_again(
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
            self.outbox.add(self.topics.allocations, row.order_id.encode(), record)
        if withdrawn:
            self.rounds.republish(row, now)

    def _withdraw(
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
            self._settle(row, allocation, "release", "cancelled", now)
            reason = f"{kind} at {allocation.location_id}: {why}".rstrip(": ")
            reasons.append(reason)
            record = allocation_record(row, allocation, None, [], None, now, kind="cancel", reason=reason)
            self.outbox.add(self.topics.allocations, row.order_id.encode(), record)
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
        self._plan_and_reserve(row, now)

    def _settle(
        self,
        row: SourcingRow,
        allocation: AllocationState,
        command: str,
        state: str,
        now: int,
        at_ms: int | None = None,
    ) -> None:
        allocation.state = state
        self.workload[allocation.location_id] = max(0, self.workload[allocation.location_id] - 1)
        for sku, units in allocation.lines:
            lines = [[allocation.location_id, units]]
            self._send_reservation(command, row, allocation.reservation_id, sku, lines, now, at_ms=at_ms)

    # --- ownership --------------------------------------------------------------------------------

    def forget_ownership(self) -> None:
        self.claims.clear()
        self.workload.clear()
        self.watch.forget()
        self.retention.forget()
        self.backorders.forget()

    async def reload(self) -> int:
        """After a rebalance: re-send every unanswered command of the orders this worker now owns.

        A crash may have lost commands that were decided but not produced; the ledgers answer a
        repeat as they did the first time, so re-sending is always safe."""
        async with self.lock:
            now = now_ms()
            self.watch.forget()
            self.backorders.forget()
            waiting = []
            for _, raw in self.retention.open_rows():  # finished sagas hold nothing, await nothing
                row = SourcingRow.decode(raw)
                for allocation in row.allocations:
                    if allocation.state == "live":
                        self.workload[allocation.location_id] += 1
                if row.courier is not None and row.courier["status"] == "asking":
                    self.courier.ask(row, now)  # the slot's answer may have been lost
                self.backorders.track(row, now)
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
                        self._command(entry, row, now)
                        resent += 1
                self._store(row, now)
            self.commands.drain_into(self.outbox, now)
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
                        self._chase(row, now)
                    self._store(row, now)
                except Exception:  # one order's bug must not stop the timer for every other one
                    log.exception("sourcing could not chase the answers of %s", order_id)
                    self.watch.untrack(order_id)
                    continue
            self.commands.drain_into(self.outbox, now)
            await self.outbox.flush()
            return len(due)

    async def check_backorders(self) -> int:
        """Timer: source again the backorders the availability view now shows usable stock for, and
        make final those past their horizon (``streaming.backorders``); returns the rows changed."""
        async with self.lock:
            now = now_ms()
            changed = 0
            for order_id in self.backorders.due(now):
                row = self._load(order_id)
                if row is None:
                    continue
                try:
                    with in_partition(self.topics.placed, row.partition):
                        if self.backorders.act(row, now):
                            self._store(row, now)
                            changed += 1
                except Exception:  # one order's bug must not stop the timer for every other one
                    log.exception("sourcing could not look at the backorder of %s", order_id)
                    self.backorders.untrack(order_id)
            self.commands.drain_into(self.outbox, now)
            await self.outbox.flush()
            return changed

    async def sweep(self) -> int:
        """Timer: remove the finished sagas whose retention has passed (tombstones in the
        ``sourcing`` and index changelogs); returns how many rows were removed."""
        async with self.lock:
            now = now_ms()
            return len(self.retention.sweep(now, lambda _, raw: saga_retention(SourcingRow.decode(raw), now)))

    def _chase(self, row: SourcingRow, now: int) -> None:
        unanswered = sorted(row.pending)
        entries, give_up = self.watch.chase(row, now)
        for entry in entries:
            self._command(entry, row, now)
        if not give_up:
            return
        if row.status != "reserving":
            row.stop_awaiting_reserves()  # cannot happen (a finished round awaits none): never loop
            return
        # Given up when the owner reads this back (``_timed_out``), as an input: a timer has no
        # input offset, so a decision made here and lost in a crash after the row was stored
        # could never be published again.
        why = f"no answer from the ledger of {', '.join(unanswered)}"
        sku = unanswered[0] if unanswered else str(row.ordered[0][0])
        record = timeout_record(row.order_id, row.reservation_id, sku, why, now)
        self.outbox.add(self.topics.replies, row.order_id.encode(), record)

    # --- helpers ----------------------------------------------------------------------------------

    def _send_reservation(
        self,
        kind: str,
        row: SourcingRow | None,
        reservation_id: str,
        sku: str,
        lines: list[list[Any]],
        now: int,
        order_id: str | None = None,
        at_ms: int | None = None,
    ) -> None:
        """A command to the SKU's ledger; it waits in the row (if any) for its answer. ``at_ms``:
        when it happened, if not now (a fulfil: the handover)."""
        order = row.order_id if row is not None else order_id
        channel = row.channel if row is not None else "webshop"
        assert order is not None
        if row is not None:
            row.await_reply(kind, reservation_id, sku, lines, now, at_ms)
        takes_over = row.hold_id if row is not None else None  # sent on reserves only
        at = now if at_ms is None else at_ms
        self.commands.add(
            sku,
            reservation_command(kind, reservation_id, order, sku, channel, lines, at, takes_over=takes_over),
        )

    def _command(self, entry: dict[str, Any], row: SourcingRow, now: int) -> None:
        """A waiting command again (same ids: the ledger answers it as the first copy), with the
        time each location's step happened."""
        kind, rid, sku = entry["kind"], entry["reservation_id"], entry["sku"]
        times = entry.get("at_ms", {})
        by_time: dict[int, list[list[Any]]] = {}
        for line in entry["lines"]:
            by_time.setdefault(times.get(str(line[0]), now), []).append(line)
        for at, lines in by_time.items():
            self.commands.add(
                sku,
                reservation_command(
                    kind, rid, row.order_id, sku, row.channel, lines, at, takes_over=row.hold_id
                ),
            )

    def lookup(self, order_id: str) -> SourcingRow | None:
        return self._load(order_id)

    def export_gauges(self) -> None:
        self.metrics.live_allocations.set(sum(self.workload.values()))
        self.metrics.sourcing_awaiting.set(len(self.watch))
        self.metrics.open_backorders.set(len(self.backorders))


def _withdrawn_there(row: SourcingRow, allocation: AllocationState, skus: Sequence[str]) -> bool:
    """Withdrawn (a short pick, rejection or shed: its SKUs, or ``skus`` among them, are never asked
    at its location again), not cancelled by the customer."""
    held = [sku for sku, _ in allocation.lines if not skus or sku in skus]
    return any([allocation.location_id, sku] in row.excluded for sku in held)
