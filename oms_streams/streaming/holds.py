"""Cart holds in the worker: the ledger's rows of live holds and their expiry, and every worker's
book of ``oms.holds.v1``.

The ledger owns a hold's truth per SKU: the hold's units are in the SKU's positions (``holds``), and
its expiry is a row of the ``stock_holds`` table (key 'SKU|hold id', co-partitioned with the
positions, restored from its changelog like them), written in the same batch. Expiry is judged by
the ledger's clock: a timer releases the holds due, under the ledger's lock. To find them without
reading every row at every tick, the keeper keeps a heap of expiries, rebuilt from the table (a few
bytes per live hold) after each change of ownership and pushed to as holds are written; an entry is
checked against its row before anything is released (a hold may have ended or been re-planned).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from oms_streams import clock
from oms_streams.adapters.holds import expires_at_ms, hold_record
from oms_streams.adapters.reservations import DecodedReservation
from oms_streams.domain.inventory import StockPosition
from oms_streams.domain.reservations import (
    ReservationKind,
    ReservationResult,
    ReservationStatus,
    is_cart_hold,
)
from oms_streams.metrics import Metrics
from oms_streams.streaming.ledger_store import LedgerStore
from oms_streams.streaming.outbox import Outbox

HELD_RECORDS_FOR_S = 3_600
"""A worker's book forgets a hold this long after its expiry (the topic keeps it a day)."""


@dataclass(frozen=True, slots=True)
class LiveHold:
    expires_at_ms: int
    channel: str


def _key(sku: str, hold_id: str) -> bytes:
    return f"{sku}|{hold_id}".encode()


class HoldKeeper:
    """The ledger's side: rows of live holds, their records on ``oms.holds.v1``, and which are due."""

    def __init__(self, store: LedgerStore, outbox: Outbox, topic: str, metrics: Metrics) -> None:
        self.store, self.outbox, self.topic, self.metrics = store, outbox, topic, metrics
        self._due: list[tuple[int, str, str]] = []  # (expires at ms, sku, hold id), soonest first
        self._rescan = True

    def forget_ownership(self) -> None:
        self._due, self._rescan = [], True

    def live(self, sku: str, hold_id: str) -> LiveHold | None:
        raw = self.store.stock_holds.get(_key(sku, hold_id))
        return LiveHold(*orjson.loads(raw)) if raw is not None else None

    def late(self, positions: Mapping[str, StockPosition], decoded: DecodedReservation) -> bool:
        """A cart hold's reserve read after the hold ended here (a resend): its record stays."""
        command = decoded.command
        return command.kind is ReservationKind.RESERVE and any(
            command.reservation_id in positions[loc].settled for loc, _ in command.lines if loc in positions
        )

    def on_result(
        self, sku: str, decoded: DecodedReservation, result: ReservationResult, now_ms: int, late: bool
    ) -> None:
        """Rows and records after a command: a cart hold's own answer, or the hold an order took over."""
        command = decoded.command
        taken = command.takes_over if result.taken_over else None
        ended = {hold: self.live(sku, hold) for hold, expiry in result.expiries.items() if expiry is None}
        for hold, expires_at in result.expiries.items():
            if expires_at is not None:
                self.store.stock_holds[_key(sku, hold)] = orjson.dumps([expires_at, decoded.channel])
                heapq.heappush(self._due, (expires_at, sku, hold))
            elif ended[hold] is not None:
                self.store.stock_holds.pop(_key(sku, hold))
        if taken is not None and (was := ended.get(taken)) is not None:
            self._record(sku, taken, "taken_over", was, result.taken_over, now_ms, order_id=decoded.order_id)
        if not is_cart_hold(command.reservation_id) or late:
            return
        if command.kind is ReservationKind.RESERVE and command.expires_at_ms is not None:
            held = result.status is ReservationStatus.RESERVED
            live = LiveHold(command.expires_at_ms, decoded.channel)
            self._record(
                sku,
                command.reservation_id,
                "held" if held else "refused",
                live,
                result.lines,
                now_ms,
                reason=result.reason,
            )
        elif result.lines and (was := ended.get(command.reservation_id)) is not None:
            self._record(sku, command.reservation_id, "released", was, result.lines, now_ms)

    def due(self, now_ms: int) -> dict[str, dict[str, LiveHold]]:
        """SKU -> hold id -> its row, for the live holds of owned SKUs due at ``now_ms``."""
        if self._rescan:
            self._due = [
                (LiveHold(*orjson.loads(v)).expires_at_ms, *_split(k))
                for k, v in self.store.stock_holds.items()
            ]
            heapq.heapify(self._due)
            self._rescan = False
        due: dict[str, dict[str, LiveHold]] = {}
        while self._due and self._due[0][0] <= now_ms:
            _, sku, hold = heapq.heappop(self._due)
            live = self.live(sku, hold)
            if live is not None and live.expires_at_ms <= now_ms and self._owns(sku):
                due.setdefault(sku, {})[hold] = live
        return due

    def expired(
        self,
        sku: str,
        holds: Mapping[str, LiveHold],
        released: Mapping[str, Sequence[tuple[str, int]]],
        now_ms: int,
    ) -> None:
        for hold, live in holds.items():
            self.store.stock_holds.pop(_key(sku, hold))
            self._record(sku, hold, "expired", live, released.get(hold, ()), now_ms)

    def shed(self, sku: str, hold: str, lines: Sequence[tuple[str, int]], reason: str, now_ms: int) -> None:
        """The ledger shed the hold (the stock under it went): it is over, like a release."""
        live = self.live(sku, hold)
        if live is None:
            return  # already over (a repeat cannot shed it twice: its units are gone from the rows)
        self.store.stock_holds.pop(_key(sku, hold))
        self._record(sku, hold, "released", live, lines, now_ms, reason=reason)

    def _owns(self, sku: str) -> bool:
        return self.store.owns(self.store.partition_of(sku.encode()))

    def _record(
        self,
        sku: str,
        hold: str,
        status: str,
        live: LiveHold,
        lines: Sequence[tuple[str, int]],
        now_ms: int,
        **extra: Any,
    ) -> None:
        body = [{"sku": sku, "location_id": loc, "quantity": units} for loc, units in lines]
        record = hold_record(hold, sku, status, live.channel, live.expires_at_ms, body, now_ms, **extra)
        self.outbox.add(self.topic, f"{hold}|{sku}".encode(), record)
        self.metrics.holds.labels(live.channel, status).inc()


def _split(key: bytes) -> tuple[str, str]:
    sku, hold = key.decode().split("|", 1)
    return sku, hold


class HoldBook:
    """Every worker's view of ``oms.holds.v1``: hold id -> SKU (None: the request) -> latest record."""

    PRUNE_EVERY_S: Final = 60.0

    def __init__(self) -> None:
        self.holds: dict[str, dict[str | None, dict[str, Any]]] = {}
        self._pruned_at = time.monotonic()

    def on_records(self, records: Sequence[Any]) -> None:
        for record in records:
            if record.key is None:
                continue
            hold, _, sku = record.key.decode(errors="replace").partition("|")
            if record.value is None:
                self.holds.get(hold, {}).pop(sku or None, None)
                continue
            self.holds.setdefault(hold, {})[sku or None] = orjson.loads(record.value)
        if time.monotonic() - self._pruned_at > self.PRUNE_EVERY_S:
            self._prune(clock.now_ms())

    def get(self, hold_id: str) -> dict[str | None, dict[str, Any]]:
        return self.holds.get(hold_id, {})

    def held_units(self, hold_id: str) -> dict[str, dict[str, int]]:
        """SKU -> location -> units the hold holds now: what an order placed with it may plan on
        beyond the published availability (which no longer shows them)."""
        units: dict[str, dict[str, int]] = {}
        for sku, record in self.get(hold_id).items():
            if sku is not None and record["status"] == "held":
                units[sku] = {line["location_id"]: line["quantity"] for line in record["lines"]}
        return units

    def _prune(self, now_ms: int) -> None:
        """Holds long expired are forgotten: the book stays as small as the holds of the last hour."""
        self._pruned_at = time.monotonic()
        stale = now_ms - HELD_RECORDS_FOR_S * 1000
        for hold in [h for h, rs in self.holds.items() if all(expires_at_ms(r) < stale for r in rs.values())]:
            del self.holds[hold]
