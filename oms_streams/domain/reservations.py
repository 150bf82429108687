"""Reservations on one SKU's ledger: hold, release and fulfil units for an order, never oversell.

A reservation command names one SKU and the locations it takes units from. The SKU's ledger owner
applies it to the SKU's positions in order with the SKU's stock movements (both are partitioned by
SKU), so "is there enough?" and "take it" are one step and two orders can never take the same unit.

- ``reserve`` holds every line or none: a plan that cannot have all its units of this SKU gets none,
  so the order owner re-plans instead of shipping half of what it asked a location for.
- ``release`` gives a reservation's holds back; ``fulfil`` says the held units left with the
  shipment, so they leave on hand and reserved together (journalled like a sale, so a later count
  as of an earlier moment is reconciled correctly).
- Every command is idempotent by reservation id: a repeated reserve answers as before, and a reserve
  that arrives after its own release (a resend overtaken by the release) is refused, not re-held.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from oms_streams.domain.inventory import Movement, MovementKind, StockPosition, apply_movement

SETTLED_WINDOW = 64
"""Settled reservation ids remembered per position for idempotency."""


class ReservationKind(StrEnum):
    RESERVE = "reserve"
    RELEASE = "release"
    FULFIL = "fulfil"


class ReservationStatus(StrEnum):
    RESERVED = "reserved"
    REFUSED = "refused"
    RELEASED = "released"
    FULFILLED = "fulfilled"


@dataclass(frozen=True, slots=True)
class ReservationCommand:
    kind: ReservationKind
    reservation_id: str
    lines: tuple[tuple[str, int], ...]
    """(location id, units); for release and fulfil only the locations count (empty: every one)."""
    occurred_at_ms: int


@dataclass(frozen=True, slots=True)
class ReservationResult:
    status: ReservationStatus
    changed: dict[str, StockPosition]
    lines: tuple[tuple[str, int], ...]
    """(location id, units) reserved, released or fulfilled; for a refusal the lines asked for."""
    reason: str = ""


Usable = Callable[[str, StockPosition], int]
"""Units a reservation may take at a location now (the channel's visible quantity there)."""


def apply_reservation(
    positions: Mapping[str, StockPosition],
    command: ReservationCommand,
    usable: Usable,
    held_at: Collection[str] | None = None,
) -> ReservationResult:
    """``held_at``: the locations where the reservation already holds units of this SKU, when the
    caller keeps an index of them (a busy DC holds for thousands of orders); None looks everywhere."""
    if command.kind is ReservationKind.RESERVE:
        return _reserve(positions, command, usable, held_at)
    return _settle(positions, command)


def _reserve(
    positions: Mapping[str, StockPosition],
    command: ReservationCommand,
    usable: Usable,
    held_at: Collection[str] | None,
) -> ReservationResult:
    rid = command.reservation_id
    asked = _merged(command.lines)
    where = positions if held_at is None else {loc: positions[loc] for loc in held_at if loc in positions}
    held = _held(where, rid)
    if held == asked:  # a repeat: answer as the first time
        return ReservationResult(ReservationStatus.RESERVED, {}, held)
    released: dict[str, StockPosition] = {}
    if held:
        # The same attempt planned again with other lines (its owner crashed before it stored the
        # attempt, and the new owner saw fresher stock): the latest command is the plan, so the
        # earlier holds are given back first. Commands of one SKU arrive in order, so latest wins.
        for loc, units in held:
            position = positions[loc]
            released[loc] = replace(
                position,
                reserved=position.reserved - units,
                holds=tuple(h for h in position.holds if h[0] != rid),
            )
        positions = {**positions, **released}
    if any(rid in positions[loc].settled for loc, _ in asked if loc in positions):
        return ReservationResult(
            ReservationStatus.REFUSED, released, asked, f"reservation {rid} was already released or refused"
        )
    short = [
        f"{loc} has {usable(loc, positions.get(loc, StockPosition()))} of {units}"
        for loc, units in asked
        if usable(loc, positions.get(loc, StockPosition())) < units
    ]
    if short:
        changed = {
            **released,
            **{loc: _settled(positions.get(loc, StockPosition()), rid) for loc, _ in asked},
        }
        return ReservationResult(ReservationStatus.REFUSED, changed, asked, "; ".join(short))
    changed = dict(released)
    for loc, units in asked:
        position = positions.get(loc, StockPosition())
        changed[loc] = replace(
            position, reserved=position.reserved + units, holds=(*position.holds, (rid, units))
        )
    return ReservationResult(ReservationStatus.RESERVED, changed, asked)


def _settle(positions: Mapping[str, StockPosition], command: ReservationCommand) -> ReservationResult:
    rid = command.reservation_id
    named = {loc for loc, _ in command.lines}
    status = (
        ReservationStatus.RELEASED if command.kind is ReservationKind.RELEASE else ReservationStatus.FULFILLED
    )
    changed: dict[str, StockPosition] = {}
    done: list[tuple[str, int]] = []
    for loc in sorted(named or positions):
        position = positions.get(loc, StockPosition())
        units = sum(u for r, u in position.holds if r == rid)
        if units == 0:
            if named and rid not in position.settled:
                # Nothing held (yet): remember the id so an overtaken reserve is not held later.
                changed[loc] = _settled(position, rid)
            continue
        position = replace(
            position,
            reserved=position.reserved - units,
            holds=tuple(h for h in position.holds if h[0] != rid),
        )
        if status is ReservationStatus.FULFILLED:
            shipped = Movement(f"fulfil:{rid}", MovementKind.SALE, units, command.occurred_at_ms)
            position = apply_movement(position, shipped).position
        changed[loc] = _settled(position, rid)
        done.append((loc, units))
    return ReservationResult(status, changed, tuple(done))


def _held(positions: Mapping[str, StockPosition], rid: str) -> tuple[tuple[str, int], ...]:
    return tuple(
        (loc, units) for loc, position in sorted(positions.items()) for r, units in position.holds if r == rid
    )


def _merged(lines: Sequence[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    units: dict[str, int] = {}
    for loc, quantity in lines:
        units[loc] = units.get(loc, 0) + quantity
    return tuple(sorted(units.items()))


def _settled(position: StockPosition, rid: str) -> StockPosition:
    if rid in position.settled:
        return position
    return replace(position, settled=(*position.settled, rid)[-SETTLED_WINDOW:])
