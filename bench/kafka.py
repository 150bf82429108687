"""Broker lifecycle and small Kafka helpers for the bench (confluent-kafka for admin and bulk I/O)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench.data import REPO_ROOT


def free_port(start: int | None = None) -> int:
    """A free TCP port; with ``start``, the first of start, start+2, ... whose port and port+1 are free."""
    if start is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    for port in range(start, start + 200, 2):
        if all(_free(p) for p in (port, port + 1)):
            return port
    raise OSError(f"no free port pair from {start}")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@contextlib.contextmanager
def broker(bootstrap: str | None, *, port_from: int = 39092, log: bool = True) -> Iterator[tuple[str, bool]]:
    """Use ``bootstrap`` if given, else start a private broker (deploy/kafka/start.sh) and stop it after.

    Yields (bootstrap, started_here).
    """
    if bootstrap:
        yield bootstrap, False
        return
    port = free_port(port_from)
    env = {**os.environ, "OMS_KAFKA_PORT": str(port)}
    if log:
        print(f"starting a private Kafka broker on 127.0.0.1:{port} ...", flush=True)
    subprocess.run(["bash", "deploy/kafka/start.sh"], cwd=REPO_ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    try:
        yield f"127.0.0.1:{port}", True
    finally:
        subprocess.run(["bash", "deploy/kafka/stop.sh", "--clean"], cwd=REPO_ROOT, env=env, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def create_topics(bootstrap: str, names: Iterable[str], partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names]
    futures = admin.create_topics(new)
    for future in futures.values():
        future.result(30)


def delete_topics_with_prefixes(bootstrap: str, prefixes: Iterable[str]) -> int:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    prefixes = tuple(prefixes)
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefixes)]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            with contextlib.suppress(Exception):
                future.result(30)
    return len(names)


def bulk_producer(bootstrap: str) -> Producer:
    return Producer({
        "bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1_000_000,
        "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 1_048_576,
        "message.max.bytes": 2_000_000, "acks": "all", "enable.idempotence": False,
        "partitioner": "murmur2_random",  # the worker dead-letters keys outside their murmur2 partition
    })


def produce_all(producer: Producer, topic: str, messages: Iterable[tuple[bytes, bytes]]) -> int:
    """Produce every (key, value) and wait for all acks; returns the count."""
    n = 0
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)
        n += 1
        if n % 10_000 == 0:
            producer.poll(0)
    remaining = producer.flush(120)
    if remaining:
        raise RuntimeError(f"{remaining} messages not acknowledged")
    return n


def wait_for(condition, timeout_s: float, interval_s: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval_s)
    return None
