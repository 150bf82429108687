"""Real-broker smoke tests: both Kafka clients and faust-streaming against the project's Kafka 4.x.

Needs a broker: ``OMS_KAFKA_BOOTSTRAP`` or the private one from the ``kafka_bootstrap`` fixture
(tests/kafka_broker.py). Timings are printed (``-s``) and attached as junit properties.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from confluent_kafka import Producer

from tests.kafka_broker import make_topics

pytestmark = pytest.mark.kafka

RecordProperty = Callable[[str, object], None]

N_MESSAGES = 100
# Generous bounds for a loaded 2-core CI box; observed values are ~0.1-1.5 s (see report/README).
GROUP_JOIN_BUDGET_S = 20.0
DELIVERY_BUDGET_S = 60.0


def _produce(bootstrap: str, topic: str, items: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    errors: list[object] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(err)

    for key, value in items:
        producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
    assert producer.flush(30) == 0, "producer did not flush within 30s"
    assert not errors, f"delivery errors: {errors[:5]}"


async def _consume(
    consumer: AIOKafkaConsumer, want: int, budget_s: float
) -> list[tuple[bytes | None, bytes | None]]:
    got: list[tuple[bytes | None, bytes | None]] = []
    deadline = time.monotonic() + budget_s
    while len(got) < want and time.monotonic() < deadline:
        batches = await consumer.getmany(timeout_ms=500)
        for records in batches.values():
            got.extend((r.key, r.value) for r in records)
    return got


async def _wait_assignment(consumer: AIOKafkaConsumer, t0: float, budget_s: float) -> float:
    """Seconds from ``t0`` (just before ``consumer.start()``) until partitions are assigned."""
    while not consumer.assignment():
        if time.monotonic() - t0 > budget_s:
            pytest.fail(f"aiokafka consumer group join did not complete within {budget_s}s")
        await asyncio.sleep(0.02)
    return time.monotonic() - t0


async def test_confluent_produce_aiokafka_consume(
    kafka_bootstrap: str, topic_prefix: str, record_property: RecordProperty
) -> None:
    topic = f"{topic_prefix}smoke"
    make_topics(kafka_bootstrap, [topic], partitions=3)
    sent = [(f"k{i % 7}".encode(), f"v{i}".encode()) for i in range(N_MESSAGES)]
    await asyncio.to_thread(_produce, kafka_bootstrap, topic, sent)

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"{topic_prefix}g",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    t0 = time.monotonic()
    await consumer.start()
    start_s = time.monotonic() - t0
    try:
        # Depending on the aiokafka version start() may return before the group join completes.
        join_s = await _wait_assignment(consumer, t0, GROUP_JOIN_BUDGET_S)
        got = await _consume(consumer, N_MESSAGES, DELIVERY_BUDGET_S)
        total_s = time.monotonic() - t0
        await consumer.commit()
    finally:
        await consumer.stop()

    print(
        f"\naiokafka: start() {start_s:.3f}s, group join (start->assigned) {join_s:.3f}s, "
        f"{len(got)} msgs consumed in {total_s:.3f}s"
    )
    record_property("aiokafka_group_join_s", round(join_s, 3))
    assert len(got) == N_MESSAGES
    assert sorted(got) == sorted(sent)
    # Per-key order is preserved (same key -> same partition).
    for k in {k for k, _ in sent}:
        assert [v for kk, v in got if kk == k] == [v for kk, v in sent if kk == k]


async def test_faust_agent_forwards(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, record_property: RecordProperty
) -> None:
    import faust

    src_name, dst_name = f"{topic_prefix}in", f"{topic_prefix}out"
    # faust only auto-declares *internal* topics; source/sink topics must exist (as in production).
    make_topics(kafka_bootstrap, [src_name, dst_name])

    app = faust.App(
        f"{topic_prefix}app",
        broker=f"kafka://{kafka_bootstrap}",
        store="memory://",
        datadir=str(tmp_path / "faust"),
        web_enabled=False,
        topic_partitions=1,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
    )
    src = app.topic(src_name, value_serializer="raw")
    dst = app.topic(dst_name, value_serializer="raw")
    rebalanced = asyncio.Event()

    @app.agent(src)
    async def forward(stream):  # type: ignore[no-untyped-def]
        async for value in stream:
            await dst.send(value=value)

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]
    async def _on_rebalance_complete(sender, **kwargs):  # type: ignore[no-untyped-def]
        rebalanced.set()

    # Half the input exists before the app joins (exercises auto_offset_reset), half after.
    values = [f"m{i}".encode() for i in range(20)]
    await asyncio.to_thread(_produce, kafka_bootstrap, src_name, [(b"k", v) for v in values[:10]])

    checker = AIOKafkaConsumer(
        dst_name,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"{topic_prefix}check",
        auto_offset_reset="earliest",
    )
    t0 = time.monotonic()
    await app.start()
    try:
        await asyncio.wait_for(rebalanced.wait(), GROUP_JOIN_BUDGET_S)
        join_s = time.monotonic() - t0
        await asyncio.to_thread(_produce, kafka_bootstrap, src_name, [(b"k", v) for v in values[10:]])
        await checker.start()
        try:
            got = await _consume(checker, len(values), DELIVERY_BUDGET_S)
        finally:
            await checker.stop()
        total_s = time.monotonic() - t0
    finally:
        await app.stop()

    print(f"\nfaust: start+rebalance {join_s:.3f}s, {len(got)} msgs forwarded in {total_s:.3f}s")
    record_property("faust_rebalance_s", round(join_s, 3))
    assert [v for _, v in got] == values


def test_the_broker_says_where_the_first_record_at_or_after_an_offset_is(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """What the healer asks before it commits past an offset (faust_fixes.heal_dropped_records): a
    transaction's commit marker takes an offset that holds no record, the log's end holds none."""
    from oms_streams.streaming.admin import first_record_offset

    topic = make_topics(kafka_bootstrap, [f"{topic_prefix}probe"])[0]
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"{topic_prefix}tx"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, key=b"k", value=b"in a transaction")  # offset 0; its marker takes 1
    producer.commit_transaction(30)
    # The coordinator writes the marker after the commit returns: wait for it to take offset 1.
    from confluent_kafka import Consumer, TopicPartition

    watcher = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"{topic_prefix}w"})
    deadline = time.monotonic() + 30
    while watcher.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1] < 2:
        assert time.monotonic() < deadline, "the transaction marker was not written"
        time.sleep(0.1)
    watcher.close()
    plain = Producer({"bootstrap.servers": kafka_bootstrap})
    plain.produce(topic, key=b"k", value=b"after it")  # offset 2
    assert plain.flush(30) == 0

    config = {"bootstrap.servers": kafka_bootstrap}
    assert first_record_offset(config, topic, 0, 0) == 0
    assert first_record_offset(config, topic, 0, 1) == 2  # the marker: no record at 1
    assert first_record_offset(config, topic, 0, 3) is None  # the end of the log
