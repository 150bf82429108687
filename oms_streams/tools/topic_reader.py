"""Read whole topics as any other system of the retailer would: from the beginning up to the ends
seen at the start, with a plain consumer that joins no group and commits nothing (``oms audit``,
``oms report``)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from oms_streams.config import Settings

OnRecord = Callable[[str, int, int, int, bytes | None, bytes | None], None]
"""(topic, partition, offset, timestamp ms, key, value) of each record read."""


def read_to_end(
    settings: Settings, client: str, names: Iterable[str], on_record: OnRecord, *, timeout_s: float
) -> set[str]:
    """Hands every record of the named topics to ``on_record``, partition by partition in offset
    order; returns the names the broker has no such topic for. Records produced after the start are
    left out. Raises OSError when the broker cannot be reached or the topics are not read in time."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

    deadline = time.monotonic() + timeout_s
    consumer = Consumer(
        {
            **settings.confluent_config(),
            # Required by the client, never joined: partitions are assigned, no offsets are committed.
            "group.id": f"{client}-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "client.id": client,
            # An unreachable broker is reported once, as the OSError below, not as a log line per retry.
            "log_level": 0,
        }
    )
    try:
        try:
            metadata = consumer.list_topics(timeout=max(1.0, min(10.0, timeout_s)))
        except KafkaException as error:
            raise OSError(f"cannot read topic metadata from {settings.kafka_bootstrap}: {error}") from error
        missing: set[str] = set()
        ends: dict[tuple[str, int], int] = {}
        assignment = []
        for name in names:
            found = metadata.topics.get(name)
            if found is None or found.error is not None or not found.partitions:
                missing.add(name)
                continue
            for partition in sorted(found.partitions):
                low, high = consumer.get_watermark_offsets(TopicPartition(name, partition), timeout=10)
                if high > low:
                    ends[(name, partition)] = high
                    assignment.append(TopicPartition(name, partition, OFFSET_BEGINNING))
        if assignment:
            consumer.assign(assignment)
        while ends:
            if time.monotonic() >= deadline:
                left = ", ".join(f"{t}[{p}]" for t, p in sorted(ends)[:5])
                raise OSError(f"timed out after {timeout_s:g} s reading the topics (not at the end: {left})")
            messages = consumer.consume(num_messages=1000, timeout=0.5)
            if not messages:
                _drop_finished(consumer, ends, TopicPartition)
                continue
            for message in messages:
                _hand_over(message, ends, on_record)
    finally:
        consumer.close()
    return missing


def _hand_over(message: Any, ends: dict[tuple[str, int], int], on_record: OnRecord) -> None:
    if message.error():
        return
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None:
        return
    end = ends.get((topic, partition))
    if end is None or offset >= end:
        return  # produced after the read started
    _, timestamp = message.timestamp()
    on_record(topic, partition, offset, max(0, timestamp), message.key(), message.value())
    if offset + 1 >= end:
        del ends[(topic, partition)]


def _drop_finished(consumer: Any, ends: dict[tuple[str, int], int], topic_partition: Any) -> None:
    """Partitions whose position passed their end without a last record to see (a compacted gap or a
    transaction marker at the end)."""
    if not ends:
        return
    positions = consumer.position([topic_partition(t, p) for t, p in ends])
    for tp in positions:
        if tp.offset >= 0 and tp.offset >= ends.get((tp.topic, tp.partition), 0):
            ends.pop((tp.topic, tp.partition), None)
