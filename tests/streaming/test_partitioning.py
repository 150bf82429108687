"""A key's partition is the Java clients' murmur2; an event outside it is refused with the fix."""

from __future__ import annotations

from types import SimpleNamespace

from aiokafka.partitioner import DefaultPartitioner

from oms_streams.streaming.partitioning import misrouted, partition_for


def test_the_partition_is_the_one_aiokafka_and_the_java_clients_choose():
    partitions = list(range(6))
    for key in (b"SKU-BIKE-LIGHT", b"ORDER-1", b"SKU-00042"):
        assert partition_for(key, 6) == DefaultPartitioner()(key, partitions, partitions)


def test_an_event_a_crc32_producer_put_elsewhere_is_refused_with_the_fix():
    right = partition_for(b"SKU-BIKE-LIGHT", 6)
    elsewhere = SimpleNamespace(key=b"SKU-BIKE-LIGHT", partition=(right + 1) % 6)

    reason = misrouted(elsewhere, 6)

    assert reason is not None and "murmur2_random" in reason and reason.startswith("message key")
    assert misrouted(SimpleNamespace(key=b"SKU-BIKE-LIGHT", partition=right), 6) is None
