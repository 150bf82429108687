"""Which partition a key belongs in: the Java clients' murmur2, which faust and aiokafka use too.

One owner per SKU (and per order) holds only if every record of a key is applied in one partition.
oms-streams produces reservations and replies with murmur2, and moves input records that a producer
placed with another partitioner (librdkafka's default is CRC32) to their key's partition first
(``rerouting.py``); a record still outside it would reach an owner that does not hold its key's
state, so it is dead-lettered instead of being applied in the wrong place.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from aiokafka.partitioner import murmur2


@lru_cache(maxsize=65_536)
def partition_for(key: bytes, partitions: int) -> int:
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def misrouted(message: Any, partitions: int | None) -> str | None:
    """Why the message is in the wrong partition for its key, or None (always None when the
    partition count is not given: harnesses without a broker)."""
    key = message.key
    if key is None or partitions is None:
        return None  # the decoder rejects keyless messages with its own reason
    expected = partition_for(key, partitions)
    if message.partition == expected:
        return None
    shown = key.decode(errors="replace")
    return (
        f"message key {shown!r} belongs in partition {expected} (murmur2, as the Java clients hash), "
        f"not {message.partition}"
    )


def strays(message: Any, keys: Iterable[str], partitions: int | None) -> str | None:
    """Why an item of a batch record (see ``outbox.PartitionBatches``) does not belong in the
    record's partition, or None: each item's key must hash where the record's key does."""
    if partitions is None:
        return None
    for key in keys:
        expected = partition_for(key.encode(), partitions)
        if expected != message.partition:
            return f"item key {key!r} belongs in partition {expected}, not {message.partition}"
    return None
