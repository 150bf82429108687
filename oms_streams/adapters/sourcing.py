"""The order owner's side of the sourcing saga: its table row, and its records on the wire.

A ``SourcingRow`` is one JSON object per order, written whole on every change: what to source, the
current attempt (its plan, which SKUs have answered, what they hold), and every allocation published
so far with its state. Wire records are built as plain dicts (hot path) that match
``schemas.sourcing`` (a contract test keeps them in step).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from oms_streams.adapters.courier_slots import courier_slot_view
from oms_streams.adapters.reservations import batch_record
from oms_streams.adapters.stock import Failure, key_problem, known_fields, parse_model
from oms_streams.adapters.timestamps import epoch_ms, utc_from_epoch_ms
from oms_streams.domain.network import DeliveryMethod
from oms_streams.domain.orders import Milestone
from oms_streams.domain.promise_types import CartLine, Destination
from oms_streams.domain.saga import Awaited
from oms_streams.domain.sourcing import (
    DecisionTrace,
    PlannedShipment,
    SourcingDecision,
    SourcingRequest,
)
from oms_streams.schemas.sourcing import ReplyBatch

SOURCE = "oms-streams:source_orders"


@dataclass(frozen=True, slots=True)
class Reply:
    order_id: str
    reservation_id: str
    sku: str
    kind: str
    status: str
    lines: tuple[tuple[str, int, int], ...]
    """(location id, units, still available there afterwards)."""
    reason: str
    expected_at_ms: int | None = None
    """A preorder's answer: when its last units are expected (the latest ETA of its lines)."""
    at_ms: int | None = None
    """When the ledger answered (the reply's ``occurred_at``): read again, the same."""


def decode_replies(key: bytes | None, value: bytes | None) -> list[Reply] | Failure:
    """A batch record's answers, in order; the record is keyed by its first answer's order id (the
    runtime checks that every other order belongs in the same partition)."""
    wire = parse_model(ReplyBatch, value, "the reservation replies topic")
    if isinstance(wire, Failure):
        return wire
    wrong = key_problem(key, wire.replies[0].order_id, "order id of the first reply")
    if wrong is not None:
        return wrong
    return [
        Reply(
            order_id=r.order_id,
            reservation_id=r.reservation_id,
            sku=r.sku,
            kind=r.kind,
            status=r.status,
            lines=tuple((line.location_id, line.quantity, line.available_after) for line in r.lines),
            reason=r.reason,
            expected_at_ms=max(
                (epoch_ms(line.expected_at) for line in r.lines if line.expected_at is not None), default=None
            ),
            at_ms=epoch_ms(r.occurred_at),
        )
        for r in wire.replies
    ]


@dataclass(slots=True)
class AllocationState:
    allocation_id: str
    reservation_id: str
    round: int
    shipment: int
    location_id: str
    lines: list[list[Any]]
    """[[sku, units], ...]."""
    state: str = "live"
    """live | cancelled | fulfilled."""


@dataclass(slots=True)
class SourcingRow:
    order_id: str
    placement: str
    """The placement's event id (a redelivered placement is a duplicate)."""
    partition: int
    method: str
    lines: list[list[Any]]
    """[[sku, units], ...] still to source this round."""
    destination: dict[str, Any]
    window_start_ms: int
    promised_by_ms: int
    channel: str
    courier_store_id: str | None = None
    round: int = 1
    attempt: int = 0
    """Attempts over all rounds, so each reservation id ('<order>/<attempt>') is new."""
    round_attempts: int = 0
    status: str = "reserving"
    """reserving | allocated | partially_allocated | rejected."""
    plan: dict[str, Any] | None = None
    """The current attempt's decision (see ``decision_to_plan``)."""
    pending: list[str] = field(default_factory=list)
    held: dict[str, list[list[Any]]] = field(default_factory=dict)
    """SKU -> [[location, units], ...] reserved by the current attempt."""
    refused: bool = False
    excluded: list[list[str]] = field(default_factory=list)
    """[[location, sku], ...] a store rejected or short-picked: never sourced from again."""
    allocations: list[AllocationState] = field(default_factory=list)
    backorder: list[list[Any]] = field(default_factory=list)
    deferred: list[list[Any]] = field(default_factory=list)
    """[[kind, [allocation id, ...], reason], ...]: withdrawals reported while a round was under way."""
    ordered: list[list[Any]] = field(default_factory=list)
    """[[sku, units], ...] as placed (``lines`` shrinks to what a re-sourcing round looks for)."""
    cancelled: list[str] = field(default_factory=list)
    """SKUs cancelled (every unit that had not shipped)."""
    cancellations: list[dict[str, Any]] = field(default_factory=list)
    """The latest cancellation answers, as published (a redelivered request gets its answer again)."""
    parked: list[dict[str, Any]] = field(default_factory=list)
    """Cancellation requests that arrived while a round was under way: decided when it is over."""
    kept: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Allocation id -> its planned shipment, for live allocations of rounds before the current one
    (the row keeps only the current round's plan): a line cancellation replaces such an allocation."""
    outstanding: list[dict[str, Any]] = field(default_factory=list)
    """Commands sent to ledgers and not answered yet, one entry per (kind, reservation id, SKU):
    {kind, reservation_id, sku, lines, since_ms, sent_ms, sends, awaiting} (see ``await_reply``)."""
    hold_id: str | None = None
    """The cart hold the order was placed with: its reserves take it over (``takes_over``)."""
    resourced: list[Any] = field(default_factory=list)
    """[round, why]: what withdrew the allocations the round sources again (a short pick, a shed)."""
    finished_at_ms: int | None = None
    """When the saga was first seen finished (``domain.retention``): its retention runs from then."""
    courier: dict[str, Any] | None = None
    """A courier order's slot: {store, requested_ms, status (asking | booked | refused | released),
    slot_ms, slot_end_ms, reason} (``streaming.courier_slots``)."""
    last_outcomes: list[dict[str, Any]] = field(default_factory=list)
    """The outcomes (``oms.orders.sourced.v1``, without trace) of the last batch that published any:
    published again by a worker that takes the row over (``sourcing_outcomes``)."""
    last_allocations: list[dict[str, Any]] = field(default_factory=list)
    """The allocation records (``cancel`` ones too; without trace) of the last batch that published
    any: published again with ``last_outcomes``, but those of allocations cancelled since."""
    placed_at_ms: int | None = None
    """When the placement reached its topic: a backorder waits for stock until then + the horizon."""
    backorder_until_ms: int | None = None
    """The backorder is sourced again when stock arrives until then (``domain.backorders``)."""
    backorder_final: str = ""
    """Why the backorder is no longer sourced again (the horizon passed, a courier order, ...)."""
    backorder_rounds: int = 0
    """Rounds started to source the backorder again as stock arrived."""
    backorder_tried_ms: int | None = None
    """When the latest of them started (the next one waits out the spacing)."""
    placements: list[str] = field(default_factory=list)
    """Event ids of every version of the order read so far, in arrival order (accepted or refused
    edits): one read again is a duplicate, or stale when a later one came after it (``sourcing_edits``)."""
    version: int = 1
    """Versions accepted: 1 as placed, +1 per accepted edit."""
    edit_round: int = 0
    """The round the latest accepted edit opened: its outcome answers the edit."""
    edits: list[dict[str, Any]] = field(default_factory=list)
    """The latest edit answers (``adapters.edits.answer``): a placement read again is answered again."""
    edits_waiting: list[dict[str, Any]] = field(default_factory=list)
    """Edits that arrived while a round was under way (``adapters.edits.parked``): decided after it."""
    preorder: dict[str, Any] | None = None
    """A preorder's round (``streaming.sourcing_preorders``): {status (asking | waiting | arrived |
    late | refused | cancelled), expected_at_ms (the latest ETA its ledgers answered), until_ms (then the
    grace: past it without the goods the preorder is given up)}."""

    def preordered(self) -> bool:
        """The round holds inbound and waits for the goods (its reserves are answered on arrival)."""
        return self.preorder is not None and self.preorder["status"] in ("asking", "waiting")

    def open_backorder(self) -> list[list[Any]]:
        """The backordered lines not cancelled since."""
        return [[sku, units] for sku, units in self.backorder if sku not in self.cancelled]

    def awaiting_stock(self) -> bool:
        """A backorder that is sourced again when stock arrives (within its horizon, not final)."""
        waits = self.backorder_until_ms is not None and not self.backorder_final
        return waits and bool(self.open_backorder())

    def backorder_state(self) -> tuple[int | None, str | None]:
        """(until when the backorder waits for stock, why it no longer does); (None, None) without one."""
        if not self.open_backorder():
            return None, None
        if self.awaiting_stock():
            return self.backorder_until_ms, None
        never = "refused at placement" if self.round == 0 else "not sourced again"
        return None, self.backorder_final or never

    def reason(self) -> str:
        """The current round's reason: why it was sourced again (if it was), then its plan's."""
        planned = (self.plan or {}).get("reason", "")
        if not self.resourced or self.resourced[0] != self.round:
            return str(planned)
        return f"{self.resourced[1]}; {planned}" if planned else str(self.resourced[1])

    @property
    def reservation_id(self) -> str:
        return f"{self.order_id}/{self.attempt}"

    def encode(self) -> bytes:
        return orjson.dumps(self)  # orjson writes dataclasses natively (much faster than asdict)

    @classmethod
    def decode(cls, raw: bytes) -> SourcingRow:
        body = known_fields(cls, orjson.loads(raw))
        body["allocations"] = [
            AllocationState(**known_fields(AllocationState, a)) for a in body.get("allocations", [])
        ]
        return cls(**body)

    def keep_live_shipments(self) -> None:
        """Before a new round replaces the plan: remember the shipments of the live allocations."""
        kept: dict[str, dict[str, Any]] = {}
        for allocation in self.allocations:
            shipment = self.shipment_of(allocation)
            if allocation.state == "live" and shipment is not None:
                kept[allocation.allocation_id] = shipment
        self.kept = kept

    def shipment_of(self, allocation: AllocationState) -> dict[str, Any] | None:
        """The planned shipment an allocation ships (None when no plan of its round is kept)."""
        shipments = (self.plan or {}).get("shipments", [])
        if allocation.round == self.round and allocation.shipment < len(shipments):
            return dict(shipments[allocation.shipment])
        return self.kept.get(allocation.allocation_id)

    # --- commands waiting for their answers (domain.saga decides when to send them again) --------

    def await_reply(
        self,
        kind: str,
        reservation_id: str,
        sku: str,
        lines: list[list[Any]],
        now_ms: int,
        at_ms: int | None = None,
    ) -> None:
        """A command was sent. Commands of one kind, reservation and SKU share an entry (fulfils of
        two shipments of a SKU, say): their locations add up, and it waits for as many answers.
        A ledger answer names no command, so the entry cannot tell which of them was answered.
        ``at_ms``: when it happened (a fulfil's handover), kept per location for a re-send."""
        entry = self._awaiting(kind, reservation_id, sku)
        if entry is None:
            entry = {
                "kind": kind,
                "reservation_id": reservation_id,
                "sku": sku,
                "lines": [list(line) for line in lines],
                "since_ms": now_ms,
                "sent_ms": now_ms,
                "sends": 1,
                "awaiting": 1,
            }
            self.outstanding.append(entry)
        else:
            known = {line[0] for line in entry["lines"]}
            entry["lines"] += [list(line) for line in lines if line[0] not in known]
            entry["sent_ms"] = now_ms
            entry["awaiting"] += 1
        if at_ms is not None:
            entry.setdefault("at_ms", {}).update({str(line[0]): at_ms for line in lines})

    def resent(self, entry: dict[str, Any], now_ms: int, counted: bool = True) -> None:
        """The entry went out again as one command naming all its locations. Ledgers apply the
        commands of a SKU in order, so one answer from here on means every earlier copy is applied.
        ``counted``: a send after a reply timeout, one of those that give an attempt up."""
        entry["sent_ms"] = now_ms
        entry["sends"] += 1 if counted else 0
        entry["awaiting"] = 1

    def replied(self, reply: Reply) -> bool:
        """Whether the answer settles (part of) an entry."""
        entry = self._awaiting(reply.kind, reply.reservation_id, reply.sku)
        if entry is None:
            return False
        entry["awaiting"] -= 1
        if entry["awaiting"] <= 0:
            self.outstanding.remove(entry)
        return True

    def stop_awaiting_reserves(self) -> None:
        """The attempt is over: an answer to one of its reserves is a stray from now on."""
        self.outstanding = [entry for entry in self.outstanding if entry["kind"] != "reserve"]

    def await_pending(self, asked: dict[str, list[list[Any]]], now_ms: int) -> None:
        """The reserves of SKUs still to answer, for a row written before commands were recorded
        (it names only those SKUs)."""
        if self.preordered():
            return  # its SKUs are answered when the goods arrive, never asked as reserves
        for sku in self.pending:
            if self._awaiting("reserve", self.reservation_id, sku) is None and sku in asked:
                self.await_reply("reserve", self.reservation_id, sku, asked[sku], now_ms)

    def awaited(self) -> list[Awaited]:
        return [Awaited(e["kind"], e["sent_ms"], e["sends"]) for e in self.outstanding]

    def _awaiting(self, kind: str, reservation_id: str, sku: str) -> dict[str, Any] | None:
        for entry in self.outstanding:
            if entry["sku"] == sku and entry["reservation_id"] == reservation_id and entry["kind"] == kind:
                return entry
        return None

    def request(self, now_ms: int) -> SourcingRequest:
        d = self.destination
        return SourcingRequest(
            order_id=self.order_id,
            lines=tuple(CartLine(sku, units) for sku, units in self.lines),
            method=DeliveryMethod(self.method),
            destination=Destination(
                lat=d.get("lat"),
                lon=d.get("lon"),
                postal_code=d.get("postal_code", ""),
                region=d.get("region", ""),
                timezone=d.get("timezone"),
                pickup_store_id=d.get("pickup_store_id"),
            ),
            promised_by_ms=self.promised_by_ms,
            now_ms=now_ms,
            courier_store_id=self.courier_store_id,
            excluded=frozenset((loc, sku) for loc, sku in self.excluded),
        )


# --- the plan of an attempt, kept in the row ------------------------------------------------------


def decision_to_plan(decision: SourcingDecision) -> dict[str, Any]:
    return {
        "outcome": decision.outcome.value,
        "reason": decision.reason,
        "shipments": [_shipment_to_json(s) for s in decision.shipments],
        "backorder": [[line.sku, line.quantity] for line in decision.backorder],
        "trace": trace_to_wire(decision.trace),
        "stock_short": decision.stock_short,
    }


def _shipment_to_json(s: PlannedShipment) -> dict[str, Any]:
    return {
        "location_id": s.location_id,
        "lines": [[line.sku, line.quantity] for line in s.lines],
        "service_id": s.service_id,
        "route_id": s.route_id,
        "ready_at_ms": s.ready_at_ms,
        "handover_at_ms": s.handover_at_ms,
        "arrives_at_ms": s.arrives_at_ms,
        "distance_km": round(s.distance_km, 3),
        "co2e_g": round(s.co2e_g, 1),
        "late": s.late,
    }


def trace_to_wire(trace: DecisionTrace) -> dict[str, Any]:
    return {
        "search": trace.search,
        "candidates": [
            {
                "location_id": c.location_id,
                "held": dict(c.held),
                "filtered": c.filtered,
                "cost": None if c.cost is None else round(c.cost, 3),
                "distance_km": None if c.distance_km is None else round(c.distance_km, 3),
            }
            for c in trace.candidates
        ],
        "candidates_total": trace.candidates_total,
        "filtered_counts": dict(trace.filtered_counts),
        "plans_evaluated": trace.plans_evaluated,
        "splits": trace.splits,
        "splits_lower_bound": trace.splits_lower_bound,
        "cost": round(trace.cost, 3),
        "cost_lower_bound": round(trace.cost_lower_bound, 3),
        "gap": round(trace.gap, 4),
        "winning": trace.winning,
        "notes": list(trace.notes),
    }


def reservations_by_sku(plan: dict[str, Any], channel: str) -> dict[str, list[list[Any]]]:
    """SKU -> [[location, units, channel], ...] over the plan's shipments: a route transfer takes
    what the webshop sees of its DC, every other shipment what the order's channel sees."""
    by_sku: dict[str, dict[tuple[str, str], int]] = {}
    for shipment in plan["shipments"]:
        taken_as = "webshop" if shipment["route_id"] else channel
        for sku, units in shipment["lines"]:
            at = by_sku.setdefault(sku, {})
            key = (shipment["location_id"], taken_as)
            at[key] = at.get(key, 0) + units
    return {
        sku: [[loc, units, taken_as] for (loc, taken_as), units in sorted(at.items())]
        for sku, at in by_sku.items()
    }


# --- records --------------------------------------------------------------------------------------


def _envelope(event_id: str, now_ms: int) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "occurred_at": utc_from_epoch_ms(now_ms).isoformat(),
        "source": SOURCE,
        "schema_version": 1,
    }


def reservation_command(
    kind: str,
    reservation_id: str,
    order_id: str,
    sku: str,
    channel: str,
    lines: list[list[Any]],
    now_ms: int,
    takes_over: str | None = None,
) -> dict[str, Any]:
    """Matches ``schemas.sourcing.ReservationCommand``; deterministic event id per command.
    ``takes_over``: the cart hold a reserve takes over (the order was placed with it)."""
    body = _envelope(f"{reservation_id}:{sku}:{kind}:{'+'.join(str(loc) for loc, *_ in lines)}", now_ms)
    body.update(
        kind=kind,
        reservation_id=reservation_id,
        order_id=order_id,
        sku=sku,
        channel=channel,
        lines=[_line(line, channel) for line in lines],
    )
    if takes_over is not None and kind == "reserve":
        body["takes_over"] = takes_over
    return body


def reservation_batch_record(commands: list[dict[str, Any]], now_ms: int) -> bytes:
    """Matches ``schemas.sourcing.ReservationBatch``."""
    return batch_record("commands", commands, SOURCE, now_ms)


def timeout_record(order_id: str, reservation_id: str, sku: str, reason: str, now_ms: int) -> bytes:
    """The saga's own word, on the answers topic, that an attempt went unanswered
    (``schemas.sourcing.ReplyBatch``, kind ``timeout``; ``sku`` one that was not answered). Its
    timer decides nothing: the owner gives the attempt up when it reads this record, like any
    answer, so a crash after that decision was stored reads it again and publishes what was lost."""
    reply = {
        **_envelope(f"{reservation_id}:timeout", now_ms),
        "kind": "timeout",
        "reservation_id": reservation_id,
        "order_id": order_id,
        "sku": sku,
        "status": "refused",
        "reason": reason,
    }
    return batch_record("replies", [reply], SOURCE, now_ms)


def _line(line: list[Any], channel: str) -> dict[str, Any]:
    loc, units, *taken_as = line
    body: dict[str, Any] = {"location_id": loc, "quantity": units}
    if taken_as and taken_as[0] != channel:
        body["channel"] = taken_as[0]
    return body


def allocation_record(
    row: SourcingRow,
    allocation: AllocationState,
    shipment: dict[str, Any] | None,
    milestones: list[Milestone],
    trace: dict[str, Any] | None,
    now_ms: int,
    kind: str = "allocate",
    reason: str = "",
) -> bytes:
    """Matches ``schemas.sourcing.Allocation``; event id '<allocation id>:<kind>'."""
    body = _envelope(f"{allocation.allocation_id}:{kind}", now_ms)
    body.update(
        kind=kind,
        allocation_id=allocation.allocation_id,
        order_id=row.order_id,
        round=allocation.round,
        shipment=allocation.shipment,
        location_id=allocation.location_id,
        lines=[{"sku": sku, "quantity": units} for sku, units in allocation.lines],
        method=row.method,
        pickup_store_id=row.destination.get("pickup_store_id"),
        destination=row.destination,
        promised_by=utc_from_epoch_ms(row.promised_by_ms).isoformat(),
        reason=reason,
    )
    if shipment is not None:
        body.update(
            service_id=shipment["service_id"],
            route_id=shipment["route_id"],
            ready_at=utc_from_epoch_ms(shipment["ready_at_ms"]).isoformat(),
            handover_at=utc_from_epoch_ms(shipment["handover_at_ms"]).isoformat(),
            arrives_at=utc_from_epoch_ms(shipment["arrives_at_ms"]).isoformat(),
            late=shipment["late"],
            distance_km=shipment["distance_km"],
            co2e_g=shipment["co2e_g"],
            milestones=[
                {"kind": m.kind.value, "due": utc_from_epoch_ms(m.due_ms).isoformat()} for m in milestones
            ],
            trace=trace,
        )
    return orjson.dumps(body)


def sourced_record(
    row: SourcingRow, outcome: str, allocation_ids: list[str], reason: str, now_ms: int
) -> bytes:
    """Matches ``schemas.sourcing.OrderSourced``; event id '<order>:sourced:<round>'."""
    body = _envelope(f"{row.order_id}:sourced:{row.round}", now_ms)
    body.update(
        order_id=row.order_id,
        round=row.round,
        outcome=outcome,
        allocations=allocation_ids,
        backorder=[{"sku": sku, "quantity": units} for sku, units in row.backorder],
        reason=reason,
        attempts=row.round_attempts,
        trace=row.plan["trace"] if row.plan else None,
        courier_slot=courier_slot_view(row.courier),
    )
    until_ms, final = row.backorder_state()
    if until_ms is not None:
        body["backorder_until"] = utc_from_epoch_ms(until_ms).isoformat()
    if final is not None:
        body["backorder_final"] = True
    if row.edit_round == row.round and row.round > 0:
        answer = next(
            (e for e in reversed(row.edits) if e["round"] == row.round and e["status"] == "accepted"), None
        )
        if answer is not None:
            body["edit"] = {key: answer[key] for key in EDIT_WIRE}
    return orjson.dumps(body)


EDIT_WIRE = ("placement_event_id", "version", "status", "reason", "lines")
"""The fields of a kept edit answer that ``OrderSourced.edit`` carries."""
