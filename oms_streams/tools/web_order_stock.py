"""What web orders take from a location, as the stock simulator's tills and trucks must see it.

The OMS fulfils web orders from stores (ship from store, click & collect) and DCs: it releases a
shipment to its location on ``oms.fulfilment.allocations.v1`` and takes its units out of the
location's on hand when the location reports that they left (``oms.fulfilment.events.v1``: handed
to the carrier, departed on a route, collected, or a courier's delivery). ``oms simulate`` plays the
location's own stock (till sales, transfers, counts); to sell only what is physically on the shelf it
follows those two public topics, as a store's POS would follow its store app:

- an ``allocate`` puts the shipment's units aside at its location: the till and the DC's transfers
  no longer use them, but they are still in the building, so a count still includes them (the OMS
  takes them out of on hand only at the handover, and a count taken before it contains them);
- the shipment leaving takes them out of on hand (the same units the OMS fulfils);
- a ``cancel`` (a short pick, a rejection, a customer's cancellation, a re-sourcing) puts them back.

The units are put aside when the allocation is read, seconds before the location picks them and
well before it hands them over, so the till has stopped selling them before the OMS counts them out.
A till sale of those units before the allocation was read is the OMS's to handle: its ledger sheds
the hold the sale left uncovered, and withdraws the allocation (a ``cancel``).

Each record is applied once: a repeated ``allocate`` (the OMS re-sends after a crash) or a second
report of the same departure changes nothing.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from oms_streams.config import Settings
from oms_streams.schemas.orders import FulfilmentEvent
from oms_streams.schemas.sourcing import Allocation
from oms_streams.streaming.sourcing_withdrawals import LEFT_LOCATION  # as the OMS fulfils them
from oms_streams.streaming.topics import ALLOCATIONS, FULFILMENT_EVENTS


class Shelf(Protocol):
    """A location's stock of one SKU in the simulator's model."""

    on_hand: int
    set_aside: int


@dataclass(frozen=True, slots=True)
class SetAside:
    order_id: str
    location_id: str
    shipment: int
    lines: tuple[tuple[str, int], ...]


class WebOrderStock:
    """Applies the OMS's allocations and the locations' departures to the simulator's stock."""

    def __init__(self, stock_at: Callable[[str, str], Shelf], skus: Collection[str] | None = None) -> None:
        self._at = stock_at
        self.skus = skus
        """The SKUs the simulator stocks (None: all): another SKU's allocation is not its shelves'."""
        self.live: dict[str, SetAside] = {}
        """Allocation id -> the units it keeps aside until they leave."""
        self._settled: set[str] = set()
        """Allocations whose units left or were put back: a repeat of their records changes nothing."""
        self.counts: Counter[str] = Counter()

    def allocation(self, record: Allocation) -> None:
        known = record.allocation_id in self.live or record.allocation_id in self._settled
        if record.kind == "allocate":
            if known:
                self.counts["repeated"] += 1
                return
            held = SetAside(
                record.order_id,
                record.location_id,
                record.shipment,
                tuple((line.sku, line.quantity) for line in record.lines),
            )
            self.live[record.allocation_id] = held
            self._move(held, aside=+1, on_hand=0)
            self.counts["set_aside"] += 1
            return
        held_or_none = self.live.pop(record.allocation_id, None)
        self._settled.add(record.allocation_id)
        if held_or_none is None:
            self.counts["repeated"] += 1
            return
        self._move(held_or_none, aside=-1, on_hand=0)
        self.counts["put_back"] += 1

    def fulfilment(self, event: FulfilmentEvent) -> None:
        """A shipment left its location: its units leave the on hand (the OMS's ``fulfil``)."""
        if event.kind not in LEFT_LOCATION:
            return
        for allocation_id, held in list(self.live.items()):
            if held.order_id != event.order_id:
                continue
            if event.location_id is not None and held.location_id != event.location_id:
                continue
            if event.location_id is None and held.shipment != event.shipment:
                continue
            del self.live[allocation_id]
            self._settled.add(allocation_id)
            self._move(held, aside=-1, on_hand=-1)
            self.counts["left"] += 1

    def _move(self, held: SetAside, *, aside: int, on_hand: int) -> None:
        for sku, units in held.lines:
            if self.skus is not None and sku not in self.skus:
                continue  # an order of a SKU another system sells (a test's, a live catalogue's)
            stock = self._at(sku, held.location_id)
            stock.set_aside += aside * units
            stock.on_hand += on_hand * units


class WebOrderFeed:
    """Reads the two topics from their ends at the start (what happened before the simulator's
    opening count is in that count) and hands each record to a ``WebOrderStock``. Joins no group
    and commits nothing: a restarted simulator starts a new day with a new count."""

    def __init__(self, settings: Settings, stock: WebOrderStock) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self.stock = stock
        self.unreadable = 0
        self._allocations = settings.topic(ALLOCATIONS.name)
        self._events = settings.topic(FULFILMENT_EVENTS.name)
        self._consumer = Consumer(
            {
                **settings.confluent_config(),
                "group.id": f"oms-simulate-{uuid.uuid4().hex[:8]}",  # required by the client; never joined
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "client.id": "oms-simulate-web-orders",
            }
        )
        metadata = self._consumer.list_topics(timeout=15)
        assignment = []
        for name in (self._allocations, self._events):
            for partition in sorted(metadata.topics[name].partitions):
                _, high = self._consumer.get_watermark_offsets(TopicPartition(name, partition), timeout=10)
                assignment.append(TopicPartition(name, partition, high))
        self._consumer.assign(assignment)

    @classmethod
    def open(cls, settings: Settings, stock: WebOrderStock, topics: Collection[str]) -> WebOrderFeed | None:
        """None when the broker has no such topics (a stock-only broker): nothing to follow."""
        wanted = (settings.topic(ALLOCATIONS.name), settings.topic(FULFILMENT_EVENTS.name))
        return cls(settings, stock) if all(name in topics for name in wanted) else None

    def poll(self, timeout_s: float) -> None:
        for message in self._consumer.consume(200, timeout=max(0.0, timeout_s)):
            value = message.value()
            if message.error() is not None or value is None:
                continue
            try:
                if message.topic() == self._allocations:
                    self.stock.allocation(Allocation.model_validate_json(value))
                elif message.topic() == self._events:
                    self.stock.fulfilment(FulfilmentEvent.model_validate_json(value))
            except ValidationError:
                self.unreadable += 1  # another system's bad record: the worker dead-letters it

    def close(self) -> None:
        self._consumer.close()


def wait_for(producer: Any, feed: WebOrderFeed | None, seconds: float) -> None:
    """Until the simulator's next event is due: read what web orders take meanwhile, serve deliveries."""
    if feed is None:
        producer.poll(seconds)
        return
    feed.poll(seconds)
    producer.poll(0)
