"""A key's partition is the Java clients' murmur2; an event outside it is refused with the fix; a
batch record holds items of its own partition only."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

from aiokafka.partitioner import DefaultPartitioner

from oms_streams.metrics import Metrics
from oms_streams.streaming.outbox import Outbox, PartitionBatches
from oms_streams.streaming.partitioning import misrouted, partition_for, strays


def test_the_partition_is_the_one_aiokafka_and_the_java_clients_choose():
    partitions = list(range(6))
    for key in (b"SKU-BIKE-LIGHT", b"ORDER-1", b"SKU-00042"):
        assert partition_for(key, 6) == DefaultPartitioner()(key, partitions, partitions)


def test_a_record_still_outside_its_keys_partition_is_refused_with_where_it_belongs():
    right = partition_for(b"SKU-BIKE-LIGHT", 6)
    elsewhere = SimpleNamespace(key=b"SKU-BIKE-LIGHT", partition=(right + 1) % 6)

    reason = misrouted(elsewhere, 6)

    assert (
        reason == f"message key 'SKU-BIKE-LIGHT' belongs in partition {right} (murmur2, as the Java "
        f"clients hash), not {(right + 1) % 6}"
    )
    assert misrouted(SimpleNamespace(key=b"SKU-BIKE-LIGHT", partition=right), 6) is None


def _batches(
    partitions: int | None,
) -> tuple[Outbox, PartitionBatches, list[tuple[str, bytes, bytes | None]]]:
    sent: list[tuple[str, bytes, bytes | None]] = []

    async def produce(topic: str, key: bytes, value: bytes | None) -> None:
        sent.append((topic, key, value))

    outbox = Outbox(produce, "dlq", Metrics())
    wrap = lambda items, now_ms: json.dumps({"at": now_ms, "items": items}).encode()  # noqa: E731
    return outbox, PartitionBatches("commands", partitions, wrap), sent


def test_a_batch_of_items_leaves_as_one_record_per_partition_keyed_where_every_item_belongs():
    outbox, batches, sent = _batches(4)
    skus = [f"SKU-{i:03d}" for i in range(40)]
    for n, sku in enumerate(skus):
        batches.add(sku, {"sku": sku, "n": n})

    batches.drain_into(outbox, 7)
    asyncio.run(outbox.flush())

    partitions = [partition_for(key, 4) for _, key, _ in sent]
    assert sorted(partitions) == sorted({partition_for(s.encode(), 4) for s in skus})  # one record each
    seen = []
    for _, key, value in sent:
        items = json.loads(value or b"")["items"]
        assert key == items[0]["sku"].encode()  # keyed by its first item
        assert all(partition_for(i["sku"].encode(), 4) == partition_for(key, 4) for i in items)
        assert [i["n"] for i in items] == sorted(i["n"] for i in items)  # in the order added
        seen += [i["sku"] for i in items]
    assert sorted(seen) == skus
    batches.drain_into(outbox, 8)  # drained: nothing twice
    asyncio.run(outbox.flush())
    assert len(sent) == len(partitions)


def test_a_large_group_is_split_below_the_record_size_limit_each_part_keyed_by_its_own_first_item():
    outbox, batches, sent = _batches(None)  # no partition count (no broker): one group
    for n in range(PartitionBatches.MAX_ITEMS * 2 + 1):
        batches.add(f"ORDER-{n}", {"order_id": f"ORDER-{n}"})

    batches.drain_into(outbox, 0)
    asyncio.run(outbox.flush())

    sizes = [len(json.loads(value or b"")["items"]) for _, _, value in sent]
    assert sizes == [PartitionBatches.MAX_ITEMS, PartitionBatches.MAX_ITEMS, 1]
    assert [key for _, key, _ in sent] == [
        b"ORDER-0",
        f"ORDER-{PartitionBatches.MAX_ITEMS}".encode(),
        f"ORDER-{PartitionBatches.MAX_ITEMS * 2}".encode(),
    ]


def test_an_item_of_another_partition_in_a_batch_record_is_named():
    home = partition_for(b"SKU-BIKE-LIGHT", 6)
    other = next(f"SKU-{i}" for i in range(100) if partition_for(f"SKU-{i}".encode(), 6) != home)
    record = SimpleNamespace(key=b"SKU-BIKE-LIGHT", partition=home)

    assert strays(record, ["SKU-BIKE-LIGHT"], 6) is None
    reason = strays(record, ["SKU-BIKE-LIGHT", other], 6)
    assert reason is not None and repr(other) in reason and f"not {home}" in reason
    assert strays(record, [other], None) is None  # no partition count: nothing to check
