"""The ledger's state: one local store per owned partition, written once per batch with its changelog.

The ledger reads its stock topics with its own consumer (``ledger_engine``), not faust's per-event
stream, so it keeps its state itself, as Kafka Streams does: a RocksDB store per partition (a dict
with ``OMS_TABLE_STORE=memory``) holding four tables, each with a compacted changelog topic named
as faust names a table's (``<app id>-<table>-changelog``, partition = the stock partition), so
``oms audit`` and the operators' tooling read them as before. Tables are keyed by SKU first
(``SKU``, ``SKU|LOCATION``, ``SKU|LOCATION|event id``): a key's partition is its SKU's.

A batch's writes wait in memory (reads see them) until ``commit``: then they go to the local stores
in one write batch per partition and to the changelogs, one record per key however often the batch
changed it. The engine commits the batch's input offsets only after the producer has acknowledged
them.

When a partition is given up, its store is closed with a checkpoint: the end of each changelog
partition, which at that moment holds every write made here. When it comes back, the store is
brought forward from the checkpoint (another worker may have written meanwhile); a store without a
checkpoint (first start, a crash: ``local_state`` removes every store after an unclean stop) is
restored from the changelog's beginning.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import rocksdict
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from oms_streams.streaming.partitioning import partition_for

log = logging.getLogger(__name__)

TABLES = ("stock_positions", "sku_locations", "stock_event_ids", "stock_holds")
"""Appended to only: a table's key prefix byte is its index here."""
MIB = 1024 * 1024
_NO_LEADER_YET = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._UNKNOWN_PARTITION,
    KafkaError._TIMED_OUT,
}
_CHECKPOINT = b"\x00checkpoint:"
"""Key prefix of a store's checkpoints (table keys start with a table prefix byte)."""


def changelog_topic(app_id: str, table: str) -> str:
    return f"{app_id}-{table}-changelog"


class Db(Protocol):
    def get(self, key: bytes) -> bytes | None: ...
    def write(self, writes: dict[bytes, bytes | None]) -> None: ...
    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]: ...
    def close(self) -> None: ...


class MemoryDb:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def write(self, writes: dict[bytes, bytes | None]) -> None:
        for key, value in writes.items():
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        # A copy: the ledger may write between two steps of a sweep's scan.
        return iter([(k, v) for k, v in self.data.items() if k.startswith(prefix)])

    def close(self) -> None:
        pass


class RocksDb:
    def __init__(self, path: Path) -> None:
        # Bounded like faust's table stores were here: the ledger caches hot positions itself.
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_write_buffer_size(8 * MIB)
        options.set_max_write_buffer_number(2)
        table = rocksdict.BlockBasedOptions()
        table.set_block_cache(rocksdict.Cache(32 * MIB))
        table.set_bloom_filter(10, False)
        options.set_block_based_table_factory(table)
        path.mkdir(parents=True, exist_ok=True)
        self.db = rocksdict.Rdict(str(path), options)

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self.db.get(key)
        return value

    def write(self, writes: dict[bytes, bytes | None]) -> None:
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in writes.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        self.db.write(batch)

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        for key, value in self.db.items(from_key=prefix):
            if not (isinstance(key, bytes) and key.startswith(prefix)):
                return
            yield key, value

    def close(self) -> None:
        self.db.close()


Send = Callable[[list[tuple[str, bytes | None, bytes | None, int | None]]], Awaitable[Any]]
"""Hands (topic, key, value, partition) records to the producer (``RdKafkaProducer.send_many``)."""


class Table:
    """One table's view of the store, dict-like for the runtime: a key is routed to its SKU's
    partition; reads see the batch's pending writes."""

    def __init__(self, store: LedgerStore, prefix: bytes) -> None:
        self._store, self._prefix = store, prefix

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:
        value = self._store.get(self._prefix + key, key)
        return default if value is None else value

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._store.put(self._prefix + key, key, value)

    def pop(self, key: bytes, default: bytes | None = None) -> bytes | None:
        value = self.get(key, default)
        self._store.put(self._prefix + key, key, None)
        return value

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """The committed rows of every owned partition."""
        skip = len(self._prefix)
        for key, value in self._store.scan(self._prefix):
            yield key[skip:], value

    def keys(self) -> Iterator[bytes]:
        return (key for key, _ in self.items())


@dataclass
class _Partition:
    db: Db
    path: Path | None


class LedgerStore:
    def __init__(
        self, app_id: str, partitions: int, data_dir: Path | None, client_config: dict[str, Any]
    ) -> None:
        self.partitions = partitions
        self.data_dir = data_dir
        """None: in memory, gone with the partition (restored from the changelog when it is back)."""
        self.client_config = client_config
        self.topics = {table: changelog_topic(app_id, table) for table in TABLES}
        self._prefixes = {table: bytes([ord("a") + i]) for i, table in enumerate(TABLES)}
        self._topic_of = {prefix: self.topics[table] for table, prefix in self._prefixes.items()}
        self.stock_positions = Table(self, self._prefixes["stock_positions"])
        """'SKU|LOCATION' -> position row (see adapters.stock.position_to_row)."""
        self.sku_locations = Table(self, self._prefixes["sku_locations"])
        """SKU -> the locations that ever held a position of it: a SKU's ledger loads without a scan."""
        self.stock_event_ids = Table(self, self._prefixes["stock_event_ids"])
        """'SKU|LOCATION|event id' -> '<applied ms>:<applied count>' (see event_ids)."""
        self.stock_holds = Table(self, self._prefixes["stock_holds"])
        """'SKU|hold id' -> [expires at ms, channel] of each live cart hold (see holds)."""
        self._owned: dict[int, _Partition] = {}
        self._pending: dict[int, dict[bytes, bytes | None]] = {}

    # --- rows -----------------------------------------------------------------------------------

    def partition_of(self, key: bytes) -> int:
        return partition_for(key.split(b"|", 1)[0], self.partitions)

    def get(self, stored_key: bytes, key: bytes) -> bytes | None:
        partition = self.partition_of(key)
        pending = self._pending.get(partition)
        if pending is not None and stored_key in pending:
            return pending[stored_key]
        owned = self._owned.get(partition)
        return owned.db.get(stored_key) if owned is not None else None

    def put(self, stored_key: bytes, key: bytes, value: bytes | None) -> None:
        self._pending.setdefault(self.partition_of(key), {})[stored_key] = value

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Rows of every owned partition; a partition given up while the scan waits ends its part."""
        for partition, owned in list(self._owned.items()):
            for row in owned.db.scan(prefix):
                if self._owned.get(partition) is not owned:
                    break
                yield row

    def owns(self, partition: int) -> bool:
        return partition in self._owned

    async def commit(self, send: Send) -> int:
        """The batch's writes to the local stores and their changelogs; returns how many. Writes to
        a partition no longer owned are dropped: its new owner has the state."""
        pending, self._pending = self._pending, {}
        records: list[tuple[str, bytes | None, bytes | None, int | None]] = []
        topic_of = self._topic_of
        for partition, writes in pending.items():
            owned = self._owned.get(partition)
            if owned is None:
                log.warning("dropped %d writes to partition %d, given up meanwhile", len(writes), partition)
                continue
            owned.db.write(writes)
            records.extend((topic_of[k[:1]], k[1:], value, partition) for k, value in writes.items())
        await send(records)
        return len(records)

    # --- ownership ------------------------------------------------------------------------------

    def take(self, partitions: list[int]) -> int:
        """Open the stores of newly assigned partitions, brought up to their changelogs' ends
        (blocking: run it in a thread). Returns the number of changelog records read."""
        starts: dict[tuple[str, int], int] = {}
        for partition in partitions:
            if partition in self._owned:
                continue
            path = self.data_dir / f"p{partition}" if self.data_dir is not None else None
            db: Db = RocksDb(path) if path is not None else MemoryDb()
            checkpoint = {t: db.get(_CHECKPOINT + t.encode()) for t in self.topics.values()}
            if path is not None and any(v is None for v in checkpoint.values()):
                db.close()
                shutil.rmtree(path)  # nothing says what it holds: start from the changelog
                db = RocksDb(path)
                checkpoint = dict.fromkeys(checkpoint)
            # It is written from now on: its checkpoints no longer hold.
            db.write({_CHECKPOINT + t.encode(): None for t in self.topics.values()})
            self._owned[partition] = _Partition(db, path)
            for topic, offset in checkpoint.items():
                starts[(topic, partition)] = int(offset) if offset is not None else 0
        return self._restore(starts)

    def ends_of(self, partitions: list[int]) -> dict[tuple[str, int], int]:
        """The changelogs' ends of partitions about to be given up, taken while they are still
        owned and every write to them is acknowledged: their stores' checkpoints (blocking)."""
        if self.data_dir is None:
            return {}
        return self._ends([(t, p) for p in partitions if p in self._owned for t in self.topics.values()])

    def give_up(self, partitions: list[int], ends: dict[tuple[str, int], int]) -> None:
        """Close the stores of partitions given up, with ``ends`` (``ends_of``) as checkpoints. On the
        event loop's thread, like every read: a scan never meets a store closed under it."""
        self._pending = {p: w for p, w in self._pending.items() if p not in partitions}
        for partition in partitions:
            owned = self._owned.pop(partition, None)
            if owned is None:
                continue
            checkpoint = {_CHECKPOINT + t.encode(): ends.get((t, partition)) for t in self.topics.values()}
            if owned.path is not None and None not in checkpoint.values():
                owned.db.write({k: str(v).encode() for k, v in checkpoint.items()})
            owned.db.close()

    def owned(self) -> list[int]:
        return sorted(self._owned)

    def _client(self) -> Consumer:
        return Consumer(
            {
                **self.client_config,
                "group.id": "oms-ledger-restore",  # never joins: partitions are assigned, not subscribed
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )

    def _ends(self, tps: list[tuple[str, int]], client: Consumer | None = None) -> dict[tuple[str, int], int]:
        """The changelogs' end offsets, asked with ``client`` (else a client of their own)."""
        own = client is None
        client = client or self._client()
        deadline = time.monotonic() + 60.0
        ends: dict[tuple[str, int], int] = {}
        try:
            for t, p in tps:
                while (t, p) not in ends:
                    try:
                        ends[(t, p)] = client.get_watermark_offsets(TopicPartition(t, p), timeout=30)[1]
                    except KafkaException as error:
                        # A changelog created a moment ago may have no leader yet.
                        if error.args[0].code() not in _NO_LEADER_YET or time.monotonic() > deadline:
                            raise
                        time.sleep(0.2)
            return ends
        finally:
            if own:
                client.close()

    def _restore(self, starts: dict[tuple[str, int], int]) -> int:
        if not starts:
            return 0
        prefix_of = {topic: prefix for prefix, topic in self._topic_of.items()}
        client = self._client()  # one client asks for the ends and reads up to them
        read = 0
        try:
            ends = self._ends(list(starts), client)
            todo = {tp: start for tp, start in starts.items() if start < ends[tp]}
            if not todo:
                return 0
            client.assign([TopicPartition(t, p, offset) for (t, p), offset in todo.items()])
            remaining = set(todo)
            while remaining:
                writes: dict[int, dict[bytes, bytes | None]] = {}
                for message in client.consume(10_000, timeout=1.0):
                    error = message.error()
                    tp: tuple[str, int] = (message.topic(), message.partition())  # type: ignore[assignment]
                    if error is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            raise KafkaException(error)
                        remaining.discard(tp)
                        continue
                    if (message.offset() or 0) >= ends[tp] - 1:
                        remaining.discard(tp)
                    key = prefix_of[tp[0]] + (message.key() or b"")
                    writes.setdefault(tp[1], {})[key] = message.value()
                    read += 1
                for partition, batch in writes.items():
                    self._owned[partition].db.write(batch)
        finally:
            client.close()
        log.info("restored %d ledger changelog records for partitions %s", read, sorted({p for _, p in todo}))
        return read
