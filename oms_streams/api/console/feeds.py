"""What the console keeps of two public output topics, read like any other consumer of them.

``oms.orders.at-risk.v1`` (the latest state per order: at risk, or cleared) and ``oms.dlq.v1`` (the
latest dead letters) are followed by a :class:`~oms_streams.streaming.follower.TopicFollower` whose
callbacks land here. Both are bounded: the open at-risk orders (one row each; a cleared order leaves
the list) plus the last cleared ones, and the last dead letters with their payloads cut for display.
Open pages wait on :meth:`Changes.wait` and re-render when something changed.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

MAX_OPEN = 5_000
"""At-risk orders kept (the oldest go first); an operator works through tens, not thousands."""
MAX_CLEARED = 50
MAX_LETTERS = 500
DISPLAY_CHARS = 8_192
"""Of a dead letter's payload and key kept for display (a letter may carry 64 Ki characters of each);
the whole letter stays on ``oms.dlq.v1`` at the partition and offset the browser shows."""


class Changes:
    """Wakes every waiting page when a feed changed (waits coalesce: one wake-up per burst)."""

    def __init__(self) -> None:
        self.version = 0
        self._waiters: set[asyncio.Event] = set()
        self.closed = False

    def changed(self) -> None:
        self.version += 1
        for event in self._waiters:
            event.set()

    def close(self) -> None:
        self.closed = True
        self.changed()

    async def wait(self, seen: int, timeout_s: float) -> int:
        """The version after ``seen`` once there is one (``seen`` again after the timeout)."""
        if self.version != seen or self.closed:
            return self.version
        event = asyncio.Event()
        self._waiters.add(event)
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(event)
        return self.version


@dataclass
class AtRiskBook:
    """Open at-risk orders, newest first, and the ones cleared last."""

    open: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)
    cleared: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_CLEARED))
    read: int = 0
    unreadable: int = 0

    def apply(self, value: bytes | None) -> None:
        self.read += 1
        try:
            event = orjson.loads(value) if value is not None else None
        except orjson.JSONDecodeError:
            event = None
        if not isinstance(event, dict) or not isinstance(event.get("order_id"), str):
            self.unreadable += 1
            return
        order_id = event["order_id"]
        self.open.pop(order_id, None)
        if event.get("status") == "at_risk":
            self.open[order_id] = event
            while len(self.open) > MAX_OPEN:
                self.open.popitem(last=False)
        else:
            self.cleared.appendleft(event)

    def newest_first(self) -> list[dict[str, Any]]:
        return list(reversed(self.open.values()))


@dataclass
class DeadLetters:
    """The last dead letters, newest first, with where each one lies on ``oms.dlq.v1``."""

    letters: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_LETTERS))
    read: int = 0

    def apply(self, partition: int, offset: int, value: bytes | None) -> None:
        self.read += 1
        try:
            letter = orjson.loads(value) if value is not None else None
        except orjson.JSONDecodeError:
            letter = None
        if not isinstance(letter, dict):
            letter = {"reason": "(not a dead letter: unreadable JSON)", "payload": _text(value)}
        shown = {**letter, "dlq_partition": partition, "dlq_offset": offset}
        for name in ("payload", "key"):
            text = shown.get(name)
            if isinstance(text, str) and len(text) > DISPLAY_CHARS:
                shown[name] = text[:DISPLAY_CHARS]
                shown[f"{name}_cut_for_display"] = len(text)
        self.letters.appendleft(shown)

    def matching(self, topic: str = "", reason: str = "") -> list[dict[str, Any]]:
        return [
            letter
            for letter in self.letters
            if (not topic or letter.get("source_topic") == topic)
            and (not reason or reason.lower() in str(letter.get("reason", "")).lower())
        ]


def _text(value: bytes | None) -> str | None:
    return value.decode("utf-8", errors="replace") if value is not None else None


class ConsoleFeeds:
    """The two followed topics' state, and the change signal pages wait on."""

    def __init__(self, at_risk_topic: str, dlq_topic: str) -> None:
        self.at_risk_topic = at_risk_topic
        self.dlq_topic = dlq_topic
        self.at_risk = AtRiskBook()
        self.dead_letters = DeadLetters()
        self.changes = Changes()

    def on_records(self, records: Sequence[Any]) -> None:
        """A :class:`TopicFollower` callback: one partition's batch of aiokafka records."""
        for record in records:
            if record.topic == self.at_risk_topic:
                self.at_risk.apply(record.value)
            elif record.topic == self.dlq_topic:
                self.dead_letters.apply(record.partition, record.offset, record.value)
        if records:
            self.changes.changed()
