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

The package holds one idea per module: ``model`` (findings and the input), ``ledger_checks`` (the
stock ledger on its own), ``sourcing_checks`` (orders, outcomes, allocations, holds and preorders),
``report`` (text and JSON output) and ``reader`` (the topics). This module runs the checks in order
and keeps the names the rest of the code imports from ``oms_streams.tools.audit``.
"""

from __future__ import annotations

from collections import Counter

from oms_streams.config import Settings
from oms_streams.tools.audit.ledger_checks import (
    check_cart_holds,
    check_ledger_rows,
    check_on_hand,
    replay_on_hand,
)
from oms_streams.tools.audit.model import (
    DEFAULT_SETTLE_MS,
    At,
    AuditInput,
    Finding,
    FindingKind,
    LedgerRow,
    Logged,
    TopicRead,
)
from oms_streams.tools.audit.reader import (
    STOCK_TABLE,
    changelog_topic,
    decode_changelog_row,
    read_audit_input,
)
from oms_streams.tools.audit.report import EXAMPLES_PER_KIND, AuditReport
from oms_streams.tools.audit.sourcing_checks import _Sourcing, order_of_reservation

__all__ = [
    "DEFAULT_SETTLE_MS",
    "EXAMPLES_PER_KIND",
    "STOCK_TABLE",
    "At",
    "AuditInput",
    "AuditReport",
    "Finding",
    "FindingKind",
    "LedgerRow",
    "Logged",
    "TopicRead",
    "audit",
    "changelog_topic",
    "check_cart_holds",
    "check_ledger_rows",
    "check_on_hand",
    "decode_changelog_row",
    "order_of_reservation",
    "read_audit_input",
    "replay_on_hand",
    "run_audit",
]


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


def run_audit(
    settings: Settings, *, timeout_s: float = 30.0, settle_s: float = DEFAULT_SETTLE_MS / 1000
) -> AuditReport:
    return audit(read_audit_input(settings, timeout_s=timeout_s, settle_s=settle_s))
