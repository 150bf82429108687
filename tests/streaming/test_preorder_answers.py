"""What the webshop hears while a preorder waits, and what it may still change
(``streaming.sourcing_preorders``, ``adapters.preorder_answers``), without a broker:

- once every ledger held the inbound, an interim answer on ``oms.orders.sourced.v1`` (outcome
  ``preordered``, each line's ETA, when it is given up), once per round: read again or asked again
  it is not said twice, and after a crash it is the same record;
- a line cancelled while the preorder waits gives its hold back at once;
- the preorder metrics, counted where things happen.

The preorder's saga itself: ``tests/streaming/test_preorders.py``; on the broker:
``tests/integration/test_preorders.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

import oms_streams.streaming.sourcing_runtime as sourcing_runtime
from oms_streams.adapters.allocated import decode_round
from oms_streams.adapters.lifecycle import order_lifecycle
from oms_streams.adapters.sourcing import SourcingRow
from tests.streaming.test_backorders import Harness
from tests.streaming.test_preorders import ETA, arrived, preorder_placement, preordered, waiting

CART = {"SKU-TENT": 2, "SKU-STOVE": 1}


@pytest.fixture
def h(monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    harness = Harness()
    monkeypatch.setattr(sourcing_runtime, "now_ms", lambda: harness.now)
    yield harness


def placed(h: Harness, cart: dict[str, int] = CART) -> dict[str, dict[str, Any]]:
    """The preorder placed; its commands by SKU (nothing sent kept)."""
    h.run(preorder_placement(h, "ORDER-P", cart))
    commands = {c["sku"]: c for c in h.commands("preorder")}
    h.take_sent()
    return commands


def released(h: Harness) -> list[tuple[str, str, str]]:
    return sorted(
        (c["sku"], c["reservation_id"], line["location_id"])
        for c in h.commands("release")
        for line in c["lines"]
    )


def counted(h: Harness, event: str) -> float:
    return float(h.metrics.preorders.labels(event)._value.get())


def gauges(h: Harness) -> tuple[float, float]:
    h.saga.export_gauges()
    return h.metrics.preorders_waiting._value.get(), h.metrics.preorder_units_waiting._value.get()


# --- the interim answer ---------------------------------------------------------------------------


def test_once_every_ledger_held_the_inbound_the_webshop_is_told_each_line_s_eta_and_the_give_up_time(
    h: Harness,
) -> None:
    commands = placed(h)
    h.run(preordered(h, [commands["SKU-TENT"]]))
    assert h.outcomes("ORDER-P") == []  # the stove's ledger has not answered yet
    last = preordered(h, [commands["SKU-STOVE"]])
    h.run(last)

    [interim] = h.outcomes("ORDER-P")  # validated against OrderSourced by the harness
    assert (interim["event_id"], interim["round"], interim["outcome"]) == (
        "ORDER-P:preordered:1",
        1,
        "preordered",
    )
    assert (interim["allocations"], interim["backorder"], interim["attempts"]) == ([], [], 1)
    preorder = interim["preorder"]
    assert abs(datetime.fromisoformat(preorder["expected_at"]) - ETA) < timedelta(milliseconds=1)
    assert datetime.fromisoformat(preorder["give_up_at"]) - datetime.fromisoformat(
        preorder["expected_at"]
    ) == timedelta(hours=24)
    assert sorted((line["sku"], line["quantity"], line["location_id"]) for line in preorder["lines"]) == [
        ("SKU-STOVE", 1, "DC-NORTH"),
        ("SKU-TENT", 2, "DC-NORTH"),
    ]
    assert {line["expected_at"] for line in preorder["lines"]} == {preorder["expected_at"]}
    # Its time is the last ledger's answer's, not the worker's clock: decided again, the same.
    answered_at = datetime.fromisoformat(json_of(last)["replies"][0]["occurred_at"])
    assert abs(datetime.fromisoformat(interim["occurred_at"]) - answered_at) < timedelta(milliseconds=1)
    assert h.on("allocations") == [] and counted(h, "held") == 1


def test_a_line_that_arrived_before_the_others_were_held_is_said_with_no_eta(h: Harness) -> None:
    commands = placed(h)
    h.run(preordered(h, [commands["SKU-TENT"]]))
    h.run(arrived(h, commands["SKU-TENT"]))  # the tents came before the stove's ledger answered
    h.run(preordered(h, [commands["SKU-STOVE"]]))

    [interim] = h.outcomes("ORDER-P")
    etas = {line["sku"]: line["expected_at"] for line in interim["preorder"]["lines"]}
    assert etas["SKU-TENT"] is None and etas["SKU-STOVE"] is not None


def test_the_interim_answer_is_said_once_when_its_answers_are_read_again_or_asked_again(h: Harness) -> None:
    commands = placed(h, {"SKU-TENT": 2})
    answer = preordered(h, [commands["SKU-TENT"]])
    h.run(answer)
    assert len(h.outcomes("ORDER-P")) == 1
    h.take_sent()
    h.run(answer)  # the same worker reads its answers again (no crash): nothing new to say
    h.later(days=10, hours=23)
    assert h.check() == 1  # past the ETA the ledger is asked again, and answers the same
    [again] = h.commands("preorder")
    h.run(preordered(h, [again]))
    assert h.outcomes("ORDER-P") == []


def test_a_crash_after_the_row_was_stored_publishes_the_same_interim_answer_again(h: Harness) -> None:
    commands = placed(h, {"SKU-TENT": 2})
    answer = preordered(h, [commands["SKU-TENT"]])
    h.run(answer)
    [first] = h.outcomes("ORDER-P")
    h.take_sent()

    h.saga = h.owner()  # the worker died after the row, maybe before its outputs: answers read again
    h.later(minutes=5)
    h.run(answer)
    assert h.outcomes("ORDER-P") == [first]  # the row's copy, byte for byte; never a second one


def test_a_crash_before_the_row_was_stored_decides_the_same_interim_answer_again(h: Harness) -> None:
    commands = placed(h, {"SKU-TENT": 2})
    stored = dict(h.sourcing_table)
    answer = preordered(h, [commands["SKU-TENT"]])
    h.run(answer)
    [first] = h.outcomes("ORDER-P")
    h.take_sent()

    # The worker died before the row reached its changelog (its outputs wait for that, so the first
    # record never left on a real broker): the answers are read again, later, by a new owner.
    h.sourcing_table.clear()
    h.sourcing_table.update(stored)
    h.saga = h.owner()
    h.later(minutes=5)
    h.run(answer)
    assert h.outcomes("ORDER-P") == [first]


def test_a_preorder_that_waited_before_interim_answers_existed_is_said_at_its_next_answer(h: Harness) -> None:
    commands = placed(h, {"SKU-TENT": 2})
    h.run(preordered(h, [commands["SKU-TENT"]]))
    row = h.row("ORDER-P")
    assert row.preorder is not None
    del row.preorder["said"]  # as a row written by the version before this one
    row.last_outcomes = []
    h.sourcing_table["ORDER-P"] = row.encode()
    h.take_sent()

    h.saga = h.owner()  # an upgrade is a restart: the new owner asks the waiting preorder again
    asyncio.run(h.saga.reload())
    [again] = h.commands("preorder")
    h.take_sent()
    h.run(preordered(h, [again]))
    [interim] = h.outcomes("ORDER-P")
    assert interim["event_id"] == "ORDER-P:preordered:1"
    h.take_sent()
    h.run(preordered(h, [again]))  # and once only
    assert h.outcomes("ORDER-P") == []


def test_a_consumer_of_round_outcomes_skips_the_interim_answer(h: Harness) -> None:
    commands = placed(h, {"SKU-TENT": 2})
    h.run(preordered(h, [commands["SKU-TENT"]]))
    [(_, _, value)] = [s for s in h.sent if s[0] == "sourced"]
    assert decode_round(value) is None  # track_orders: the round's outcome is still to come
    h.run(arrived(h, commands["SKU-TENT"]))
    [(_, _, value)] = [s for s in h.sent if s[0] == "sourced"][1:]
    fact = decode_round(value)
    assert fact is not None and fact.entry[0] == "allocated"


# --- line cancellations ---------------------------------------------------------------------------


def test_a_line_cancelled_while_the_preorder_waits_gives_its_hold_back_at_once_and_the_rest_waits(
    h: Harness,
) -> None:
    waiting(h, cart=CART)
    h.take_sent()
    h.run(h.cancellation("ORDER-P", "SKU-STOVE", request_id="CANCEL-STOVE"))

    assert released(h) == [("SKU-STOVE", "ORDER-P/1", "DC-NORTH")]
    answer = h.answer_of("CANCEL-STOVE")  # answered now, not when the tents arrive
    assert (answer["outcome"], answer["order_cancelled"]) == ("cancelled", False)
    row = h.row("ORDER-P")
    assert row.preordered() and row.pending == ["SKU-TENT"]
    assert [e["sku"] for e in row.outstanding if e["kind"] == "release"] == [
        "SKU-STOVE"
    ]  # sent until answered
    assert order_lifecycle(None, row, False) == "preordered"
    assert h.outcomes("ORDER-P") == []
    tent = commands_of(row, "SKU-TENT")
    h.take_sent()

    h.run(h.cancellation("ORDER-P", "SKU-STOVE", request_id="CANCEL-STOVE"))  # read again
    assert released(h) == [] and h.answer_of("CANCEL-STOVE")["outcome"] == "cancelled"
    h.take_sent()

    h.run(arrived(h, tent))
    [outcome] = h.outcomes("ORDER-P")
    assert outcome["outcome"] == "allocated"
    [allocation] = [a for a in h.on("allocations") if a["kind"] == "allocate"]
    assert [(line["sku"], line["quantity"]) for line in allocation["lines"]] == [("SKU-TENT", 2)]
    assert released(h) == []


def test_cancelling_the_line_still_on_its_way_allocates_at_once_what_arrived(h: Harness) -> None:
    commands = placed(h)
    h.run(preordered(h, list(commands.values())))
    h.run(arrived(h, commands["SKU-TENT"]))
    h.take_sent()

    h.run(h.cancellation("ORDER-P", "SKU-STOVE", request_id="CANCEL-STOVE"))
    assert released(h) == [("SKU-STOVE", "ORDER-P/1", "DC-NORTH")]
    [outcome] = h.outcomes("ORDER-P")
    assert outcome["outcome"] == "allocated"
    [allocation] = [a for a in h.on("allocations") if a["kind"] == "allocate"]
    assert [(line["sku"], line["quantity"]) for line in allocation["lines"]] == [("SKU-TENT", 2)]
    assert h.answer_of("CANCEL-STOVE")["outcome"] == "cancelled"
    row = h.row("ORDER-P")
    assert row.preorder is not None and row.preorder["status"] == "arrived"


def test_cancelling_every_line_of_a_waiting_preorder_cancels_the_order(h: Harness) -> None:
    waiting(h, cart=CART)
    h.take_sent()
    h.run(h.cancellation("ORDER-P", "SKU-STOVE", "SKU-TENT", request_id="CANCEL-ALL"))

    assert released(h) == [("SKU-STOVE", "ORDER-P/1", "DC-NORTH"), ("SKU-TENT", "ORDER-P/1", "DC-NORTH")]
    [outcome] = h.outcomes("ORDER-P")
    assert (outcome["outcome"], outcome["reason"]) == (
        "rejected",
        "preorder given up: the order is cancelled",
    )
    assert h.answer_of("CANCEL-ALL")["order_cancelled"] is True
    assert counted(h, "cancelled") == 1


def test_a_line_cancelled_before_its_ledger_answered_is_released_and_the_rest_is_said(h: Harness) -> None:
    commands = placed(h)
    h.run(h.cancellation("ORDER-P", "SKU-STOVE", request_id="CANCEL-STOVE"))
    assert released(h) == [("SKU-STOVE", "ORDER-P/1", "DC-NORTH")]
    assert h.answer_of("CANCEL-STOVE")["outcome"] == "cancelled"
    h.take_sent()

    h.run(preordered(h, list(commands.values())))  # the stove's answer was on its way: nothing more
    assert released(h) == []
    [interim] = h.outcomes("ORDER-P")
    assert [line["sku"] for line in interim["preorder"]["lines"]] == ["SKU-TENT"]


# --- metrics and the timer ------------------------------------------------------------------------


def test_preorders_are_counted_where_they_happen_and_their_waiting_units_are_a_gauge(h: Harness) -> None:
    row = waiting(h, cart=CART)
    assert counted(h, "held") == 1 and gauges(h) == (1, 3)
    h.run(h.cancellation("ORDER-P", "SKU-STOVE"))
    assert counted(h, "line_cancelled") == 1 and gauges(h) == (1, 2)
    h.run(arrived(h, commands_of(row, "SKU-TENT")))
    assert counted(h, "arrived") == 1 and gauges(h) == (0, 0)

    waiting(h, order_id="ORDER-Q")
    h.later(days=10, hours=23)
    h.check()  # asked again at the ETA
    h.later(hours=2)
    h.check()
    assert counted(h, "given_up") == 1 and gauges(h) == (0, 0)


def test_a_given_up_preorder_is_said_before_its_row_stores_it_and_a_crash_between_says_it_again(
    h: Harness,
) -> None:
    # A timer has no input offset to read again (as for a final backorder).
    waiting(h)
    h.later(days=10, hours=23)
    h.check()
    h.take_sent()
    h.later(hours=2)
    stored = dict(h.sourcing_table)
    rows_when_said: list[bool] = []
    produce = h._produce

    async def watching(topic: str, key: bytes, value: bytes | None) -> None:
        if topic == "sourced":
            rows_when_said.append(SourcingRow.decode(h.sourcing_table["ORDER-P"]).preordered())
        await produce(topic, key, value)

    h._produce = watching  # type: ignore[method-assign]
    h.saga = h.owner()
    asyncio.run(h.saga.reload())
    h.take_sent()
    h.check()
    [given_up] = h.outcomes("ORDER-P")
    assert given_up["outcome"] == "rejected" and rows_when_said == [True]

    h.sourcing_table.clear()  # the worker died after the outcome left, before the row did
    h.sourcing_table.update(stored)
    h.saga = h.owner()
    asyncio.run(h.saga.reload())
    h.take_sent()
    h.check()
    [again] = h.outcomes("ORDER-P")
    assert again == given_up


def commands_of(row: SourcingRow, sku: str) -> dict[str, Any]:
    """The preorder command the ledger answers on arrival (as ``arrived`` needs it)."""
    return {
        "reservation_id": row.reservation_id,
        "order_id": row.order_id,
        "sku": sku,
        "kind": "preorder",
        "lines": [
            {"location_id": loc, "quantity": units}
            for shipment in (row.plan or {})["shipments"]
            for s, units in shipment["lines"]
            if s == sku
            for loc in [shipment["location_id"]]
        ],
    }


def json_of(event: Any) -> dict[str, Any]:
    return dict(json.loads(event.message.value))
