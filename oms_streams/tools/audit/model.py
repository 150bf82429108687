"""What the audit reads and what it finds: the kinds of finding, the logged records with their
place in the log, the ledger rows, and the whole input of one audit (``AuditInput``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

from oms_streams.adapters.stock import DecodedStock
from oms_streams.domain.inventory import StockPosition
from oms_streams.domain.visibility import Location
from oms_streams.schemas.cancellations import OrderCancellationOutcome
from oms_streams.schemas.orders import OrderPlaced
from oms_streams.schemas.sourcing import Allocation, OrderSourced, ReservationCommand, ReservationReply

DEFAULT_SETTLE_MS = 10_000


R = TypeVar("R")


class FindingKind(StrEnum):
    OVER_RESERVED = "over_reserved"
    HOLDS_MISMATCH = "holds_mismatch"
    NEGATIVE = "negative"
    ON_HAND_MISMATCH = "on_hand_mismatch"
    ORPHAN_HOLD = "orphan_hold"
    UNHELD_ALLOCATION = "unheld_allocation"
    MISSING_OUTCOME = "missing_outcome"
    CONFLICTING_OUTCOMES = "conflicting_outcomes"
    CONFLICTING_ALLOCATION = "conflicting_allocation"
    UNLISTED_ALLOCATION = "unlisted_allocation"
    OVER_ALLOCATED = "over_allocated"
    MISSING_ALLOCATION = "missing_allocation"
    UNOWNED_HOLD = "unowned_hold"
    EXPIRED_HOLD = "expired_hold"
    OVER_PREORDERED = "over_preordered"
    UNOWNED_PREORDER = "unowned_preorder"
    UNANSWERED_PREORDER = "unanswered_preorder"


@dataclass(frozen=True, slots=True)
class Finding:
    kind: FindingKind
    key: str
    """What it is about: 'SKU|LOCATION' for ledger rows, an order or allocation id otherwise."""
    detail: str


@dataclass(frozen=True, slots=True)
class At:
    """Where a record sits in the log: its place in a replay, and its age."""

    topic: str
    partition: int = 0
    offset: int = 0
    timestamp_ms: int = 0

    @property
    def order(self) -> tuple[int, str, int, int]:
        # Stock topics and reservations of a SKU share a partition number but not an offset
        # sequence: the record timestamp is the only order they have in common.
        return (self.timestamp_ms, self.topic, self.partition, self.offset)


@dataclass(frozen=True, slots=True)
class Logged(Generic[R]):
    record: R
    at: At


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """The latest changelog value of one position (tombstoned positions are simply absent)."""

    sku: str
    location_id: str
    position: StockPosition
    holds_known: bool = True
    """False for rows written before reservations existed (no holds element): nothing to compare."""


@dataclass(frozen=True, slots=True)
class TopicRead:
    records: int = 0
    undecodable: int = 0
    missing: bool = False
    reasons: tuple[tuple[str, int], ...] = ()
    """The most frequent reasons records could not be decoded, with how often."""


@dataclass(frozen=True, slots=True)
class AuditInput:
    now_ms: int
    """When the reading started: ages (in flight or not) are measured against it."""
    ledger: Sequence[LedgerRow] = ()
    locations: Mapping[str, Location] = field(default_factory=dict)
    """Every location ever published (a removed location keeps the stock it had)."""
    stock: Sequence[Logged[DecodedStock]] = ()
    placed: Sequence[Logged[OrderPlaced]] = ()
    commands: Sequence[Logged[ReservationCommand]] = ()
    replies: Sequence[Logged[ReservationReply]] = ()
    allocations: Sequence[Logged[Allocation]] = ()
    outcomes: Sequence[Logged[OrderSourced]] = ()
    cancellations: Sequence[Logged[OrderCancellationOutcome]] = ()
    """Answers to cancellation requests: a cancelled order's holds must be gone once it settles."""
    settle_ms: int = DEFAULT_SETTLE_MS
    read: Mapping[str, TopicRead] = field(default_factory=dict)


def _holds_text(holds: Iterable[tuple[str, int]]) -> str:
    return ", ".join(f"{rid} {units}" for rid, units in holds) or "none"
