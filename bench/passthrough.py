"""Bare consume→produce passthroughs: the ceiling a Kafka client can reach in one Python process.

Both read the pre-loaded movements topic from the beginning with their own consumer group and copy
every record, unchanged, to the same partition of an output topic. Measured from the first record
consumed to the last record acknowledged by the broker.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from confluent_kafka import Consumer, Producer


async def _aiokafka(bootstrap: str, src: str, dst: str, expected: int, group: str) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(
        src, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
        enable_auto_commit=False, fetch_max_bytes=52_428_800, max_partition_fetch_bytes=4_194_304,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=524_288, acks=1)
    await consumer.start()
    await producer.start()
    try:
        seen = 0
        first = None
        last_commit = time.monotonic()
        futures: list[asyncio.Future[Any]] = []
        while seen < expected:
            batches = await consumer.getmany(timeout_ms=100, max_records=5000)
            if batches and first is None:
                first = time.monotonic()
            for tp, records in batches.items():
                # One producer batch per partition and round: no per-record coroutine or future.
                batch = producer.create_batch()
                for record in records:
                    if batch.append(key=record.key, value=record.value, timestamp=None) is None:
                        futures.append(await producer.send_batch(batch, dst, partition=tp.partition))
                        batch = producer.create_batch()
                        batch.append(key=record.key, value=record.value, timestamp=None)
                if batch.record_count():
                    futures.append(await producer.send_batch(batch, dst, partition=tp.partition))
                seen += len(records)
            if time.monotonic() - last_commit > 1.0:
                await consumer.commit()
                last_commit = time.monotonic()
        await asyncio.gather(*futures)
        end = time.monotonic()
        await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()
    assert first is not None
    return {"events": seen, "seconds": end - first, "events_per_s": seen / (end - first)}


def aiokafka_passthrough(bootstrap: str, src: str, dst: str, expected: int, group: str) -> dict[str, Any]:
    return asyncio.run(_aiokafka(bootstrap, src, dst, expected, group))


def confluent_passthrough(bootstrap: str, src: str, dst: str, expected: int, group: str) -> dict[str, Any]:
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
        "enable.auto.commit": True, "auto.commit.interval.ms": 1000, "fetch.max.bytes": 52_428_800,
        "queued.max.messages.kbytes": 262_144,
    })
    producer = Producer({
        "bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 524_288, "acks": 1,
        "queue.buffering.max.messages": 500_000, "enable.idempotence": False,
    })
    consumer.subscribe([src])
    seen = 0
    first = None
    try:
        while seen < expected:
            messages = consumer.consume(num_messages=5000, timeout=0.1)
            if not messages:
                continue
            if first is None:
                first = time.monotonic()
            for message in messages:
                if message.error():
                    continue
                while True:
                    try:
                        producer.produce(dst, message.value(), message.key(), partition=message.partition())
                        break
                    except BufferError:
                        producer.poll(0.01)
                seen += 1
            producer.poll(0)
        remaining = producer.flush(60)
        end = time.monotonic()
    finally:
        consumer.close()
    assert first is not None
    return {"events": seen, "seconds": end - first, "events_per_s": seen / (end - first),
            "unacknowledged": remaining}
