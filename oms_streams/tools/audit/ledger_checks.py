"""The checks of the stock ledger on its own: each row's invariants, on hand against a replay of the
stock topics and the fulfilled reservations with the ledger's own domain code, and cart holds,
which are owned by their expiry rather than by an order."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from oms_streams.adapters.stock import DecodedStock
from oms_streams.adapters.timestamps import epoch_ms
from oms_streams.domain.inventory import Movement, MovementKind, StockPosition, Verdict, apply_movement
from oms_streams.domain.ledger import apply_commands
from oms_streams.domain.reservations import is_cart_hold
from oms_streams.schemas.sourcing import ReservationCommand
from oms_streams.tools.audit.model import At, AuditInput, Finding, FindingKind, LedgerRow, Logged, _holds_text


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
