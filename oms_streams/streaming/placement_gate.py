"""Every placement gets an answer on ``oms.orders.sourced.v1``, also one that never reaches sourcing.

A placement that breaks a limit, and one that cannot be read at all (a schema violation, a cart
that does not match its option: ``track_orders`` dead-letters it too), is answered ``rejected``
with the reason in round 0: no stock was asked for. The answer's event id is '<order>:sourced:0'
and the refusal is kept as the order's sourcing row, so a redelivered placement gets the same
answer again and a later one for the same order id none that contradicts it (an order id is
sourced once). A placement without a readable key cannot be
answered: the webshop finds it in the dead-letter topic only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from oms_streams.adapters.orders import Placement
from oms_streams.adapters.sourcing import SourcingRow
from oms_streams.domain.placement import PlacementLimits, placement_problem
from oms_streams.domain.sourcing import Outcome
from oms_streams.metrics import Metrics
from oms_streams.streaming.sourcing_outcomes import RoundPublisher

_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@#+-]{0,127}$")


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A placement that could not be decoded, with what could be read of it."""

    order_id: str
    event_id: str
    reason: str


def unreadable(key: bytes | None, value: bytes | None, reason: str) -> Unreadable | None:
    """The order a bad placement is for (its key), or None when it has no usable key."""
    order_id = key.decode(errors="replace") if key is not None else ""
    if not _IDENTIFIER.match(order_id):
        return None
    try:
        body = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError:
        body = None
    event_id = body.get("event_id") if isinstance(body, dict) else None
    return Unreadable(order_id, event_id if isinstance(event_id, str) else "", reason)


class PlacementGate:
    def __init__(self, rounds: RoundPublisher, limits: PlacementLimits, metrics: Metrics) -> None:
        self.rounds = rounds
        self.limits = limits
        self.metrics = metrics

    def problem(self, placement: Placement) -> str | None:
        """Why the placement may not reserve stock (None: it may)."""
        return placement_problem(_cart(placement), self.limits)

    def refuse(self, placement: Placement, partition: int, reason: str, now: int) -> SourcingRow:
        """The round-0 row of a refused placement; its answer is published."""
        lines = [[sku, units] for sku, units in _cart(placement).items()]
        row = _refused_row(placement.order_id, placement.event_id, partition, reason, lines)
        row.method = placement.option.method.value
        return self._answer(row, now)

    def refuse_unreadable(self, bad: Unreadable, partition: int, now: int) -> SourcingRow:
        return self._answer(_refused_row(bad.order_id, bad.event_id, partition, bad.reason, []), now)

    def _answer(self, row: SourcingRow, now: int) -> SourcingRow:
        self.rounds.publish(row, [], None, now)
        self.metrics.orders_sourced.labels(row.status).inc()
        return row


def _cart(placement: Placement) -> dict[str, int]:
    cart: dict[str, int] = {}
    for shipment in placement.option.shipments:
        for line in shipment.lines:
            cart[line.sku] = cart.get(line.sku, 0) + line.quantity
    return cart


def _refused_row(
    order_id: str, event_id: str, partition: int, reason: str, lines: list[list[Any]]
) -> SourcingRow:
    return SourcingRow(
        order_id=order_id,
        placement=event_id,
        partition=partition,
        method="standard",
        lines=lines,
        ordered=lines,
        destination={},
        window_start_ms=0,
        promised_by_ms=0,
        channel="",
        round=0,
        status=Outcome.REJECTED.value,
        plan={
            "outcome": Outcome.REJECTED.value,
            "reason": reason,
            "shipments": [],
            "backorder": lines,
            "trace": None,
        },
        backorder=lines,
    )
