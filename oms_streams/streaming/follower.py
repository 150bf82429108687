"""Read a whole topic on every worker, outside any consumer group.

Config topics and the availability feed are small and compacted, and every worker needs all of them
(one partition of config would otherwise go to one worker only). A follower assigns itself every
partition, reads from the beginning, hands each batch of records to a callback, and can tell when
it has caught up with the end of the topic as it was a moment ago.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from mode import Service

from oms_streams.config import Settings

log = logging.getLogger(__name__)

OnRecords = Callable[[Sequence[Any]], None]


class TopicFollower(Service):
    def __init__(
        self,
        settings: Settings,
        topics: Sequence[str],
        on_records: OnRecords,
        *,
        max_wait_ms: int = 50,
        min_bytes: int = 1,
        **kwargs: Any,
    ) -> None:
        """A fetch returns once ``min_bytes`` are there or after ``max_wait_ms``; each costs the
        worker and the broker CPU, so a busy topic is read in batches and a quiet one asked less often."""
        super().__init__(**kwargs)
        self.settings = settings
        self.max_wait_ms = max_wait_ms
        self.min_bytes = min_bytes
        self.topics = list(topics)
        self.on_records = on_records
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        self._next_offset: dict[TopicPartition, int] = {}
        self._assigned = asyncio.Event()

    @property
    def label(self) -> str:
        return f"TopicFollower({', '.join(self.topics)})"

    async def on_start(self) -> None:
        consumer = AIOKafkaConsumer(
            **self.settings.aiokafka_config(),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.max_wait_ms,
            fetch_min_bytes=self.min_bytes,
        )
        await consumer.start()
        partitions: dict[str, set[int]] = {}
        for _ in range(100):  # topic metadata can lag topic creation by a moment
            cluster = await consumer._client.fetch_all_metadata()
            partitions = {t: cluster.partitions_for_topic(t) or set() for t in self.topics}
            if all(partitions.values()):
                break
            await asyncio.sleep(0.1)
        else:
            missing = [t for t, p in partitions.items() if not p]
            raise RuntimeError(f"{self.label}: topics {missing} do not exist; run `oms topics create`")
        self._partitions = [TopicPartition(t, p) for t in self.topics for p in sorted(partitions[t])]
        consumer.assign(self._partitions)
        await consumer.seek_to_beginning(*self._partitions)
        self._consumer = consumer
        self._assigned.set()
        self.add_future(self._follow())

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def _follow(self) -> None:
        assert self._consumer is not None
        while not self.should_stop:
            batches = await self._consumer.getmany(timeout_ms=2 * self.max_wait_ms, max_records=5000)
            for tp, records in batches.items():
                try:
                    self.on_records(records)
                except Exception:  # one bad callback must not stop the follower
                    log.exception("%s: callback failed on %s", self.label, tp)
                self._next_offset[tp] = records[-1].offset + 1

    async def caught_up(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything on the topics as of now has been handed to the callback."""
        await asyncio.wait_for(self._assigned.wait(), timeout_s)
        assert self._consumer is not None
        ends = await self._consumer.end_offsets(self._partitions)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while any(self._next_offset.get(tp, 0) < end for tp, end in ends.items() if end > 0):
            # A compacted topic may end on an offset that no longer holds a record: ask the consumer.
            positions = {tp: await self._consumer.position(tp) for tp in ends}
            if all(positions[tp] >= end for tp, end in ends.items()):
                return True
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True
