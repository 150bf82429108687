"""Which rows of a table a worker still has to look at, and removing the finished ones.

A reload after a rebalance used to decode every row of the worker's partitions, every order ever
placed. Each runtime now keeps, beside its table, an index table (``<table>_index``, keyed like the
rows and co-partitioned with them): one small entry per row that is *open* (it may still change
without an event: a milestone to check, a command awaiting its answer) or *finished* with the
moment its retention ends (``domain.retention``). A reload reads the index, not the rows: open keys
are loaded, finished ones only go on a heap of removal times. The owner's sweep timer deletes a row
and its index entry when that time passes; faust writes a tombstone to both changelogs, so a
restarted or new owner does not restore them, and compaction drops them from the topic.

A row and its index entry are two changelog records: a crash between their acknowledgements can
keep one without the other. The runtimes mark a row's entry every time they load or store it (a
no-op when it is unchanged), so the next event of the order writes it again; an entry without a
row is dropped when the reload or the sweep finds it.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

import orjson

from oms_streams.domain.retention import Finished, RetentionPolicy, removable, removal_due_ms
from oms_streams.metrics import Metrics
from oms_streams.streaming.table_context import in_partition


class RetentionIndex:
    def __init__(
        self, index: Any, table: Any, topic: str, name: str, policy: RetentionPolicy, metrics: Metrics
    ) -> None:
        self.index = index
        self.table = table
        self.topic = topic
        """A source topic of both tables (their partitions match it), for writes no event caused."""
        self.name = name
        self.policy = policy
        self.metrics = metrics
        self._entries: dict[str, tuple[int, int | None]] = {}
        """Key -> (partition, removal time or None while open), for this worker's partitions."""
        self._due: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def mark(self, key: str, partition: int, finished: Finished | None) -> int | None:
        """The row is open (``finished`` None) or finished; writes the index only on a change.
        Returns the removal time (None while open)."""
        due = None if finished is None else removal_due_ms(finished, self.policy)
        entry = (partition, due)
        if self._entries.get(key) != entry:
            self._entries[key] = entry
            with in_partition(self.topic, partition):
                self.index[key] = orjson.dumps([key, partition, due])
            if due is not None:
                heapq.heappush(self._due, (due, key))
        return due

    def load(self) -> list[tuple[str, int]]:
        """After a rebalance: this worker's entries (the local index holds only its partitions, no
        standby replicas); returns the open keys with their partitions. No row is read."""
        self.forget()
        opened = []
        for _, raw in self.index.items():
            key, partition, due = orjson.loads(raw)
            self._entries[key] = (partition, due)
            if due is None:
                opened.append((key, partition))
            else:
                self._due.append((due, key))
        heapq.heapify(self._due)
        self.export()
        return opened

    def open_rows(self) -> list[tuple[str, bytes]]:
        """After a rebalance: the open rows of this worker's partitions, read through the index.
        Without an index (the first start of a worker that had none) every row, once: the caller
        marks each. An entry whose row is gone is dropped."""
        opened = self.load()
        if not self._entries:
            return [(_text(key), raw) for key, raw in self.table.items()]
        rows = []
        for key, partition in opened:
            raw = self.table.get(key)
            if raw is None:
                self.remove(key, partition, "")
            else:
                rows.append((key, raw))
        return rows

    def sweep(self, now_ms: int, finished_of: Callable[[str, bytes], Finished | None]) -> list[str]:
        """Remove the rows whose retention has passed, once ``finished_of`` (the row's end decided
        again from the row as it is now) agrees; the others are marked again. Returns the removed keys."""
        removed = []
        for key, partition in self.due(now_ms):
            raw = self.table.get(key)
            finished = None if raw is None else finished_of(key, raw)
            if raw is None:
                self.remove(key, partition, "")
            elif finished is not None and removable(finished, self.policy, now_ms):
                self.remove(key, partition, finished.ending.value)
                removed.append(key)
            else:
                self.mark(key, partition, finished)
        self.export()
        return removed

    def due(self, now_ms: int) -> list[tuple[str, int]]:
        """Keys (with their partitions) whose retention has passed, as marked: the caller checks
        each row once more and calls ``remove`` or ``mark``."""
        found = []
        while self._due and self._due[0][0] <= now_ms:
            due, key = heapq.heappop(self._due)
            entry = self._entries.get(key)
            if entry is not None and entry[1] == due:
                found.append((key, entry[0]))
        return found

    def remove(self, key: str, partition: int, ending: str) -> None:
        """Delete the row and its entry: a tombstone in each changelog."""
        with in_partition(self.topic, partition):
            if self.table.get(key) is not None:
                del self.table[key]
                self.metrics.retention_removed.labels(self.name, ending).inc()
            if self.index.get(key) is not None:
                del self.index[key]
        self._entries.pop(key, None)

    def forget(self) -> None:
        self._entries.clear()
        self._due.clear()

    def export(self) -> None:
        finished = sum(due is not None for _, due in self._entries.values())
        self.metrics.retention_rows.labels(self.name, "open").set(len(self._entries) - finished)
        self.metrics.retention_rows.labels(self.name, "finished").set(finished)


def _text(key: Any) -> str:
    return key.decode() if isinstance(key, bytes) else str(key)
