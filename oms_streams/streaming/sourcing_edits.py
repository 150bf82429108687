"""The sourcing saga's side of order edits: the difference is withdrawn and sourced, then answered.

An edit is a placement of a known order with a new event id (a new version of the whole order). It
is checked like any placement (``PlacementGate``: the promise token when keys are set, the limits),
then compared with the order as sourced (``domain.edits``), by the order's one owner, in order with
its placements, answers, fulfilment events and cancellations:

- allocations that lose units are withdrawn whole: their holds released through the ledger's
  command path and a ``cancel`` record on ``oms.fulfilment.allocations.v1`` each, as a line
  cancellation does; the units they keep are reserved again at the same location;
- the edit opens a new round: the kept units (pinned to their locations) and the added units
  (planned like any round) are reserved with one new reservation id; the round's outcome on
  ``oms.orders.sourced.v1`` carries ``edit`` (accepted) and lists its allocations. A refusal (a
  shipped line, a change of delivery, a token or limit) changes nothing and is answered by its own
  record there (``adapters.edits.refusal_record``);
- an edit read while a round is under way waits in the row until it is over; when several wait,
  only the newest is decided and the older ones are answered refused (superseded).

Versions are ordered by arrival: placements of one order are keyed by its id, so they are read in
the order they were appended to its partition. The row keeps the event id of every version read;
one read again is a duplicate when it is the newest, and stale (ignored) when a later one came
after it. Either way its answer goes out again with the same ids (a crash may have lost it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from oms_streams.adapters.edits import (
    KEPT_ANSWERS,
    answer,
    edit_request,
    editable,
    parked,
    redeliver,
    refusal_record,
    refused,
    unpark,
)
from oms_streams.adapters.orders import Placement
from oms_streams.adapters.sourcing import SourcingRow, allocation_record, decision_to_plan
from oms_streams.domain.edits import EditDecision, Outcome, decide_edit
from oms_streams.domain.sourcing import SourcingDecision
from oms_streams.metrics import Metrics
from oms_streams.streaming.cancellation_runtime import unplanned
from oms_streams.streaming.placement_gate import PlacementGate, is_identifier
from oms_streams.streaming.sourcing_commands import LedgerCommands
from oms_streams.streaming.sourcing_outcomes import RoundPublisher

Decide = Callable[[SourcingRow, int], SourcingDecision]
"""(row, now): the planner's decision for the row's lines, nothing sent."""
ReservePlan = Callable[[SourcingRow, dict[str, Any], int], None]
"""(row, plan, now): the row's next attempt with that plan (reserves sent; none: the round ends)."""


class OrderEdits:
    def __init__(
        self,
        gate: PlacementGate,
        decide: Decide,
        commands: LedgerCommands,
        rounds: RoundPublisher,
        workload: dict[str, int],
        metrics: Metrics,
        reserve_plan: ReservePlan,
    ) -> None:
        self.gate = gate
        self.decide = decide
        self.commands = commands
        self.rounds = rounds
        self.workload = workload
        self.metrics = metrics
        self.reserve_plan = reserve_plan

    def apply(self, row: SourcingRow, placement: Placement, now: int, placed_at: int) -> str:
        """A placement of a known order; the verdict for ``oms_sourcing_events``."""
        known = row.placements or [row.placement]
        event_id = placement.event_id
        if event_id in known:
            stale = event_id != known[-1]
            self.answer_again(row, event_id, now)
            self.metrics.edits.labels("stale" if stale else "duplicate").inc()
            return "stale" if stale else "duplicate"
        if any(entry["event_id"] == event_id for entry in row.edits_waiting):
            self.metrics.edits.labels("duplicate").inc()
            return "duplicate"
        if row.status == "reserving":
            row.edits_waiting.append(parked(placement, placed_at))
            self.metrics.edits.labels("parked").inc()
            return "parked"
        return self._decide(row, placement, placed_at, now)

    def after_round(self, row: SourcingRow, now: int) -> None:
        """A round is over: decide the newest edit that waited for it; older ones are superseded."""
        while row.edits_waiting and row.status != "reserving":
            entry = row.edits_waiting.pop(0)
            if "unreadable" in entry:
                self.refuse_unreadable(row, entry["event_id"], entry["unreadable"], now)
                continue
            placement, placed_at = unpark(row.order_id, entry)
            if not any("unreadable" not in e for e in row.edits_waiting):
                self._decide(row, placement, placed_at, now)
                continue
            row.placements = [*(row.placements or [row.placement]), placement.event_id]
            newer = [e for e in row.edits_waiting if "unreadable" not in e][-1]["event_id"]
            self._refuse(row, placement.event_id, f"superseded by a newer version ({newer})", None, now)
            self.metrics.edits.labels("superseded").inc()

    def refuse_unreadable(self, row: SourcingRow, event_id: str, reason: str, now: int) -> str:
        """A placement of a known order that could not be read: the edit is refused (if new)."""
        known = row.placements or [row.placement]
        if not is_identifier(event_id) or any(e["event_id"] == event_id for e in row.edits_waiting):
            return "duplicate"  # no id to answer with (dead-lettered by track_orders), or waiting
        if event_id in known:
            self.answer_again(row, event_id, now)
            return "duplicate"
        if row.status == "reserving":
            row.edits_waiting.append({"event_id": event_id, "unreadable": reason})
            return "parked"
        row.placements = [*known, event_id]
        self._refuse(row, event_id, reason, None, now)
        return "rejected"

    def answer_again(self, row: SourcingRow, event_id: str, now: int) -> None:
        """A version read again: its answer again, with the same ids (a crash may have lost it):
        the refusal, or the cancels of what it withdrew and the outcome of the round in force."""
        if event_id == row.placement:
            self.rounds.republish(row, now)
        kept = next((e for e in row.edits if e["placement_event_id"] == event_id), None)
        if kept is None:
            return
        if kept["status"] == "refused":
            self.rounds.add_outcome(row, refusal_record(row, kept, now))
            return
        by_id = {a.allocation_id: a for a in row.allocations}
        for allocation_id in kept["withdrawn"]:
            if allocation_id in by_id:
                self._cancel_record(row, by_id[allocation_id], kept["version"], now)

    # --- deciding ----------------------------------------------------------------------------------

    def _decide(self, row: SourcingRow, placement: Placement, placed_at: int, now: int) -> str:
        row.placements = [*(row.placements or [row.placement]), placement.event_id]
        if row.round == 0:
            why = f"order {row.order_id} was refused at placement: place it again under a new order id"
            self._refuse(row, placement.event_id, why, None, now)
            return "rejected"
        problem = self.gate.problem(placement, placed_at)
        if problem is not None:
            self._refuse(row, placement.event_id, problem, None, now)
            return "rejected"
        decision = decide_edit(editable(row), edit_request(placement))
        if decision.outcome is Outcome.REFUSED:
            self._refuse(row, placement.event_id, decision.reason, decision, now)
            return "rejected"
        self._carry_out(row, placement, decision, now)
        self.metrics.edits.labels("accepted").inc()
        return "applied"

    def _refuse(
        self, row: SourcingRow, event_id: str, reason: str, decision: EditDecision | None, now: int
    ) -> None:
        kept = refused(row, answer(event_id, row.version, decision, reason, row.round))
        row.edits = [*row.edits, kept][-KEPT_ANSWERS:]
        self.rounds.add_outcome(row, refusal_record(row, kept, now))
        self.metrics.edits.labels("refused").inc()

    def _carry_out(self, row: SourcingRow, placement: Placement, decision: EditDecision, now: int) -> None:
        """Withdraw what loses units, open the edit's round, reserve what is kept and added."""
        by_id = {a.allocation_id: a for a in row.allocations}
        shipments = {aid: row.shipment_of(by_id[aid]) for aid in decision.withdrawn}
        version = row.version + 1
        for allocation_id in decision.withdrawn:
            allocation = by_id[allocation_id]
            allocation.state = "cancelled"
            self.workload[allocation.location_id] = max(0, self.workload[allocation.location_id] - 1)
            for sku, units in allocation.lines:
                lines = [[allocation.location_id, units]]
                self.commands.send("release", row, allocation.reservation_id, sku, lines, now)
            self._cancel_record(row, allocation, version, now)
        row.keep_live_shipments()
        option = placement.option
        row.round += 1
        row.round_attempts = 0
        row.version = version
        row.placement = placement.event_id
        row.edit_round = row.round
        row.window_start_ms, row.promised_by_ms = option.window_start_ms, option.window_end_ms
        row.hold_id = placement.hold_id or row.hold_id
        if decision.redelivered:
            redeliver(row, placement)  # the releases above were sent for the old one
        row.ordered = [[sku, units] for sku, units in decision.ordered]
        row.backorder = [[sku, units] for sku, units in decision.backorder]
        pinned = [
            {
                **(shipments[aid] or unplanned(row)),
                "location_id": by_id[aid].location_id,
                "lines": _wire(kept),
            }
            for aid, kept in decision.kept
        ]
        row.lines = _merged([*(line for _, kept in decision.kept for line in kept), *decision.additions])
        row.resourced = [row.round, f"edited: version {version} ({_describe(decision)})"]
        kept = answer(placement.event_id, version, decision, "", row.round, decision.withdrawn)
        row.edits = [*row.edits, kept][-KEPT_ANSWERS:]
        row.status = "reserving"
        self.reserve_plan(row, self._plan(row, pinned, decision, now), now)

    def _plan(
        self, row: SourcingRow, pinned: list[dict[str, Any]], decision: EditDecision, now: int
    ) -> dict[str, Any]:
        """The round's first attempt: the kept units where they were, the added ones planned."""
        if decision.additions:
            plan = decision_to_plan(self.decide(replace(row, lines=_wire(decision.additions)), now))
        else:
            plan = {"outcome": "allocated", "reason": "", "shipments": [], "backorder": [], "trace": None}
        plan["shipments"] = _joined(pinned, plan["shipments"])
        if plan["shipments"]:
            plan["outcome"] = "partially_allocated" if plan["backorder"] else "allocated"
        return plan

    def _cancel_record(self, row: SourcingRow, allocation: Any, version: int, now: int) -> None:
        why = f"edited: withdrawn by version {version} of the order"
        record = allocation_record(row, allocation, None, [], None, now, kind="cancel", reason=why)
        self.rounds.add_cancel(row, record)


def _joined(pinned: list[dict[str, Any]], planned: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The kept shipments, with a planned one that leaves the same location the same way folded
    into it (one parcel, not two); the rest after them."""
    shipments = [dict(s) for s in pinned]
    for new in planned:
        same = next((s for s in shipments if _way(s) == _way(new)), None)
        if same is None:
            shipments.append(new)
            continue
        same["lines"] = _merged([*same["lines"], *new["lines"]])
        for key in ("ready_at_ms", "handover_at_ms", "arrives_at_ms"):
            same[key] = max(same[key], new[key])
        same["late"] = bool(same["late"] or new["late"])
    return shipments


def _way(shipment: dict[str, Any]) -> tuple[Any, ...]:
    return shipment["location_id"], shipment["route_id"], shipment["service_id"]


def _wire(lines: Any) -> list[list[Any]]:
    return [[sku, units] for sku, units in lines]


def _merged(lines: Any) -> list[list[Any]]:
    units: dict[str, int] = {}
    for sku, n in lines:
        units[sku] = units.get(sku, 0) + n
    return [[sku, n] for sku, n in units.items()]


def _describe(decision: EditDecision) -> str:
    changed = [f"{c.sku} {c.before} -> {c.after}" for c in decision.lines if c.before != c.after]
    if decision.redelivered:
        changed.append(f"another {decision.redelivered}: what has not shipped is sourced again")
    return ", ".join(changed) or "no line changed"
