"""Reading the audit's input: every topic it needs from the beginning up to the high watermarks
seen at the start, decoded with the wire schemas, with what could not be decoded counted per topic
instead of failing on it (``read_audit_input``)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from typing import TypeVar

import orjson
from pydantic import BaseModel

from oms_streams import clock
from oms_streams.adapters.config import decode_location
from oms_streams.adapters.network import NetworkConfigError, to_site
from oms_streams.adapters.orders import decode_placement
from oms_streams.adapters.stock import (
    DecodedStock,
    Failure,
    decode_count,
    decode_movement,
    decode_supplier_stock,
    key_problem,
    parse_model,
    row_to_position,
)
from oms_streams.config import Settings
from oms_streams.domain.visibility import Location
from oms_streams.schemas.cancellations import OrderCancellationOutcome
from oms_streams.schemas.config import LocationRecord
from oms_streams.schemas.orders import OrderPlaced
from oms_streams.schemas.sourcing import (
    Allocation,
    OrderSourced,
    ReplyBatch,
    ReservationBatch,
    ReservationCommand,
    ReservationReply,
)
from oms_streams.streaming.topics import (
    ALLOCATIONS,
    CANCELLATION_OUTCOMES,
    COUNTS,
    LOCATIONS,
    MOVEMENTS,
    ORDERS_PLACED,
    ORDERS_SOURCED,
    RESERVATION_REPLIES,
    RESERVATIONS,
    SUPPLIER_STOCK,
)
from oms_streams.tools.audit.model import DEFAULT_SETTLE_MS, At, AuditInput, LedgerRow, Logged, TopicRead
from oms_streams.tools.topic_reader import read_to_end

R = TypeVar("R")


STOCK_TABLE = "stock_positions"


def changelog_topic(settings: Settings) -> str:
    """faust names a table's changelog '<app id>-<table>-changelog', without our topic prefix."""
    return f"{settings.app_id}-{STOCK_TABLE}-changelog"


def decode_changelog_row(key: bytes | None, value: bytes) -> LedgerRow | Failure:
    """A ``stock_positions`` changelog record as faust writes it: the table's key and value types
    are bytes, and faust's serializer registry passes bytes through untouched, so the key is the
    raw 'SKU|LOCATION' and the value the raw JSON row of ``adapters.stock.position_to_row``."""
    if key is None:
        return Failure("no key")
    sku, bar, location_id = key.decode(errors="replace").partition("|")
    if not bar or not sku or not location_id:
        return Failure("key is not 'SKU|LOCATION'")
    try:
        row = orjson.loads(value)
        if not isinstance(row, list) or len(row) < 9:
            return Failure("row is not a position list")
        position = row_to_position(row)
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return Failure("malformed row")
    numbers = (position.on_hand, position.reserved, *(units for _, units in position.holds))
    if not all(isinstance(n, int) for n in numbers):
        return Failure("malformed row")
    return LedgerRow(sku, location_id, position, holds_known=len(row) > 10)


M = TypeVar("M", bound=BaseModel)


def _keyed(model: type[M], field_name: str) -> Callable[[bytes | None, bytes | None], M | Failure]:
    def decode(key: bytes | None, value: bytes | None) -> M | Failure:
        wire = parse_model(model, value, "a sourcing topic")
        if isinstance(wire, Failure):
            return wire
        expected = str(getattr(wire, field_name))
        if key != expected.encode():
            return Failure(f"key is not the {field_name.replace('_', ' ')}")
        return wire

    return decode


def _commands(key: bytes | None, value: bytes | None) -> list[ReservationCommand] | Failure:
    wire = parse_model(ReservationBatch, value, "a sourcing topic")
    if isinstance(wire, Failure):
        return wire
    return key_problem(key, wire.commands[0].sku, "SKU of the first command") or wire.commands


def _replies(key: bytes | None, value: bytes | None) -> list[ReservationReply] | Failure:
    wire = parse_model(ReplyBatch, value, "a sourcing topic")
    if isinstance(wire, Failure):
        return wire
    return key_problem(key, wire.replies[0].order_id, "order id of the first reply") or wire.replies


def _decode_placed(key: bytes | None, value: bytes | None) -> OrderPlaced | Failure:
    placement = decode_placement(key, value)  # the order tracker's own validity rules
    if isinstance(placement, Failure):
        return placement
    return OrderPlaced.model_validate_json(value or b"")


class _Collector:
    """Decodes records as they arrive and tallies per topic what could not be decoded."""

    def __init__(self, settings: Settings, years: tuple[int, ...]) -> None:
        t = settings.topic
        self.changelog = changelog_topic(settings)
        self.years = years
        self.stock_decoders = {
            t(MOVEMENTS.name): decode_movement,
            t(COUNTS.name): decode_count,
            t(SUPPLIER_STOCK.name): decode_supplier_stock,
        }
        self.locations_topic = t(LOCATIONS.name)
        self.topics = {
            "placed": t(ORDERS_PLACED.name),
            "commands": t(RESERVATIONS.name),
            "replies": t(RESERVATION_REPLIES.name),
            "allocations": t(ALLOCATIONS.name),
            "outcomes": t(ORDERS_SOURCED.name),
            "cancellations": t(CANCELLATION_OUTCOMES.name),
        }
        self.decode_allocation = _keyed(Allocation, "order_id")
        self.decode_outcome = _keyed(OrderSourced, "order_id")
        self.decode_cancellation = _keyed(OrderCancellationOutcome, "order_id")
        self.names = [*self.stock_decoders, self.locations_topic, *self.topics.values(), self.changelog]
        self.records: Counter[str] = Counter()
        self.reasons: dict[str, Counter[str]] = defaultdict(Counter)
        self.rows: dict[bytes | None, bytes | None] = {}
        self.locations: dict[str, Location] = {}
        self.stock: list[Logged[DecodedStock]] = []
        self.placed: list[Logged[OrderPlaced]] = []
        self.commands: list[Logged[ReservationCommand]] = []
        self.replies: list[Logged[ReservationReply]] = []
        self.allocations: list[Logged[Allocation]] = []
        self.outcomes: list[Logged[OrderSourced]] = []
        self.cancellations: list[Logged[OrderCancellationOutcome]] = []

    def add(self, at: At, key: bytes | None, value: bytes | None) -> None:
        topic = at.topic
        self.records[topic] += 1
        if topic == self.changelog:
            self.rows[key] = value  # compacted: only the latest value of a key counts
            return
        if topic == self.locations_topic:
            self._location(key, value)
            return
        stock = self.stock_decoders.get(topic)
        if stock is not None:
            self._take(topic, stock(key, value), self.stock, at)
        elif topic == self.topics["placed"]:
            self._take(topic, _decode_placed(key, value), self.placed, at)
        elif topic == self.topics["commands"]:
            self._take_all(topic, _commands(key, value), self.commands, at)
        elif topic == self.topics["replies"]:
            self._take_all(topic, _replies(key, value), self.replies, at)
        elif topic == self.topics["allocations"]:
            self._take(topic, self.decode_allocation(key, value), self.allocations, at)
        elif topic == self.topics["outcomes"]:
            self._take(topic, self.decode_outcome(key, value), self.outcomes, at)
        elif topic == self.topics["cancellations"]:
            self._take(topic, self.decode_cancellation(key, value), self.cancellations, at)

    def _take(self, topic: str, decoded: R | Failure, into: list[Logged[R]], at: At) -> None:
        if isinstance(decoded, Failure):
            self.reasons[topic][decoded.reason] += 1
        else:
            into.append(Logged(decoded, at))

    def _take_all(self, topic: str, decoded: list[R] | Failure, into: list[Logged[R]], at: At) -> None:
        """A batch record's items share its place in the log (and keep their order in it)."""
        if isinstance(decoded, Failure):
            self.reasons[topic][decoded.reason] += 1
        else:
            into.extend(Logged(item, at) for item in decoded)

    def _location(self, key: bytes | None, value: bytes | None) -> None:
        # As the config follower does (streaming.network): the record must be a location the
        # network can use, keyed by its id. A tombstone is ignored: the stock stays where it was.
        if value is None:
            return
        location = decode_location(value)
        if isinstance(location, str):
            self.reasons[self.locations_topic][location.split(":")[0]] += 1
            return
        try:
            to_site(LocationRecord.model_validate_json(value), self.years)
        except NetworkConfigError:
            self.reasons[self.locations_topic]["unusable location (time zone or calendar)"] += 1
            return
        if key is not None and key != location.location_id.encode():
            self.reasons[self.locations_topic]["key is not the location id"] += 1
            return
        self.locations[location.location_id] = location

    def ledger(self) -> list[LedgerRow]:
        rows = []
        for key, value in self.rows.items():
            if value is None:
                continue  # tombstone: the position was deleted
            row = decode_changelog_row(key, value)
            if isinstance(row, Failure):
                self.reasons[self.changelog][row.reason] += 1
            else:
                rows.append(row)
        return rows

    def build(self, now_ms: int, settle_ms: int, missing: set[str]) -> AuditInput:
        ledger = self.ledger()
        read = {
            name: TopicRead(
                records=self.records[name],
                undecodable=sum(self.reasons[name].values()),
                missing=name in missing,
                reasons=tuple(self.reasons[name].most_common(3)),
            )
            for name in self.names
        }
        return AuditInput(
            now_ms=now_ms,
            ledger=ledger,
            locations=self.locations,
            stock=self.stock,
            placed=self.placed,
            commands=self.commands,
            replies=self.replies,
            allocations=self.allocations,
            outcomes=self.outcomes,
            cancellations=self.cancellations,
            settle_ms=settle_ms,
            read=read,
        )


def read_audit_input(
    settings: Settings, *, timeout_s: float = 30.0, settle_s: float = DEFAULT_SETTLE_MS / 1000
) -> AuditInput:
    """Every record the audit needs, from the beginning up to the high watermarks seen at the start.

    Raises OSError when the broker cannot be reached or the topics are not read in ``timeout_s``."""
    now_ms = clock.now_ms()
    year = clock.now().year
    collector = _Collector(settings, tuple(range(year - 1, year + 4)))

    def add(topic: str, partition: int, offset: int, ts: int, key: bytes | None, value: bytes | None) -> None:
        collector.add(At(topic, partition, offset, ts), key, value)

    missing = read_to_end(settings, "oms-audit", collector.names, add, timeout_s=timeout_s)
    return collector.build(now_ms, clock.wall_span_ms(settle_s), missing)  # settling takes wall time
