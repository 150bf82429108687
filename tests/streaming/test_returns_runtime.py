"""The returns runtime without a broker: a dict for the table, hand-made events, a set clock.

What it checks is the shell's bookkeeping: one routing per return (a repeat re-sends the same
decision while it is recent), receiving capacity counted across workers through the routed topic
(each decision once), repeated receipts re-sending the same movement ids only while the ledger can
still recognise them, the order tracker linking processed returns to their order, and returns of a
known order checked against what it delivered (through the followed returnable topic).
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

import oms_streams.streaming.returns_runtime as returns_runtime
from oms_streams.adapters.timestamps import epoch_ms
from oms_streams.streaming.ledger_runtime import AvailabilityView
from oms_streams.streaming.orders_runtime import OrdersRuntime, OrderTopics
from oms_streams.streaming.returns_runtime import (
    REPUBLISH_WITHIN_MS,
    ReturnsLoad,
    ReturnsRuntime,
    ReturnTopics,
)
from tests.streaming.test_orders_runtime import T0, FakeEvent, click_and_collect
from tests.streaming.test_orders_runtime import Harness as OrdersHarness

TOPICS = ReturnTopics("requested", "received", "routed", "processed", "movements", "dlq")
UTRECHT = {"lat": 52.0894, "lon": 5.1100}


class Harness(OrdersHarness):
    def __init__(self, amsterdam_capacity: int | None = None) -> None:
        super().__init__()
        if amsterdam_capacity is not None:
            record = self.network._location_records["STORE-AMSTERDAM-01"]
            changed = record.model_copy(update={"returns_per_day": amsterdam_capacity})
            self.network.on_records([self._config("L", "STORE-AMSTERDAM-01", changed.model_dump_json())])
        self.view = AvailabilityView()
        self.load = ReturnsLoad(self.network)
        self.returns_table: dict[str, bytes] = {}
        self.returns = ReturnsRuntime(
            self.returns_table, self.network, self.view, self.load, TOPICS, self._produce, self.metrics
        )

    def short(self, sku: str, **units: int) -> None:
        record = {"sku": sku, "short": {k.replace("_", "-"): v for k, v in units.items()}}
        self.view.on_records([SimpleNamespace(key=sku.encode(), value=json.dumps(record).encode())])

    def run(self, *events: FakeEvent) -> None:
        asyncio.run(self.returns.apply_batch(list(events)))

    def requested(
        self, return_id: str, lines: dict[str, int], event_id: str = "", order_id: str = ""
    ) -> FakeEvent:
        body = {
            "event_id": event_id or f"{return_id}-requested",
            "occurred_at": self.now.isoformat(),
            "source": "webshop",
            "return_id": return_id,
            "order_id": order_id or f"ORDER-{return_id}",
            "origin": UTRECHT,
            "lines": [{"line_id": sku, "sku": sku, "quantity": q} for sku, q in lines.items()],
        }
        return FakeEvent("requested", return_id.encode(), json.dumps(body).encode())

    def received(
        self,
        return_id: str,
        location: str,
        items: list[tuple[str, int, str]],
        event_id: str,
        order_id: str = "",
    ) -> FakeEvent:
        body = {
            "event_id": event_id,
            "occurred_at": self.now.isoformat(),
            "source": "pos",
            "return_id": return_id,
            "location_id": location,
            "order_id": order_id or f"ORDER-{return_id}",
            "items": [{"sku": sku, "quantity": q, "grade": g} for sku, q, g in items],
        }
        return FakeEvent("received", return_id.encode(), json.dumps(body).encode())

    def take(self, topic: str) -> list[dict[str, Any]]:
        records = self.on(topic)
        self.sent = [s for s in self.sent if s[0] != topic]
        return records


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    now = [T0]
    monkeypatch.setattr(returns_runtime, "now_ms", lambda: epoch_ms(now[0]))
    return now


def test_a_return_is_routed_once_and_a_recent_repeat_resends_the_same_decision(clock: list[datetime]) -> None:
    h = Harness()
    h.short("SKU-HELMET", STORE_AMSTERDAM_01=2)
    h.run(h.requested("RET-1", {"SKU-HELMET": 1}))
    [first] = h.take("routed")
    assert first["lines"][0]["location_id"] == "STORE-AMSTERDAM-01"

    h.short("SKU-HELMET", STORE_UTRECHT_01=5)  # the need moved: the decision does not
    h.run(h.requested("RET-1", {"SKU-HELMET": 1}, event_id="again"))
    assert h.take("routed") == [first]

    clock[0] = T0 + timedelta(milliseconds=REPUBLISH_WITHIN_MS + 1)
    h.run(h.requested("RET-1", {"SKU-HELMET": 1}))
    assert h.take("routed") == []
    assert h.metrics.returns_events.labels("requested", "duplicate")._value.get() == 2


def test_a_full_store_is_skipped_and_each_decision_counts_once_when_it_comes_back_from_the_topic(
    clock: list[datetime],
) -> None:
    h = Harness(amsterdam_capacity=1)
    h.short("SKU-HELMET", STORE_AMSTERDAM_01=5)
    h.run(h.requested("RET-1", {"SKU-HELMET": 1}))
    [routed] = h.on("routed")
    # The worker's own decision comes back through the followed topic: it must not count twice.
    h.load.on_records([SimpleNamespace(value=json.dumps(routed).encode())])
    assert h.load.today(epoch_ms(T0)) == {"STORE-AMSTERDAM-01": 1}

    h.run(h.requested("RET-2", {"SKU-HELMET": 1}))
    second = h.on("routed")[-1]["lines"][0]
    assert second["location_id"] != "STORE-AMSTERDAM-01"
    assert second["excluded"]["full"] == 1

    assert second["location_id"] == "STORE-UTRECHT-01"
    # Another worker's decision for a store counts here too.
    other = {
        **routed,
        "event_id": "RET-9:routed",
        "lines": [{**routed["lines"][0], "location_id": "STORE-UTRECHT-01"}],
    }
    h.load.on_records([SimpleNamespace(value=json.dumps(other).encode())])
    assert h.load.today(epoch_ms(T0))["STORE-UTRECHT-01"] == 2  # RET-2's and the other worker's
    # A new local day starts empty.
    assert h.load.today(epoch_ms(T0 + timedelta(days=1))) == {}


def test_a_repeated_receipt_resends_the_same_movement_ids_only_while_the_ledger_remembers_them(
    clock: list[datetime],
) -> None:
    h = Harness()
    h.run(
        h.received(
            "RET-1", "STORE-UTRECHT-01", [("SKU-TENT", 1, "as_new"), ("SKU-STOVE", 1, "damaged")], "r1"
        )
    )
    movements = h.take("movements")
    assert {(m["sku"], m["kind"]) for m in movements} == {
        ("SKU-TENT", "customer_return_restocked"),
        ("SKU-STOVE", "customer_return_unsellable"),
    }
    [processed] = h.take("processed")

    h.run(h.received("RET-1", "STORE-UTRECHT-01", [("SKU-TENT", 1, "as_new")], "r1"))
    assert [m["event_id"] for m in h.take("movements")] == [m["event_id"] for m in movements]
    assert h.take("processed") == [processed]

    # The same item under a new event id is not a second return of it.
    h.run(h.received("RET-1", "STORE-UTRECHT-01", [("SKU-TENT", 1, "as_new")], "r2"))
    assert h.take("movements") == []

    clock[0] = T0 + timedelta(milliseconds=REPUBLISH_WITHIN_MS + 1)
    h.run(h.received("RET-1", "STORE-UTRECHT-01", [("SKU-TENT", 1, "as_new")], "r1"))
    assert h.take("movements") == [] and h.take("processed") == []
    assert h.metrics.returns_events.labels("received", "duplicate")._value.get() == 3


def test_the_order_tracker_links_each_processed_return_once_and_ignores_returns_without_an_order() -> None:
    h = Harness()
    topics = OrderTopics("placed", "fulfilment", "at-risk", "observations", "bookings", "dlq", "processed")
    tracker = OrdersRuntime(h.table, h.network, topics, h._produce, h.metrics)
    h.run(h.received("RET-1", "STORE-UTRECHT-01", [("SKU-TENT", 1, "as_new")], "r1"))
    [processed] = h.on("processed")
    as_event = FakeEvent("processed", b"ORDER-RET-1", json.dumps(processed).encode())
    orphan = FakeEvent("processed", b"RET-2", json.dumps({**processed, "order_id": None}).encode())

    asyncio.run(tracker.apply_batch([as_event, as_event, orphan]))

    row = json.loads(h.table["ORDER-RET-1"])
    assert [r["return_id"] for r in row["returns"]] == ["RET-1"]
    assert row["returns"][0]["items"] == [
        {"sku": "SKU-TENT", "quantity": 1, "grade": "as_new", "disposition": "restock"}
    ]
    assert "RET-2" not in h.table
    assert h.metrics.order_events.labels("return", "duplicate")._value.get() == 1
    assert h.metrics.order_events.labels("return", "ignored")._value.get() == 1


# --- returns checked against their order ----------------------------------------------------------------


class Tracked(Harness):
    """The returns runtime with the order tracker beside it, joined as on Kafka: the tracker's
    returnable records are followed by the returns side, processed returns linked by the tracker."""

    def __init__(self) -> None:
        super().__init__()
        topics = OrderTopics(
            "placed",
            "fulfilment",
            "at-risk",
            "observations",
            "bookings",
            "dlq",
            "processed",
            returnable="returnable",
        )
        self.tracker = OrdersRuntime({}, self.network, topics, self._produce, self.metrics)

    def collected(self, order_id: str, tents: int) -> None:
        option = click_and_collect(T0)
        option["shipments"][0]["lines"] = [{"sku": "SKU-TENT", "quantity": tents}]
        self.track(
            self.placement(order_id, option),
            self.fulfilment(order_id, "collected", location_id="STORE-AMSTERDAM-01"),
        )

    def track(self, *events: FakeEvent) -> None:
        asyncio.run(self.tracker.apply_batch(list(events)))
        self.follow()

    def follow(self) -> None:
        records = [SimpleNamespace(key=k, value=v) for t, k, v in self.sent if t == "returnable"]
        self.returns.orders.on_records(records)

    def link(self) -> None:
        processed = [FakeEvent("processed", k, v) for t, k, v in self.sent if t == "processed"]
        self.track(*processed)


def test_a_receipt_takes_back_what_the_order_delivered_and_refuses_the_rest_once(
    clock: list[datetime],
) -> None:
    h = Tracked()
    h.collected("ORDER-1", tents=2)
    assert h.on("returnable")[-1]["shipped"] == {"SKU-TENT": 2}

    h.run(h.received("RET-1", "STORE-UTRECHT-01", [("SKU-TENT", 3, "as_new")], "r1", order_id="ORDER-1"))

    [processed] = h.on("processed")
    restocked, refused = processed["items"]
    assert (restocked["disposition"], restocked["quantity"]) == ("restock", 2)
    assert (refused["disposition"], refused["quantity"], refused["movement_event_id"]) == ("refused", 1, None)
    assert refused["rule"] == "refused: more than delivered"
    assert refused["reason"] == "1 more than delivered: order ORDER-1 shipped 2 SKU-TENT, 0 came back before"
    assert [(m["sku"], m["quantity"]) for m in h.take("movements")] == [("SKU-TENT", 2)]
    assert h.metrics.returns_refused_units.labels("received", "more_than_delivered")._value.get() == 1
    assert h.returns.lookup("RET-1")["receipts"]["r1"]["items"] == processed["items"]

    # The till sends it again under a new event id: nothing more is taken back or refused.
    h.run(h.received("RET-1", "STORE-UTRECHT-01", [("SKU-TENT", 3, "as_new")], "r2", order_id="ORDER-1"))
    assert h.take("movements") == [] and len(h.on("processed")) == 1
    assert h.metrics.returns_refused_units.labels("received", "more_than_delivered")._value.get() == 1


def test_another_return_of_the_order_gets_only_what_is_left_before_and_after_the_tracker_counts_it(
    clock: list[datetime],
) -> None:
    h = Tracked()
    h.collected("ORDER-1", tents=2)
    h.run(h.received("RET-1", "STORE-UTRECHT-01", [("SKU-TENT", 1, "as_new")], "r1", order_id="ORDER-1"))

    # This worker's own decision counts at once, before the tracker republishes the order.
    h.run(h.received("RET-2", "STORE-UTRECHT-01", [("SKU-TENT", 2, "as_new")], "r2", order_id="ORDER-1"))
    assert [(i["disposition"], i["quantity"]) for i in h.on("processed")[-1]["items"]] == [
        ("restock", 1),
        ("refused", 1),
    ]

    h.link()  # the tracker counts both returns and republishes the order
    assert h.on("returnable")[-1]["returned"] == {"RET-1": {"SKU-TENT": 1}, "RET-2": {"SKU-TENT": 1}}
    assert h.tracker.lookup("ORDER-1")[0].returns[-1]["items"][-1]["disposition"] == "refused"
    h.run(h.received("RET-3", "STORE-UTRECHT-01", [("SKU-TENT", 1, "as_new")], "r3", order_id="ORDER-1"))
    [refused] = h.on("processed")[-1]["items"]
    assert refused["reason"].endswith("shipped 2 SKU-TENT, 2 came back before")


def test_an_announced_return_is_routed_only_for_what_the_order_delivered(clock: list[datetime]) -> None:
    h = Tracked()
    h.collected("ORDER-1", tents=1)

    h.run(h.requested("RET-1", {"SKU-TENT": 3, "SKU-HELMET": 1}, order_id="ORDER-1"))

    [routed] = h.on("routed")
    tent, helmet = routed["lines"]
    assert tent["quantity"] == 1 and tent["location_id"] is not None
    assert tent["refused"] == 2 and tent["refused_reason"].startswith("2 more than delivered")
    assert (helmet["quantity"], helmet["location_id"], helmet["refused"]) == (0, None, 1)
    assert helmet["reason"] == "SKU-HELMET is not a line of order ORDER-1"
    assert h.metrics.returns_refused_units.labels("requested", "not_in_order")._value.get() == 1


def test_a_return_of_an_order_not_known_follows_the_return_policy(clock: list[datetime]) -> None:
    h = Tracked()
    h.collected("ORDER-1", tents=1)

    h.run(
        h.received("RET-1", "STORE-UTRECHT-01", [("SKU-TENT", 3, "as_new")], "r1", order_id="ORDER-OFFLINE")
    )

    [item] = h.on("processed")[-1]["items"]
    assert (item["disposition"], item["quantity"]) == ("restock", 3)
