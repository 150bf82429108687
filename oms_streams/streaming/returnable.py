"""What of each order can come back, on every worker that handles returns.

Returns are keyed by return id and orders by order id: the worker that receives a return does not
hold its order's row, and several returns of one order may be handled by different workers. The
order's tracker (``track_orders``) publishes what can come back to the compacted
``oms.orders.returnable.v1`` (placed and shipped units per SKU, the units each return brought back),
and every worker follows it, as it follows the returns load or the courier bookings. Checking where
the order lives instead would need a request/answer round trip per return (the sourcing saga's
shape) and a parked state for every receipt; a till waits for neither here.

The price: each worker keeps every order of the topic's retention (raw records, a few hundred bytes
each), and two returns of one order handled on two workers within the follow lag (well under a
second) can both take the same room. Its own decisions count at once (``note``), before the tracker
republishes them, so returns handled on one worker never do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from oms_streams.adapters.returnable import decode_returnable
from oms_streams.domain.returnable import ReturnableOrder


class ReturnableOrders:
    def __init__(self) -> None:
        self._raw: dict[str, bytes] = {}
        """Order id -> its latest record, kept as bytes (decoded only when a return needs it)."""
        self._mine: dict[str, dict[str, dict[str, int]]] = {}
        """Order id -> return id -> SKU -> units this worker accepted, until the record has them."""

    def __len__(self) -> int:
        return len(self._raw)

    def on_records(self, records: Sequence[Any]) -> None:
        for record in records:
            if record.key is None:
                continue  # our own topic is keyed by order id; a record without one checks nothing
            order_id = record.key.decode(errors="replace")
            if record.value is None:
                self._raw.pop(order_id, None)
                self._mine.pop(order_id, None)
                continue
            self._raw[order_id] = record.value
            if order_id in self._mine:
                self._forget_counted(order_id, decode_returnable(record.value))

    def get(self, order_id: str | None) -> ReturnableOrder | None:
        """The order as the returns check needs it, with this worker's own recent decisions; None
        when the order is not known (the return policy decides alone)."""
        raw = self._raw.get(order_id) if order_id else None
        order = decode_returnable(raw) if raw is not None else None
        mine = self._mine.get(order_id or "")
        if order is None or not mine:
            return order
        returned = {return_id: dict(units) for return_id, units in order.returned.items()}
        for return_id, units in mine.items():
            known = returned.setdefault(return_id, {})
            for sku, n in units.items():
                known[sku] = max(known.get(sku, 0), n)  # a return's units only ever grow
        return ReturnableOrder(order.order_id, order.ordered, order.shipped, returned)

    def note(self, order_id: str | None, return_id: str, accepted: Mapping[str, int]) -> None:
        """A return this worker accepted units of: they count at once for the order's other returns."""
        if order_id and order_id in self._raw and accepted:
            self._mine.setdefault(order_id, {})[return_id] = dict(accepted)

    def _forget_counted(self, order_id: str, order: ReturnableOrder | None) -> None:
        if order is None:
            return
        mine = self._mine[order_id]
        for return_id, units in list(mine.items()):
            counted = order.returned.get(return_id, {})
            if all(counted.get(sku, 0) >= n for sku, n in units.items()):
                del mine[return_id]
        if not mine:
            del self._mine[order_id]
