"""Sourcing's records as ``track_orders`` keeps them: the allocations, withdrawals and round outcomes
an order's tracked plan is folded from (``domain.allocated_plan``), in the ``orders`` table row and
on ``GET /orders/{id}``.

The row keeps each fact once, under its key (allocation id, round), as a short JSON list: a record
read again (a redelivery, a round published again after a crash) finds its key and is a duplicate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from oms_streams.adapters.preorder_answers import is_interim
from oms_streams.adapters.timestamps import epoch_ms_from_iso, utc_from_epoch_ms
from oms_streams.domain.allocated_plan import (
    Allocated,
    AllocatedPlan,
    SourcingRound,
    Withdrawal,
    allocated_plan,
)
from oms_streams.domain.orders import Milestone, MilestoneKind, PromiseRecord
from oms_streams.domain.promise_types import CartLine, Shipment

ALLOCATIONS, WITHDRAWALS, ROUNDS, EDITS = "allocations", "withdrawals", "rounds", "edits"


@dataclass(frozen=True, slots=True)
class SourcingFact:
    """One record of ``oms.fulfilment.allocations.v1`` or ``oms.orders.sourced.v1``, as a row keeps it."""

    order_id: str
    family: str
    """allocations (an ``allocate``) | withdrawals (a ``cancel``) | rounds (an outcome) | edits (an
    edit's answer: [status, version], keyed by the edit's placement event id)."""
    key: str
    entry: list[Any]


_KINDS = frozenset(kind.value for kind in MilestoneKind)
_ERRORS = (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError)


def decode_allocation(value: bytes | None) -> SourcingFact | None:
    """An ``allocate`` or ``cancel`` (our own record); None when it cannot be read."""
    try:
        record = orjson.loads(value) if value is not None else None
        if not isinstance(record, dict):
            return None
        lines = [[line["sku"], int(line["quantity"])] for line in record["lines"]]
        where = str(record["location_id"])
        if record["kind"] == "cancel":
            entry = [str(record.get("reason", "")), int(record["round"]), where, lines]
            return SourcingFact(record["order_id"], WITHDRAWALS, record["allocation_id"], entry)
        if record["kind"] != "allocate":
            return None
        return SourcingFact(
            record["order_id"], ALLOCATIONS, record["allocation_id"], _allocated(record, lines)
        )
    except _ERRORS:
        return None


def _allocated(record: dict[str, Any], lines: list[list[Any]]) -> list[Any]:
    where = str(record["location_id"])
    store = record.get("pickup_store_id") or where
    milestones = [
        # Derived like the promise's (domain.orders): ready for pickup at the pickup store, the rest here.
        [m["kind"], store if m["kind"] == MilestoneKind.READY_FOR_PICKUP.value else where, _ms(m["due"])]
        for m in record.get("milestones") or ()
        if m["kind"] in _KINDS
    ]
    return [
        int(record["round"]),
        where,
        lines,
        record.get("service_id"),
        record.get("route_id"),
        _ms(record.get("ready_at")),
        _ms(record.get("handover_at")),
        _ms(record.get("arrives_at")),
        float(record.get("distance_km") or 0.0),
        bool(record.get("late")),
        milestones,
    ]


def decode_round(value: bytes | None) -> SourcingFact | None:
    """A round's outcome on ``oms.orders.sourced.v1`` (our own record); None when it cannot be read."""
    try:
        record = orjson.loads(value) if value is not None else None
        if not isinstance(record, dict):
            return None
        edit = record.get("edit")
        if edit is not None and edit["status"] != "accepted":
            return None  # a refused edit's answer: no round (``decode_edit``)
        if is_interim(record):
            return None  # a preorder's interim answer: its round's outcome comes at the arrival
        entry = [
            str(record["outcome"]),
            [str(i) for i in record["allocations"]],
            [str(line["sku"]) for line in record.get("backorder") or ()],
            str(record.get("reason", "")),
            _ms(record["occurred_at"]),
            edit is not None,
            _moved_slot(record.get("courier_slot")),
        ]
        return SourcingFact(record["order_id"], ROUNDS, str(int(record["round"])), entry)
    except _ERRORS:
        return None


def _moved_slot(slot: Any) -> list[int] | None:
    """A courier slot booked elsewhere than chosen: the order's window from then on."""
    if not isinstance(slot, dict) or not slot.get("moved"):
        return None
    return [_ms(slot["slot_start"]), _ms(slot["slot_end"])]


def decode_edit(value: bytes | None) -> SourcingFact | None:
    """The edit an outcome answers (accepted with its round, or refused); None for other records."""
    try:
        record = orjson.loads(value) if value is not None else None
        if not isinstance(record, dict) or not isinstance(record.get("edit"), dict):
            return None
        edit = record["edit"]
        entry = [str(edit["status"]), int(edit["version"])]
        return SourcingFact(record["order_id"], EDITS, str(edit["placement_event_id"]), entry)
    except _ERRORS:
        return None


def _ms(text: Any) -> int:
    return epoch_ms_from_iso(text) if text else 0


# --- the row's facts -> the domain ------------------------------------------------------------------


def plan_of(
    promise: PromiseRecord,
    allocations: Mapping[str, list[Any]] | None,
    withdrawals: Mapping[str, list[Any]] | None,
    rounds: Mapping[str, list[Any]] | None,
) -> AllocatedPlan:
    """The promise with the shipments as the row's sourcing facts moved them."""
    allocated = [_to_allocated(i, entry) for i, entry in (allocations or {}).items()]
    for i, (_, round_, where, lines) in (withdrawals or {}).items():
        if i not in (allocations or {}):  # only its cancel was read: where and what, no times
            allocated.append(Allocated(i, round_, Shipment(where, _cart(lines), 0, 0, 0)))
    return allocated_plan(
        promise,
        allocated,
        [Withdrawal(i, entry[0]) for i, entry in (withdrawals or {}).items()],
        [_to_round(r, entry) for r, entry in (rounds or {}).items()],
    )


def _to_round(number: str, entry: list[Any]) -> SourcingRound:
    # Rows written before edits and moved courier slots were kept lack the last two.
    outcome, ids, backorder, reason, at_ms, *rest = entry
    edit = bool(rest and rest[0])
    window = rest[1] if len(rest) > 1 and rest[1] else None
    return SourcingRound(
        int(number),
        outcome,
        tuple(ids),
        tuple(backorder),
        reason,
        at_ms,
        edit,
        None if window is None else (window[0], window[1]),
    )


def _to_allocated(allocation_id: str, entry: list[Any]) -> Allocated:
    round_, where, lines, service, route, ready, handover, arrives, km, late, milestones = entry
    shipment = Shipment(where, _cart(lines), ready, handover, arrives, service, route, km)
    own = tuple(Milestone(MilestoneKind(kind), loc, due, 0) for kind, loc, due in milestones)
    return Allocated(allocation_id, round_, shipment, own, late)


def _cart(lines: list[list[Any]]) -> tuple[CartLine, ...]:
    return tuple(CartLine(sku, units) for sku, units in lines)


# --- views ---------------------------------------------------------------------------------------------


def shipments_view(plan: AllocatedPlan, closed: frozenset[int]) -> list[dict[str, Any]]:
    """The order's shipments as allocated: the promise's first, then those sourcing added."""
    late = {index: arrives for index, _, arrives in plan.late}
    end = plan.record.option.window_end_ms
    return [
        {
            "shipment": i,
            "location_id": s.location_id,
            "lines": [{"sku": line.sku, "quantity": line.quantity} for line in s.lines],
            "service_id": s.service_id,
            "route_id": s.route_id,
            "handover_at": _iso(s.handover_at_ms),
            "arrives_at": _iso(s.arrives_at_ms),
            "round": plan.rounds[i],
            "state": "withdrawn" if i in plan.withdrawn else "cancelled" if i in closed else "current",
            "late_minutes": -(-(late[i] - end) // 60_000) if i in late else None,
        }
        for i, s in enumerate(plan.record.option.shipments)
    ]


def moves_view(plan: AllocatedPlan) -> list[dict[str, Any]]:
    """Each move, oldest first: which round, from where, to which shipments, what, and why."""
    shipments = plan.record.option.shipments
    return [
        {
            "round": m.round,
            "shipment": m.shipment,
            "from_location_id": m.location_id,
            "to": [{"shipment": i, "location_id": shipments[i].location_id} for i in m.to],
            "lines": [{"sku": line.sku, "quantity": line.quantity} for line in m.lines],
            "withdrawn": m.withdrawn,
            "reason": m.reason,
            "at": _iso(m.at_ms),
        }
        for m in plan.moves
    ]


def _iso(ms: int) -> str | None:
    return utc_from_epoch_ms(ms).isoformat() if ms else None
