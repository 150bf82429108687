"""Every placement gets an answer on ``oms.orders.sourced.v1``, also one that never reaches sourcing.

A placement without a valid promise token (when ``OMS_PROMISE_SIGNING_KEYS`` is set), one that
breaks a limit, and one that cannot be read at all (a schema violation, a cart that does not match
its option: ``track_orders`` dead-letters it too), is answered ``rejected`` with the reason in round
0: no stock was asked for. The answer's event id is '<order>:sourced:0' and the refusal is kept as
the order's sourcing row, so a redelivered placement gets the same answer again and a later one for
the same order id (an edit) is refused too (``sourcing_edits``). A placement without a
readable key cannot be answered: the webshop finds it in the dead-letter topic only.

The token's expiry is compared with the time the placement reached its topic: the broker's clock
(``LogAppendTime`` on ``oms.orders.placed.v1``; ``occurred_at`` is the producer's and proves
nothing), never later than the worker's. So an order placed in time is accepted however long it
waited for a worker (an outage, a rebalance), and a placement read again after a crash gets the
verdict its first read got.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import orjson

from oms_streams import clock
from oms_streams.adapters.orders import Placement
from oms_streams.adapters.sourcing import SourcingRow
from oms_streams.config import Settings
from oms_streams.domain.placement import PlacementLimits, placement_problem
from oms_streams.domain.promise_token import Point, PromiseKeys, SigningKey, verify_promise
from oms_streams.domain.sourcing import Outcome
from oms_streams.metrics import Metrics
from oms_streams.streaming.sourcing_outcomes import RoundPublisher

log = logging.getLogger(__name__)

_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@#+-]{0,127}$")


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A placement that could not be decoded, with what could be read of it."""

    order_id: str
    event_id: str
    reason: str


def is_identifier(text: str) -> bool:
    """Whether ``text`` may stand where the wire wants an ``Identifier`` (an order or event id)."""
    return bool(_IDENTIFIER.match(text))


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

    def problem(self, placement: Placement, now: int) -> str | None:
        """Why the placement may not reserve stock (None: it may). The token first: limits are
        worth telling only about an option the OMS promised."""
        keys = self.limits.promise_keys
        if keys is not None:
            token = verify_promise(placement.promise_token, placement.option, _point(placement), keys, now)
            self.metrics.promise_tokens.labels(token.kind if token else "valid").inc()
            if token is not None:
                return token.reason
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


def _point(placement: Placement) -> Point | None:
    """The home the option was promised for (a pickup store's option is signed without one)."""
    lat, lon = placement.destination.get("lat"), placement.destination.get("lon")
    return None if lat is None or lon is None else (lat, lon)


def promise_keys(settings: Settings) -> PromiseKeys | None:
    """The keys of ``OMS_PROMISE_SIGNING_KEYS``; None (and a warning) when there are none."""
    pairs = settings.promise_key_pairs()
    if not pairs:
        log.warning(
            "OMS_PROMISE_SIGNING_KEYS is not set: POST /promise returns no promise tokens and placements "
            "are not token-checked, so a forged option can reserve stock (docs/promise-tokens.md)"
        )
        return None
    return PromiseKeys(
        tuple(SigningKey(key_id, secret.encode()) for key_id, secret in pairs),
        ttl_ms=settings.promise_token_ttl_s * 1000,
        grace_ms=clock.wall_span_ms(settings.promise_token_grace_s),  # clock skew and waits: wall time
    )


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
