"""The ledger's word to an order whose preordered inbound arrived (``docs/preorders.md``).

An arrival consumes a position's earliest inbound lots; the preorders the lots no longer cover
become ordinary holds of the same reservation in the same step (``domain.inventory``). Once a
reservation has no preorder left at any location of the SKU, its order's owner is answered again,
unasked, as if its ``preorder`` command had been the reserve it now is (``arrived_reply``): the
order's round then allocates as any round does. The answer is decided with the positions and
leaves with the batch's replies, so a crash before the positions are written decides it again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from oms_streams.adapters.reservations import arrived_reply
from oms_streams.domain.inventory import StockPosition
from oms_streams.streaming.outbox import PartitionBatches


def converted(before: Mapping[str, StockPosition], changed: Mapping[str, StockPosition]) -> set[str]:
    """Reservation ids whose preorder shrank in ``changed``. The hot path costs one lookup and one
    identity test per changed position: counts and most movements carry the preorders unchanged."""
    shrunk: set[str] = set()
    for location_id, after in changed.items():
        was = before.get(location_id)
        if was is None or not was.preorders or was.preorders is after.preorders:
            continue
        left = dict(after.preorders)
        shrunk.update(
            rid for rid, units in was.preorders if left.get(rid, 0) < units and rid in dict(after.holds)
        )
    return shrunk


def tell_orders(
    sku: str,
    reservation_ids: set[str],
    positions: Mapping[str, StockPosition],
    usable: Callable[[str, StockPosition], int],
    replies: PartitionBatches,
    now_ms: int,
) -> int:
    """Answer every reservation whose preorder fully arrived (``positions``: the SKU's, updated)."""
    told = 0
    for rid in sorted(reservation_ids):
        if any(r == rid for p in positions.values() for r, _ in p.preorders):
            continue  # part of it still waits for inbound
        lines = [
            (loc, units, usable(loc, p))
            for loc, p in sorted(positions.items())
            for r, units in p.holds
            if r == rid
        ]
        order_id = rid.rsplit("/", 1)[0]  # '<order id>/<attempt>'
        replies.add(order_id, arrived_reply(order_id, sku, rid, lines, now_ms))
        told += 1
    return told
