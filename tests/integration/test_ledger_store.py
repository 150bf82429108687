"""The ledger's own state store against the real broker: a batch's writes reach the local store and
the changelog together; a partition given up keeps its store with a checkpoint and, taken back,
reads only what its other owner wrote meanwhile; a store without a checkpoint is rebuilt whole."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Producer

from oms_streams.config import Settings
from oms_streams.streaming.admin import ensure_changelogs
from oms_streams.streaming.ledger_store import LedgerStore
from oms_streams.streaming.partitioning import partition_for

pytestmark = pytest.mark.kafka

PARTITIONS = 2


class Changelogs:
    """Sends a store's changelog records and waits for their acknowledgement, as the worker's flush does."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})

    async def send(self, records: list[tuple[str, bytes | None, bytes | None, int | None]]) -> None:
        for topic, key, value, partition in records:
            self.producer.produce(topic, value, key, partition=partition)

    def flush(self) -> None:
        assert self.producer.flush(30) == 0


def a_store(bootstrap: str, prefix: str, data_dir: Path | None) -> LedgerStore:
    return LedgerStore(f"{prefix}oms", PARTITIONS, data_dir, {"bootstrap.servers": bootstrap})


@pytest.fixture
def changelogs(kafka_bootstrap: str, topic_prefix: str) -> Changelogs:
    """The test's changelog topics, created, and a producer for them."""
    settings = Settings(kafka_bootstrap=kafka_bootstrap, partitions=PARTITIONS)
    ensure_changelogs(settings, list(a_store(kafka_bootstrap, topic_prefix, None).topics.values()))
    return Changelogs(kafka_bootstrap)


def sku_in(partition: int, n: int) -> list[str]:
    skus = (f"SKU-{i}" for i in range(10_000))
    return [s for s in skus if partition_for(s.encode(), PARTITIONS) == partition][:n]


async def test_a_partition_given_up_and_taken_back_reads_only_what_its_other_owner_wrote(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, changelogs: Changelogs
) -> None:
    first = a_store(kafka_bootstrap, topic_prefix, tmp_path / "first")
    skus = sku_in(0, 30)

    assert first.take([0]) == 0
    for sku in skus[:20]:
        first.stock_positions[f"{sku}|DC".encode()] = b"[1]"
        first.stock_positions[f"{sku}|DC".encode()] = b"[2]"  # written twice in the batch: one record
    assert first.stock_positions.get(f"{skus[0]}|DC".encode()) == b"[2]"  # reads see the batch
    assert await first.commit(changelogs.send) == 20
    changelogs.flush()
    first.give_up([0], first.ends_of([0]))
    assert first.stock_positions.get(f"{skus[0]}|DC".encode()) is None  # not owned: not read here

    second = a_store(kafka_bootstrap, topic_prefix, tmp_path / "second")
    assert second.take([0]) == 20  # no checkpoint: the whole changelog
    assert dict(second.stock_positions.items()) == {f"{s}|DC".encode(): b"[2]" for s in skus[:20]}
    for sku in skus[20:]:
        second.stock_positions[f"{sku}|DC".encode()] = b"[3]"
    second.stock_positions.pop(f"{skus[0]}|DC".encode())
    await second.commit(changelogs.send)
    changelogs.flush()
    second.give_up([0], second.ends_of([0]))

    assert first.take([0]) == 11  # from its checkpoint: the other owner's 10 writes and 1 delete
    rows = dict(first.stock_positions.items())
    assert len(rows) == 29 and f"{skus[0]}|DC".encode() not in rows
    assert rows[f"{skus[25]}|DC".encode()] == b"[3]"


async def test_a_store_without_a_checkpoint_is_rebuilt_from_the_changelog_and_writes_to_others_wait(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, changelogs: Changelogs
) -> None:
    store = a_store(kafka_bootstrap, topic_prefix, tmp_path / "store")
    (mine,), (other,) = sku_in(0, 1), sku_in(1, 1)
    store.take([0])
    store.sku_locations[mine.encode()] = b'["DC"]'
    store.sku_locations[other.encode()] = b'["DC"]'  # partition 1 is not owned: dropped at commit
    assert await store.commit(changelogs.send) == 1
    changelogs.flush()
    # A crash: the store is left without checkpoint, holding a row the changelog never got.
    store._owned[0].db.write({store.sku_locations._prefix + b"SKU-GHOST": b'["DC"]'})
    store._owned.pop(0).db.close()

    reopened = a_store(kafka_bootstrap, topic_prefix, tmp_path / "store")
    assert reopened.take([0]) == 1
    assert list(reopened.sku_locations.keys()) == [mine.encode()]


async def test_in_memory_the_store_goes_with_its_partition_and_comes_back_from_the_changelog(
    kafka_bootstrap: str, topic_prefix: str, changelogs: Changelogs
) -> None:
    store = a_store(kafka_bootstrap, topic_prefix, None)
    (sku,) = sku_in(1, 1)
    store.take([1])
    store.stock_event_ids[f"{sku}|DC|E-1".encode()] = b"1:1"
    await store.commit(changelogs.send)
    changelogs.flush()
    store.give_up([1], store.ends_of([1]))
    assert store.take([1]) == 1
    assert store.stock_event_ids.get(f"{sku}|DC|E-1".encode()) == b"1:1"
