"""Create the topics of the catalogue (idempotent) with the settings' partitions and replication."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from oms_streams.config import Settings
from oms_streams.streaming.topics import ALL_TOPICS, TopicSpec


def ensure_topics(
    settings: Settings, specs: tuple[TopicSpec, ...] = ALL_TOPICS, timeout_s: float = 30
) -> list[str]:
    """Create missing topics; returns the names created. Existing topics are left as they are."""
    admin = AdminClient(settings.confluent_config())
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    wanted = [
        NewTopic(
            settings.topic(spec.name),
            num_partitions=spec.partitions(settings),
            replication_factor=spec.replication_factor(settings),
            config=spec.kafka_config(),
        )
        for spec in specs
        if settings.topic(spec.name) not in existing
    ]
    return _create(admin, wanted, timeout_s)


def ensure_changelogs(settings: Settings, names: list[str], timeout_s: float = 30) -> list[str]:
    """Create missing table changelogs: compacted, one partition per stock partition (they are
    named without the topic prefix, as faust names its tables' changelogs)."""
    admin = AdminClient(settings.confluent_config())
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    wanted = [
        NewTopic(
            name,
            num_partitions=settings.partitions,
            replication_factor=settings.replication_factor,
            config={"cleanup.policy": "compact"},
        )
        for name in names
        if name not in existing
    ]
    return _create(admin, wanted, timeout_s)


def _create(admin: AdminClient, wanted: list[NewTopic], timeout_s: float) -> list[str]:
    if not wanted:
        return []
    created = []
    for name, future in admin.create_topics(wanted, request_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
            created.append(name)
        except KafkaException as error:
            if error.args[0].name() != "TOPIC_ALREADY_EXISTS":  # another worker won the race
                raise
    return created


def first_offset_on(settings: Settings) -> Callable[[str, int, int], Awaitable[int | None]]:
    """``first_record_offset`` on the settings' broker, in a thread: (topic, partition, offset)."""

    async def first_offset(topic: str, partition: int, offset: int) -> int | None:
        return await asyncio.get_running_loop().run_in_executor(
            None, first_record_offset, settings.confluent_config(), topic, partition, offset
        )

    return first_offset


def group_offsets_on(settings: Settings) -> Callable[[list[tuple[str, int]]], Awaitable[dict[Any, int]]]:
    """``group_committed_offsets`` of the worker's consumer group on the settings' broker, in a
    thread: [(topic, partition)] -> {(topic, partition): committed offset}."""

    async def committed(partitions: list[tuple[str, int]]) -> dict[Any, int]:
        return await asyncio.get_running_loop().run_in_executor(
            None, group_committed_offsets, settings.confluent_config(), settings.app_id, partitions
        )

    return committed


def group_committed_offsets(
    client_config: dict[str, Any], group: str, partitions: list[tuple[str, int]], timeout_s: float = 10.0
) -> dict[tuple[str, int], int]:
    """The group's committed offsets (the next to read) of those partitions it ever committed.
    Blocking: run it in a thread."""
    admin = AdminClient(client_config)
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(t, p) for t, p in partitions])
    result = admin.list_consumer_group_offsets([request], request_timeout=timeout_s)[group].result(timeout_s)
    return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions if tp.offset >= 0}


def first_record_offset(
    client_config: dict[str, Any], topic: str, partition: int, offset: int, timeout_s: float = 10.0
) -> int | None:
    """The offset of the first record the broker holds at or after ``offset`` in the partition, or
    None when it holds none there (the end of the log). Blocking: run it in a thread. Raises
    TimeoutError when the broker does not answer in time."""
    consumer = Consumer(
        {**client_config, "group.id": "oms-probe", "enable.auto.commit": False, "enable.partition.eof": True}
    )
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is None:
                return message.offset()
            if error.code() == KafkaError._PARTITION_EOF:
                return None
            if error.fatal():
                raise KafkaException(error)
        raise TimeoutError(f"no answer for {topic}[{partition}] at {offset} within {timeout_s} s")
    finally:
        consumer.close()
