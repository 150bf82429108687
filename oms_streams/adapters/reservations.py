"""Reservation commands and replies between the wire and the domain (the ledger side of the saga)."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from oms_streams.adapters.stock import Failure, key_problem, parse_model
from oms_streams.adapters.timestamps import epoch_ms, utc_from_epoch_ms
from oms_streams.domain.reservations import ReservationCommand, ReservationKind, ReservationResult
from oms_streams.schemas.sourcing import ReservationCommand as ReservationCommandModel

SOURCE = "oms-streams:apply_stock_events"


@dataclass(frozen=True, slots=True)
class DecodedReservation:
    sku: str
    order_id: str
    channel: str
    command: ReservationCommand
    channels: dict[str, str]
    """Location -> the channel its line takes from, where it differs from ``channel``."""

    @property
    def kind(self) -> str:
        """Metric label."""
        return f"reservation_{self.command.kind.value}"


def decode_reservation(key: bytes | None, value: bytes | None) -> DecodedReservation | Failure:
    wire = parse_model(ReservationCommandModel, value, "the reservations topic")
    if isinstance(wire, Failure):
        return wire
    wrong = key_problem(key, wire.sku, "SKU")
    if wrong is not None:
        return wrong
    if wire.kind == "reserve" and not wire.lines:
        return Failure("schema violation at lines: a reserve needs at least one line")
    command = ReservationCommand(
        kind=ReservationKind(wire.kind),
        reservation_id=wire.reservation_id,
        lines=tuple((line.location_id, line.quantity) for line in wire.lines),
        occurred_at_ms=epoch_ms(wire.occurred_at),
    )
    channels = {line.location_id: line.channel for line in wire.lines if line.channel}
    return DecodedReservation(wire.sku, wire.order_id, wire.channel, command, channels)


def reply_record(
    decoded: DecodedReservation, result: ReservationResult, available_after: dict[str, int], now_ms: int
) -> bytes:
    """Matches ``schemas.sourcing.ReservationReply``; the event id is deterministic per command, so a
    reply re-sent after a crash is recognisable as a repeat."""
    command = decoded.command
    return orjson.dumps(
        {
            "event_id": f"{command.reservation_id}:{decoded.sku}:{command.kind.value}",
            "occurred_at": utc_from_epoch_ms(now_ms).isoformat(),
            "source": SOURCE,
            "schema_version": 1,
            "kind": command.kind.value,
            "reservation_id": command.reservation_id,
            "order_id": decoded.order_id,
            "sku": decoded.sku,
            "status": result.status.value,
            "lines": [
                {"location_id": loc, "quantity": units, "available_after": available_after.get(loc, 0)}
                for loc, units in result.lines
            ],
            "reason": result.reason,
        }
    )
