"""What a runtime decided to produce while it held its lock, produced in order once it has decided.

Records wait here until the batch is decided so that a batch's outputs (and its dead letters) leave
in the order they were decided; faust flushes the producer before it commits the batch's offsets.

State before decisions: the order, sourcing and returns runtimes pass ``durable``, so their outputs
leave only once the batch's table writes are acknowledged. A worker that dies in between has
published no decision its restored state does not hold; reading its inputs again, it republishes
from that state (same ids), and never makes a second, different decision (an order rejected, then
allocated) after the first one's row was lost. The ledger does not wait: its outputs are
availability snapshots that a later record or the restart's resync corrects, and answers to
commands that are read again (see docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from oms_streams.adapters.dlq import dead_letter_for
from oms_streams.metrics import Metrics, reason_class
from oms_streams.streaming.partitioning import partition_for

Produce = Callable[[str, bytes, bytes | None], Awaitable[None]]
"""(topic, key, value): hands a record to the Kafka producer."""
Durable = Callable[[], Awaitable[None]]
"""Returns once every table write made so far is acknowledged by the broker."""
ProduceMany = Callable[[list[tuple[str, bytes | None, bytes | None, int | None]]], Awaitable[None]]
"""Hands (topic, key, value, partition or None) records to the producer at once."""


class Outbox:
    def __init__(
        self,
        produce: Produce,
        dlq_topic: str,
        metrics: Metrics,
        durable: Durable | None = None,
        produce_many: ProduceMany | None = None,
    ) -> None:
        self._produce = produce
        self._produce_many = produce_many
        self._durable = durable
        self._dlq_topic = dlq_topic
        self._metrics = metrics
        self._records: list[tuple[str, bytes, bytes | None]] = []

    def add(self, topic: str, key: bytes, value: bytes | None) -> None:
        self._records.append((topic, key, value))

    def dead_letter(self, reason: str, message: Any, now_ms: int) -> None:
        """The message goes to the dead-letter topic with the reason, and is counted."""
        self._metrics.dead_letters.labels(message.topic, reason_class(reason)).inc()
        self.add(self._dlq_topic, message.topic.encode(), dead_letter_for(reason, message, now_ms))

    async def flush(self) -> None:
        records, self._records = self._records, []
        if records and self._durable is not None:
            await self._durable()
        if self._produce_many is not None:
            await self._produce_many([(topic, key, value, None) for topic, key, value in records])
            return
        for topic, key, value in records:
            await self._produce(topic, key, value)


class PartitionBatches:
    """Items for one topic, grouped into one record per partition when drained into an outbox.

    Every record of the saga pays the per-record cost of Kafka and faust on both sides; a batch's
    reservation commands (or answers) grouped by partition pay it once per partition instead of
    once per item. A record is keyed by its first item's key, so it lands where every item belongs;
    ``MAX_ITEMS`` keeps it far below Kafka's 1 MB record limit.
    """

    MAX_ITEMS: Final = 500

    def __init__(
        self, topic: str, partitions: int | None, wrap: Callable[[list[dict[str, Any]], int], bytes]
    ) -> None:
        self._topic = topic
        self._partitions = partitions
        self._wrap = wrap
        self._groups: dict[int, list[tuple[str, dict[str, Any]]]] = {}

    def add(self, key: str, item: dict[str, Any]) -> None:
        # Without a partition count (a harness with no broker) everything shares one record.
        partition = partition_for(key.encode(), self._partitions) if self._partitions else 0
        self._groups.setdefault(partition, []).append((key, item))

    def drain_into(self, outbox: Outbox, now_ms: int) -> None:
        for keyed in self._groups.values():
            for start in range(0, len(keyed), self.MAX_ITEMS):
                chunk = keyed[start : start + self.MAX_ITEMS]
                record = self._wrap([item for _, item in chunk], now_ms)
                outbox.add(self._topic, chunk[0][0].encode(), record)
        self._groups.clear()
