"""Reservation commands and replies between the wire and the domain (the ledger side of the saga)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from oms_streams.adapters.stock import Failure, key_problem, parse_model
from oms_streams.adapters.timestamps import epoch_ms, utc_from_epoch_ms
from oms_streams.domain.reservations import ReservationCommand, ReservationKind, ReservationResult
from oms_streams.schemas.sourcing import ReservationBatch
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


def decode_reservations(key: bytes | None, value: bytes | None) -> list[DecodedReservation] | Failure:
    """A batch record's commands, in order; the record is keyed by its first command's SKU (the
    runtime checks that every other SKU belongs in the same partition)."""
    wire = parse_model(ReservationBatch, value, "the reservations topic")
    if isinstance(wire, Failure):
        return wire
    wrong = key_problem(key, wire.commands[0].sku, "SKU of the first command")
    if wrong is not None:
        return wrong
    for index, command in enumerate(wire.commands):
        if command.kind == "reserve" and not command.lines:
            return Failure(f"schema violation at commands.{index}.lines: a reserve needs at least one line")
    return [_decoded(command) for command in wire.commands]


def _decoded(wire: ReservationCommandModel) -> DecodedReservation:
    command = ReservationCommand(
        kind=ReservationKind(wire.kind),
        reservation_id=wire.reservation_id,
        lines=tuple((line.location_id, line.quantity) for line in wire.lines),
        occurred_at_ms=epoch_ms(wire.occurred_at),
        expires_at_ms=epoch_ms(wire.expires_at) if wire.expires_at is not None else None,
        takes_over=wire.takes_over,
    )
    channels = {line.location_id: line.channel for line in wire.lines if line.channel}
    return DecodedReservation(wire.sku, wire.order_id, wire.channel, command, channels)


def reply(
    decoded: DecodedReservation, result: ReservationResult, available_after: dict[str, int], now_ms: int
) -> dict[str, Any]:
    """Matches ``schemas.sourcing.ReservationReply``; the event id is deterministic per command, so a
    reply re-sent after a crash is recognisable as a repeat."""
    command = decoded.command
    return {
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
            | (
                {"expected_at": utc_from_epoch_ms(result.expected_at[loc]).isoformat()}
                if loc in result.expected_at
                else {}
            )
            for loc, units in result.lines
        ],
        "reason": result.reason,
    }


def arrived_reply(
    order_id: str, sku: str, reservation_id: str, lines: list[tuple[str, int, int]], now_ms: int
) -> dict[str, Any]:
    """An unasked answer (``schemas.sourcing.ReservationReply``): the goods a preorder waited for
    arrived and its hold is an ordinary one now, so its ``preorder`` command is answered again as
    the reserve it became (kind ``reserve``, status ``reserved``). Deterministic id: once per
    reservation and SKU. ``lines``: (location, units, ATP there afterwards)."""
    return {
        "event_id": f"{reservation_id}:{sku}:arrived",
        "occurred_at": utc_from_epoch_ms(now_ms).isoformat(),
        "source": SOURCE,
        "schema_version": 1,
        "kind": "reserve",
        "reservation_id": reservation_id,
        "order_id": order_id,
        "sku": sku,
        "status": "reserved",
        "lines": [{"location_id": loc, "quantity": u, "available_after": a} for loc, u, a in lines],
        "reason": "the preordered inbound arrived",
    }


def shed_reply(
    order_id: str,
    sku: str,
    reservation_id: str,
    line: tuple[str, int, int],
    reason: str,
    now_ms: int,
) -> dict[str, Any]:
    """An unasked answer (``schemas.sourcing.ReservationReply``, kind ``shed``): the ledger gave an
    order's hold back because the stock under it went. One per reservation, SKU and location, with
    a deterministic id: a hold is shed there once (its id is settled with it). ``line``: (location,
    units shed, ATP there afterwards)."""
    location_id, units, available_after = line
    return {
        "event_id": f"{reservation_id}:{sku}:shed:{location_id}",
        "occurred_at": utc_from_epoch_ms(now_ms).isoformat(),
        "source": SOURCE,
        "schema_version": 1,
        "kind": "shed",
        "reservation_id": reservation_id,
        "order_id": order_id,
        "sku": sku,
        "status": "released",
        "lines": [{"location_id": location_id, "quantity": units, "available_after": available_after}],
        "reason": reason,
    }


def reply_batch_record(replies: list[dict[str, Any]], now_ms: int) -> bytes:
    """Matches ``schemas.sourcing.ReplyBatch``."""
    return batch_record("replies", replies, SOURCE, now_ms)


def batch_record(field: str, items: list[dict[str, Any]], source: str, now_ms: int) -> bytes:
    """A batch record of the saga: its own envelope (the id names its first item and how many
    follow) around ``items``, each with its own deterministic event id."""
    return orjson.dumps(
        {
            "event_id": f"{items[0]['event_id']}+{len(items) - 1}",
            "occurred_at": utc_from_epoch_ms(now_ms).isoformat(),
            "source": source,
            "schema_version": 2,
            field: items,
        }
    )
