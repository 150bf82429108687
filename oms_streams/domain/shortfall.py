"""Stock that disappears under a hold: shed holds until the position's sellable units cover them.

A reserve never takes more than the channel sees, but a count or a movement (an ERP transfer out, a
shrinkage adjustment, units turned unsellable) can leave fewer units on hand than are held there.
Holding on would promise units that are not on the shelf, so the ledger gives holds back, whole,
until what is left covers the rest, and tells each hold's owner why (its order re-sources the lines).

Which holds go first:

- Cart holds before order holds: a cart hold is a checkout that has not been paid yet, and shedding
  it costs nothing downstream (the order placed with it reserves as usual); an order hold is a
  promise to a paying customer and its shedding moves a shipment.
- Within each kind the newest first (``holds`` keeps arrival order, newest last): the oldest
  reservations were made when the stock was there and keep their place in the queue.
- Whole holds only: a reserve is all-or-nothing per SKU and location, and an allocation whose hold
  covers fewer units than its lines would ship short anyway; its order re-sources the whole line.
- A cart hold is shed at every location of the SKU: its record on ``oms.holds.v1`` says one thing
  per SKU (held or not), and a checkout that lost part of its SKU must hold again anyway. An order
  hold is shed only where the stock went: its other shipments are not affected.

The shortfall is against on hand minus unsellable, as ATP counts it; protection is not counted: it
is a soft reserve for walk-in shoppers that a hold already made may dip into.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from oms_streams.domain.inventory import StockPosition
from oms_streams.domain.reservations import SETTLED_WINDOW, is_cart_hold


@dataclass(frozen=True, slots=True)
class ShedHold:
    location_id: str
    reservation_id: str
    units: int
    reason: str


@dataclass(frozen=True, slots=True)
class Shedding:
    changed: dict[str, StockPosition]
    """New positions of the locations that shed holds."""
    shed: tuple[ShedHold, ...] = ()
    """Every hold given back, per location in the order shed."""


def sellable(position: StockPosition) -> int:
    return max(0, position.on_hand - max(0, position.unsellable))


def shortfall(position: StockPosition) -> int:
    """Units held beyond what is sellable on hand."""
    return max(0, position.reserved - sellable(position))


def shed_order(holds: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """Cart holds before order holds, each newest first."""
    newest_first = list(reversed(tuple(holds)))
    return [h for h in newest_first if is_cart_hold(h[0])] + [
        h for h in newest_first if not is_cart_hold(h[0])
    ]


def shed_shortfalls(positions: Mapping[str, StockPosition], causes: Mapping[str, str]) -> Shedding:
    """Shed holds at each location of ``causes`` (location -> what changed its stock, for the
    reason: 'count', 'transfer_out', ...) whose holds exceed its sellable units.

    Idempotent: a position that is covered sheds nothing, so a stock event read again (a duplicate
    by then) changes nothing. A shed hold's id is settled at its location, so a late resend of its
    reserve is refused rather than held again."""
    changed: dict[str, StockPosition] = {}
    shed: list[ShedHold] = []
    for location_id in sorted(causes):
        position = positions.get(location_id)
        if position is None or shortfall(position) == 0:
            continue
        reason = _reason(causes[location_id], location_id, position)
        for rid, units in shed_order(position.holds):
            if shortfall(position) == 0:
                break
            position = _without(position, rid, units)
            shed.append(ShedHold(location_id, rid, units, reason))
        changed[location_id] = position
    carts = {h.reservation_id: h.reason for h in shed if is_cart_hold(h.reservation_id)}
    for location_id, position in sorted(positions.items()):
        position = changed.get(location_id, position)
        for rid, units in [h for h in position.holds if h[0] in carts]:
            position = _without(position, rid, units)
            shed.append(ShedHold(location_id, rid, units, carts[rid]))
            changed[location_id] = position
    return Shedding(changed, tuple(shed))


def _without(position: StockPosition, rid: str, units: int) -> StockPosition:
    holds = list(position.holds)
    holds.remove((rid, units))
    settled = position.settled if rid in position.settled else (*position.settled, rid)[-SETTLED_WINDOW:]
    return replace(position, reserved=position.reserved - units, holds=tuple(holds), settled=settled)


def _reason(cause: str, location_id: str, position: StockPosition) -> str:
    left = f"{position.on_hand} on hand"
    if position.unsellable > 0:
        left = f"{sellable(position)} sellable ({position.on_hand} on hand, {position.unsellable} unsellable)"
    return f"stock gone: {cause} at {location_id} left {left} for {position.reserved} reserved"
