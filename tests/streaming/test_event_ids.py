"""The ledger's id store without a broker (a dict for the table): movements applied are remembered
per position, found again in a later batch, and forgotten once older than the window."""

from __future__ import annotations

import asyncio

from oms_streams.domain.ledger import StockCommand
from oms_streams.streaming.event_ids import DAY_MS, AppliedMovementIds, id_key
from tests.unit.builders import a_count, a_receipt

NOW = 1_780_000_000_000


def a_store() -> tuple[AppliedMovementIds, dict[bytes, bytes]]:
    table: dict[bytes, bytes] = {}
    return AppliedMovementIds(table, window_days=7, stock_topic="movements", partitions=3), table


def test_applied_movements_are_found_again_per_position_and_counts_are_not_kept():
    ids, table = a_store()
    ids.remember("SKU-TENT", [("DC-NORTH", "R-1")], NOW)

    commands = [
        StockCommand("DC-NORTH", a_receipt(event_id="R-1")),
        StockCommand("STORE-UTRECHT-01", a_receipt(event_id="R-1")),  # same id, other position
        StockCommand("DC-NORTH", a_count(on_hand=3)),
    ]
    assert ids.seen("SKU-TENT", commands) == {("DC-NORTH", "R-1")}
    assert ids.seen("SKU-LAMP", commands) == set()
    assert table == {id_key("SKU-TENT", "DC-NORTH", "R-1"): str(NOW).encode()}


def test_ids_older_than_the_window_are_forgotten_and_younger_ones_kept():
    ids, table = a_store()
    ids.remember("SKU-TENT", [("DC-NORTH", "OLD")], NOW - 7 * DAY_MS - 1)
    ids.remember("SKU-TENT", [("DC-NORTH", "EDGE")], NOW - 7 * DAY_MS)
    ids.remember("SKU-LAMP", [("DC-NORTH", "NEW")], NOW - 1)

    forgotten = asyncio.run(ids.forget_expired(NOW, asyncio.Lock()))

    assert forgotten == 1
    assert sorted(table) == [id_key("SKU-LAMP", "DC-NORTH", "NEW"), id_key("SKU-TENT", "DC-NORTH", "EDGE")]
