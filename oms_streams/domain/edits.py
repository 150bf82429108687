"""Editing a placed order: the difference between the order as sourced and its new version.

An edit is a placement of a known order with a new event id: the new version of the whole order
(its cart and its chosen option). Pure: the caller passes the order as its sourcing owner knows it
(the lines as last accepted, the cancelled SKUs, every allocation with its state, the backorder,
how it is delivered) and the new version. The decision says, per line, what changes, and what that
does to the order's stock:

- a line reduced or removed gives units back: first those still waiting for stock (the backorder),
  then those of live allocations, the newest first. An allocation that loses units is withdrawn
  whole (the ledger releases a reservation's holds of a SKU per location, never some of them) and
  the units it keeps are reserved again at the same location in the edit's round (``kept``);
- a line added or increased is sourced in the edit's round for the difference (``additions``);
- units that already left (a fulfilled allocation) cannot be edited away: the whole edit is
  refused with the reason, line by line, and nothing changes (an edit is all or nothing: the
  webshop's cart and the order never disagree about a half-applied version);
- a change of delivery (method, destination, pickup store) re-sources what has not shipped: every
  live allocation is withdrawn and every unit not shipped (the backorder's too) is sourced again for
  the new delivery (``redelivered``); what shipped stays shipped;
- a cancelled order cannot be edited, a cancelled line cannot come back (beyond what shipped of
  it), and a courier delivery's method or store cannot be changed (its slot is booked for that
  store and time: cancel the order and place it again).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from oms_streams.domain.cancellation import Allocated, AllocationStatus

COURIER = "courier"

Lines = tuple[tuple[str, int], ...]
"""(SKU, units)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """How the order is delivered: what an edit may not change."""

    method: str
    pickup_store_id: str | None = None
    courier_store_id: str | None = None
    address: tuple[object, ...] = ()
    """What identifies the home address (postal code, coordinates); empty for a pickup."""


@dataclass(frozen=True, slots=True)
class EditableOrder:
    order_id: str
    ordered: Lines
    """The lines of the version in force (as placed, or as last edited)."""
    delivery: Delivery
    allocations: tuple[Allocated, ...] = ()
    """Oldest first (the order they were made in)."""
    backorder: Lines = ()
    """Units not allocated, waiting for stock."""
    cancelled: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class EditRequest:
    event_id: str
    cart: Lines
    delivery: Delivery


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"


class Change(StrEnum):
    UNCHANGED = "unchanged"
    INCREASED = "increased"
    ADDED = "added"
    REDUCED = "reduced"
    REMOVED = "removed"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class LineChange:
    sku: str
    before: int
    """Units of the version in force (a cancelled line: what shipped of it)."""
    after: int
    change: Change
    reason: str = ""


@dataclass(frozen=True, slots=True)
class EditDecision:
    outcome: Outcome
    lines: tuple[LineChange, ...] = ()
    reason: str = ""
    """Why the edit was refused (empty when accepted)."""
    withdrawn: tuple[str, ...] = ()
    """Live allocations withdrawn whole: their holds are released."""
    kept: tuple[tuple[str, Lines], ...] = ()
    """(allocation id, the units it keeps): reserved again at its location in the edit's round."""
    additions: Lines = ()
    """Units to source in the edit's round."""
    backorder: Lines = ()
    """The backorder once the edit's reductions took their units from it first."""
    ordered: Lines = ()
    """The lines of the new version."""
    redelivered: str = ""
    """What of the delivery changed (empty: nothing): every unit not shipped is sourced again."""


def decide_edit(order: EditableOrder, request: EditRequest) -> EditDecision:
    """What the new version does to the order (see the module docstring)."""
    cart = _merge(request.cart)
    if order.ordered and all(sku in order.cancelled for sku, _ in order.ordered):
        return EditDecision(Outcome.REFUSED, reason=f"order {order.order_id} is cancelled: place a new order")
    changed = _delivery_change(order.delivery, request.delivery)
    if changed and COURIER in (order.delivery.method, request.delivery.method):
        why = f"an edit cannot change a courier delivery's {changed}: cancel the order and place it again"
        return EditDecision(Outcome.REFUSED, reason=why)
    shipped = _units(a.lines for a in order.allocations if a.status is AllocationStatus.FULFILLED)
    before = _before(order, shipped)
    lines = tuple(
        _line(sku, before.get(sku, 0), cart.get(sku, 0), shipped.get(sku, 0), sku in order.cancelled)
        for sku in dict.fromkeys([*before, *cart])
    )
    refused = [line.reason for line in lines if line.change is Change.REFUSED]
    if refused:
        return EditDecision(Outcome.REFUSED, lines, "; ".join(refused))
    if changed:
        return _redelivered(order, lines, shipped, cart, changed)
    waiting = dict(_merge(order.backorder))
    taken: dict[str, dict[str, int]] = {}
    """allocation id -> SKU -> units the edit takes from it."""
    for line in lines:
        if line.after < line.before:
            _take(line.sku, line.before - line.after, waiting, order.allocations, taken)
    by_id = {a.allocation_id: a for a in order.allocations}
    kept = tuple((aid, _rest(by_id[aid].lines, taken[aid])) for aid in taken)
    return EditDecision(
        outcome=Outcome.ACCEPTED,
        lines=lines,
        withdrawn=tuple(taken),
        kept=tuple((aid, units) for aid, units in kept if units),
        additions=tuple((line.sku, line.after - line.before) for line in lines if line.after > line.before),
        backorder=tuple((sku, n) for sku, n in waiting.items() if n > 0),
        ordered=tuple(cart.items()),
    )


# --- helpers ----------------------------------------------------------------------------------------


def _merge(lines: Sequence[tuple[str, int]]) -> dict[str, int]:
    units: dict[str, int] = {}
    for sku, n in lines:
        if n > 0:
            units[sku] = units.get(sku, 0) + n
    return units


def _units(groups: Iterable[Lines]) -> dict[str, int]:
    units: dict[str, int] = {}
    for lines in groups:
        for sku, n in lines:
            units[sku] = units.get(sku, 0) + n
    return units


def _before(order: EditableOrder, shipped: Mapping[str, int]) -> dict[str, int]:
    """Units per line of the version in force; a cancelled line keeps only what shipped of it."""
    before = {}
    for sku, n in _merge(order.ordered).items():
        before[sku] = shipped.get(sku, 0) if sku in order.cancelled else n
    return {sku: n for sku, n in before.items() if n > 0 or sku not in order.cancelled}


def _redelivered(
    order: EditableOrder,
    lines: tuple[LineChange, ...],
    shipped: Mapping[str, int],
    cart: Mapping[str, int],
    changed: str,
) -> EditDecision:
    """Another delivery: every live allocation withdrawn, every unit not shipped sourced again."""
    return EditDecision(
        outcome=Outcome.ACCEPTED,
        lines=lines,
        withdrawn=tuple(a.allocation_id for a in order.allocations if a.status is AllocationStatus.LIVE),
        additions=tuple((sku, n - shipped.get(sku, 0)) for sku, n in cart.items() if n > shipped.get(sku, 0)),
        ordered=tuple(cart.items()),
        redelivered=changed,
    )


def _rest(lines: Lines, taken: Mapping[str, int]) -> Lines:
    """What an allocation keeps once the edit took ``taken`` from it (per SKU, first lines first)."""
    left = dict(taken)
    rest = []
    for sku, n in lines:
        took = min(n, left.get(sku, 0))
        left[sku] = left.get(sku, 0) - took
        if n - took > 0:
            rest.append((sku, n - took))
    return tuple(rest)


def _delivery_change(now: Delivery, new: Delivery) -> str:
    if now.method != new.method:
        return f"delivery method ({now.method} -> {new.method})"
    if now.pickup_store_id != new.pickup_store_id:
        return f"pickup store ({now.pickup_store_id} -> {new.pickup_store_id})"
    if now.courier_store_id != new.courier_store_id:
        return f"courier store ({now.courier_store_id} -> {new.courier_store_id})"
    if now.address != new.address:
        return "destination"
    return ""


def _line(sku: str, before: int, after: int, shipped: int, cancelled: bool) -> LineChange:
    if after < shipped:
        why = f"{sku}: {shipped} already shipped, cannot become {after}"
        return LineChange(sku, before, after, Change.REFUSED, why)
    if cancelled and after > before:
        why = f"{sku} was cancelled: an edit cannot bring it back (place a new order)"
        return LineChange(sku, before, after, Change.REFUSED, why)
    if after == before:
        return LineChange(sku, before, after, Change.UNCHANGED)
    if after > before:
        return LineChange(sku, before, after, Change.ADDED if before == 0 else Change.INCREASED)
    return LineChange(sku, before, after, Change.REMOVED if after == 0 else Change.REDUCED)


def _take(
    sku: str,
    units: int,
    waiting: dict[str, int],
    allocations: Sequence[Allocated],
    taken: dict[str, dict[str, int]],
) -> None:
    """Take ``units`` of the SKU back: from the backorder first, then live allocations, newest first.
    Units found nowhere (a rejected order's lines) need no giving back."""
    from_waiting = min(units, waiting.get(sku, 0))
    if from_waiting:
        waiting[sku] -= from_waiting
        units -= from_waiting
    for allocation in reversed(allocations):
        if units <= 0:
            return
        if allocation.status is not AllocationStatus.LIVE:
            continue
        held = sum(n for s, n in allocation.lines if s == sku)
        took = min(units, held)
        if took:
            mine = taken.setdefault(allocation.allocation_id, {})
            mine[sku] = mine.get(sku, 0) + took
            units -= took
