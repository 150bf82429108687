"""Returns on the wire <-> the returns domain: decode requests and receipts, encode decisions, and
read the return policy (disposition rules, routing weights) from its config record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oms_streams.adapters.stock import Failure, key_problem, parse_model
from oms_streams.adapters.timestamps import epoch_ms, utc_from_epoch_ms
from oms_streams.domain.returnable import Allowed
from oms_streams.domain.returns import (
    Disposition,
    DispositionRule,
    Grade,
    ReturnLine,
    RoutedLine,
    RoutingPolicy,
)
from oms_streams.schemas.config import ReturnPolicyRecord
from oms_streams.schemas.returns import ReturnReceived, ReturnRequested

MS_PER_DAY = 86_400_000


@dataclass(frozen=True, slots=True)
class Requested:
    wire: ReturnRequested
    lines: tuple[ReturnLine, ...]


@dataclass(frozen=True, slots=True)
class Received:
    wire: ReturnReceived
    occurred_at_ms: int
    sold_at_ms: int | None


def decode_requested(key: bytes | None, value: bytes | None) -> Requested | Failure:
    wire = parse_model(ReturnRequested, value, "the returns requested topic")
    if isinstance(wire, Failure):
        return wire
    wrong = key_problem(key, wire.return_id, "return id")
    if wrong is not None:
        return wrong
    lines = tuple(ReturnLine(line.line_id, line.sku, line.quantity) for line in wire.lines)
    return Requested(wire, lines)


def decode_received(key: bytes | None, value: bytes | None) -> Received | Failure:
    wire = parse_model(ReturnReceived, value, "the returns received topic")
    if isinstance(wire, Failure):
        return wire
    wrong = key_problem(key, wire.return_id, "return id")
    if wrong is not None:
        return wrong
    sold = epoch_ms(wire.sold_at) if wire.sold_at is not None else None
    return Received(wire, epoch_ms(wire.occurred_at), sold)


def days_since_sale(sold_at_ms: int | None, received_at_ms: int) -> int | None:
    return None if sold_at_ms is None else max(0, (received_at_ms - sold_at_ms) // MS_PER_DAY)


def disposition_rules(record: ReturnPolicyRecord) -> tuple[DispositionRule, ...]:
    return tuple(
        DispositionRule(
            grade=Grade(rule.grade),
            disposition=Disposition(rule.disposition),
            sku_prefix=rule.sku_prefix,
            channel=rule.channel,
            location_type=rule.location_type,
            max_days_since_sale=rule.max_days_since_sale,
            name=rule.name,
        )
        for rule in record.dispositions
    )


def routing_policy(record: ReturnPolicyRecord) -> RoutingPolicy:
    r = record.routing
    return RoutingPolicy(
        km_weight=r.km_weight,
        need_weight=r.need_weight,
        load_weight=r.load_weight,
        parcel_weight=r.parcel_weight,
        max_km=r.max_km,
        central_location=r.central_location,
        horizon_days=r.horizon_days,
        trace_top=r.trace_top,
    )


def _km(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def routed_line_wire(line: RoutedLine, refused: int = 0, refused_reason: str = "") -> dict[str, Any]:
    """Matches ``schemas.returns.RoutedLineModel``; ``refused``: units of the line not routed."""
    wire = _routed_line_wire(line)
    if refused:
        wire.update(refused=refused, refused_reason=refused_reason)
    return wire


def refused_line_wire(allowed: Allowed) -> dict[str, Any]:
    """A line of an announced return that cannot come back at all: no return address, the reason."""
    return {
        "line_id": allowed.key,
        "sku": allowed.sku,
        "quantity": 0,
        "location_id": None,
        "km": None,
        "central_location": None,
        "central_km": None,
        "need_covered": 0,
        "reason": allowed.reason,
        "candidates": [],
        "excluded": {},
        "refused": allowed.refused,
        "refused_reason": allowed.reason,
    }


def _routed_line_wire(line: RoutedLine) -> dict[str, Any]:
    return {
        "line_id": line.line_id,
        "sku": line.sku,
        "quantity": line.quantity,
        "location_id": line.location_id,
        "km": _km(line.km),
        "central_location": line.central_location,
        "central_km": _km(line.central_km),
        "need_covered": line.need_covered,
        "reason": line.reason,
        "candidates": [
            {
                "location_id": c.location_id,
                "km": round(c.km, 1),
                "need": c.need,
                "load": c.load,
                "capacity": c.capacity,
                "score": round(c.score, 2),
            }
            for c in line.candidates
        ],
        "excluded": dict(line.excluded),
    }


def routed_record(
    return_id: str, order_id: str | None, lines: list[dict[str, Any]], routed_at_ms: int
) -> dict[str, Any]:
    """Matches ``schemas.returns.ReturnRouted``; the event id is the return's: one decision each."""
    return {
        "event_id": f"{return_id}:routed",
        "return_id": return_id,
        "order_id": order_id,
        "routed_at": utc_from_epoch_ms(routed_at_ms).isoformat(),
        "lines": lines,
    }


def movement_record(
    event_id: str, sku: str, location_id: str, kind: str, quantity: int, occurred_at_ms: int, return_id: str
) -> dict[str, Any]:
    """A ``schemas.inventory.StockMovement`` for the ledger."""
    return {
        "event_id": event_id,
        "occurred_at": utc_from_epoch_ms(occurred_at_ms).isoformat(),
        "source": "oms-streams:handle_returns",
        "sku": sku,
        "location_id": location_id,
        "kind": kind,
        "quantity": quantity,
        "reference": f"return:{return_id}"[:128],
    }
