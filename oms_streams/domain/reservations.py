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

Cart holds (``hold-<uuid>``, see ``is_cart_hold``) are reservations a checkout makes before there is
an order. Every hold has an owner: an order's reservation its order, a cart hold its expiry. The
result says how a command changed the SKU's cart-hold expiries (``expiries``), so the caller keeps
one row per live cart hold; ``expire_holds`` releases those due at a moment the caller hands in. An
order's reserve may take a cart hold over (``takes_over``): the hold's units are given back and the
order's lines reserved in one step, so the order gets at least the held units where its lines ask
for them, and whatever else is usable.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from oms_streams.domain.inventory import (
    Movement,
    MovementKind,
    StockPosition,
    apply_movement,
    preorder_eta,
    preorderable,
)

SETTLED_WINDOW = 64
"""Settled reservation ids remembered per position for idempotency."""

HOLD_PREFIX = "hold-"


def is_cart_hold(reservation_id: str) -> bool:
    """Cart holds are 'hold-<uuid>'; an order's reservations are '<order id>/<attempt>'."""
    return reservation_id.startswith(HOLD_PREFIX) and "/" not in reservation_id


class ReservationKind(StrEnum):
    RESERVE = "reserve"
    RELEASE = "release"
    FULFIL = "fulfil"
    PREORDER = "preorder"
    """Hold announced inbound units (with an ETA) for the order: a preorder (``domain.preorders``)."""


class ReservationStatus(StrEnum):
    RESERVED = "reserved"
    REFUSED = "refused"
    RELEASED = "released"
    FULFILLED = "fulfilled"
    EXPIRED = "expired"
    PREORDERED = "preordered"


@dataclass(frozen=True, slots=True)
class ReservationCommand:
    kind: ReservationKind
    reservation_id: str
    lines: tuple[tuple[str, int], ...]
    """(location id, units); for release and fulfil only the locations count (empty: every one)."""
    occurred_at_ms: int
    expires_at_ms: int | None = None
    """A cart hold's reserve: when the ledger releases it unless an order took it over."""
    takes_over: str | None = None
    """An order's reserve: the cart hold whose units it takes."""


@dataclass(frozen=True, slots=True)
class ReservationResult:
    status: ReservationStatus
    changed: dict[str, StockPosition]
    lines: tuple[tuple[str, int], ...]
    """(location id, units) reserved, released or fulfilled; for a refusal the lines asked for."""
    reason: str = ""
    expiries: dict[str, int | None] = field(default_factory=dict)
    """How the SKU's live cart holds changed: hold id -> its expiry, or None once it is over."""
    taken_over: tuple[tuple[str, int], ...] = ()
    """(location id, units) of the cart hold ``takes_over`` that the order took."""
    expected_at: dict[str, int] = field(default_factory=dict)
    """A preorder's answer: location id -> when its units are expected to arrive."""


Usable = Callable[[str, StockPosition], int]
"""Units a reservation may take at a location now (the channel's visible quantity there)."""


@dataclass(frozen=True, slots=True)
class Expiry:
    changed: dict[str, StockPosition]
    expired: dict[str, tuple[tuple[str, int], ...]]
    """Hold id -> (location id, units) it gave back."""


def apply_reservation(
    positions: Mapping[str, StockPosition],
    command: ReservationCommand,
    usable: Usable,
    held_at: Collection[str] | None = None,
    *,
    now_ms: int | None = None,
    hold_at: Collection[str] | None = None,
) -> ReservationResult:
    """``held_at``: the locations where the reservation already holds units of this SKU, when the
    caller keeps an index of them (a busy DC holds for thousands of orders); None looks everywhere.
    ``hold_at``: the same for the cart hold the command takes over. ``now_ms``: the ledger's clock,
    against which a cart hold's expiry is judged."""
    if command.kind is ReservationKind.PREORDER:
        return preorder(positions, command)
    if command.kind is not ReservationKind.RESERVE:
        return _settle(positions, command)
    if is_cart_hold(command.reservation_id):
        return _hold(positions, command, usable, held_at, now_ms)
    if command.takes_over is not None and is_cart_hold(command.takes_over):
        return _take_over(positions, command, usable, held_at, hold_at)
    return _reserve(positions, command, usable, held_at)


def expire_holds(positions: Mapping[str, StockPosition], expiries: Mapping[str, int], now_ms: int) -> Expiry:
    """Release the cart holds due at ``now_ms`` (expiry at or before it); the others stay. An expired
    hold's id is settled where it held, so a late resend of its reserve is refused."""
    changed: dict[str, StockPosition] = {}
    expired: dict[str, tuple[tuple[str, int], ...]] = {}
    for hold, expires_at in sorted(expiries.items()):
        if expires_at > now_ms:
            continue
        release = ReservationCommand(ReservationKind.RELEASE, hold, (), now_ms)
        result = _settle({**positions, **changed}, release)
        changed.update(result.changed)
        expired[hold] = result.lines
    return Expiry(changed, expired)


def _hold(
    positions: Mapping[str, StockPosition],
    command: ReservationCommand,
    usable: Usable,
    held_at: Collection[str] | None,
    now_ms: int | None,
) -> ReservationResult:
    rid, expires_at = command.reservation_id, command.expires_at_ms
    if expires_at is None or (now_ms is not None and expires_at <= now_ms):
        # Nothing changes: whatever an earlier plan of it holds keeps its row and expires with it.
        why = "a cart hold needs an expiry" if expires_at is None else f"hold {rid} expired before it arrived"
        return ReservationResult(ReservationStatus.REFUSED, {}, _merged(command.lines), why)
    result = _reserve(positions, command, usable, held_at)
    if result.status is ReservationStatus.REFUSED:
        return replace(result, expiries={rid: None})  # an earlier plan of it was given back
    return replace(result, expiries={rid: expires_at}) if result.changed else result


def preorder(positions: Mapping[str, StockPosition], command: ReservationCommand) -> ReservationResult:
    """Hold announced inbound (lots with an ETA) for an order, every line or none. Answered
    ``preordered`` with each location's ETA; once the goods arrived (the ledger turned the preorder
    into an ordinary hold) a repeat is answered ``reserved``, as the reserve it now is."""
    rid, asked = command.reservation_id, _merged(command.lines)
    if is_cart_hold(rid):  # a hold's owner is its expiry, and inbound does not arrive by then
        return ReservationResult(ReservationStatus.REFUSED, {}, asked, "a cart hold cannot preorder inbound")
    waiting = _merged([(loc, u) for loc, p in positions.items() for r, u in p.preorders if r == rid])
    arrived = _held(positions, rid)
    if waiting or arrived:
        if _merged([*waiting, *arrived]) == asked:  # a repeat: answer as things stand
            if waiting:
                return ReservationResult(
                    ReservationStatus.PREORDERED, {}, asked, expected_at=_etas(positions, rid, asked)
                )
            return ReservationResult(ReservationStatus.RESERVED, {}, asked)
        why = f"preorder {rid} already holds {_describe(_merged([*waiting, *arrived]))}"
        return ReservationResult(ReservationStatus.REFUSED, {}, asked, why)
    if _settled_at(positions, rid, asked):
        return ReservationResult(
            ReservationStatus.REFUSED, {}, asked, f"reservation {rid} was already released or refused"
        )
    short = [
        f"{loc} has {preorderable(positions.get(loc, StockPosition()))} of {units} inbound with an ETA"
        for loc, units in asked
        if preorderable(positions.get(loc, StockPosition())) < units
    ]
    if short:
        changed = {loc: _settled(positions.get(loc, StockPosition()), rid) for loc, _ in asked}
        return ReservationResult(ReservationStatus.REFUSED, changed, asked, "; ".join(short))
    changed = {
        loc: replace(positions[loc], preorders=(*positions[loc].preorders, (rid, units)))
        for loc, units in asked
    }
    return ReservationResult(
        ReservationStatus.PREORDERED, changed, asked, expected_at=_etas(changed, rid, asked)
    )


def _etas(
    positions: Mapping[str, StockPosition], rid: str, asked: Sequence[tuple[str, int]]
) -> dict[str, int]:
    """Location -> when the preorder's last unit there is expected (preorders are served in order)."""
    etas: dict[str, int] = {}
    for loc, _ in asked:
        position, through = positions[loc], 0
        for r, units in position.preorders:
            through += units
            if r == rid:
                eta = preorder_eta(position, through)
                if eta is not None:
                    etas[loc] = eta
                break
    return etas


def _describe(lines: Sequence[tuple[str, int]]) -> str:
    return ", ".join(f"{units} at {loc}" for loc, units in lines)


def _take_over(
    positions: Mapping[str, StockPosition],
    command: ReservationCommand,
    usable: Usable,
    held_at: Collection[str] | None,
    hold_at: Collection[str] | None,
) -> ReservationResult:
    hold = command.takes_over
    assert hold is not None
    where = positions if hold_at is None else {loc: positions[loc] for loc in hold_at if loc in positions}
    held = dict(_held(where, hold))
    if not held:  # expired, released or never held here: an ordinary reserve
        return _reserve(positions, command, usable, held_at)
    given_back = {loc: _settled(_without(positions[loc], hold), hold) for loc in held}

    def usable_with_hold(location_id: str, position: StockPosition) -> int:
        # The held units are the order's whatever the channel shows now (they are on hand already).
        return max(usable(location_id, position), held.get(location_id, 0))

    result = _reserve({**positions, **given_back}, command, usable_with_hold, held_at)
    if result.status is ReservationStatus.REFUSED:
        # All or nothing: the cart keeps its hold (it expires unless a later plan takes it over).
        kept = _reserve(positions, replace(command, takes_over=None), usable, held_at)
        return replace(kept, reason=result.reason) if kept.status is ReservationStatus.REFUSED else kept
    return replace(
        result,
        changed={**given_back, **result.changed},
        expiries={hold: None},
        taken_over=tuple(sorted(held.items())),
    )


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
    if held and set(held) <= set(asked) and _settled_at(positions, rid, asked):
        # A repeat after part of it was given back (shed, released or shipped at a location): its
        # order knows what went and counts on the rest, so the rest stays held; nothing is held
        # again where the id is settled. (Not a re-plan: a reserve holds all its lines or none.)
        reason = f"reservation {rid} was already released or refused"
        return ReservationResult(ReservationStatus.REFUSED, {}, asked, reason)
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
    if _settled_at(positions, rid, asked):
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
        preordered = sum(u for r, u in position.preorders if r == rid) if position.preorders else 0
        if units == 0 and (preordered == 0 or status is ReservationStatus.FULFILLED):
            if named and rid not in position.settled:
                # Nothing held (yet): remember the id so an overtaken reserve is not held later.
                changed[loc] = _settled(position, rid)
            continue
        position = replace(
            position,
            reserved=position.reserved - units,
            holds=tuple(h for h in position.holds if h[0] != rid),
        )
        if preordered and status is ReservationStatus.RELEASED:  # a preorder not arrived yet
            position = replace(position, preorders=tuple(p for p in position.preorders if p[0] != rid))
            units += preordered
        if status is ReservationStatus.FULFILLED:
            shipped = Movement(f"fulfil:{rid}", MovementKind.SALE, units, command.occurred_at_ms)
            position = apply_movement(position, shipped).position
        changed[loc] = _settled(position, rid)
        done.append((loc, units))
    ends: dict[str, int | None] = {rid: None} if is_cart_hold(rid) else {}
    return ReservationResult(status, changed, tuple(done), expiries=ends)


def _settled_at(positions: Mapping[str, StockPosition], rid: str, lines: Sequence[tuple[str, int]]) -> bool:
    """Whether the reservation was released, refused, shed or shipped at a location of ``lines``."""
    return any(rid in positions[loc].settled for loc, _ in lines if loc in positions)


def _without(position: StockPosition, rid: str) -> StockPosition:
    units = sum(u for r, u in position.holds if r == rid)
    return replace(
        position, reserved=position.reserved - units, holds=tuple(h for h in position.holds if h[0] != rid)
    )


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
