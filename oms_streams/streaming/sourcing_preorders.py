"""The order owner's side of a preorder (``docs/preorders.md``).

A placement whose option is a ``preorder`` starts a round like any other, but its commands are
``preorder``: each SKU's ledger holds announced inbound (lots with an ETA) at the option's
locations and answers ``preordered`` with the ETA. The round then waits: its SKUs stay pending,
and nothing is allocated. When the goods arrive, the ledger turns the preorder into an ordinary
hold of the same reservation and answers the command again, unasked, as a ``reserve``
``reserved`` (``streaming.preorder_arrivals``): the round finishes as any round does, with
allocations fulfilment can pick. So an arrival never lets another order take the units.

- A refused preorder (the inbound was promised to others in the meantime), or one a hold of which
  the ledger shed (stock gone under units that arrived for it), gives back what the attempt holds
  and plans the order again from on-hand stock, as a backorder if there is none.
- A preorder whose goods have not arrived ``grace`` after its latest ETA is given up: its holds are
  released and the order is rejected with the reason, its backorder final. Late inbound is not
  chased: the webshop is told, and may place the order again with a fresh promise.
- Once every ledger held the inbound, the webshop gets an interim answer on the outcomes topic
  (``preordered``, each line's ETA and when it is given up: ``adapters.preorder_answers``), in the
  batch that decided it; the round's outcome follows as for any order.
- A line cancelled while the preorder waits gives its hold back at once; the rest keeps waiting
  (or allocates now, when it all arrived already).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from oms_streams.adapters.preorder_answers import preordered_record
from oms_streams.adapters.sourcing import Reply, SourcingRow, reservations_by_sku
from oms_streams.adapters.timestamps import utc_from_epoch_ms
from oms_streams.domain.promise_types import DeliveryOption
from oms_streams.metrics import Metrics
from oms_streams.streaming.sourcing_commands import LedgerCommands
from oms_streams.streaming.sourcing_outcomes import RoundPublisher

RoundStep = Callable[[SourcingRow, int], None]


def preorder_plan(option: DeliveryOption) -> dict[str, Any]:
    """The round's plan: the option's shipments as promised (the window counts from the ETA)."""
    return {
        "outcome": "allocated",
        "reason": "preorder: allocated when the announced inbound arrives",
        "shipments": [
            {
                "location_id": s.location_id,
                "lines": [[line.sku, line.quantity] for line in s.lines],
                "service_id": s.service_id,
                "route_id": s.route_id,
                "ready_at_ms": s.ready_at_ms,
                "handover_at_ms": s.handover_at_ms,
                "arrives_at_ms": s.arrives_at_ms,
                "distance_km": round(s.distance_km, 3),
                "co2e_g": 0.0,
                "late": False,
            }
            for s in option.shipments
        ],
        "backorder": [],
        "trace": None,
        "stock_short": True,
    }


class Preorders:
    def __init__(
        self,
        commands: LedgerCommands,
        grace_ms: int,
        plan_and_reserve: RoundStep,
        finish: RoundStep,
        rounds: RoundPublisher,
        metrics: Metrics,
    ) -> None:
        self.commands = commands
        self.grace_ms = grace_ms
        self.plan_and_reserve = plan_and_reserve
        self.finish = finish
        self.rounds = rounds
        self.metrics = metrics
        self._until: dict[str, int] = {}
        """Order id -> when its preorder is given up unless the goods arrived (this worker's)."""
        self._units: dict[str, int] = {}
        """Order id -> units its preorder still waits for (this worker's orders: a gauge)."""

    def start(self, row: SourcingRow, option: DeliveryOption, now: int) -> None:
        row.attempt += 1
        row.round_attempts += 1
        row.pending, row.held, row.refused = [], {}, False
        row.stop_awaiting_reserves()
        row.plan = preorder_plan(option)
        row.preorder = {"status": "asking", "expected_at_ms": None, "until_ms": None, "answered": []}
        for sku, lines in reservations_by_sku(row.plan, row.channel).items():
            row.pending.append(sku)
            self.commands.send("preorder", row, row.reservation_id, sku, lines, now)

    def answer(self, row: SourcingRow, reply: Reply, now: int) -> Reply | str:
        """A ledger's answer to a ``preorder``: a verdict, or the reply to handle as a reserve's
        (``reserved``: the goods arrived before the answer was read)."""
        row.replied(reply)
        current = reply.reservation_id == row.reservation_id and row.preordered() and reply.sku in row.pending
        if not current:
            rid = reply.reservation_id
            if any(a.reservation_id == rid for a in row.allocations) or (
                rid == row.reservation_id and row.preordered()
            ):
                return "duplicate"  # read again after it arrived (or after another SKU did): the order's
            if reply.status == "preordered":  # an attempt that is over: give back what it holds
                lines = [[loc, units] for loc, units, _ in reply.lines]
                self.commands.send("release", row, reply.reservation_id, reply.sku, lines, now)
                return "released_stray"
            return replace(reply, kind="reserve")
        if reply.status == "refused":
            self._give_up(row, now)
            self.metrics.preorders.labels("refused").inc()
            self.plan_and_reserve(row, now)  # from on-hand stock, or a backorder
            return "applied"
        if reply.status != "preordered":
            return replace(reply, kind="reserve")
        state = row.preorder
        assert state is not None
        state["answered"] = sorted({*state["answered"], reply.sku})
        if state["status"] == "asking" and reply.at_ms is not None:
            state["accepted_at_ms"] = max(state.get("accepted_at_ms") or 0, reply.at_ms)
        if reply.expected_at_ms is not None:
            state["expected_at_ms"] = max(state["expected_at_ms"] or 0, reply.expected_at_ms)
            etas = state.setdefault("etas", {})
            etas[reply.sku] = max(etas.get(reply.sku, 0), reply.expected_at_ms)
        if state["status"] == "waiting" and state["expected_at_ms"] is not None:
            state["until_ms"] = state["expected_at_ms"] + self.grace_ms  # asked again: a later ETA
        if state["status"] == "waiting" and not state.get("said"):
            # A row from before interim answers: said at its next answer (asked on reload, at the ETA).
            state.setdefault("accepted_at_ms", reply.at_ms)
            self._say(row, now)
        self._waits(row, now)
        return "applied"

    def _waits(self, row: SourcingRow, now: int) -> None:
        """Every SKU still pending answered ``preordered``: the round waits for the goods, and the
        webshop is told at once (the interim answer, published once per round, in this batch: read
        again, the row's copy goes out again, ``sourcing_outcomes``)."""
        state = row.preorder
        if state is None or state["status"] != "asking" or not row.pending:
            return
        if not all(sku in state["answered"] for sku in row.pending):
            return
        state["status"] = "waiting"
        if state["expected_at_ms"] is not None:
            state["until_ms"] = state["expected_at_ms"] + self.grace_ms
        self._say(row, now)

    def _say(self, row: SourcingRow, now: int) -> None:
        assert row.preorder is not None
        row.preorder["said"] = True
        self.rounds.add_outcome(row, preordered_record(row, now))
        self.metrics.preorders.labels("held").inc()

    def shed(self, row: SourcingRow, reply: Reply, now: int) -> bool:
        """The ledger shed a hold of the preorder under way (stock gone under units that arrived for
        it, all of a SKU's or part of them): the preorder cannot ship as promised, so it ends now as
        a refused one does. Every SKU is released (named lines: the release takes what still waits
        as inbound too), and the order is planned again from stock on hand. Whether it was one."""
        if not (row.preordered() and reply.reservation_id == row.reservation_id):
            return False
        if reply.sku not in row.pending and reply.sku not in row.held:
            return False
        self._give_up(row, now)
        self.metrics.preorders.labels("refused").inc()
        self.plan_and_reserve(row, now)
        return True

    def arrived(self, row: SourcingRow) -> None:
        """Every SKU answered ``reserved``: the round allocates now."""
        if row.preorder is not None and row.preordered():
            row.preorder = {**row.preorder, "status": "arrived"}
            self.metrics.preorders.labels("arrived").inc()

    def ended(self, row: SourcingRow) -> None:
        """The preorder's attempt is over without every SKU (a hold shed): the next attempt is an
        ordinary one, never asked as a preorder again."""
        if row.preorder is not None and row.preordered():
            row.preorder = {**row.preorder, "status": "refused"}
            self.metrics.preorders.labels("refused").inc()
        self._until.pop(row.order_id, None)

    def track(self, row: SourcingRow) -> None:
        """When to look at the row next: at its ETA (ask again), then at the end of its grace."""
        state = row.preorder or {}
        at = state.get("until_ms") if state.get("reasked") else state.get("expected_at_ms")
        if row.preordered() and at is not None:
            self._until[row.order_id] = at
        else:
            self._until.pop(row.order_id, None)
        if row.preordered() and state.get("status") == "waiting":
            asked = reservations_by_sku(row.plan or {"shipments": []}, row.channel)
            units = sum(u for sku in row.pending for _, u, *_ in asked.get(sku, []))
            self._units[row.order_id] = units
        else:
            self._units.pop(row.order_id, None)

    def waiting(self) -> tuple[int, int]:
        """(preorders of this worker's orders waiting for their goods, units they wait for)."""
        return len(self._units), sum(self._units.values())

    def due(self, now: int) -> list[str]:
        return [order_id for order_id, until in self._until.items() if until <= now]

    def ask_again(self, row: SourcingRow, now: int, send: bool = True) -> None:
        """The waiting preorder's commands once more (the ledger answers a repeat as things stand:
        ``reserved`` if the goods arrived): an arrival answer lost in a crash between the ledger's
        changelog and its reply is recovered at the ETA and at every reload. ``send=False``: only
        recorded as awaited (a reload sends every awaited command itself)."""
        if row.preorder is None or row.preorder["status"] != "waiting":
            return
        asked = reservations_by_sku(row.plan or {"shipments": []}, row.channel)
        for sku in row.pending:
            lines = asked.get(sku, [])
            if send:
                self.commands.send("preorder", row, row.reservation_id, sku, lines, now)
            else:
                row.await_reply("preorder", row.reservation_id, sku, lines, now)

    def act(self, row: SourcingRow, now: int) -> bool:
        """At the ETA: ask again. Past the grace without the goods: release, reject with the reason
        (the backorder final). Whether the row changed."""
        self._until.pop(row.order_id, None)
        state = row.preorder
        if state is None or not row.preordered():
            return False
        if not state.get("reasked"):
            if (state.get("expected_at_ms") or now + 1) > now:
                return False
            row.preorder = {**state, "reasked": True}
            self.ask_again(row, now)
            return True
        if (state.get("until_ms") or now + 1) > now:
            return False
        self._give_up(row, now)
        row.preorder = {**state, "status": "late"}
        self.metrics.preorders.labels("given_up").inc()
        eta = utc_from_epoch_ms(state["expected_at_ms"]).isoformat()
        grace_h = self.grace_ms / 3_600_000
        why = f"preorder given up: the inbound expected at {eta} did not arrive within {grace_h:g} h"
        row.plan = {**_rejected(row, why), "final_reason": why}
        self.finish(row, now)
        return True

    def cancelled(self, row: SourcingRow, now: int) -> None:
        """The whole order is being cancelled: a waiting preorder is given up at once (its holds
        released, its round rejected with the reason) so the cancellation is decided now instead of
        waiting for the goods."""
        if not row.preordered():
            return
        self._until.pop(row.order_id, None)
        self._units.pop(row.order_id, None)
        self._give_up(row, now)
        assert row.preorder is not None
        row.preorder = {**row.preorder, "status": "cancelled"}
        why = "preorder given up: the order is cancelled"
        row.plan = {**_rejected(row, why), "final_reason": "the order is cancelled"}
        self.metrics.preorders.labels("cancelled").inc()
        self.finish(row, now)

    def cancel_lines(self, row: SourcingRow, skus: tuple[str, ...], now: int) -> None:
        """Lines of a preorder under way are being cancelled: their holds (inbound, or arrived units)
        are released at once (named lines: a resend of their ``preorder`` is refused) and they leave
        the round; the rest keeps waiting, or is allocated now when it all arrived. Cancelling every
        line it waits for is cancelling the order. Read again, the lines are gone: nothing happens."""
        if not row.preordered():
            return
        plan = row.plan or {"shipments": []}
        asked = reservations_by_sku(plan, row.channel)
        gone = sorted({sku for sku in skus if sku in asked})
        if not gone:
            return
        if set(asked) <= set(gone):
            self.cancelled(row, now)
            return
        for sku in gone:
            lines = [[loc, units] for loc, units, *_ in asked[sku]]
            self.commands.send("release", row, row.reservation_id, sku, lines, now)
            row.held.pop(sku, None)
            if sku in row.pending:
                row.pending.remove(sku)
        row.outstanding = [e for e in row.outstanding if not (e["kind"] == "preorder" and e["sku"] in gone)]
        row.plan = _without(plan, gone)
        row.lines = [[sku, units] for sku, units in row.lines if sku not in gone]
        state = row.preorder
        assert state is not None
        state["answered"] = [sku for sku in state["answered"] if sku not in gone]
        self.metrics.preorders.labels("line_cancelled").inc(len(gone))
        if not row.pending:  # every line left has arrived: the round allocates now
            self.arrived(row)
            self.finish(row, now)
        else:
            self._waits(row, now)

    def forget(self) -> None:
        self._until.clear()
        self._units.clear()

    def _give_up(self, row: SourcingRow, now: int) -> None:
        """Release every SKU of the attempt (named lines: a preorder still on its way is refused)."""
        for sku, lines in reservations_by_sku(row.plan or {"shipments": []}, row.channel).items():
            self.commands.send(
                "release", row, row.reservation_id, sku, [[loc, u] for loc, u, *_ in lines], now
            )
        row.pending, row.held = [], {}
        row.stop_awaiting_reserves()
        row.outstanding = [e for e in row.outstanding if e["kind"] != "preorder"]
        if row.preorder is not None:
            row.preorder = {**row.preorder, "status": "refused"}


def _without(plan: dict[str, Any], skus: list[str]) -> dict[str, Any]:
    """The plan without the lines of ``skus`` (and without a shipment left with no line)."""
    shipments = [
        {**s, "lines": [line for line in s["lines"] if line[0] not in skus]} for s in plan["shipments"]
    ]
    return {**plan, "shipments": [s for s in shipments if s["lines"]]}


def _rejected(row: SourcingRow, why: str) -> dict[str, Any]:
    return {"outcome": "rejected", "reason": why, "shipments": [], "backorder": row.lines, "trace": None}
