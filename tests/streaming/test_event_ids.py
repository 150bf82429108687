"""The ledger's id store without a broker (a dict for the table): movements applied are remembered
per position, found again in a later batch, and forgotten once older than the window."""

from __future__ import annotations

import asyncio

from oms_streams.domain.inventory import JOURNAL_WINDOW
from oms_streams.domain.ledger import StockCommand
from oms_streams.streaming.event_ids import DAY_MS, AppliedMovementIds, id_key
from tests.unit.builders import a_count, a_position, a_receipt

NOW = 1_780_000_000_000


def a_store() -> tuple[AppliedMovementIds, dict[bytes, bytes]]:
    table: dict[bytes, bytes] = {}
    return AppliedMovementIds(table, window_days=7), table


def test_a_movement_the_journal_forgot_is_found_again_per_position():
    ids, table = a_store()
    ids.remember("SKU-TENT", [("DC-NORTH", "R-1", 5)], NOW)  # the 5th movement applied there
    positions = {loc: a_position(applied=5 + JOURNAL_WINDOW) for loc in ("DC-NORTH", "STORE-UTRECHT-01")}

    commands = [
        StockCommand("DC-NORTH", a_receipt(event_id="R-1")),
        StockCommand("STORE-UTRECHT-01", a_receipt(event_id="R-1")),  # same id, other position
        StockCommand("DC-NORTH", a_count(on_hand=3)),
    ]
    assert ids.seen("SKU-TENT", commands, positions) == {("DC-NORTH", "R-1")}
    assert ids.seen("SKU-LAMP", commands, positions) == set()
    assert table == {id_key("SKU-TENT", "DC-NORTH", "R-1"): f"{NOW}:5".encode()}


def test_an_id_whose_position_write_was_lost_does_not_count():
    # A crash kept the id's changelog record and lost its position's: the state restored stops
    # before that movement, which is read again and must be applied, not taken for a duplicate.
    ids, _ = a_store()
    ids.remember("SKU-TENT", [("DC-NORTH", "R-1", 5)], NOW)
    receipt = [StockCommand("DC-NORTH", a_receipt(event_id="R-1"))]

    assert ids.seen("SKU-TENT", receipt, {"DC-NORTH": a_position(applied=4)}) == set()
    assert ids.seen("SKU-TENT", receipt, {}) == set()
    # Younger than the journal's window: the journal, which travels with the state, decides.
    assert ids.seen("SKU-TENT", receipt, {"DC-NORTH": a_position(applied=5 + JOURNAL_WINDOW - 1)}) == set()


def test_ids_older_than_the_window_are_forgotten_and_younger_ones_kept():
    ids, table = a_store()
    ids.remember("SKU-TENT", [("DC-NORTH", "OLD", 1)], NOW - 7 * DAY_MS - 1)
    ids.remember("SKU-TENT", [("DC-NORTH", "EDGE", 2)], NOW - 7 * DAY_MS)
    ids.remember("SKU-LAMP", [("DC-NORTH", "NEW", 1)], NOW - 1)

    forgotten = asyncio.run(ids.forget_expired(NOW, asyncio.Lock()))

    assert forgotten == 1
    assert sorted(table) == [id_key("SKU-LAMP", "DC-NORTH", "NEW"), id_key("SKU-TENT", "DC-NORTH", "EDGE")]
