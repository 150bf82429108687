"""The rerouter without a broker: records in their key's partition pass, misrouted ones are
forwarded to the rerouted topic in the right partition with their origin, rerouted ones come back
as records of their original topic, and an agent that does not forward skips what another does."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from oms_streams.adapters.dlq import dead_letter_for
from oms_streams.metrics import Metrics
from oms_streams.streaming.partitioning import partition_for
from oms_streams.streaming.rerouting import ORIGIN_HEADER, Rerouter

PARTITIONS = 3
KEY = b"SKU-TENT"
HOME = partition_for(KEY, PARTITIONS)
AWAY = (HOME + 1) % PARTITIONS


@dataclass
class Message:
    topic: str
    partition: int
    offset: int = 7
    key: bytes | None = KEY
    value: bytes | None = b'{"sku": "SKU-TENT"}'
    timestamp: float = 1_700_000_000.0
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass
class Event:
    message: Message


class Sent(list[tuple[Any, ...]]):
    async def __call__(self, *record: Any) -> None:
        self.append(record)


def a_rerouter(
    forwards: tuple[str, ...] = ("movements",), skips: tuple[str, ...] = ()
) -> tuple[Rerouter, Sent, Metrics]:
    sent, metrics = Sent(), Metrics()
    return Rerouter("rerouted", forwards, skips, PARTITIONS, sent, metrics), sent, metrics


async def test_a_record_in_its_keys_partition_is_applied_as_it_is() -> None:
    rerouter, sent, _ = a_rerouter()
    events = [Event(Message("movements", HOME)), Event(Message("reservations", AWAY))]  # not an input
    assert await rerouter.sort(events) == events
    assert sent == []


async def test_a_misrouted_record_is_forwarded_to_its_keys_partition_with_its_origin() -> None:
    rerouter, sent, metrics = a_rerouter()
    misrouted = Event(Message("movements", AWAY, offset=41))
    assert await rerouter.sort([misrouted]) == []
    [(topic, key, value, partition, timestamp, headers)] = sent
    assert (topic, key, value, partition) == ("rerouted", KEY, misrouted.message.value, HOME)
    assert timestamp == misrouted.message.timestamp  # event-to-availability latency stays honest
    assert headers == [(ORIGIN_HEADER, f"movements:{AWAY}:41".encode())]
    assert metrics.rerouted.labels("movements")._value.get() == 1


async def test_a_rerouted_record_is_applied_as_a_record_of_its_original_topic() -> None:
    rerouter, sent, _ = a_rerouter()
    origin = (ORIGIN_HEADER, f"movements:{AWAY}:41".encode())
    [event] = await rerouter.sort([Event(Message("rerouted", HOME, offset=3, headers=[origin]))])
    message = event.message
    assert (message.topic, message.partition, message.key) == ("movements", HOME, KEY)
    # A dead letter names where the producer wrote it.
    letter = json.loads(dead_letter_for("bad", message, 0))
    assert (letter["source_topic"], letter["source_partition"], letter["source_offset"]) == (
        "movements",
        AWAY,
        41,
    )
    assert sent == []


async def test_an_agent_that_does_not_forward_skips_misrouted_records_and_reads_them_rerouted() -> None:
    rerouter, sent, _ = a_rerouter(forwards=(), skips=("placed",))
    assert await rerouter.sort([Event(Message("placed", AWAY))]) == []
    assert sent == []


async def test_a_keyless_record_is_left_to_its_runtime_which_dead_letters_it() -> None:
    rerouter, _, _ = a_rerouter()
    keyless = Event(Message("movements", AWAY, key=None))
    assert await rerouter.sort([keyless]) == [keyless]
    # And one on the rerouted topic without an origin (not written by a rerouter) stays as it is.
    foreign = Event(Message("rerouted", HOME))
    assert await rerouter.sort([foreign]) == [foreign]
