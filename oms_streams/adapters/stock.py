"""Decode stock events from the wire into ledger commands, and ledger rows to and from tables."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from oms_streams.adapters.timestamps import epoch_ms
from oms_streams.domain.forecast import DemandState
from oms_streams.domain.inventory import (
    Count,
    JournalEntry,
    Movement,
    MovementKind,
    StockPosition,
    SupplierFeed,
)
from oms_streams.domain.ledger import StockCommand
from oms_streams.domain.values import value
from oms_streams.schemas.inventory import StockCount, StockMovement, SupplierStock

M = TypeVar("M", bound=BaseModel)


def known_fields(row_type: type[Any], body: dict[str, Any]) -> dict[str, Any]:
    """A stored row's fields this version knows. A row a newer version wrote (a rolling upgrade
    hands its partition back to an older worker) still loads; what only the newer version knows is
    left out until a newer worker writes the row again, rather than the row failing every event."""
    names = {field.name for field in fields(row_type)}
    return {key: value for key, value in body.items() if key in names}


@value(frozen=True)
class DecodedStock:
    sku: str
    kind: str
    """Metric label: the movement kind, 'count' or 'supplier_stock'."""
    commands: list[StockCommand]


@dataclass(frozen=True, slots=True)
class Failure:
    reason: str


def validation_reason(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "payload"
    more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"schema violation at {where}: {first['msg']}{more}"


def parse_model(model: type[M], value: bytes | None, where: str = "a stock topic") -> M | Failure:
    """The decoded message, or why it is not one; never raises."""
    if value is None:
        return Failure(f"empty message (tombstone) on {where}")
    try:
        return model.model_validate_json(value)
    except ValidationError as error:
        if any(e["type"] == "json_invalid" for e in error.errors()):
            return Failure("malformed JSON")
        return Failure(validation_reason(error))


_KINDS = {kind.value: kind for kind in MovementKind}


def decode_movement(key: bytes | None, value: bytes | None) -> DecodedStock | Failure:
    wire = parse_model(StockMovement, value)
    if isinstance(wire, Failure):
        return wire
    wrong_key = key_problem(key, wire.sku, "SKU")
    if wrong_key is not None:
        return wrong_key
    if wire.expected_at is not None and wire.kind != "inbound_announced":
        return Failure(f"expected_at is for inbound_announced movements, not {wire.kind}")
    expected = epoch_ms(wire.expected_at) if wire.expected_at is not None else None
    movement = Movement(wire.event_id, _KINDS[wire.kind], wire.quantity, epoch_ms(wire.occurred_at), expected)
    return DecodedStock(wire.sku, wire.kind, [StockCommand(wire.location_id, movement)])


def decode_count(key: bytes | None, value: bytes | None) -> DecodedStock | Failure:
    wire = parse_model(StockCount, value)
    if isinstance(wire, Failure):
        return wire
    as_of = epoch_ms(wire.occurred_at)
    commands = [
        StockCommand(p.location_id, Count(wire.event_id, p.on_hand, as_of, p.unsellable))
        for p in wire.positions
    ]
    return _keyed(key, DecodedStock(wire.sku, "count", commands))


def decode_supplier_stock(key: bytes | None, value: bytes | None) -> DecodedStock | Failure:
    wire = parse_model(SupplierStock, value)
    if isinstance(wire, Failure):
        return wire
    feed = SupplierFeed(wire.event_id, wire.quantity, wire.lead_time_hours, epoch_ms(wire.occurred_at))
    return _keyed(key, DecodedStock(wire.sku, "supplier_stock", [StockCommand(wire.location_id, feed)]))


def key_problem(key: bytes | None, expected: str, what: str) -> Failure | None:
    """Why a message's key is not ``expected`` (its ``what``: 'SKU', 'order id', ...), or None.

    The key decides the partition, and the partition decides which worker owns the key's state: an
    event keyed otherwise could be applied by a worker that does not own it."""
    if key == expected.encode():
        return None
    shown = key.decode(errors="replace") if key is not None else None
    return Failure(f"message key {shown!r} is not the {what} {expected!r}")


def _keyed(key: bytes | None, decoded: DecodedStock) -> DecodedStock | Failure:
    return key_problem(key, decoded.sku, "SKU") or decoded


# --- table rows -------------------------------------------------------------------------------
# Rows are compact JSON lists written whole on every change (faust writes the changelog only on
# ``table[key] = value``): [on_hand, reserved, unsellable, inbound, lead_time, counted_at,
# unsellable_counted_at, horizon, [[event_id, occurred_at_ms, on_hand_delta, unsellable_delta,
# inbound_delta], ...], [[reservation_id, units], ...], [settled reservation id, ...], demand model?].
# Rows written before reservations existed have no last two elements; the demand model of a
# store's walk-in sales is present only where the store sold the SKU.

Row = list[Any]


def position_to_row(p: StockPosition, demand: DemandState | None = None) -> Row:
    """The row; ``demand`` (a store's walk-in demand model for the SKU) travels with its position."""
    row: Row = [
        p.on_hand,
        p.reserved,
        p.unsellable,
        p.inbound,
        p.lead_time_hours,
        p.counted_at_ms,
        p.unsellable_counted_at_ms,
        p.horizon_ms,
        [
            [e.event_id, e.occurred_at_ms, e.on_hand_delta, e.unsellable_delta, e.inbound_delta]
            for e in p.journal
        ],
        [[reservation_id, units] for reservation_id, units in p.holds],
        list(p.settled),
    ]
    demand_row = (
        None
        if demand is None
        else [
            demand.level,
            list(demand.season),
            demand.variance,
            demand.last_day,
            list(demand.warmup),
            demand.open_day,
            demand.open_units,
        ]
    )
    # Optional tail: [11] the demand model, [12] the applied-movement count (rows before it lack it),
    # [13] inbound lots [[eta ms, units], ...] and [14] preorder holds [[reservation id, units], ...]
    # (only positions with lots have them).
    if p.lots or p.preorders:
        row += [demand_row, p.applied, [list(lot) for lot in p.lots], [list(h) for h in p.preorders]]
    elif p.applied:
        row += [demand_row, p.applied]
    elif demand_row is not None:
        row.append(demand_row)
    return row


def row_demand(row: Row) -> DemandState | None:
    if len(row) < 12 or row[11] is None:
        return None
    level, season, variance, last_day, warmup, open_day, open_units = row[11]
    return DemandState(level, tuple(season), variance, last_day, tuple(warmup), open_day, open_units)


def row_to_position(row: Row) -> StockPosition:
    on_hand, reserved, unsellable, inbound, lead_time, counted_at, unsellable_counted_at, horizon, journal = (
        row[:9]
    )
    holds, settled = (row[9], row[10]) if len(row) > 10 else ([], [])
    return StockPosition(
        on_hand=on_hand,
        reserved=reserved,
        unsellable=unsellable,
        inbound=inbound,
        lead_time_hours=lead_time,
        counted_at_ms=counted_at,
        unsellable_counted_at_ms=unsellable_counted_at,
        horizon_ms=horizon,
        journal=tuple(JournalEntry(*entry) for entry in journal),
        holds=tuple((reservation_id, units) for reservation_id, units in holds),
        settled=tuple(settled),
        applied=row[12] if len(row) > 12 else 0,
        lots=tuple((eta, units) for eta, units in row[13]) if len(row) > 13 else (),
        preorders=tuple((rid, units) for rid, units in row[14]) if len(row) > 14 else (),
    )


def position_key(sku: str, location_id: str) -> str:
    # '|' cannot occur in identifiers (see schemas.envelope.Identifier).
    return f"{sku}|{location_id}"
