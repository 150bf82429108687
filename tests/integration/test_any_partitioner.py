"""Any producer welcome: stock, order and return events are applied once, by their key's owner,
whatever partitioner their producer used (kcat's and confluent-kafka's default CRC32, random,
explicit partitions, murmur2). Only records that cannot be routed go to the dead-letter topic."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.integration.test_delivery_failures import assert_availability_is_the_log, assert_clean_audit
from tests.integration.test_promise_and_risk import DLQ, UTRECHT_HOME, stock_up
from tests.integration.test_recovery import LOCATIONS, SKUS
from tests.integration.test_returns import PROCESSED
from tests.integration.test_sourcing import SOURCED, an_option, atp_at
from tests.worker_process import Events, WorkerProcess, latest_by_key, read_topic, wait_until

MOVEMENTS = "oms.inventory.movements.v1"


class ExplicitPartitions(Events):
    """A producer that picks the partition itself (here: any of them)."""

    def __init__(self, bootstrap: str, prefix: str, seed: int) -> None:
        super().__init__(bootstrap, prefix)
        self.rng = random.Random(seed)

    def send(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        self.producer.produce(self.prefix + topic, key=key, value=value, partition=self.rng.randrange(3))


def producers(bootstrap: str, prefix: str) -> list[Events]:
    return [
        Events(bootstrap, prefix, {"partitioner": "consistent_random"}),  # librdkafka's default (CRC32)
        Events(bootstrap, prefix, {"partitioner": "random"}),
        ExplicitPartitions(bootstrap, prefix, seed=5),
        Events(bootstrap, prefix),  # murmur2, as the Java clients
    ]


def kcat_produce(bootstrap: str, topic: str, records: list[tuple[str, str]]) -> None:
    """Records produced as a shell script would, with kcat's default partitioner."""
    kcat = shutil.which("kcat")
    assert kcat, "kcat is needed (Debian package kcat; .ci/run installs it)"
    lines = "".join(f"{key}\t{value}\n" for key, value in records)
    subprocess.run(
        [kcat, "-P", "-b", bootstrap, "-t", topic, "-K", "\t"], input=lines.encode(), check=True, timeout=60
    )


def movement(sku: str, location: str, kind: str, quantity: int, event_id: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "occurred_at": datetime.now(UTC).isoformat(),
        "source": "pos",
        "sku": sku,
        "location_id": location,
        "kind": kind,
        "quantity": quantity,
    }


def test_stock_events_from_any_partitioner_are_applied_once_by_their_skus_owner(
    worker: WorkerProcess, events: Events, kafka_bootstrap: str, topic_prefix: str
) -> None:
    rng = random.Random(4)
    clients = producers(kafka_bootstrap, topic_prefix)
    by_kcat: list[tuple[str, str]] = []
    on_hand: dict[tuple[str, str], int] = {}
    sent: list[dict[str, Any]] = []
    # Counts as of an hour ago first, so every movement after them applies on top.
    for sku in SKUS[:5]:
        rng.choice(clients).count(sku, {"DC-NORTH": 30}, at=datetime.now(UTC) - timedelta(hours=1))
        on_hand[(sku, "DC-NORTH")] = 30
    for i in range(400):
        sku, location = rng.choice(SKUS), rng.choice(LOCATIONS)
        quantity = rng.randint(1, 9)
        kind = rng.choice(["receipt", "sale"]) if on_hand.get((sku, location), 0) >= quantity else "receipt"
        on_hand[(sku, location)] = on_hand.get((sku, location), 0) + (
            quantity if kind == "receipt" else -quantity
        )
        sent.append(movement(sku, location, kind, quantity, f"{topic_prefix}mv-{i}"))
        for event in [sent[-1]] + ([rng.choice(sent)] if rng.random() < 0.05 else []):  # and resends
            if rng.random() < 0.2:
                by_kcat.append((event["sku"], json.dumps(event)))
            else:
                rng.choice(clients).send(MOVEMENTS, event["sku"].encode(), json.dumps(event).encode())
    # What cannot be routed: no key, and a key that is not the event's SKU.
    stray = movement("SKU-000", "DC-NORTH", "receipt", 5, f"{topic_prefix}stray")
    events.send(MOVEMENTS, None, json.dumps(stray).encode())
    events.send(MOVEMENTS, b"SKU-001", json.dumps(stray).encode())
    for client in (*clients, events):
        client.flush()
    kcat_produce(kafka_bootstrap, topic_prefix + MOVEMENTS, by_kcat)

    assert_availability_is_the_log(kafka_bootstrap, topic_prefix)
    assert 200 < worker.metric("oms_rerouted_total") < 400  # about 2 in 3 of them were misrouted
    letters = [json.loads(v) for _, v in read_topic(kafka_bootstrap, topic_prefix + DLQ) if v]
    assert sorted(letter["reason"] for letter in letters) == [
        "message key 'SKU-001' is not the SKU 'SKU-000'",
        "message key None is not the SKU 'SKU-000'",
    ]
    assert_clean_audit(kafka_bootstrap, topic_prefix)


def test_orders_fulfilment_and_returns_from_any_partitioner_reach_their_owner(
    worker: WorkerProcess, events: Events, kafka_bootstrap: str, topic_prefix: str
) -> None:
    stock_up(worker, events, ("SKU-TENT", "DC-NORTH", 40), ("SKU-TENT", "STORE-UTRECHT-01", 3))
    crc32, shuffled, explicit, _ = producers(kafka_bootstrap, topic_prefix)
    before = atp_at(worker, "SKU-TENT", "DC-NORTH")
    orders = [f"ORDER-ANY-{i}" for i in range(12)]
    for order_id in orders:
        crc32.order_placed(order_id, an_option("standard", {"SKU-TENT": 1}), UTRECHT_HOME)
    crc32.flush()

    def outcomes() -> dict[str, str]:
        return {
            k.decode(): v["outcome"]
            for k, v in latest_by_key(kafka_bootstrap, topic_prefix + SOURCED).items()
        }

    sourced = wait_until(lambda: (o := outcomes()) and set(o) == set(orders) and o, 30, "every order sourced")
    assert set(sourced.values()) == {"allocated"}
    wait_until(
        lambda: atp_at(worker, "SKU-TENT", "DC-NORTH") == before - len(orders), 20, "each reserved once"
    )

    for order_id in orders[:6]:
        explicit.fulfilment(order_id, "handed_to_carrier", location_id="DC-NORTH")
    explicit.flush()
    wait_until(
        lambda: worker.metric("oms_sourcing_events_total", source="fulfilment", verdict="applied") == 6,
        30,
        "the handovers applied to their allocations",
    )
    assert all(worker.get(f"/orders/{order_id}")[0] == 200 for order_id in orders)

    shuffled.return_received("RET-ANY-1", "STORE-UTRECHT-01", [("SKU-TENT", 1, "as_new")], order_id=orders[0])
    shuffled.flush()
    wait_until(lambda: read_topic(kafka_bootstrap, topic_prefix + PROCESSED), 30, "the return processed")
    wait_until(lambda: atp_at(worker, "SKU-TENT", "STORE-UTRECHT-01") == 3, 20, "the tent back on sale")
    assert worker.metric("oms_rerouted_total") > 0
    assert read_topic(kafka_bootstrap, topic_prefix + DLQ) == []
    assert_clean_audit(kafka_bootstrap, topic_prefix)
