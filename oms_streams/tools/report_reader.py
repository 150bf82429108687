"""``oms report``'s input: the public topics of a run, read from the beginning to their end.

Like ``oms audit``, it reads with a plain confluent-kafka consumer that joins no group and commits
nothing: every partition from its first offset up to the high watermark seen when the read started,
decoded with the wire schemas (``adapters.stock.parse_model``, the audit's keyed decoders); what
cannot be decoded is counted per topic with the reason, never fatal. Only public topics are read,
as any other system of the retailer would read them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from oms_streams.adapters.config import decode_location
from oms_streams.adapters.preorder_answers import is_interim
from oms_streams.adapters.stock import Failure, parse_model
from oms_streams.config import Settings
from oms_streams.domain.visibility import Location
from oms_streams.schemas.availability import AvailabilityRecord
from oms_streams.schemas.cancellations import OrderCancellationOutcome
from oms_streams.schemas.dlq import DeadLetter
from oms_streams.schemas.orders import FulfilmentEvent, OrderAtRisk, OrderPlaced
from oms_streams.schemas.returns import ReturnProcessed
from oms_streams.schemas.sourcing import Allocation, OrderSourced
from oms_streams.streaming.topics import (
    ALLOCATIONS,
    AVAILABILITY,
    CANCELLATION_OUTCOMES,
    DLQ,
    FULFILMENT_EVENTS,
    LOCATIONS,
    ORDERS_AT_RISK,
    ORDERS_PLACED,
    ORDERS_SOURCED,
    RETURNS_PROCESSED,
)
from oms_streams.tools.audit.reader import _keyed
from oms_streams.tools.topic_reader import read_to_end

M = TypeVar("M", bound=BaseModel)

REPORT_TOPICS = (
    ALLOCATIONS,
    ORDERS_SOURCED,
    ORDERS_PLACED,
    FULFILMENT_EVENTS,
    ORDERS_AT_RISK,
    CANCELLATION_OUTCOMES,
    RETURNS_PROCESSED,
    AVAILABILITY,
    DLQ,
    LOCATIONS,
)
"""What the report reads, by their names without the prefix."""


@dataclass(slots=True)
class ReportInput:
    """Decoded records of the report's topics, in the order each partition holds them."""

    allocations: list[Allocation] = field(default_factory=list)
    sourced: list[OrderSourced] = field(default_factory=list)
    """Rounds' outcomes (a preorder's interim answers are in ``preordered``)."""
    preordered: list[OrderSourced] = field(default_factory=list)
    """Preorders' interim answers ('preordered' on the outcomes topic): not rounds' outcomes."""
    placed: list[OrderPlaced] = field(default_factory=list)
    fulfilment: list[FulfilmentEvent] = field(default_factory=list)
    at_risk: list[OrderAtRisk] = field(default_factory=list)
    cancellations: list[OrderCancellationOutcome] = field(default_factory=list)
    returns: list[ReturnProcessed] = field(default_factory=list)
    availability: list[AvailabilityRecord] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    locations: dict[str, Location] = field(default_factory=dict)
    records: dict[str, int] = field(default_factory=dict)
    """Records read per topic (unprefixed name)."""
    undecodable: dict[str, Counter[str]] = field(default_factory=dict)
    """Per topic: reason -> records that could not be decoded."""
    missing: tuple[str, ...] = ()
    """Topics that do not exist on the cluster."""


def _plain(model: type[M]) -> Callable[[bytes | None, bytes | None], M | Failure]:
    def decode(key: bytes | None, value: bytes | None) -> M | Failure:
        return parse_model(model, value, "a report topic")

    return decode


class _Decoder:
    """Turns (topic, key, value) into the right list of ``ReportInput``, counting failures."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.input = ReportInput()
        out = self.input
        self.by_name: dict[str, str] = {settings.topic(spec.name): spec.name for spec in REPORT_TOPICS}
        self.reasons: dict[str, Counter[str]] = defaultdict(Counter)
        self.records: Counter[str] = Counter()
        sinks: dict[str, tuple[Callable[[bytes | None, bytes | None], Any], list[Any]]] = {
            ALLOCATIONS.name: (_keyed(Allocation, "order_id"), out.allocations),
            ORDERS_SOURCED.name: (_keyed(OrderSourced, "order_id"), out.sourced),
            ORDERS_PLACED.name: (_plain(OrderPlaced), out.placed),
            FULFILMENT_EVENTS.name: (_plain(FulfilmentEvent), out.fulfilment),
            ORDERS_AT_RISK.name: (_plain(OrderAtRisk), out.at_risk),
            CANCELLATION_OUTCOMES.name: (_keyed(OrderCancellationOutcome, "order_id"), out.cancellations),
            RETURNS_PROCESSED.name: (_plain(ReturnProcessed), out.returns),
            AVAILABILITY.name: (_plain(AvailabilityRecord), out.availability),
            DLQ.name: (_plain(DeadLetter), out.dead_letters),
        }
        self.sinks = sinks

    def add(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        name = self.by_name.get(topic)
        if name is None:
            return
        self.records[name] += 1
        if value is None:
            return  # a tombstone on a compacted topic: nothing to report
        if name == LOCATIONS.name:
            location = decode_location(value)
            if isinstance(location, str):
                self.reasons[name][location.split(":")[0]] += 1
            else:
                self.input.locations[location.location_id] = location
            return
        decode, into = self.sinks[name]
        decoded = decode(key, value)
        if isinstance(decoded, Failure):
            self.reasons[name][decoded.reason] += 1
        elif name == ORDERS_SOURCED.name and is_interim(decoded):
            self.input.preordered.append(decoded)
        else:
            into.append(decoded)

    def build(self, missing: Sequence[str]) -> ReportInput:
        self.input.records = dict(self.records)
        self.input.undecodable = {name: counts for name, counts in self.reasons.items() if counts}
        self.input.missing = tuple(missing)
        return self.input


def read_report_input(settings: Settings, *, timeout_s: float = 60.0) -> ReportInput:
    """Every record of the report's topics, from the beginning up to the high watermarks seen at the
    start. Raises OSError when the broker cannot be reached or the topics are not read in time."""
    decoder = _Decoder(settings)

    def add(topic: str, partition: int, offset: int, ts: int, key: bytes | None, value: bytes | None) -> None:
        decoder.add(topic, key, value)

    absent = read_to_end(settings, "oms-report", list(decoder.by_name), add, timeout_s=timeout_s)
    missing = [decoder.by_name[name] for name in decoder.by_name if name in absent]
    return decoder.build(missing)
