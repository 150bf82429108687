"""A preorder's interim answer on ``oms.orders.sourced.v1`` (``schemas.sourcing.OrderSourced`` with
outcome ``preordered``): the webshop learns as soon as every ledger held the inbound, with each
line's ETA and when the preorder is given up unless the goods arrived.

It is not a round's outcome: that follows (``allocated`` at the arrival, ``rejected`` when given up
or cancelled). Its event id '<order>:preordered:<round>' is one per round, and its content is
decided once, from the row (``SourcingRow.preorder``): read again, the order's owner publishes the
copy it kept (``sourcing_outcomes``), or, when the row that decided it was lost, decides the same
record again from the same answers (its ``occurred_at`` is the last ledger's answer's).
"""

from __future__ import annotations

from typing import Any

import orjson

from oms_streams.adapters.sourcing import SOURCE, SourcingRow, reservations_by_sku
from oms_streams.adapters.timestamps import utc_from_epoch_ms

INTERIM = "preordered"
"""The outcome of the interim answer: not a round's outcome (consumers of outcomes skip it)."""


def is_interim(record: Any) -> bool:
    """A decoded record of ``oms.orders.sourced.v1`` that is a preorder's interim answer."""
    outcome = record.get("outcome") if isinstance(record, dict) else getattr(record, "outcome", None)
    return outcome == INTERIM


def is_interim_value(value: bytes | None) -> bool:
    """A raw record of ``oms.orders.sourced.v1`` that is a preorder's interim answer."""
    try:
        return value is not None and is_interim(orjson.loads(value))
    except orjson.JSONDecodeError:
        return False


def interim_event_id(order_id: str, round_: int) -> str:
    return f"{order_id}:preordered:{round_}"


def preordered_record(row: SourcingRow, now_ms: int) -> bytes:
    """The interim answer of the row's waiting preorder (``row.preorder`` status ``waiting``). Made
    of the ledgers' answers only (its time is when the last of them accepted), so that deciding it
    again from the same answers, after a crash lost the row, makes the same record."""
    state = row.preorder or {}
    etas: dict[str, int] = state.get("etas") or {}
    lines = [
        {
            "sku": sku,
            "quantity": units,
            "location_id": location_id,
            "expected_at": _iso(etas.get(sku)) if sku in row.pending else None,
        }
        for sku, at in reservations_by_sku(row.plan or {"shipments": []}, row.channel).items()
        for location_id, units, *_ in at
    ]
    body = {
        "event_id": interim_event_id(row.order_id, row.round),
        "occurred_at": utc_from_epoch_ms(state.get("accepted_at_ms") or now_ms).isoformat(),
        "source": SOURCE,
        "schema_version": 1,
        "order_id": row.order_id,
        "round": row.round,
        "outcome": INTERIM,
        "allocations": [],
        "backorder": [],
        "reason": str((row.plan or {}).get("reason", "")),
        "attempts": row.round_attempts,
        "preorder": {
            "expected_at": _iso(state.get("expected_at_ms")),
            "give_up_at": _iso(state.get("until_ms")),
            "lines": lines,
        },
    }
    return orjson.dumps(body)


def _iso(ms: int | None) -> str | None:
    return utc_from_epoch_ms(ms).isoformat() if ms is not None else None
