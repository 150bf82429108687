"""Cancellation requests and answers between the wire, the domain and the ``sourcing`` table rows.

Requests are decoded once into a ``Cancellation`` (a failure with a reason, never an exception).
Answers are plain dicts that match ``schemas.cancellations.OrderCancellationOutcome`` (a contract
test keeps them in step); they are kept in the order's sourcing row so that a redelivered request
gets the same answer again, and ``track_orders`` reads them back (``decode_cancelled``) to close
the order's cancelled shipments.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from oms_streams.adapters.sourcing import SOURCE, SourcingRow
from oms_streams.adapters.stock import Failure, key_problem, parse_model
from oms_streams.adapters.timestamps import epoch_ms, epoch_ms_from_iso, utc_from_epoch_ms
from oms_streams.domain.cancellation import (
    Allocated,
    AllocationStatus,
    CancellableOrder,
    CancellationDecision,
    CancellationRequest,
)
from oms_streams.schemas.cancellations import CancellationBody, OrderCancellationRequested

KEPT_ANSWERS = 16
"""Answers kept per order: more cancellations than that of one order are not a customer's."""


@dataclass(frozen=True, slots=True)
class Cancellation:
    request: CancellationRequest
    reason: str
    requested_at: str
    """ISO 8601 with time zone, as the request said."""

    @property
    def order_id(self) -> str:
        return self.request.order_id

    def parked(self) -> dict[str, Any]:
        """How the request waits in the sourcing row for the round under way."""
        r = self.request
        return {
            "request_id": r.request_id,
            "skus": list(r.skus),
            "reason": self.reason,
            "at": self.requested_at,
        }

    @classmethod
    def unpark(cls, order_id: str, parked: dict[str, Any]) -> Cancellation:
        request = CancellationRequest(parked["request_id"], order_id, tuple(parked["skus"]))
        return cls(request, parked["reason"], parked["at"])


def decode_cancellation(key: bytes | None, value: bytes | None) -> Cancellation | Failure:
    wire = parse_model(OrderCancellationRequested, value, "the cancellations topic")
    if isinstance(wire, Failure):
        return wire
    wrong = key_problem(key, wire.order_id, "order id")
    if wrong is not None:
        return wrong
    skus = tuple(line.sku for line in wire.lines or ())
    request = CancellationRequest(wire.event_id, wire.order_id, skus)
    requested_at = utc_from_epoch_ms(epoch_ms(wire.occurred_at)).isoformat()
    return Cancellation(request, wire.reason, requested_at)


def cancellation_event(order_id: str, body: bytes, now_ms: int) -> OrderCancellationRequested | Failure:
    """The event ``POST /orders/{order_id}/cancellations`` sends, or why the request is bad (its 400).
    An empty body cancels the whole order."""
    parsed = parse_model(CancellationBody, body or b"{}", "the request body")
    if isinstance(parsed, Failure):
        return parsed
    event = {
        "event_id": parsed.request_id or f"http-{uuid.uuid4().hex}",
        "occurred_at": utc_from_epoch_ms(now_ms).isoformat(),
        "source": "http",
        "order_id": order_id,
        "lines": [line.model_dump() for line in parsed.lines] if parsed.lines is not None else None,
        "reason": parsed.reason,
    }
    return parse_model(OrderCancellationRequested, orjson.dumps(event), "the order id in the path")


def cancellable(row: SourcingRow) -> CancellableOrder:
    """The order as cancellation sees it, from its sourcing row."""
    return CancellableOrder(
        order_id=row.order_id,
        ordered=tuple((sku, units) for sku, units in row.ordered or row.lines),
        allocations=tuple(
            Allocated(
                a.allocation_id, a.location_id, tuple((s, u) for s, u in a.lines), AllocationStatus(a.state)
            )
            for a in row.allocations
        ),
        cancelled=frozenset(row.cancelled),
        decided=frozenset(answer["request_id"] for answer in row.cancellations),
        # A preorder's round waits for goods, not for answers: its lines are cancelled at once
        # (``sourcing_preorders.cancel_lines`` takes them out of the round first).
        sourcing_under_way=row.status == "reserving" and not row.preordered(),
    )


def outcome_event_id(order_id: str, request_id: str) -> str:
    """Deterministic per request (ids of both can be 128 characters: the pair is hashed)."""
    digest = hashlib.sha256(f"{order_id}\x00{request_id}".encode()).hexdigest()[:24]
    return f"cancellation-{digest}"


def outcome_record(
    cancellation: Cancellation,
    decision: CancellationDecision,
    open_lines: tuple[tuple[str, int], ...],
    order_cancelled: bool,
    replacements: list[str],
    now_ms: int,
) -> dict[str, Any]:
    """Matches ``schemas.cancellations.OrderCancellationOutcome``."""
    request = cancellation.request
    return {
        "event_id": outcome_event_id(request.order_id, request.request_id),
        "occurred_at": utc_from_epoch_ms(now_ms).isoformat(),
        "source": SOURCE,
        "schema_version": 1,
        "order_id": request.order_id,
        "request_id": request.request_id,
        "outcome": decision.outcome.value,
        "lines": [
            {
                "sku": line.sku,
                "status": line.verdict.value,
                "cancelled_quantity": line.cancelled_units,
                "refused_quantity": line.refused_units,
                "reason": line.reason,
            }
            for line in decision.lines
        ],
        "withdrawn_allocations": [*decision.withdrawn, *(aid for aid, _ in decision.reduced)],
        "replacement_allocations": replacements,
        "open_lines": [{"sku": sku, "quantity": units} for sku, units in open_lines],
        "order_cancelled": order_cancelled,
        "reason": decision.reason,
        "request_reason": cancellation.reason,
        "requested_at": cancellation.requested_at,
    }


def encode_outcome(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record)


@dataclass(frozen=True, slots=True)
class Cancelled:
    """An answer as ``track_orders`` reads it back: which lines of the order are cancelled."""

    order_id: str
    skus: tuple[str, ...]
    """Cancelled by this request or before it (the answer lists every line it was asked about)."""
    order_cancelled: bool
    at_ms: int


def decode_cancelled(value: bytes | None) -> Cancelled | None:
    """From ``oms.orders.cancellation-outcomes.v1`` (our own records); None when unreadable."""
    try:
        record = orjson.loads(value) if value is not None else None
        if not isinstance(record, dict):
            return None
        gone = ("cancelled", "already_cancelled")
        skus = tuple(line["sku"] for line in record["lines"] if line["status"] in gone)
        at_ms = epoch_ms_from_iso(record["occurred_at"])
        return Cancelled(record["order_id"], skus, bool(record["order_cancelled"]), at_ms)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
