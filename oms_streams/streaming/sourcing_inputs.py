"""What ``source_orders`` reads: its topics, and each record decoded into what the saga applies.

Placements and fulfilment events are dead-lettered by ``track_orders``, which reads them too; the
saga's own inputs (ledger answers, cancellations, courier slot records) are dead-lettered here. An
unreadable placement is still answered (``placement_gate``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from oms_streams.adapters.cancellations import Cancellation, decode_cancellation
from oms_streams.adapters.courier_slots import SlotMessage, decode_slot_message
from oms_streams.adapters.orders import Fulfilment, Placement, decode_fulfilment, decode_placement
from oms_streams.adapters.sourcing import Reply, decode_replies
from oms_streams.adapters.stock import Failure
from oms_streams.metrics import Metrics
from oms_streams.streaming.outbox import Outbox
from oms_streams.streaming.partitioning import misrouted, strays
from oms_streams.streaming.placement_gate import Unreadable, unreadable

Decoded = Placement | Fulfilment | Reply | Cancellation | SlotMessage | Unreadable


@dataclass(frozen=True, slots=True)
class SourcingTopics:
    placed: str
    fulfilment: str
    replies: str
    reservations: str
    allocations: str
    sourced: str
    dlq: str
    cancellations: str = ""
    cancellation_outcomes: str = ""
    courier_slots: str = ""
    """Empty: courier orders book no slot at placement (tests of other things)."""
    courier_bookings: str = ""


class SourcingInputs:
    def __init__(self, topics: SourcingTopics, outbox: Outbox, metrics: Metrics) -> None:
        self.topics = topics
        self.outbox = outbox
        self.metrics = metrics

    def decode(self, event: Any, now: int, partitions: int | None) -> Sequence[Decoded]:
        """The message's placement, fulfilment event, answers, cancellation or courier slot record;
        nothing if not valid (but an unreadable placement, to be answered)."""
        message = event.message
        topic = message.topic
        decoded: Placement | Fulfilment | list[Reply] | Cancellation | SlotMessage | Failure
        wrong = misrouted(message, partitions)
        if wrong is not None:
            decoded = Failure(wrong)
        elif topic == self.topics.replies:
            decoded = decode_replies(message.key, message.value)
            if not isinstance(decoded, Failure):
                stray = strays(message, (reply.order_id for reply in decoded), partitions)
                decoded = Failure(stray) if stray else decoded
        elif topic == self.topics.placed:
            decoded = decode_placement(message.key, message.value)
        elif topic == self.topics.cancellations:
            decoded = decode_cancellation(message.key, message.value)
        elif topic == self.topics.courier_slots:
            decoded = decode_slot_message(message.key, message.value)
        else:
            decoded = decode_fulfilment(message.key, message.value)
        if isinstance(decoded, Failure):
            # Placements and fulfilment events are dead-lettered by track_orders, which reads them too.
            if topic in (self.topics.replies, self.topics.cancellations, self.topics.courier_slots):
                self.outbox.dead_letter(decoded.reason, message, now)
                if topic == self.topics.cancellations:
                    self.metrics.cancellations.labels("dead_lettered").inc()
            self.metrics.sourcing_events.labels(label(topic, self.topics), "invalid").inc()
            bad = (
                unreadable(message.key, message.value, decoded.reason)
                if topic == self.topics.placed
                else None
            )
            return (bad,) if bad is not None and wrong is None else ()
        return decoded if isinstance(decoded, list) else (decoded,)


def label(topic: str, topics: SourcingTopics) -> str:
    if topic == topics.placed:
        return "placed"
    if topic == topics.replies:
        return "reply"
    if topic == topics.cancellations:
        return "cancellation"
    if topic == topics.courier_slots:
        return "courier_slot"
    return "fulfilment"
