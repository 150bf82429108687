"""Which stock movements a ledger has applied in the last days: the id store behind its dedupe.

A position's journal holds its last 64 movements, enough for count semantics but not for a till
that re-sends a day of sales after an outage. So every applied movement's (SKU, location, event id)
is also a key of the ``stock_event_ids`` table, valued with when it was applied, for
``OMS_DEDUPE_WINDOW_DAYS``: a re-send within that window of the first copy is a duplicate however
many movements came in between. The table is co-partitioned with the stock topics (the SKU leads
the key), so it lives in RocksDB with the partition's other state and comes back from its changelog
after a crash or a rebalance. A sweep deletes what is older than the window (a changelog tombstone
each), so the store holds about one window of movements.

The id and its position are two changelog records, and a crash can keep one and lose the other. An
id without its position's write would turn the re-read movement into a "duplicate" that is in no
state: lost. So each id carries its position's ``applied`` count after it, and the store answers
only for movements the position's journal has forgotten: at least ``JOURNAL_WINDOW`` movements
older than the state. A younger one is the journal's to recognise; if the journal does not know it,
the state does not contain it (its write was lost, and its input, not committed, is read again), or
a count contains it (and the movement is ``superseded``). A position's write without its id is
caught by its journal too, unless that one batch applied 64 more movements at that position.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from oms_streams.domain.inventory import JOURNAL_WINDOW, Movement, StockPosition
from oms_streams.domain.ledger import StockCommand

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
SWEEP_CHUNK = 5_000
"""Keys looked at (or deleted) between two yields to the event loop."""


def id_key(sku: str, location_id: str, event_id: str) -> bytes:
    return f"{sku}|{location_id}|{event_id}".encode()


class AppliedMovementIds:
    def __init__(self, table: Any, window_days: float) -> None:
        self.table = table
        """``LedgerStore.stock_event_ids``: a key is stored in its SKU's partition."""
        self.window_ms = int(window_days * DAY_MS)

    def seen(
        self, sku: str, commands: Iterable[StockCommand], positions: Mapping[str, StockPosition]
    ) -> set[tuple[str, str]]:
        """(location, event id) of the commands' movements applied within the window and at least
        ``JOURNAL_WINDOW`` movements before the state ``positions`` holds."""
        table, seen = self.table, set()
        for command in commands:
            event = command.event
            if not isinstance(event, Movement):
                continue
            value = table.get(id_key(sku, command.location_id, event.event_id))
            if value is None:
                continue
            position = positions.get(command.location_id)
            if position is not None and position.applied - int(value.split(b":", 1)[1]) >= JOURNAL_WINDOW:
                seen.add((command.location_id, event.event_id))
        return seen

    def remember(self, sku: str, applied: Iterable[tuple[str, str, int]], now_ms: int) -> None:
        table = self.table
        for location_id, event_id, count in applied:
            table[id_key(sku, location_id, event_id)] = f"{now_ms}:{count}".encode()

    async def forget_expired(self, now_ms: int, lock: asyncio.Lock) -> int:
        """Delete the ids applied before the window; returns how many. The stream goes on between
        chunks: the scan yields every ``SWEEP_CHUNK`` keys and deletes under the ledger's lock."""
        cutoff = now_ms - self.window_ms
        expired: list[bytes] = []
        try:
            for n, (key, value) in enumerate(self.table.items()):
                if int(value.split(b":", 1)[0]) < cutoff:
                    expired.append(key)
                if n % SWEEP_CHUNK == 0:
                    await asyncio.sleep(0)
        except RuntimeError:  # the in-memory store (tests, demos) changed while it was read
            log.info("event id sweep cut short by concurrent writes; %d expired ids found", len(expired))
        for start in range(0, len(expired), SWEEP_CHUNK):
            async with lock:
                for key in expired[start : start + SWEEP_CHUNK]:
                    self.table.pop(key, None)
            await asyncio.sleep(0)
        return len(expired)
