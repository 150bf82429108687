"""Which partition a faust table write goes to.

faust picks a table's changelog partition (and local store) from the *current event*. A batch from
``take_events`` mixes partitions, and a timer has no event at all, so writes are made inside one of
these contexts: every key then stays co-partitioned with its source topic, and recovery after a
rebalance restores exactly the keys the new owner needs.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from typing import Any

from faust.streams import _current_event


@contextlib.contextmanager
def in_partition_of(event: Any) -> Iterator[None]:
    """Table writes go to ``event``'s partition."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class _Message:
    __slots__ = ("partition", "topic")

    def __init__(self, topic: str, partition: int) -> None:
        self.topic, self.partition = topic, partition


class _Origin:
    """What faust reads of the current event to place a write: ``event.message.{topic,partition}``."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, topic: str, partition: int) -> None:
        self.message = _Message(topic, partition)


@contextlib.contextmanager
def in_partition(topic: str, partition: int) -> Iterator[None]:
    """Table writes go to ``partition`` (of ``topic``, a source topic of the table), for writes that
    no event caused: a timer noticing an overdue milestone."""
    origin = _Origin(topic, partition)
    with in_partition_of(origin):
        yield
