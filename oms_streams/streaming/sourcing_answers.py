"""The order owner's side of the ledgers' answers to its commands, and of their absence.

A reserve's answer closes the attempt once every SKU has answered: all reserved -> the round is
finished (allocations and outcome); any refused -> what the attempt holds is released and the order
is planned again, up to ``MAX_ATTEMPTS`` (then rejected). A release's or fulfil's answer only stops
the command from being sent again. A ``shed`` is no answer (``sourcing_shed``).

An answer to an attempt that is over (a resend after a crash, or an old attempt) gives back what it
holds, and one read again for a finished round publishes the round's outcome again (same ids).

The reply timer (``chase``) sends again what goes unanswered too long (``domain.saga``); when an
attempt's reserves never are answered it does not give the attempt up itself: it writes a
``timeout`` record to the order's partition of the answers topic, and the owner gives the attempt
up when it reads it back (``apply``), like any answer. A timer has no input offset to read again,
so a decision it made and stored, then lost with the process before its outputs left, could never
be published again; read from the topic, it is read again.
"""

from __future__ import annotations

from collections.abc import Callable

from oms_streams.adapters.sourcing import Reply, SourcingRow, reservations_by_sku, timeout_record
from oms_streams.metrics import Metrics
from oms_streams.streaming.cancellation_runtime import OrderCancellations
from oms_streams.streaming.claims import Claims
from oms_streams.streaming.outbox import Outbox
from oms_streams.streaming.sourcing_commands import LedgerCommands
from oms_streams.streaming.sourcing_outcomes import RoundPublisher
from oms_streams.streaming.sourcing_preorders import Preorders
from oms_streams.streaming.sourcing_replies import ReplyWatch
from oms_streams.streaming.sourcing_shed import ShedReplies

MAX_ATTEMPTS = 8
"""Reservation attempts per round before the order is rejected as unsourceable for now."""

RoundStep = Callable[[SourcingRow, int], None]
"""(row, now): the round's next attempt (``_plan_and_reserve``), or its end (``_finish``)."""


class LedgerAnswers:
    def __init__(
        self,
        outbox: Outbox,
        replies_topic: str,
        metrics: Metrics,
        commands: LedgerCommands,
        claims: Claims,
        watch: ReplyWatch,
        sheds: ShedReplies,
        rounds: RoundPublisher,
        cancellations: OrderCancellations,
        plan_and_reserve: RoundStep,
        finish: RoundStep,
        preorders: Preorders,
    ) -> None:
        self.outbox = outbox
        self.replies_topic = replies_topic
        self.metrics = metrics
        self.commands = commands
        self.claims = claims
        self.watch = watch
        self.sheds = sheds
        self.rounds = rounds
        self.cancellations = cancellations
        self.plan_and_reserve = plan_and_reserve
        self.finish = finish
        self.preorders = preorders

    def apply(self, row: SourcingRow, reply: Reply, now: int) -> str:
        """One answer for the order's row; the verdict for ``oms_sourcing_events``."""
        if reply.kind == "shed":
            if self.preorders.shed(row, reply, now):
                return "applied"  # a preorder's hold shed: sourced from stock on hand now
            return self.sheds.apply(row, reply, now)
        if reply.kind == "timeout":
            return self._timed_out(row, reply, now)
        if reply.kind == "preorder":
            answered = self.preorders.answer(row, reply, now)
            if isinstance(answered, str):
                return answered
            reply = answered  # reserved: answered as the reserve it became
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
            return self.stray(row, reply, now)
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
            self.preorders.arrived(row)
            self.finish(row, now)
            return "applied"
        self.preorders.ended(row)  # a preorder that lost a hold (shed): sourced from stock on hand now
        self._retry(row, now, "stock kept being taken by other orders")
        return "applied"

    def _timed_out(self, row: SourcingRow, reply: Reply, now: int) -> str:
        """The timer's record (``chase``): the attempt it names is given up, if still the current
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
            self.commands.send("release", row, row.reservation_id, sku, lines, now)
        for sku in row.pending:
            # Named, so that the ledger refuses the reserve if it arrives after this release.
            lines = [[loc, units] for loc, units, *_ in asked.get(sku, [])]
            self.claims.withdrawn(sku, asked.get(sku, []))
            self.commands.send("release", row, row.reservation_id, sku, lines, now)
        if row.round_attempts >= MAX_ATTEMPTS:
            row.plan = {
                "outcome": "rejected",
                "reason": f"{why}: gave up after {MAX_ATTEMPTS} attempts",
                "shipments": [],
                "backorder": row.lines,
                "trace": (row.plan or {}).get("trace"),
            }
            row.held = {}
            self.finish(row, now)
        else:
            self.plan_and_reserve(row, now)

    def stray(self, row: SourcingRow | None, reply: Reply, now: int) -> str:
        """An answer to an attempt that is over (a resend after a crash, or an old attempt): give
        back anything it holds."""
        if reply.kind == "reserve" and reply.status == "reserved":
            lines = [[loc, units] for loc, units, _ in reply.lines]
            self.commands.send("release", row, reply.reservation_id, reply.sku, lines, now, reply.order_id)
            return "released_stray"
        return "ignored"

    def chase(self, row: SourcingRow, now: int) -> None:
        """Timer: the row's commands not answered in time again, and its attempt given up (through
        a ``timeout`` record) when its reserves never were answered."""
        unanswered = sorted(row.pending)
        entries, give_up = self.watch.chase(row, now)
        for entry in entries:
            self.commands.again(entry, row, now)
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
        self.outbox.add(self.replies_topic, row.order_id.encode(), record)
