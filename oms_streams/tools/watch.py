"""``oms watch``: follow the availability topic and print what a channel sees, change by change.

Reads ``oms.availability.v1`` without a consumer group (all partitions assigned, from the
beginning): first the current state, one line per SKU (the latest record each, so a long history
is not replayed line by line), then one line per record as the workers publish them. Changes
against the previous line of the same SKU are shown next to the figures (``+3`` / ``-1``).
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from oms_streams.config import Settings
from oms_streams.streaming.topics import AVAILABILITY

GREEN = "\033[32m"
RED = "\033[31m"
DIM = "\033[2m"
RESET = "\033[0m"

SkuState = tuple[int, dict[str, int]]
"""What was last shown for a SKU: the channel total and the quantity per location."""


class AvailabilityPrinter:
    """Formats availability records for one channel and remembers the last line per SKU."""

    def __init__(self, channel: str, out: TextIO, color: bool) -> None:
        self.channel = channel
        self.out = out
        self.color = color
        self.last: dict[str, SkuState] = {}
        self.sku_width = 16

    def _delta(self, new: int, old: int | None) -> str:
        if old is None or new == old:
            return ""
        text = f"{new - old:+d}"
        if self.color:
            return f"{GREEN if new > old else RED}{text}{RESET}"
        return text

    def line(self, sku: str, record: dict[str, Any] | None) -> str:
        """The line for a record (None: a tombstone), and remember it as the SKU's state."""
        self.sku_width = max(self.sku_width, len(sku))
        previous = self.last.get(sku)
        if record is None:
            self.last.pop(sku, None)
            return f"{time.strftime('%H:%M:%S')}  {sku:<{self.sku_width}}  {self.channel}  removed"
        try:
            shown_at = datetime.fromisoformat(record["published_at"]).astimezone().strftime("%H:%M:%S")
        except (KeyError, TypeError, ValueError):
            shown_at = time.strftime("%H:%M:%S")
        view = (record.get("channels") or {}).get(self.channel) or {"total": 0, "locations": {}}
        total = int(view.get("total", 0))
        locations = {str(k): int(v) for k, v in (view.get("locations") or {}).items()}
        old_total, old_locations = previous if previous is not None else (None, {})
        parts = []
        for location in sorted(locations.keys() | old_locations.keys()):
            quantity = locations.get(location, 0)
            before = old_locations.get(location, 0) if previous is not None else None
            if quantity == 0 and not before:
                continue
            delta = self._delta(quantity, before)
            parts.append(f"{location} {quantity}{' ' + delta if delta else ''}")
        self.last[sku] = (total, locations)
        total_delta = self._delta(total, old_total)
        total_text = f"{total:>5}{' ' + total_delta if total_delta else ''}"
        where = f"({', '.join(parts)})" if parts else "(none)"
        if (
            self.color
            and previous is not None
            and not total_delta
            and all(
                locations.get(k, 0) == old_locations.get(k, 0)
                for k in locations.keys() | old_locations.keys()
            )
        ):
            where = f"{DIM}{where}{RESET}"  # republished, but this channel did not change
        return f"{shown_at}  {sku:<{self.sku_width}}  {self.channel}  {total_text}  {where}"

    def show(self, sku: str, record: dict[str, Any] | None) -> None:
        print(self.line(sku, record), file=self.out, flush=True)


def _partitions(consumer: Consumer, topic: str, deadline: float) -> list[int]:
    """The topic's partitions; waits for the topic to exist (the demo may start us early)."""
    told = False
    while True:
        try:
            metadata = consumer.list_topics(topic, timeout=5)
            found = metadata.topics.get(topic)
            if found is not None and found.error is None and found.partitions:
                return sorted(found.partitions)
        except KafkaException:
            pass
        if time.monotonic() >= deadline:
            raise OSError(f"topic {topic} not found on the broker")
        if not told:
            print(f"watch: waiting for topic {topic} ...", file=sys.stderr, flush=True)
            told = True
        time.sleep(0.5)


def _decode(value: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(value)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def watch_availability(
    settings: Settings,
    skus: Sequence[str] = (),
    channel: str = "webshop",
    *,
    max_records: int | None = None,
    timeout_s: float | None = None,
    out: TextIO | None = None,
    color: bool | None = None,
) -> int:
    """Print availability of ``skus`` (all when empty) for ``channel`` until Ctrl-C.

    Returns the number of lines printed: after ``max_records`` lines, or ``timeout_s`` seconds,
    it returns by itself (for tests and scripts).
    """
    out = out or sys.stdout
    if color is None:
        color = out.isatty()
    wanted = set(skus)
    topic = settings.topic(AVAILABILITY.name)
    printer = AvailabilityPrinter(channel, out, color)
    started = time.monotonic()
    deadline = started + timeout_s if timeout_s is not None else float("inf")
    consumer = Consumer(
        {
            **settings.confluent_config(),
            # Required by the client, never joined: partitions are assigned, no offsets are committed.
            "group.id": f"oms-watch-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "client.id": "oms-watch",
        }
    )
    printed = 0

    def done() -> bool:
        return (max_records is not None and printed >= max_records) or time.monotonic() >= deadline

    try:
        partitions = _partitions(consumer, topic, min(deadline, started + 60))
        ends: dict[int, int] = {}
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high > low:
                ends[partition] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        what = ", ".join(sorted(wanted)) if wanted else "all SKUs"
        print(f"watch: {topic}, channel {channel}, {what} (Ctrl-C stops)", file=sys.stderr, flush=True)

        # 1. Catch up: collect the latest record per SKU up to the end offsets seen at start.
        current: dict[str, bytes | None] = {}
        catch_up_until = min(deadline, time.monotonic() + 60)
        while ends and time.monotonic() < catch_up_until:
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            key = message.key()
            if key is not None:
                sku = key.decode(errors="replace")
                if not wanted or sku in wanted:
                    current[sku] = message.value()
            at, offset = message.partition(), message.offset()
            if at is not None and offset is not None and at in ends and offset + 1 >= ends[at]:
                del ends[at]
        for sku in sorted(current):
            value = current[sku]
            if value is None:
                continue  # deleted before we started: nothing to show
            printer.show(sku, _decode(value))
            printed += 1
            if done():
                return printed
        missing = sorted(wanted - current.keys())
        if missing:
            print(f"watch: no availability yet for {', '.join(missing)}", file=sys.stderr, flush=True)

        # 2. Live.
        while not done():
            message = consumer.poll(min(0.5, max(0.0, deadline - time.monotonic())))
            if message is None:
                continue
            if message.error():
                print(f"watch: {message.error()}", file=sys.stderr, flush=True)
                continue
            key = message.key()
            if key is None:
                continue
            sku = key.decode(errors="replace")
            if wanted and sku not in wanted:
                continue
            value = message.value()
            record = _decode(value) if value is not None else None
            if value is not None and record is None:
                print(f"watch: {sku}: undecodable record at offset {message.offset()}", file=sys.stderr)
                continue
            printer.show(sku, record)
            printed += 1
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return printed
