"""What a runtime decided to produce while it held its lock, produced in order once it has decided.

Records wait here until the batch is decided so that a batch's outputs (and its dead letters) leave
in the order they were decided; faust flushes the producer before it commits the batch's offsets.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from oms_streams.adapters.dlq import dead_letter_for
from oms_streams.metrics import Metrics, reason_class

Produce = Callable[[str, bytes, bytes | None], Awaitable[None]]
"""(topic, key, value): hands a record to the Kafka producer."""


class Outbox:
    def __init__(self, produce: Produce, dlq_topic: str, metrics: Metrics) -> None:
        self._produce = produce
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
        for topic, key, value in records:
            await self._produce(topic, key, value)
