"""Backorders sourced again when stock arrives, without a broker (``streaming.backorders``).

The saga's harness with a set clock: an order placed on too little stock is partially allocated
(or rejected) with a backorder; when the availability view shows stock its planner can use, the
timer starts a new round for the backorder (reserves, then an outcome once the ledgers answered);
past the horizon the backorder is final and a round that allocates nothing says so. Cancelled
lines, excluded locations and courier orders are never sourced again; a crash or a new owner in
between never makes two rounds of one.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

import oms_streams.streaming.backorders as backorders
import oms_streams.streaming.sourcing_runtime as sourcing_runtime
from oms_streams.adapters.lifecycle import order_lifecycle, saga_retention
from oms_streams.adapters.sourcing import SourcingRow
from oms_streams.domain.backorders import HOUR_MS, BackorderPolicy
from oms_streams.domain.retention import Ending, RetentionPolicy
from oms_streams.domain.transit import TransitModel
from oms_streams.schemas.sourcing import Allocation, OrderSourced, ReservationBatch
from oms_streams.streaming.retention import RetentionIndex
from oms_streams.streaming.sourcing_runtime import SourcingRuntime
from tests.integration.test_courier_slots import courier_option
from tests.streaming.test_cancellation_runtime import TOPICS
from tests.streaming.test_cancellation_runtime import Harness as CancellationHarness
from tests.streaming.test_orders_runtime import UTRECHT_HOME, FakeEvent
from tests.streaming.test_retention import Table, entry

POLICY = BackorderPolicy(horizon_ms=72 * HOUR_MS, retry_ms=300_000, check_ms=30_000)
SCHEMAS: dict[str, Any] = {
    "sourced": OrderSourced,
    "allocations": Allocation,
    "reservations": ReservationBatch,
}


class Harness(CancellationHarness):
    """Every record a consumer reads is checked against its schema; the clock is ``now``; the table
    has its index of open and finished rows, which a new owner reads."""

    def __init__(self) -> None:
        super().__init__()
        self.now = time.time_ns() // 1_000_000
        self.sourcing_table = Table()
        self.index = Table()
        self.saga = self.owner()

    def owner(self) -> SourcingRuntime:
        """The order's owner (a new one after a crash or a rebalance: same table, nothing in memory)."""
        retention = RetentionIndex(
            self.index, self.sourcing_table, "placed", "sourcing", RetentionPolicy(), self.metrics
        )
        return SourcingRuntime(
            self.sourcing_table,
            self.network,
            self.view,
            TransitModel(),
            TOPICS,
            self._produce,
            self.metrics,
            retention=retention,
            backorders=POLICY,
        )

    async def _produce(self, topic: str, key: bytes, value: bytes | None) -> None:
        if topic in SCHEMAS and value is not None:
            SCHEMAS[topic].model_validate_json(value)
        self.sent.append((topic, key, value))

    def stock(self, sku: str, **units: int) -> None:
        """The SKU's availability record as its ledger publishes it now (by the harness's clock)."""
        super().stock(sku, **units)
        record = json.loads(self.view.records[sku])
        record["published_at"] = datetime.fromtimestamp(self.now / 1000, UTC).isoformat()
        self.view.on_records([SimpleNamespace(key=sku.encode(), value=json.dumps(record).encode())])

    def later(self, **delta: float) -> None:
        self.now += int(timedelta(**delta).total_seconds() * 1000)

    def check(self) -> int:
        """The backorder timer's tick."""
        return asyncio.run(self.saga.check_backorders())

    def reserve_all(self, status: str = "reserved", left: int = 5) -> None:
        commands = self.commands("reserve")
        self.take_sent()
        self.run(*(self.answer(c, status, left) for c in commands))

    def row(self, order_id: str) -> SourcingRow:
        row = self.saga.lookup(order_id)
        assert row is not None
        return row

    def outcomes(self, order_id: str) -> list[dict[str, Any]]:
        return [o for o in self.on("sourced") if o["order_id"] == order_id]

    def events(self, metric: str) -> float:
        return float(self.metrics.backorders.labels(metric)._value.get())


@pytest.fixture
def h(monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    harness = Harness()
    monkeypatch.setattr(sourcing_runtime, "now_ms", lambda: harness.now)
    yield harness


def partially_allocated(h: Harness, order_id: str = "ORDER-1") -> dict[str, Any]:
    """Three tents ordered, one in stock: one allocated, two backordered."""
    h.stock("SKU-TENT", DC_NORTH=1)
    h.place(order_id, {"SKU-TENT": 3})
    h.reserve_all(left=0)
    h.stock("SKU-TENT", DC_NORTH=0)  # the ledger's next record shows the unit reserved
    [outcome] = h.outcomes(order_id)
    h.take_sent()
    return outcome


def test_a_backorder_is_sourced_again_in_a_new_round_when_stock_arrives(h: Harness) -> None:
    placed_at = h.now
    first = partially_allocated(h)
    assert (first["outcome"], first["backorder"]) == (
        "partially_allocated",
        [{"sku": "SKU-TENT", "quantity": 2}],
    )
    until = datetime.fromtimestamp((placed_at + 72 * HOUR_MS) / 1000, UTC)
    assert datetime.fromisoformat(first["backorder_until"]) == until and not first.get("backorder_final")
    h.later(seconds=30)
    assert h.check() == 0 and h.sent == []  # nothing in stock yet: nothing happens

    h.later(hours=5)
    h.stock("SKU-TENT", DC_SOUTH=4)  # a receipt at DC-SOUTH
    assert h.check() == 1

    [reserve] = h.commands("reserve")
    assert (reserve["reservation_id"], reserve["sku"]) == ("ORDER-1/2", "SKU-TENT")
    assert [(line["location_id"], line["quantity"]) for line in reserve["lines"]] == [("DC-SOUTH", 2)]
    assert h.outcomes("ORDER-1") == []  # the round's outcome waits for the ledger's answer
    h.reserve_all(left=2)

    [second] = h.outcomes("ORDER-1")
    assert (second["round"], second["outcome"], second["backorder"]) == (2, "allocated", [])
    assert second["reason"].startswith("stock arrived for the backorder (SKU-TENT x 2)")
    [allocation] = [a for a in h.on("allocations") if a["kind"] == "allocate"]
    assert (allocation["allocation_id"], allocation["location_id"]) == ("ORDER-1:2:0", "DC-SOUTH")
    row = h.row("ORDER-1")
    assert [a.state for a in row.allocations] == ["live", "live"]  # round 1's allocation stands
    assert (row.status, row.backorder, row.backorder_rounds) == ("allocated", [], 1)
    assert order_lifecycle(None, row, False) == "allocated"
    assert h.events("resourced") == 1


def test_an_order_rejected_for_lack_of_stock_waits_for_it_and_is_allocated_when_it_comes(h: Harness) -> None:
    h.place("ORDER-2", {"SKU-STOVE": 1})
    [first] = h.outcomes("ORDER-2")
    assert first["outcome"] == "rejected" and first["backorder_until"] and not first.get("backorder_final")
    row = h.row("ORDER-2")
    assert order_lifecycle(None, row, False) == "backordered"  # not rejected: it waits for stock
    assert saga_retention(row, h.now) is None  # open: reloads must see it
    h.saga.export_gauges()
    assert h.metrics.open_backorders._value.get() == 1

    h.later(hours=1)
    h.stock("SKU-STOVE", DC_NORTH=1)
    h.check()
    h.reserve_all(left=0)

    [second] = h.outcomes("ORDER-2")
    assert (second["round"], second["outcome"]) == (2, "allocated")
    assert order_lifecycle(None, h.row("ORDER-2"), False) == "allocated"
    h.saga.export_gauges()
    assert h.metrics.open_backorders._value.get() == 0


def test_past_the_horizon_the_backorder_is_final_and_a_round_that_allocates_nothing_says_so(
    h: Harness,
) -> None:
    partially_allocated(h)
    h.later(hours=72)
    h.stock("SKU-TENT", DC_SOUTH=4)  # too late
    assert h.check() == 1

    assert h.commands("reserve") == []
    [final] = h.outcomes("ORDER-1")
    assert (final["round"], final["outcome"], final["allocations"]) == (2, "partially_allocated", [])
    assert final["backorder_final"] is True and final.get("backorder_until") is None
    assert final["backorder"] == [{"sku": "SKU-TENT", "quantity": 2}]
    assert final["reason"] == "backorder final: SKU-TENT x 2 not in stock within 72 h of placement"
    row = h.row("ORDER-1")
    assert row.backorder_final and not row.awaiting_stock()
    h.take_sent()
    h.later(hours=1)
    assert h.check() == 0 and h.sent == []  # never again
    assert h.events("expired") == 1


def test_a_final_backorder_is_said_before_its_row_stores_it_and_a_crash_between_says_it_again(
    h: Harness,
) -> None:
    # A timer has no input offset to read again: had the row gone first, a crash before the
    # outcome would leave the order final in its row and never said on oms.orders.sourced.v1.
    partially_allocated(h)
    h.later(hours=72)
    stored = dict(h.sourcing_table)
    rows_when_said: list[bool] = []
    produce = h._produce

    async def watching(topic: str, key: bytes, value: bytes | None) -> None:
        if topic == "sourced":
            rows_when_said.append(bool(SourcingRow.decode(h.sourcing_table["ORDER-1"]).backorder_final))
        await produce(topic, key, value)

    h._produce = watching  # type: ignore[method-assign]
    h.saga = h.owner()
    asyncio.run(h.saga.reload())
    h.check()
    [final] = h.outcomes("ORDER-1")
    assert final["backorder_final"] is True and rows_when_said == [False]

    # The worker died after the outcome left, before the row reached its changelog.
    h.sourcing_table.clear()
    h.sourcing_table.update(stored)
    h.take_sent()
    h.saga = h.owner()
    asyncio.run(h.saga.reload())
    h.check()
    [again] = h.outcomes("ORDER-1")
    assert again == final  # the same decision, the same record: consumers see it once
    assert h.row("ORDER-1").backorder_final


def test_an_order_that_never_got_stock_ends_rejected_at_its_horizon_and_then_finishes(h: Harness) -> None:
    h.place("ORDER-3", {"SKU-STOVE": 1})
    h.later(hours=72)
    h.check()

    [_, final] = h.outcomes("ORDER-3")
    assert (final["round"], final["outcome"], final["backorder_final"]) == (2, "rejected", True)
    row = h.row("ORDER-3")
    assert order_lifecycle(None, row, False) == "rejected"
    finished = saga_retention(row, h.now)
    assert finished is not None and (finished.ending, finished.at_ms) == (Ending.REJECTED, h.now)


def test_a_cancelled_backordered_line_is_never_sourced_again(h: Harness) -> None:
    h.stock("SKU-TENT", DC_NORTH=5)
    h.place("ORDER-4", {"SKU-TENT": 1, "SKU-STOVE": 2})
    h.reserve_all()
    [first] = h.outcomes("ORDER-4")
    assert first["backorder"] == [{"sku": "SKU-STOVE", "quantity": 2}]
    h.run(h.cancellation("ORDER-4", "SKU-STOVE", request_id="CANCEL-STOVE"))
    assert h.answer_of("CANCEL-STOVE")["outcome"] == "cancelled"
    h.take_sent()

    h.stock("SKU-STOVE", DC_NORTH=5)
    h.later(minutes=10)
    assert h.check() == 0 and h.commands() == []
    row = h.row("ORDER-4")
    assert not row.awaiting_stock() and row.allocations[0].state == "live"


def test_a_location_that_short_picked_a_sku_is_not_asked_for_it_again(h: Harness) -> None:
    h.stock("SKU-TENT", DC_NORTH=1)
    h.place("ORDER-5", {"SKU-TENT": 1})
    h.reserve_all(left=0)
    h.take_sent()
    h.run(h.fulfilment("ORDER-5", "short_pick", "DC-NORTH", "sp-1", "wms"))  # round 2 finds nothing
    [second] = h.outcomes("ORDER-5")
    assert (second["round"], second["outcome"]) == (2, "rejected") and second["backorder_until"]
    h.take_sent()

    h.stock("SKU-TENT", DC_NORTH=3)  # stock again where it was short-picked: not for this order
    h.later(minutes=1)
    assert h.check() == 0 and h.commands() == []

    h.stock("SKU-TENT", DC_SOUTH=1)
    h.later(minutes=1)
    assert h.check() == 1
    [reserve] = h.commands("reserve")
    assert [line["location_id"] for line in reserve["lines"]] == ["DC-SOUTH"]


def test_a_short_pick_s_round_keeps_the_backorder_of_the_first_round(h: Harness) -> None:
    h.stock("SKU-TENT", DC_NORTH=1, DC_SOUTH=1)
    h.place("ORDER-10", {"SKU-TENT": 1, "SKU-STOVE": 2})
    h.reserve_all()
    [allocation] = h.on("allocations")
    h.take_sent()

    h.run(h.fulfilment("ORDER-10", "short_pick", allocation["location_id"], "sp-1", "wms"))
    h.reserve_all()

    [second] = h.outcomes("ORDER-10")  # the tent from the other DC; the stoves still wait
    assert (second["round"], second["outcome"]) == (2, "partially_allocated")
    assert second["backorder"] == [{"sku": "SKU-STOVE", "quantity": 2}] and second["backorder_until"]


def test_a_crash_before_the_round_was_stored_decides_it_again_with_the_same_ids(h: Harness) -> None:
    partially_allocated(h)
    h.stock("SKU-TENT", DC_SOUTH=4)
    stored = dict(h.sourcing_table)
    h.check()
    [first] = h.commands("reserve")
    # The worker died before the row reached its changelog (its outputs wait for that: nothing left).
    h.sourcing_table.clear()
    h.sourcing_table.update(stored)
    h.take_sent()
    h.saga = h.owner()
    asyncio.run(h.saga.reload())
    assert h.commands() == []
    h.check()

    [again] = h.commands("reserve")
    assert (again["event_id"], again["reservation_id"]) == (first["event_id"], "ORDER-1/2")


def test_a_new_owner_resends_the_round_under_way_and_never_starts_a_second_one(h: Harness) -> None:
    partially_allocated(h)
    h.stock("SKU-TENT", DC_SOUTH=4)
    h.check()
    [first] = h.commands("reserve")
    h.take_sent()

    h.saga = h.owner()  # a rebalance: the new owner reads the open rows
    assert asyncio.run(h.saga.reload()) == 1
    [again] = h.commands("reserve")
    assert again["event_id"] == first["event_id"]
    h.later(hours=1)
    h.take_sent()
    assert h.check() == 0 and h.commands() == []  # the round under way is not doubled
    h.run(h.answer(first, "reserved", 2))

    # Round 1's outcome again first: a new owner publishes the row's last outcomes once, in case a
    # crash lost them (``sourcing_outcomes``); the same event id, so a repeat to consumers.
    assert [(o["round"], o["outcome"]) for o in h.outcomes("ORDER-1")] == [
        (1, "partially_allocated"),
        (2, "allocated"),
    ]
    h.later(hours=1)
    assert h.check() == 0 and h.row("ORDER-1").round == 2


def test_a_backorder_whose_stock_others_keep_taking_is_tried_again_less_and_less_often(h: Harness) -> None:
    partially_allocated(h)
    h.stock("SKU-TENT", DC_SOUTH=4)
    h.check()
    h.later(seconds=1)
    h.reserve_all("refused", left=0)  # another order was faster: round 2 finds nothing else
    [second] = h.outcomes("ORDER-1")
    assert (second["round"], second["outcome"]) == (2, "rejected") and second["backorder_until"]
    row = h.row("ORDER-1")
    assert row.backorder == [["SKU-TENT", 2]] and row.backorder_rounds == 1
    h.take_sent()

    h.later(seconds=298)  # the ledger's hint is forgotten, the view still shows units: wait anyway
    assert h.check() == 0 and h.commands() == []
    h.later(seconds=1)
    assert h.check() == 1
    h.later(seconds=1)
    h.reserve_all("refused", left=0)
    h.take_sent()
    h.later(seconds=598)  # after the second round, twice as long
    assert h.check() == 0
    h.later(seconds=1)
    assert h.check() == 1 and h.row("ORDER-1").backorder_rounds == 3


def test_stock_the_planner_cannot_use_starts_no_round_and_is_not_planned_again_until_it_changes(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "The same view" includes the hour (a look an hour later plans again): start at one's beginning,
    # or the test fails when the clock passes a full hour during it.
    h.now = h.now // 3_600_000 * 3_600_000
    partially_allocated(h)
    h.stock("SKU-TENT", STORE_UTRECHT_01=4)  # a store: not a site that ships standard deliveries
    plans = []
    decide = h.saga.backorders.decide
    monkeypatch.setattr(h.saga.backorders, "decide", lambda row, now: plans.append(now) or decide(row, now))
    h.later(seconds=30)
    assert h.check() == 0 and h.commands() == [] and h.outcomes("ORDER-1") == []
    h.later(seconds=30)
    assert h.check() == 0 and len(plans) == 1  # the same view: not planned again
    assert h.events("unusable") == 1


def test_a_tick_plans_a_bounded_number_of_backorders_and_leaves_the_rest_to_the_next(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backorders, "MAX_PLANS", 1)
    h.place("ORDER-11", {"SKU-STOVE": 1})
    h.place("ORDER-12", {"SKU-STOVE": 1})
    h.stock("SKU-STOVE", DC_NORTH=5)
    h.take_sent()
    h.later(seconds=30)

    assert h.check() == 1
    assert h.check() == 1  # the other one, at the next tick (not after the 30 s of a look without stock)
    assert sorted(c["order_id"] for c in h.commands("reserve")) == ["ORDER-11", "ORDER-12"]


def test_a_courier_order_s_backorder_is_final_at_once(h: Harness) -> None:
    option = courier_option(datetime.now(UTC) + timedelta(hours=3))
    body = {
        "event_id": "ORDER-6-placed",
        "occurred_at": datetime.now(UTC).isoformat(),
        "source": "webshop",
        "order_id": "ORDER-6",
        "cart": option["shipments"][0]["lines"],
        "destination": UTRECHT_HOME,
        "option": option,
    }
    h.run(FakeEvent("placed", b"ORDER-6", json.dumps(body).encode()))  # no stock at the store

    [outcome] = h.outcomes("ORDER-6")
    assert outcome["outcome"] == "rejected" and outcome["backorder_final"] is True
    row = h.row("ORDER-6")
    assert row.backorder_final == "a same-day courier delivery is not sourced again when stock arrives"
    h.stock("SKU-TENT", STORE_UTRECHT_01=5)
    h.later(minutes=1)
    assert h.check() == 0 and h.commands() == []
    assert h.events("final") == 1


def test_a_click_and_collect_backorder_is_sourced_from_the_pickup_store_s_own_shelf(h: Harness) -> None:
    def shelf(units: int) -> None:
        record = {
            "sku": "SKU-TENT",
            "published_at": datetime.now(UTC).isoformat(),
            "rules_version": "t",
            "network_atp": units,
            "channels": {"click_and_collect": {"total": units, "locations": {"STORE-UTRECHT-01": units}}},
        }
        h.view.on_records([SimpleNamespace(key=b"SKU-TENT", value=json.dumps(record).encode())])

    shelf(0)
    h.run(h.shelf_pickup("ORDER-7", {"SKU-TENT": 2}))
    [first] = h.outcomes("ORDER-7")
    assert first["outcome"] == "rejected" and first["backorder_until"]

    shelf(2)  # the store's truck came in
    h.later(minutes=1)
    assert h.check() == 1
    [reserve] = h.commands("reserve")
    assert reserve["channel"] == "click_and_collect"
    assert [(line["location_id"], line["quantity"]) for line in reserve["lines"]] == [("STORE-UTRECHT-01", 2)]


def test_a_backorder_within_its_horizon_keeps_its_row_open_for_reloads_and_finishes_at_it(h: Harness) -> None:
    h.place("ORDER-8", {"SKU-STOVE": 1})
    h.place("ORDER-9", {"SKU-TENT": 1_001})  # refused at placement: finished at once
    assert entry(h.index, "ORDER-8") == ["ORDER-8", 0, None]
    assert entry(h.index, "ORDER-9")[2] is not None  # type: ignore[index]

    h.saga = h.owner()  # a new owner reads the open rows only, and watches their backorders
    h.sourcing_table.reads.clear()
    asyncio.run(h.saga.reload())
    assert h.sourcing_table.reads == ["ORDER-8"]
    h.saga.export_gauges()
    assert h.metrics.open_backorders._value.get() == 1

    h.later(hours=72)
    h.check()
    rejected = RetentionPolicy().rejected_ms
    assert entry(h.index, "ORDER-8") == ["ORDER-8", 0, h.now + rejected]


def test_an_outcome_published_again_after_its_backorder_was_cancelled_is_the_same_record(h: Harness) -> None:
    # Round 1 leaves the stove backordered (waiting for stock: backorder_until); the stove is then
    # cancelled. An answer read again (a crash) publishes round 1's outcome again: it must be the
    # record as published (one event id, one content), not one rebuilt from the row as it is now.
    h.stock("SKU-TENT", DC_NORTH=1)
    h.place("ORDER-1", {"SKU-TENT": 1, "SKU-STOVE": 1})
    asked = h.commands("reserve")
    h.take_sent()
    answers = [h.answer(c, "reserved", 0) for c in asked]
    h.run(*answers)
    [first] = h.outcomes("ORDER-1")
    h.run(h.cancellation("ORDER-1", "SKU-STOVE", request_id="CANCEL-STOVE"))
    h.take_sent()

    h.run(*answers)  # read again

    [again] = h.outcomes("ORDER-1")

    def same(o: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in o.items() if k not in ("occurred_at", "trace")}

    assert same(again) == same(first) and "backorder_until" in first
