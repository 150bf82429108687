"""The returns runtime without a broker: a dict for the table, hand-made events, a set clock.

What it checks is the shell's bookkeeping: one routing per return (a repeat re-sends the same
decision while it is recent), receiving capacity counted across workers through the routed topic
(each decision once), repeated receipts re-sending the same movement ids only while the ledger can
still recognise them, and the order tracker linking processed returns to their order.
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
from tests.streaming.test_orders_runtime import T0, FakeEvent
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

    def requested(self, return_id: str, lines: dict[str, int], event_id: str = "") -> FakeEvent:
        body = {
            "event_id": event_id or f"{return_id}-requested",
            "occurred_at": self.now.isoformat(),
            "source": "webshop",
            "return_id": return_id,
            "order_id": f"ORDER-{return_id}",
            "origin": UTRECHT,
            "lines": [{"line_id": sku, "sku": sku, "quantity": q} for sku, q in lines.items()],
        }
        return FakeEvent("requested", return_id.encode(), json.dumps(body).encode())

    def received(
        self, return_id: str, location: str, items: list[tuple[str, int, str]], event_id: str
    ) -> FakeEvent:
        body = {
            "event_id": event_id,
            "occurred_at": self.now.isoformat(),
            "source": "pos",
            "return_id": return_id,
            "location_id": location,
            "order_id": f"ORDER-{return_id}",
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
