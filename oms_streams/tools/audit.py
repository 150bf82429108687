"""``oms audit``: reconcile the stock ledgers and the sourcing results against the event log.

Two halves:

- ``audit(records)`` is a pure function over decoded records (no Kafka, no clock: ``now_ms`` is
  part of its input). It checks the ledger rows' own invariants, replays on hand per (SKU,
  location) from the stock topics and the fulfilled reservations with the ledger's own domain code,
  matches the ledger's holds against the orders' live allocations, and checks that every placed
  order got exactly one outcome per round and that outcomes and allocations agree.
- ``read_audit_input(settings)`` reads every topic it needs from the beginning up to the high
  watermarks seen when it started (no consumer group, nothing committed), decodes with the wire
  schemas and counts what it could not decode instead of failing on it.

Reading the topics one after the other is not a snapshot: a record produced while the audit reads
can be seen on one topic and not yet on another. So whatever is younger than ``settle_ms`` (orders
just placed, outcomes just published) counts as in flight, not as a finding.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel

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
from oms_streams.adapters.timestamps import epoch_ms
from oms_streams.config import Settings
from oms_streams.domain.inventory import Movement, MovementKind, StockPosition, Verdict, apply_movement
from oms_streams.domain.ledger import apply_commands
from oms_streams.domain.reservations import is_cart_hold
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
from oms_streams.tools.topic_reader import read_to_end

STOCK_TABLE = "stock_positions"

DEFAULT_SETTLE_MS = 10_000
EXAMPLES_PER_KIND = 20

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


@dataclass(frozen=True, slots=True)
class Finding:
    kind: FindingKind
    key: str
    """What it is about: 'SKU|LOCATION' for ledger rows, an order or allocation id otherwise."""
    detail: str


# --- input ----------------------------------------------------------------------------------------


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


# --- report ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditReport:
    findings: tuple[Finding, ...]
    counts: Mapping[str, int]
    """What was checked and what was in flight or redelivered (not findings)."""
    read: Mapping[str, TopicRead] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.findings

    def by_kind(self) -> dict[FindingKind, list[Finding]]:
        grouped: dict[FindingKind, list[Finding]] = {}
        for finding in self.findings:
            grouped.setdefault(finding.kind, []).append(finding)
        return {kind: grouped[kind] for kind in FindingKind if kind in grouped}

    def render(self, examples: int = EXAMPLES_PER_KIND) -> str:
        lines = ["read:"]
        width = max((len(topic) for topic in self.read), default=0)
        for topic, read in self.read.items():
            if read.missing:
                lines.append(f"  {topic:<{width}}  missing (read as empty)")
                continue
            bad = ""
            if read.undecodable:
                reasons = "; ".join(f"{reason} x{n}" for reason, n in read.reasons)
                bad = f", {read.undecodable:,} undecodable ({reasons})"
            plural = "" if read.records == 1 else "s"
            lines.append(f"  {topic:<{width}}  {read.records:>9,} record{plural}{bad}")
        lines.append("checked: " + ", ".join(f"{name} {n:,}" for name, n in self.counts.items()))
        grouped = self.by_kind()
        if not grouped:
            lines.append("clean: no findings")
        for kind, findings in grouped.items():
            lines.append(f"{kind.value}: {len(findings):,}")
            for finding in findings[:examples]:
                lines.append(f"  {finding.key}  {finding.detail}")
            if len(findings) > examples:
                lines.append(f"  ... and {len(findings) - examples:,} more")
        if grouped:
            total = len(self.findings)
            lines.append(f"{total:,} finding{'s' if total != 1 else ''} of {len(grouped)} kind(s)")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "counts": dict(self.counts),
            "findings": {
                kind.value: [{"key": f.key, "detail": f.detail} for f in findings]
                for kind, findings in self.by_kind().items()
            },
            "read": {
                topic: {
                    "records": read.records,
                    "undecodable": read.undecodable,
                    "missing": read.missing,
                    "reasons": dict(read.reasons),
                }
                for topic, read in self.read.items()
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)


# --- the pure core --------------------------------------------------------------------------------


def audit(records: AuditInput) -> AuditReport:
    """Every finding of the five checks, with what was counted along the way."""
    counts: Counter[str] = Counter()
    findings = [
        *check_ledger_rows(records.ledger),
        *check_on_hand(records, counts),
    ]
    sourcing = _Sourcing(records, counts)
    findings += sourcing.check_outcomes()
    findings += sourcing.check_allocations()
    findings += sourcing.check_holds()
    findings += check_cart_holds(records, counts)
    findings += sourcing.check_preorders()
    ordered = (
        "positions",
        "skus_replayed",
        "stock_events_rejected",
        "orders_placed",
        "in_flight",
        "in_flight_holds",
        "resourcing",
        "holds",
        "cart_holds",
        "allocations",
        "outcomes",
        "redelivered",
        "unknown_orders",
    )
    return AuditReport(
        tuple(findings),
        {name: counts[name] for name in ordered} | {k: v for k, v in counts.items() if k not in ordered},
        dict(records.read),
    )


def check_ledger_rows(rows: Iterable[LedgerRow]) -> list[Finding]:
    """Check 1: each row on its own."""
    findings = []
    for row in rows:
        p, key = row.position, f"{row.sku}|{row.location_id}"
        if p.on_hand < 0 or p.reserved < 0:
            findings.append(Finding(FindingKind.NEGATIVE, key, f"on hand {p.on_hand}, reserved {p.reserved}"))
        # The ledger sheds holds in the batch that left them uncovered (domain.shortfall), and the
        # changelog gets one record per key per batch: no row should ever show this.
        if p.reserved > 0 and p.reserved > p.on_hand:
            findings.append(
                Finding(FindingKind.OVER_RESERVED, key, f"reserved {p.reserved} > on hand {p.on_hand}")
            )
        if p.preordered > min(p.inbound, sum(units for _, units in p.lots)):
            detail = (
                f"preordered {p.preordered} > inbound {p.inbound} (with an ETA: {sum(u for _, u in p.lots)})"
            )
            findings.append(Finding(FindingKind.OVER_PREORDERED, key, detail))
        held = sum(units for _, units in p.holds)
        if row.holds_known and held != p.reserved:
            findings.append(
                Finding(
                    FindingKind.HOLDS_MISMATCH,
                    key,
                    f"reserved {p.reserved} but holds sum to {held} ({_holds_text(p.holds)})",
                )
            )
    return findings


def check_cart_holds(records: AuditInput, counts: Counter[str]) -> list[Finding]:
    """A cart hold is owned by its expiry: the one its latest reserve named. Live until then (plus
    ``settle_ms``, the ledger's expiry check runs every few seconds); still held after: a finding."""
    expiry: dict[str, int | None] = {}
    for command in records.commands:
        if command.record.kind == "reserve" and is_cart_hold(command.record.reservation_id):
            wire = command.record.expires_at
            expiry[command.record.reservation_id] = epoch_ms(wire) if wire is not None else None
    findings = []
    for row in records.ledger:
        for rid, units in row.position.holds:
            if not is_cart_hold(rid):
                continue
            counts["cart_holds"] += 1
            key, expires_at = f"{row.sku}|{row.location_id}", expiry.get(rid)
            if expires_at is None:
                why = "no reserve with an expiry on the reservations topic"
                findings.append(Finding(FindingKind.UNOWNED_HOLD, key, f"{rid} holds {units}: {why}"))
            elif expires_at + records.settle_ms < records.now_ms:
                when = datetime.fromtimestamp(expires_at / 1000, UTC).isoformat()
                findings.append(
                    Finding(
                        FindingKind.EXPIRED_HOLD, key, f"{rid} holds {units}: expired at {when}, not released"
                    )
                )
    return findings


def check_on_hand(records: AuditInput, counts: Counter[str] | None = None) -> list[Finding]:
    """Check 2: on hand of every row against a replay of the event log with the ledger's domain."""
    counts = counts if counts is not None else Counter()
    replayed = replay_on_hand(records, counts)
    ledger = {(row.sku, row.location_id): row.position.on_hand for row in records.ledger}
    counts["positions"] += len(ledger)
    findings = []
    for sku, location_id in sorted(ledger.keys() | replayed.keys()):
        in_ledger = ledger.get((sku, location_id))
        in_log = replayed.get((sku, location_id), 0)
        if (in_ledger or 0) != in_log:
            shown = "no ledger row" if in_ledger is None else f"ledger {in_ledger}"
            findings.append(
                Finding(FindingKind.ON_HAND_MISMATCH, f"{sku}|{location_id}", f"{shown}, event log {in_log}")
            )
    return findings


@dataclass(frozen=True, slots=True)
class _Fulfilled:
    location_id: str
    movement: Movement


def replay_on_hand(records: AuditInput, counts: Counter[str] | None = None) -> dict[tuple[str, str], int]:
    """On hand per (SKU, location) as the ledger should have it: stock events and the units that left
    with fulfilled reservations, per SKU in log order, through the ledger's own domain code."""
    counts = counts if counts is not None else Counter()
    per_sku: dict[str, list[tuple[tuple[int, str, int, int], DecodedStock | _Fulfilled]]] = defaultdict(list)
    for logged in records.stock:
        per_sku[logged.record.sku].append((logged.at.order, logged.record))
    for sku, at, fulfilled in _fulfilments(records):
        per_sku[sku].append((at.order, fulfilled))
    on_hand: dict[tuple[str, str], int] = {}
    for sku, items in per_sku.items():
        positions: dict[str, StockPosition] = {}
        applied: set[tuple[str, str]] = set()  # the ledger's id store, without its window
        for _, item in sorted(items, key=lambda pair: pair[0]):
            if isinstance(item, _Fulfilled):
                # The ledger applies it to the held position directly, as a sale journalled under
                # 'fulfil:<reservation id>' (domain.reservations), without the location checks.
                current = positions.get(item.location_id, StockPosition())
                positions[item.location_id] = apply_movement(current, item.movement).position
                continue
            result = apply_commands(positions, item.commands, records.locations, applied)
            positions.update(result.changed)
            applied.update((location, event_id) for location, event_id, _ in result.applied_ids)
            counts["stock_events_rejected"] += sum(v is Verdict.REJECTED for v, _ in result.verdicts)
        for location_id, position in positions.items():
            on_hand[(sku, location_id)] = position.on_hand
    counts["skus_replayed"] += len(per_sku)
    return on_hand


def _fulfilments(records: AuditInput) -> list[tuple[str, At, _Fulfilled]]:
    """(SKU, place in the SKU's log, movement) of every unit a fulfilled reply says left a location.

    Quantities come from the reply (what was really held); the moment and the place in the replay
    from the fulfil command the reply answers, which sits in the SKU's partition with its stock
    events and whose occurred_at the ledger journals."""
    commands: dict[tuple[str, str], list[Logged[ReservationCommand]]] = defaultdict(list)
    for sent_command in records.commands:
        if sent_command.record.kind == "fulfil":
            commands[(sent_command.record.reservation_id, sent_command.record.sku)].append(sent_command)
    seen: set[tuple[str, str, str]] = set()
    found = []
    for logged in sorted(records.replies, key=lambda r: r.at.order):
        reply = logged.record
        if reply.status != "fulfilled":
            continue
        sent = [
            c for c in commands.get((reply.reservation_id, reply.sku), []) if c.at.order <= logged.at.order
        ]
        command = sent[-1] if sent else None
        at = command.at if command is not None else logged.at
        occurred_ms = epoch_ms((command.record if command is not None else reply).occurred_at)
        for line in reply.lines:
            once = (reply.reservation_id, reply.sku, line.location_id)
            if once in seen or line.quantity <= 0:
                continue  # a redelivered reply (or a repeated fulfil) took nothing more
            seen.add(once)
            movement = Movement(
                f"fulfil:{reply.reservation_id}", MovementKind.SALE, line.quantity, occurred_ms
            )
            found.append((reply.sku, at, _Fulfilled(line.location_id, movement)))
    return found


def _holds_text(holds: Iterable[tuple[str, int]]) -> str:
    return ", ".join(f"{rid} {units}" for rid, units in holds) or "none"


def order_of_reservation(reservation_id: str) -> str:
    """'<order id>/<attempt>' -> order id."""
    return reservation_id.rsplit("/", 1)[0]


def _attempt(reservation_id: str) -> int:
    tail = reservation_id.rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else 0


_ENVELOPE = {"event_id", "occurred_at", "source", "schema_version", "trace"}
"""Left out when two records are compared: a re-publication may restamp them, the decision is the rest."""


def _content(model: BaseModel, exclude: set[str]) -> str:
    return json.dumps(model.model_dump(mode="json", exclude=exclude), sort_keys=True)


class _Sourcing:
    """Orders, outcomes and allocations indexed per order, for checks 3 to 5."""

    def __init__(self, records: AuditInput, counts: Counter[str]) -> None:
        self.records = records
        self.counts = counts
        self.placed_at: dict[str, int] = {}
        """Order id -> log time of its first placement."""
        self.asked: dict[str, dict[str, int]] = {}
        """Order id -> units per SKU (the most any version of the order asked for)."""
        for placed in sorted(records.placed, key=lambda r: r.at.order):
            order = placed.record
            self.placed_at.setdefault(order.order_id, placed.at.timestamp_ms)
            cart: Counter[str] = Counter()
            for line in order.cart:
                cart[line.sku] += line.quantity
            asked = self.asked.setdefault(order.order_id, {})
            for sku, units in cart.items():
                asked[sku] = max(asked.get(sku, 0), units)
        counts["orders_placed"] += len(self.placed_at)

        # Distinct outcomes per (order, round): redeliveries (same event id, same decision) fold.
        self.outcomes: dict[tuple[str, int], dict[tuple[str, str], Logged[OrderSourced]]] = defaultdict(dict)
        for sourced in sorted(records.outcomes, key=lambda r: r.at.order):
            o = sourced.record
            if o.edit is not None and o.edit.status == "refused":
                continue  # an edit's refusal: the order as it stood, not a round's outcome
            outcomes = self.outcomes[(o.order_id, o.round)]
            key = (o.event_id, _content(o, {"occurred_at", "trace"}))
            if key in outcomes:
                counts["redelivered"] += 1
            else:
                outcomes[key] = sourced
        counts["outcomes"] += len(self.outcomes)

        self.allocated: dict[str, dict[str, Logged[Allocation]]] = defaultdict(dict)
        """Allocation id -> its distinct 'allocate' records by content."""
        self.cancelled: dict[str, Logged[Allocation]] = {}
        for published in sorted(records.allocations, key=lambda r: r.at.order):
            a = published.record
            if a.kind == "cancel":
                self.cancelled.setdefault(a.allocation_id, published)
                continue
            versions = self.allocated[a.allocation_id]
            content = _content(a, _ENVELOPE)
            if content in versions:
                counts["redelivered"] += 1
            else:
                versions[content] = published
        counts["allocations"] += len(self.allocated)

        self.listed: dict[tuple[str, int], set[str]] = {
            key: {aid for logged in distinct.values() for aid in logged.record.allocations}
            for key, distinct in self.outcomes.items()
        }
        self.live = self._live()
        self.live_of: dict[str, list[Allocation]] = defaultdict(list)
        for allocation in self.live:
            self.live_of[allocation.order_id].append(allocation)
        self.latest_round: dict[str, int] = {}
        for order_id, round_ in self.outcomes:
            self.latest_round[order_id] = max(round_, self.latest_round.get(order_id, 0))
        self.last_cancelled_round: dict[str, int] = {}
        for cancel in self.cancelled.values():
            order_id, round_ = cancel.record.order_id, cancel.record.round
            self.last_cancelled_round[order_id] = max(round_, self.last_cancelled_round.get(order_id, 0))
        self.order_cancelled_at: dict[str, int] = {}
        """Order id -> log time of the answer that cancelled its last line."""
        for answer in records.cancellations:
            if answer.record.order_cancelled:
                self.order_cancelled_at.setdefault(answer.record.order_id, answer.at.timestamp_ms)
        counts["orders_cancelled"] += len(self.order_cancelled_at)
        self.reserve_sent_at: dict[str, int] = {}
        """Reservation id -> log time of its first reserve command."""
        for sent in records.commands:
            if sent.record.kind == "reserve":
                rid, at = sent.record.reservation_id, sent.at.timestamp_ms
                self.reserve_sent_at[rid] = min(at, self.reserve_sent_at.get(rid, at))

    # --- shared views -------------------------------------------------------------------------

    def _recent(self, at_ms: int) -> bool:
        return self.records.now_ms - at_ms <= self.records.settle_ms

    def _latest_outcome(self, order_id: str) -> OrderSourced | None:
        round_ = self.latest_round.get(order_id)
        if round_ is None:
            return None
        return max(self.outcomes[(order_id, round_)].values(), key=lambda logged: logged.at.order).record

    def _allocation(self, allocation_id: str) -> Allocation:
        """The first published version of an allocation (a conflicting later one is reported)."""
        return min(self.allocated[allocation_id].values(), key=lambda logged: logged.at.order).record

    def _live(self) -> list[Allocation]:
        """Allocations fulfilment may still act on: published, not cancelled, and either listed by
        their round's outcome or with that outcome still to come."""
        live = []
        for allocation_id in self.allocated:
            if allocation_id in self.cancelled:
                continue
            allocation = self._allocation(allocation_id)
            listed = self.listed.get((allocation.order_id, allocation.round))
            if listed is None or allocation_id in listed:
                live.append(allocation)
        return live

    def _resourcing(self, order_id: str, latest: OrderSourced | None) -> bool:
        """A cancel newer than the latest outcome: the next round's outcome is still to come."""
        cancelled = self.last_cancelled_round.get(order_id)
        return cancelled is not None and cancelled >= (latest.round if latest is not None else 0)

    # --- check 4 ------------------------------------------------------------------------------

    def check_outcomes(self) -> list[Finding]:
        findings = []
        waiting = {
            order_of_reservation(rid) for row in self.records.ledger for rid, _ in row.position.preorders
        }
        for order_id, placed_at in sorted(self.placed_at.items()):
            if (order_id, 1) in self.outcomes or (order_id, 0) in self.outcomes:
                continue  # round 0: refused at placement (a limit, unreadable), answered all the same
            if order_id in waiting:
                self.counts["preordered"] += 1  # its outcome comes when the inbound arrives
                continue
            if self._recent(placed_at):
                self.counts["in_flight"] += 1
                continue
            age_s = (self.records.now_ms - placed_at) / 1000
            findings.append(
                Finding(
                    FindingKind.MISSING_OUTCOME,
                    order_id,
                    f"placed {age_s:,.0f} s ago, no outcome for round 1",
                )
            )
        for (order_id, round_), distinct in sorted(self.outcomes.items()):
            if order_id not in self.placed_at:
                self.counts["unknown_orders"] += 1
            if len(distinct) > 1:
                shown = "; ".join(
                    f"{logged.record.event_id}: {logged.record.outcome} {logged.record.allocations}"
                    for logged in distinct.values()
                )
                findings.append(
                    Finding(
                        FindingKind.CONFLICTING_OUTCOMES,
                        order_id,
                        f"round {round_}: {len(distinct)} different outcomes ({shown})",
                    )
                )
        return findings

    # --- check 5 ------------------------------------------------------------------------------

    def check_allocations(self) -> list[Finding]:
        findings = []
        for allocation_id, distinct in sorted(self.allocated.items()):
            versions = sorted(distinct.values(), key=lambda logged: logged.at.order)
            first = versions[0].record
            if len(versions) > 1:
                findings.append(
                    Finding(
                        FindingKind.CONFLICTING_ALLOCATION,
                        allocation_id,
                        f"{len(versions)} different versions: "
                        + "; ".join(_allocation_text(v.record) for v in versions),
                    )
                )
            listed = self.listed.get((first.order_id, first.round))
            if listed is not None and allocation_id not in listed:
                outcome = self._outcome_text(first.order_id, first.round)
                findings.append(
                    Finding(
                        FindingKind.UNLISTED_ALLOCATION,
                        allocation_id,
                        f"not listed by the outcome of round {first.round} ({outcome})",
                    )
                )
            elif listed is None and not self._recent(versions[0].at.timestamp_ms):
                findings.append(
                    Finding(
                        FindingKind.UNLISTED_ALLOCATION,
                        allocation_id,
                        f"no outcome was published for round {first.round} of {first.order_id}",
                    )
                )
        for (order_id, round_), outcomes in sorted(self.outcomes.items()):
            for logged in outcomes.values():
                if self._recent(logged.at.timestamp_ms):
                    continue  # its allocations may be on their way to the audit's reader
                for allocation_id in logged.record.allocations:
                    if allocation_id not in self.allocated:
                        findings.append(
                            Finding(
                                FindingKind.MISSING_ALLOCATION,
                                allocation_id,
                                f"listed by {logged.record.event_id} (round {round_} of {order_id}, "
                                f"{logged.record.outcome}) but never published",
                            )
                        )
        findings += self._over_allocated()
        return findings

    def _outcome_text(self, order_id: str, round_: int) -> str:
        return "; ".join(
            f"{logged.record.outcome} {logged.record.allocations}"
            for logged in self.outcomes[(order_id, round_)].values()
        )

    def _over_allocated(self) -> list[Finding]:
        # Every allocation not cancelled can still be shipped, whatever its round: a re-sourcing that
        # forgot a cancel ships twice as surely as two allocations of one round.
        units: dict[str, Counter[str]] = defaultdict(Counter)
        ids: dict[tuple[str, str], list[str]] = defaultdict(list)
        for allocation_id in self.allocated:
            if allocation_id in self.cancelled:
                continue
            allocation = self._allocation(allocation_id)
            for line in allocation.lines:
                units[allocation.order_id][line.sku] += line.quantity
                ids[(allocation.order_id, line.sku)].append(allocation_id)
        findings = []
        for order_id, per_sku in sorted(units.items()):
            asked = self.asked.get(order_id)
            if asked is None:
                continue  # never placed (or placed beyond retention): nothing to compare with
            for sku, allocated in sorted(per_sku.items()):
                if allocated > asked.get(sku, 0):
                    findings.append(
                        Finding(
                            FindingKind.OVER_ALLOCATED,
                            order_id,
                            f"{sku}: live allocations {', '.join(sorted(ids[(order_id, sku)]))} cover "
                            f"{allocated} units, the order asked for {asked.get(sku, 0)}",
                        )
                    )
        return findings

    # --- check 3 ------------------------------------------------------------------------------

    def check_holds(self) -> list[Finding]:
        """Holds per (order, SKU, location) against what its live, unfulfilled allocations need."""
        order_of: dict[str, str] = {}
        for command in self.records.commands:
            order_of.setdefault(command.record.reservation_id, command.record.order_id)
        for reply in self.records.replies:
            order_of.setdefault(reply.record.reservation_id, reply.record.order_id)

        holds: dict[tuple[str, str, str], list[tuple[str, int]]] = defaultdict(list)
        for row in self.records.ledger:
            for rid, units in row.position.holds:
                if is_cart_hold(rid):
                    continue  # owned by its expiry, not by an order (check_cart_holds)
                order_id = order_of.get(rid) or order_of_reservation(rid)
                holds[(order_id, row.sku, row.location_id)].append((rid, units))
                self.counts["holds"] += 1

        need: Counter[tuple[str, str, str]] = Counter()
        need_ids: dict[tuple[str, str, str], list[str]] = defaultdict(list)
        for allocation in self.live:
            for line in allocation.lines:
                key = (allocation.order_id, line.sku, allocation.location_id)
                need[key] += line.quantity
                need_ids[key].append(allocation.allocation_id)
        shipped, shipped_all = self._fulfilled()
        for key in list(need):
            need[key] = 0 if key in shipped_all else max(0, need[key] - shipped[key])

        known = {*self.placed_at, *(o for o, _ in self.outcomes), *(a.order_id for a in self.live)}
        shed = self._shed()
        for key in self._fulfilled_after_shed(shed) & need.keys():
            need[key] = 0
            self.counts["fulfilled_after_shed"] += 1
        findings = []
        for key in sorted(holds.keys() | need.keys()):
            order_id, sku, location_id = key
            taken = sorted(holds.get(key, []), key=lambda hold: -_attempt(hold[0]))
            needed = need[key]
            kept = 0
            extra = []
            for rid, units in taken:  # the newest attempt is the one its allocations came from
                if kept + units <= needed:
                    kept += units
                else:
                    extra.append((rid, units))
            if extra:
                findings += self._orphans(order_id, sku, location_id, extra, known)
            if kept < needed and key in shed and self._recent(shed[key]):
                # The ledger shed the hold (its stock went); the order's owner re-sources it next.
                self.counts["in_flight_sheds"] += 1
            elif kept < needed:
                findings.append(
                    Finding(
                        FindingKind.UNHELD_ALLOCATION,
                        ",".join(sorted(set(need_ids[key]))),
                        f"{sku} at {location_id}: {needed} units to ship, "
                        f"{kept} held ({_holds_text(holds.get(key, []))})",
                    )
                )
        return findings

    def check_preorders(self) -> list[Finding]:
        """Every preorder hold (inbound promised to an order) has a live owner: its order was placed,
        is not cancelled, and has published no outcome since the preorder was asked for (a round
        that ends, allocated or given up, converts or releases it)."""
        asked: dict[str, int] = {}
        for sent in self.records.commands:
            if sent.record.kind == "preorder":
                rid, at = sent.record.reservation_id, sent.at.timestamp_ms
                asked[rid] = min(at, asked.get(rid, at))
        findings = []
        for row in self.records.ledger:
            for rid, units in row.position.preorders:
                self.counts["preorders"] += 1
                why = self._preorder_unowned(order_of_reservation(rid), asked.get(rid))
                if why is not None:
                    key = f"{row.sku}|{row.location_id}"
                    findings.append(
                        Finding(FindingKind.UNOWNED_PREORDER, key, f"{rid} preorders {units}: {why}")
                    )
        return findings

    def _preorder_unowned(self, order_id: str, asked_at: int | None) -> str | None:
        if order_id not in self.placed_at:
            return f"order {order_id} was never placed"
        cancelled_at = self.order_cancelled_at.get(order_id)
        if cancelled_at is not None and not self._recent(cancelled_at):
            return f"order {order_id} was cancelled"
        since = [
            logged
            for (order, _), distinct in self.outcomes.items()
            if order == order_id
            for logged in distinct.values()
            if asked_at is None or logged.at.timestamp_ms >= asked_at
        ]
        latest = max(since, key=lambda logged: logged.at.order, default=None)
        if latest is not None and not self._recent(latest.at.timestamp_ms):
            outcome = latest.record
            return f"order {order_id} has an outcome since ({outcome.outcome} in round {outcome.round})"
        return None

    def _orphans(
        self, order_id: str, sku: str, location_id: str, extra: list[tuple[str, int]], known: set[str]
    ) -> list[Finding]:
        latest = self._latest_outcome(order_id)
        cancelled_at = self.order_cancelled_at.get(order_id)
        if cancelled_at is not None:
            if self._recent(cancelled_at):
                self.counts["in_flight_holds"] += len(extra)  # its releases may still be on their way
                return []
            why = f"order {order_id} was cancelled"
            return [
                Finding(FindingKind.ORPHAN_HOLD, f"{sku}|{location_id}", f"{rid} holds {units}: {why}")
                for rid, units in extra
            ]
        if order_id in self.placed_at and latest is None:
            self.counts["in_flight_holds"] += len(extra)  # sourcing still deciding
            return []
        if latest is not None and self._resourcing(order_id, latest):
            self.counts["resourcing"] += 1
            self.counts["in_flight_holds"] += len(extra)
            return []
        sourcing_backorder = [hold for hold in extra if self._sources_backorder(order_id, latest, hold[0])]
        if sourcing_backorder:
            self.counts["in_flight_holds"] += len(sourcing_backorder)  # its round's outcome follows
            extra = [hold for hold in extra if hold not in sourcing_backorder]
            if not extra:
                return []
        if order_id not in known:
            why = f"order {order_id} was never placed"
        elif latest is None:
            why = f"order {order_id} has no outcome"
        elif latest.outcome == "rejected":
            why = f"order {order_id} was rejected in round {latest.round}"
        else:
            why = f"no live allocation of {order_id} ({latest.outcome} in round {latest.round}) needs it"
        return [
            Finding(FindingKind.ORPHAN_HOLD, f"{sku}|{location_id}", f"{rid} holds {units}: {why}")
            for rid, units in extra
        ]

    def _sources_backorder(self, order_id: str, latest: OrderSourced | None, rid: str) -> bool:
        """A hold of a round that sources the latest outcome's backorder (it waits for stock): its
        reserve was sent after that outcome, within the settle time."""
        if latest is None or latest.backorder_until is None:
            return False
        sent = self.reserve_sent_at.get(rid)
        published = min(logged.at.timestamp_ms for logged in self.outcomes[(order_id, latest.round)].values())
        return sent is not None and sent >= published and self._recent(sent)

    def _shed(self) -> dict[tuple[str, str, str], int]:
        """(order, SKU, location) -> log time of the latest hold the ledger shed there."""
        shed: dict[tuple[str, str, str], int] = {}
        for answer in self.records.replies:
            reply = answer.record
            if reply.kind == "shed":
                for line in reply.lines:
                    key = (reply.order_id, reply.sku, line.location_id)
                    shed[key] = max(shed.get(key, 0), answer.at.timestamp_ms)
        return shed

    def _fulfilled_after_shed(self, shed: dict[tuple[str, str, str], int]) -> set[tuple[str, str, str]]:
        """(order, SKU, location) whose fulfil was answered ``fulfilled`` after the ledger had shed
        the hold there: a count taken after the units left excluded them, so the fulfil had nothing
        left to take and the allocation needs no hold any more."""
        answered = {
            (logged.record.reservation_id, logged.record.sku)
            for logged in self.records.replies
            if logged.record.kind == "fulfil" and logged.record.status == "fulfilled"
        }
        settled = set()
        for sent in self.records.commands:
            command = sent.record
            if command.kind == "fulfil" and (command.reservation_id, command.sku) in answered:
                for line in command.lines:
                    key = (command.order_id, command.sku, line.location_id)
                    if key in shed:
                        settled.add(key)
        return settled

    def _fulfilled(self) -> tuple[Counter[tuple[str, str, str]], set[tuple[str, str, str]]]:
        """Units shipped per (order, SKU, location) by fulfilled replies, and the places a fulfil
        command was sent to but not answered yet (it may already have taken the hold away)."""
        shipped: Counter[tuple[str, str, str]] = Counter()
        seen: set[tuple[str, str, str]] = set()
        answered: set[tuple[str, str]] = set()
        for answer in self.records.replies:
            reply = answer.record
            if reply.kind != "fulfil":
                continue
            answered.add((reply.reservation_id, reply.sku))
            if reply.status != "fulfilled":
                continue
            for line in reply.lines:
                once = (reply.reservation_id, reply.sku, line.location_id)
                if once not in seen:
                    seen.add(once)
                    shipped[(reply.order_id, reply.sku, line.location_id)] += line.quantity
        pending: set[tuple[str, str, str]] = set()
        for sent in self.records.commands:
            command = sent.record
            if command.kind != "fulfil" or (command.reservation_id, command.sku) in answered:
                continue
            named = {line.location_id for line in command.lines}
            for allocation in self.live_of.get(command.order_id, []):
                if not named or allocation.location_id in named:
                    pending.add((command.order_id, command.sku, allocation.location_id))
        return shipped, pending


def _allocation_text(allocation: Allocation) -> str:
    lines = ", ".join(f"{line.sku} x{line.quantity}" for line in allocation.lines)
    return f"{allocation.location_id} [{lines}] {allocation.method}"


# --- the reader -----------------------------------------------------------------------------------


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
    now_ms = time.time_ns() // 1_000_000
    year = datetime.now(UTC).year
    collector = _Collector(settings, tuple(range(year - 1, year + 4)))

    def add(topic: str, partition: int, offset: int, ts: int, key: bytes | None, value: bytes | None) -> None:
        collector.add(At(topic, partition, offset, ts), key, value)

    missing = read_to_end(settings, "oms-audit", collector.names, add, timeout_s=timeout_s)
    return collector.build(now_ms, int(settle_s * 1000), missing)


def run_audit(
    settings: Settings, *, timeout_s: float = 30.0, settle_s: float = DEFAULT_SETTLE_MS / 1000
) -> AuditReport:
    return audit(read_audit_input(settings, timeout_s=timeout_s, settle_s=settle_s))
