"""A preorder's saga without a broker (``streaming.sourcing_preorders``): a placement of a
``preorder`` option holds inbound, waits, and allocates when its ledgers say the goods arrived; a
refused preorder is sourced from stock on hand; a late one is given up with the reason.

The ledger's side (lots, holds on inbound, conversion) is ``tests/unit/test_preorders.py``; both
together on the real broker: ``tests/integration/test_preorders.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import oms_streams.streaming.sourcing_runtime as sourcing_runtime
from oms_streams.adapters.lifecycle import order_lifecycle
from oms_streams.adapters.sourcing import SourcingRow
from oms_streams.adapters.timestamps import epoch_ms
from tests.streaming.test_backorders import Harness
from tests.streaming.test_orders_runtime import FakeEvent

ETA = datetime.now(UTC) + timedelta(days=10)


@pytest.fixture
def h(monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    harness = Harness()
    monkeypatch.setattr(sourcing_runtime, "now_ms", lambda: harness.now)
    yield harness


def preorder_placement(h: Harness, order_id: str, cart: dict[str, int]) -> FakeEvent:
    event = h.placement(order_id, cart)
    body = json.loads(event.message.value)
    body["option"]["preorder"] = True
    return FakeEvent("placed", order_id.encode(), json.dumps(body).encode())


def preordered(h: Harness, commands: list[dict[str, Any]], eta: datetime = ETA) -> FakeEvent:
    event = h.answers(commands, "preordered", 3)
    body = json.loads(event.message.value)
    for reply in body["replies"]:
        for line in reply["lines"]:
            line["expected_at"] = eta.isoformat()
    return FakeEvent("replies", event.message.key, json.dumps(body).encode())


def arrived(h: Harness, command: dict[str, Any]) -> FakeEvent:
    """The ledger's unasked answer once the goods arrived (``preorder_arrivals``)."""
    event = h.answers([{**command, "kind": "reserve"}], "reserved", 0)
    body = json.loads(event.message.value)
    body["replies"][0]["event_id"] = f"{command['reservation_id']}:{command['sku']}:arrived"
    return FakeEvent("replies", event.message.key, json.dumps(body).encode())


def waiting(h: Harness, order_id: str = "ORDER-P", cart: dict[str, int] | None = None) -> SourcingRow:
    h.run(preorder_placement(h, order_id, cart or {"SKU-TENT": 2}))
    commands = h.commands("preorder")
    h.take_sent()
    h.run(preordered(h, commands))
    row = h.row(order_id)
    assert row.preorder is not None and row.preorder["status"] == "waiting"
    return row


def test_a_preorder_holds_inbound_waits_and_is_allocated_when_the_goods_arrive(h: Harness) -> None:
    h.run(preorder_placement(h, "ORDER-P", {"SKU-TENT": 2, "SKU-STOVE": 1}))
    commands = h.commands("preorder")
    assert sorted((c["sku"], c["reservation_id"]) for c in commands) == [
        ("SKU-STOVE", "ORDER-P/1"),
        ("SKU-TENT", "ORDER-P/1"),
    ]
    assert h.commands("reserve") == []  # nothing asked of the stock on hand
    h.take_sent()
    h.run(preordered(h, commands))

    row = h.row("ORDER-P")
    assert row.preorder is not None and row.preorder["status"] == "waiting"
    assert row.preorder["expected_at_ms"] == epoch_ms(ETA)
    assert row.outstanding == [] and sorted(row.pending) == ["SKU-STOVE", "SKU-TENT"]
    assert order_lifecycle(None, row, False) == "preordered"
    [interim] = h.outcomes("ORDER-P")  # the webshop is told at once (``test_preorder_answers``)
    assert (interim["outcome"], interim["allocations"]) == ("preordered", [])
    assert h.on("allocations") == []
    h.take_sent()

    h.run(arrived(h, commands[0]))
    assert h.outcomes("ORDER-P") == []  # one SKU still on its way
    h.run(arrived(h, commands[1]))
    [outcome] = h.outcomes("ORDER-P")
    assert (outcome["round"], outcome["outcome"]) == (1, "allocated")
    [allocation] = [a for a in h.on("allocations") if a["kind"] == "allocate"]
    assert (allocation["allocation_id"], allocation["location_id"]) == ("ORDER-P:1:0", "DC-NORTH")
    assert h.row("ORDER-P").allocations[0].reservation_id == "ORDER-P/1"  # the hold the preorder became
    row = h.row("ORDER-P")
    assert row.preorder is not None and row.preorder["status"] == "arrived"
    assert order_lifecycle(None, row, False) == "allocated"


def test_a_refused_preorder_gives_back_what_it_holds_and_is_sourced_from_stock_on_hand(h: Harness) -> None:
    h.stock("SKU-TENT", DC_SOUTH=5)
    h.run(preorder_placement(h, "ORDER-P", {"SKU-TENT": 2}))
    [command] = h.commands("preorder")
    h.take_sent()
    h.run(h.answer(command, "refused"))

    [release] = h.commands("release")
    assert (release["reservation_id"], release["lines"][0]["location_id"]) == ("ORDER-P/1", "DC-NORTH")
    [reserve] = h.commands("reserve")
    assert (reserve["reservation_id"], reserve["lines"][0]["location_id"]) == ("ORDER-P/2", "DC-SOUTH")
    row = h.row("ORDER-P")
    assert row.preorder is not None and row.preorder["status"] == "refused"
    assert order_lifecycle(None, row, False) == "placed"


def test_a_preorder_whose_goods_are_late_past_the_grace_is_given_up_with_the_reason(h: Harness) -> None:
    waiting(h)
    h.later(days=10, hours=23)
    assert h.check() == 1  # past the ETA: the ledger is asked again (its arrival answer may be lost)
    [again] = h.commands("preorder")
    h.take_sent()
    h.run(preordered(h, [again]))  # not there yet
    assert h.check() == 0  # within the grace (24 h after the ETA)
    h.later(hours=2)
    assert h.check() == 1

    [release] = h.commands("release")
    assert (release["reservation_id"], release["sku"]) == ("ORDER-P/1", "SKU-TENT")
    assert [line["location_id"] for line in release["lines"]] == ["DC-NORTH"]
    [outcome] = h.outcomes("ORDER-P")
    assert (outcome["round"], outcome["outcome"], outcome["allocations"]) == (1, "rejected", [])
    assert outcome["reason"].startswith("preorder given up: the inbound expected at")
    assert outcome["backorder_final"] is True
    row = h.row("ORDER-P")
    assert row.preorder is not None and row.preorder["status"] == "late"
    assert order_lifecycle(None, row, False) == "rejected"
    h.take_sent()
    assert h.check() == 0 and h.sent == []  # once


def test_a_new_owner_asks_a_waiting_preorder_again_and_allocates_if_the_goods_arrived_meanwhile(
    h: Harness,
) -> None:
    waiting(h)
    h.saga = h.owner()  # a rebalance: same table, nothing in memory
    asyncio.run(h.saga.reload())
    [again] = h.commands()  # asked again as a preorder, never as a reserve of stock on hand
    assert (again["kind"], again["reservation_id"]) == ("preorder", "ORDER-P/1")
    h.take_sent()
    h.run(h.answer(again, "reserved"))  # the goods arrived while the answer was lost
    # The new owner first publishes the row's last outcomes again (the interim answer: a repeat).
    assert [o["outcome"] for o in h.outcomes("ORDER-P")] == ["preordered", "allocated"]
    h.later(days=12)
    assert h.check() == 0


def test_a_preordered_answer_to_an_attempt_that_is_over_is_given_back(h: Harness) -> None:
    h.stock("SKU-TENT", DC_SOUTH=5)
    h.run(preorder_placement(h, "ORDER-P", {"SKU-TENT": 2}))
    [command] = h.commands("preorder")
    h.take_sent()
    h.run(h.answer(command, "refused"))
    h.take_sent()
    h.run(preordered(h, [command]))  # a resend of the first attempt, answered late
    [release] = h.commands("release")
    assert release["reservation_id"] == "ORDER-P/1"


def test_cancelling_a_waiting_preorder_releases_its_inbound_at_once(h: Harness) -> None:
    waiting(h)
    h.run(h.cancellation("ORDER-P"))

    [release] = h.commands("release")
    assert (release["reservation_id"], release["sku"]) == ("ORDER-P/1", "SKU-TENT")
    [answer] = h.on("cancellation-outcomes")
    assert (answer["outcome"], answer["order_cancelled"]) == ("cancelled", True)
    row = h.row("ORDER-P")
    assert row.preorder is not None and row.preorder["status"] == "cancelled"
    assert order_lifecycle(None, row, True) == "cancelled"
    h.later(days=12)
    assert h.check() == 0  # nothing left to give up


def test_a_preordered_answer_read_again_after_the_goods_arrived_releases_nothing(h: Harness) -> None:
    h.run(preorder_placement(h, "ORDER-P", {"SKU-TENT": 2}))
    [command] = h.commands("preorder")
    h.take_sent()
    answer = preordered(h, [command])
    h.run(answer)
    h.run(arrived(h, command))
    assert [o["outcome"] for o in h.outcomes("ORDER-P")] == ["preordered", "allocated"]
    h.take_sent()
    h.run(answer)  # the replies partition read again after a crash
    assert h.commands("release") == []


def test_a_shed_of_an_arrived_sku_while_another_waits_ends_the_preorder_as_a_refusal(h: Harness) -> None:
    h.run(preorder_placement(h, "ORDER-P", {"SKU-TENT": 2, "SKU-STOVE": 1}))
    commands = h.commands("preorder")
    h.take_sent()
    h.run(preordered(h, commands))
    tent = next(c for c in commands if c["sku"] == "SKU-TENT")
    stove = next(c for c in commands if c["sku"] == "SKU-STOVE")
    h.run(arrived(h, tent))
    h.take_sent()
    shed = h.answers([{**tent, "kind": "shed"}], "released", 0)
    h.run(shed)  # a count took the arrived tents away: sourced from stock on hand now
    assert released_now(h) == [("SKU-STOVE", "ORDER-P/1"), ("SKU-TENT", "ORDER-P/1")]
    assert h.row("ORDER-P").attempt == 2
    h.run(arrived(h, stove))

    row = h.row("ORDER-P")
    assert row.preorder is not None and row.preorder["status"] == "refused"
    assert row.attempt == 2 and not row.preordered()
    assert {c["kind"] for c in h.commands()} <= {"release", "reserve"}  # never a preorder again


def released_now(h: Harness) -> list[tuple[str, str]]:
    return sorted((c["sku"], c["reservation_id"]) for c in h.commands("release"))


def test_a_shed_of_part_of_a_sku_still_on_its_way_ends_the_preorder_and_sources_it_from_stock(
    h: Harness,
) -> None:
    # Two tents preordered; one arrived and became a hold, then a count took it away while the other
    # is still inbound. Allocating at the next arrival would ship one tent short: the preorder ends.
    h.stock("SKU-TENT", DC_SOUTH=5)
    h.run(preorder_placement(h, "ORDER-P", {"SKU-TENT": 2}))
    [tent] = h.commands("preorder")
    h.take_sent()
    h.run(preordered(h, [tent]))
    shed = h.answers(
        [{**tent, "kind": "shed", "lines": [{"location_id": "DC-NORTH", "quantity": 1}]}], "released"
    )
    h.take_sent()
    h.run(shed)

    # Named: the release also takes the tent still preordered as inbound.
    [release] = h.commands("release")
    assert (release["reservation_id"], [line["location_id"] for line in release["lines"]]) == (
        "ORDER-P/1",
        ["DC-NORTH"],
    )
    [reserve] = h.commands("reserve")
    assert (reserve["reservation_id"], reserve["lines"][0]["location_id"]) == ("ORDER-P/2", "DC-SOUTH")
    row = h.row("ORDER-P")
    assert row.preorder is not None and row.preorder["status"] == "refused" and not row.preordered()
    assert h.metrics.preorders.labels("refused")._value.get() == 1
    h.take_sent()

    h.run(arrived(h, tent))  # the other tent's arrival answer, for the attempt that is over
    assert released_now(h) == [("SKU-TENT", "ORDER-P/1")]
    h.take_sent()
    h.run(shed)  # read again: nothing more
    assert h.commands() == [] and h.row("ORDER-P").attempt == 2


def test_an_answer_to_a_preorder_sent_again_after_it_arrived_settles_the_stored_row(h: Harness) -> None:
    # The chaos run (3 rounds, preorders): a preorder sent again after its goods had arrived was
    # answered "reserved" (a duplicate: the order's allocation holds it), and the row that no longer
    # waited for it was not stored. The timer sent it again every reply timeout for 20 minutes, until
    # the ledger had forgotten the reservation's release and held inbound for it again: a hold nobody
    # owned.
    h.run(preorder_placement(h, "ORDER-P", {"SKU-TENT": 2}))
    [command] = h.commands("preorder")
    h.take_sent()
    h.run(preordered(h, [command]))
    h.run(arrived(h, command))
    assert [o["outcome"] for o in h.outcomes("ORDER-P")] == ["preordered", "allocated"]
    row = SourcingRow.decode(h.sourcing_table["ORDER-P"])
    lines = [[line["location_id"], line["quantity"]] for line in command["lines"]]
    row.await_reply("preorder", command["reservation_id"], command["sku"], lines, h.now)  # sent again
    h.sourcing_table["ORDER-P"] = row.encode()
    h.take_sent()

    h.run(h.answers([command], "reserved", 0))  # the ledger: it is held (the preorder became a hold)

    assert SourcingRow.decode(h.sourcing_table["ORDER-P"]).outstanding == []
    assert h.commands("release") == []  # the order's hold stays the order's
