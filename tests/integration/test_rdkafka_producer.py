"""The worker's producer (faust's, sending through librdkafka) against the real broker: keys land
where oms-streams' partitioning says, flush means acknowledged, and a record that cannot be sent
fails its own delivery without stopping the producer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import faust
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from faust.exceptions import ProducerSendError

from oms_streams.streaming import rdkafka_producer
from oms_streams.streaming.partitioning import partition_for
from tests.kafka_broker import make_topics

pytestmark = pytest.mark.kafka

PARTITIONS = 4


@pytest.fixture
async def producer(
    kafka_bootstrap: str, topic_prefix: str
) -> AsyncIterator[rdkafka_producer.RdKafkaProducer]:
    app = faust.App(f"{topic_prefix}producer", broker=f"kafka://{kafka_bootstrap}", loghandlers=[])
    rdkafka_producer.install(app, {"bootstrap.servers": kafka_bootstrap})
    started = app.producer
    assert isinstance(started, rdkafka_producer.RdKafkaProducer)
    await started.start()
    try:
        yield started
    finally:
        await started.stop()


def _read_all(bootstrap: str, topic: str, expected: int) -> list[tuple[Any, ...]]:
    """(partition, offset, key, value) of the topic's first ``expected`` records."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    seen: list[tuple[Any, ...]] = []
    try:
        for _ in range(100):
            for message in consumer.consume(1000, 0.2):
                if message.error() is None:
                    seen.append((message.partition(), message.offset(), message.key(), message.value()))
            if len(seen) >= expected:
                break
    finally:
        consumer.close()
    return seen


async def test_keys_land_in_their_partition_and_flush_means_acknowledged(
    producer: rdkafka_producer.RdKafkaProducer, kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}keys"
    make_topics(kafka_bootstrap, [topic], partitions=PARTITIONS)
    keys = [f"SKU-{i:05d}".encode() for i in range(200)]
    deliveries = [await producer.send(topic, key, b"v-" + key, None, None, None) for key in keys]
    # An explicit partition wins over the key (faust's changelog writes name theirs).
    pinned = await producer.send(topic, b"SKU-00000", b"pinned", 3, None, {"origin": b"test"})

    await producer.flush()

    assert all(delivery.done() for delivery in (*deliveries, pinned))
    for key, delivery in zip(keys, deliveries, strict=True):
        metadata = delivery.result()
        assert metadata.partition == partition_for(key, PARTITIONS), key
        assert metadata.topic == topic and metadata.offset >= 0
    assert pinned.result().partition == 3
    records = _read_all(kafka_bootstrap, topic, len(keys) + 1)
    assert len(records) == len(keys) + 1
    by_key = {key: partition for partition, _, key, value in records if value != b"pinned"}
    assert by_key == {key: partition_for(key, PARTITIONS) for key in keys}


async def test_a_record_that_cannot_be_sent_fails_alone(
    producer: rdkafka_producer.RdKafkaProducer, kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}sizes"
    make_topics(kafka_bootstrap, [topic], partitions=PARTITIONS)
    with pytest.raises(ProducerSendError):
        await producer.send(topic, b"big", b"x" * 2_000_000, None, None, None)  # over message.max.bytes
    delivery = await producer.send(topic, b"small", b"fine", None, None, None)
    await producer.flush()
    assert delivery.result().partition == partition_for(b"small", PARTITIONS)


async def test_a_record_not_delivered_is_fatal_and_nothing_is_sent_or_flushed_after_it(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    fatal: list[str] = []
    clean_stops: list[bool] = []
    app = faust.App(f"{topic_prefix}fatal", broker=f"kafka://{kafka_bootstrap}", loghandlers=[])
    rdkafka_producer.install(
        app,
        {"bootstrap.servers": kafka_bootstrap, "message.timeout.ms": 1000},
        on_fatal=fatal.append,
        on_clean_stop=lambda: clean_stops.append(True),
    )
    producer = app.producer
    assert isinstance(producer, rdkafka_producer.RdKafkaProducer)
    await producer.start()
    try:
        # A topic that does not exist is not created by a send: its record times out.
        lost = await producer.send(f"{topic_prefix}missing", b"k", b"v", None, None, None)
        with pytest.raises(ProducerSendError, match="not delivered"):
            await producer.flush()  # faust flushes before it commits: so nothing is committed
        assert lost.done() and isinstance(lost.exception(), ProducerSendError)
        assert len(fatal) == 1 and "missing" in fatal[0]
        with pytest.raises(ProducerSendError, match="earlier record was not delivered"):
            await producer.send(f"{topic_prefix}missing", b"k", b"later", None, None, None)
    finally:
        await producer.stop()
    assert clean_stops == []  # the next start rebuilds its tables from their changelogs
    assert len(fatal) == 1


async def test_records_sent_together_are_flushed_together_and_one_lost_among_them_is_fatal(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    fatal: list[str] = []
    app = faust.App(f"{topic_prefix}many", broker=f"kafka://{kafka_bootstrap}", loghandlers=[])
    rdkafka_producer.install(
        app, {"bootstrap.servers": kafka_bootstrap, "message.timeout.ms": 1000}, on_fatal=fatal.append
    )
    producer = app.producer
    assert isinstance(producer, rdkafka_producer.RdKafkaProducer)
    await producer.start()
    topic = f"{topic_prefix}many"
    make_topics(kafka_bootstrap, [topic], partitions=PARTITIONS)
    try:
        keys = [f"SKU-{i:05d}".encode() for i in range(300)]
        await producer.send_many([(topic, key, b"v", None) for key in keys] + [(topic, b"pin", b"p", 2)])
        with pytest.raises(ProducerSendError):  # over message.max.bytes: refused with the rest of its group
            await producer.send_many([(topic, b"big", b"x" * 2_000_000, None), (topic, b"after", b"v", None)])
        await producer.flush()
        records = _read_all(kafka_bootstrap, topic, len(keys) + 1)
        assert {key: p for p, _, key, _ in records if key != b"pin"} == {
            key: partition_for(key, PARTITIONS) for key in keys
        }
        assert (2, b"pin") in {(p, key) for p, _, key, _ in records}

        await producer.send_many([(topic, b"k", b"v", None), (f"{topic_prefix}missing", b"k", b"v", None)])
        with pytest.raises(ProducerSendError, match="not delivered"):
            await producer.flush()
        assert len(fatal) == 1 and "missing" in fatal[0]
        with pytest.raises(ProducerSendError, match="earlier record was not delivered"):
            await producer.send_many([(topic, b"k", b"later", None)])
    finally:
        await producer.stop()
