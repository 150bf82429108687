"""Any producer welcome: records a producer placed in the wrong partition for their key are moved to
the right one before they are applied.

One worker owns a key's state (a SKU's ledger, an order, a return) because every record of the key
lands in one partition, the one murmur2 picks (the Java clients' hash, which faust and oms-streams
use). A till or a webshop producing with librdkafka's default partitioner (CRC32: kcat,
confluent-kafka for Python, Go, .NET), a random one or explicit partitions puts keys elsewhere. As
Kafka Streams does with a repartition topic, the agent reading such a record forwards it, intact
and with its origin in a header, to its family's internal *rerouted* topic, in the key's partition.
The owner reads it there and applies it as a record of its original topic. The forward is produced
before the input's offset is committed (and a forward not delivered stops the worker), so nothing is
lost; a forward repeated after a crash carries the same event id and is recognised as a duplicate.

Records produced with murmur2 cost nothing extra. Records without a key are not moved: their
runtime dead-letters them, as it does a key that is not what the topic says.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from oms_streams.metrics import Metrics
from oms_streams.streaming.partitioning import partition_for

ORIGIN_HEADER = "oms-origin"
"""``topic:partition:offset`` of the record as its producer wrote it."""

Send = Callable[[str, bytes, bytes | None, int, float | None, list[tuple[str, bytes]]], Awaitable[Any]]
"""(topic, key, value, partition, timestamp s, headers): hands a record to the Kafka producer."""


@dataclass(frozen=True, slots=True)
class Origin:
    topic: str
    partition: int
    offset: int


@dataclass(slots=True)
class RoutedMessage:
    """A rerouted record as its runtime sees it: the original topic, key and value, in the partition
    it belongs in (the one faust takes table writes' partition from)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float
    origin: Origin
    """Where the producer wrote it: dead letters name these coordinates."""


@dataclass(slots=True, weakref_slot=True)  # faust holds the current event by weak reference
class RoutedEvent:
    message: RoutedMessage


class Rerouter:
    """One agent's part in its family's rerouting: ``forwards``, the topics whose misrouted records it
    forwards to ``rerouted_topic``; ``skips``, those whose misrouted records another agent reading
    them forwards (this one skips them and reads them again from the rerouted topic)."""

    def __init__(
        self,
        rerouted_topic: str,
        forwards: Collection[str],
        skips: Collection[str],
        partitions: int,
        send: Send,
        metrics: Metrics,
    ) -> None:
        self.rerouted_topic = rerouted_topic
        self.forwards = frozenset(forwards)
        self.checked = self.forwards | frozenset(skips)
        self.partitions = partitions
        self._send = send
        self._metrics = metrics

    async def sort(self, events: Sequence[Any]) -> list[Any]:
        """The events to apply here, in order: those in their key's partition, and rerouted ones
        as records of their original topic. Misrouted ones are forwarded (or left to the agent that
        forwards them) and not applied here."""
        to_apply: list[Any] = []
        for event in events:
            message = event.message
            if message.topic == self.rerouted_topic:
                to_apply.append(arrived(event))
            elif message.key is None or message.topic not in self.checked:
                to_apply.append(event)
            else:
                partition = partition_for(message.key, self.partitions)
                if partition == message.partition:
                    to_apply.append(event)
                elif message.topic in self.forwards:
                    await self._forward(message, partition)
        return to_apply

    async def _forward(self, message: Any, partition: int) -> None:
        origin = f"{message.topic}:{message.partition}:{message.offset}".encode()
        headers = [(ORIGIN_HEADER, origin)]
        await self._send(
            self.rerouted_topic, message.key, message.value, partition, message.timestamp, headers
        )
        self._metrics.rerouted.labels(message.topic).inc()


def arrived(event: Any) -> Any:
    """A record read from a rerouted topic, presented as the record its producer wrote. Without the
    header (not written by a Rerouter) it stays what it is, and its runtime dead-letters it."""
    message = event.message
    origin = _origin(message.headers)
    if origin is None:
        return event
    return RoutedEvent(
        RoutedMessage(
            topic=origin.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
            timestamp=message.timestamp,
            origin=origin,
        )
    )


def _origin(headers: Any) -> Origin | None:
    items = headers.items() if hasattr(headers, "items") else (headers or ())
    for name, value in items:
        if name == ORIGIN_HEADER and value:
            topic, partition, offset = bytes(value).decode().rsplit(":", 2)
            return Origin(topic, int(partition), int(offset))
    return None
