"""Finished rows leave the state after their retention, and reloads read open rows only.

The runtimes without a broker: dicts for the tables and their indexes, a set clock. What it checks
is the shell around ``domain.retention``: each store indexes its row as open or finished, the sweep
deletes rows (and their index entries) whose retention passed and nothing else, a new owner reads
the index and only the open rows, and a row without an entry (a crash between the two changelog
records) is indexed again by its next event.
"""

from __future__ import annotations

import asyncio
from collections.abc import ItemsView, Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import orjson
import pytest

import oms_streams.streaming.orders_runtime as orders_runtime
import oms_streams.streaming.returns_runtime as returns_runtime
import oms_streams.streaming.sourcing_runtime as sourcing_runtime
from oms_streams.adapters.sourcing import SourcingRow
from oms_streams.adapters.timestamps import epoch_ms
from oms_streams.domain.retention import DAY_MS, RetentionPolicy
from oms_streams.domain.transit import TransitModel
from oms_streams.streaming.orders_runtime import OrdersRuntime
from oms_streams.streaming.retention import RetentionIndex
from oms_streams.streaming.returns_runtime import ReturnsRuntime
from oms_streams.streaming.sourcing_runtime import SourcingRuntime
from tests.streaming.test_orders_runtime import T0, TOPICS, FakeEvent, click_and_collect, standard
from tests.streaming.test_orders_runtime import Harness as OrdersHarness
from tests.streaming.test_returns_runtime import TOPICS as RETURN_TOPICS
from tests.streaming.test_returns_runtime import Harness as ReturnsHarness
from tests.streaming.test_sourcing_runtime import TOPICS as SOURCING_TOPICS
from tests.streaming.test_sourcing_runtime import Harness as SourcingHarness

POLICY = RetentionPolicy()
ORDER_TOPICS = replace(TOPICS, returns_processed="processed")
AMSTERDAM = "STORE-AMSTERDAM-01"


class Table(dict[str, bytes]):
    """A table that records what the runtime did to it: deletions (tombstones), reads, scans."""

    def __init__(self) -> None:
        super().__init__()
        self.deleted: list[str] = []
        self.reads: list[str] = []
        self.scans = 0

    def __delitem__(self, key: str) -> None:
        self.deleted.append(key)
        super().__delitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.reads.append(key)
        return super().get(key, default)

    def items(self) -> ItemsView[str, bytes]:
        self.scans += 1
        return super().items()


def entry(index: dict[str, bytes], key: str) -> list[Any] | None:
    raw = index.get(key)
    return None if raw is None else list(orjson.loads(raw))


class Orders(OrdersHarness):
    def __init__(self, sourcing: Any = None) -> None:
        super().__init__()
        self.table = Table()
        self.index = Table()
        self.sourcing = sourcing
        self.runtime = self.owner()

    def owner(self) -> OrdersRuntime:
        """A runtime over the tables (a new owner after a rebalance, when called again)."""
        retention = RetentionIndex(self.index, self.table, "placed", "orders", POLICY, self.metrics)
        return OrdersRuntime(
            self.table,
            self.network,
            ORDER_TOPICS,
            self._produce,
            self.metrics,
            retention=retention,
            sourcing=self.sourcing,
        )

    def sweep(self) -> int:
        return asyncio.run(self.runtime.sweep())

    def collect(self, order_id: str) -> None:
        self.apply(self.fulfilment(order_id, "collected", location_id=AMSTERDAM))


@pytest.fixture
def orders(monkeypatch: pytest.MonkeyPatch) -> Iterator[Orders]:
    h = Orders()
    monkeypatch.setattr(orders_runtime, "now_ms", lambda: epoch_ms(h.now))
    yield h


def removed(metrics: Any, table: str, ending: str) -> float:
    value: float = metrics.retention_removed.labels(table, ending)._value.get()
    return value


def test_a_collected_order_leaves_the_state_after_its_retention_and_not_before(orders: Orders) -> None:
    orders.apply(orders.placement("O-1", click_and_collect(T0 + timedelta(hours=1))))
    assert entry(orders.index, "O-1") == ["O-1", 2, None]  # open: its milestones are watched
    orders.now = T0 + timedelta(hours=2)
    orders.collect("O-1")
    due = epoch_ms(orders.now) + POLICY.delivered_ms
    assert entry(orders.index, "O-1") == ["O-1", 2, due]

    orders.now = T0 + timedelta(hours=2, days=44) - timedelta(milliseconds=1)
    assert orders.sweep() == 0 and "O-1" in orders.table
    orders.now += timedelta(milliseconds=1)
    assert orders.sweep() == 1

    assert orders.table.deleted == ["O-1"] and orders.index.deleted == ["O-1"]  # tombstones
    assert orders.runtime.lookup("O-1") is None
    assert removed(orders.metrics, "orders", "delivered") == 1


def test_a_return_linked_later_moves_the_removal_of_a_finished_order(orders: Orders) -> None:
    orders.apply(orders.placement("O-1", click_and_collect(T0 + timedelta(hours=1))))
    orders.collect("O-1")
    first = entry(orders.index, "O-1")
    assert first is not None and first[2] == epoch_ms(T0) + POLICY.delivered_ms
    returned = T0 + timedelta(days=20)
    orders.now = returned
    processed = {
        "event_id": "ret-1",
        "return_id": "RET-1",
        "order_id": "O-1",
        "location_id": AMSTERDAM,
        "handling": "store",
        "processed_at": returned.isoformat(),
        "items": [{"sku": "SKU-TENT", "quantity": 1, "grade": "resellable", "disposition": "restock"}],
    }
    orders.apply(FakeEvent("processed", b"O-1", orjson.dumps(processed), partition=2))
    assert entry(orders.index, "O-1") == ["O-1", 2, epoch_ms(returned) + POLICY.delivered_ms]
    orders.now = T0 + timedelta(days=45)
    assert orders.sweep() == 0 and "O-1" in orders.table


def test_a_new_owner_reads_only_the_open_rows_through_the_index(orders: Orders) -> None:
    for i in range(50):
        orders.apply(orders.placement(f"O-{i}", click_and_collect(T0 + timedelta(hours=1))))
    for i in range(40):
        orders.collect(f"O-{i}")
    orders.table.reads.clear()

    successor = orders.owner()
    assert asyncio.run(successor.reload()) == 10

    assert orders.table.scans == 0  # no row of a finished order was read
    assert sorted(orders.table.reads) == sorted(f"O-{i}" for i in range(40, 50))
    assert orders.metrics.retention_rows.labels("orders", "finished")._value.get() == 40
    assert orders.metrics.retention_rows.labels("orders", "open")._value.get() == 10


def test_without_an_index_a_new_owner_reads_every_row_once_and_indexes_it(orders: Orders) -> None:
    orders.apply(orders.placement("O-OPEN", click_and_collect(T0 + timedelta(hours=1))))
    orders.apply(orders.placement("O-DONE", click_and_collect(T0 + timedelta(hours=1))))
    orders.collect("O-DONE")
    orders.index.clear()  # rows written before this release had no index

    successor = orders.owner()
    asyncio.run(successor.reload())
    asyncio.run(successor.check_due())

    assert orders.table.scans == 1
    assert entry(orders.index, "O-OPEN") == ["O-OPEN", 2, None]
    done = entry(orders.index, "O-DONE")
    assert done is not None and done[2] == epoch_ms(T0) + POLICY.delivered_ms


def test_a_rejected_order_leaves_after_the_rejected_retention_and_is_watched_until_then(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rejected = SourcingRow(
        order_id="O-R",
        placement="ev",
        partition=2,
        method="standard",
        lines=[["SKU-TENT", 1]],
        destination={},
        window_start_ms=0,
        promised_by_ms=0,
        channel="webshop",
        round=0,
        status="rejected",
    )
    h = Orders(sourcing=lambda order_id: rejected if order_id == "O-R" else None)
    monkeypatch.setattr(orders_runtime, "now_ms", lambda: epoch_ms(h.now))
    handover = T0 + timedelta(hours=8)
    h.apply(h.placement("O-R", standard(handover, handover + timedelta(days=1))))
    assert entry(h.index, "O-R") == ["O-R", 2, None]  # events alone do not ask sourcing
    h.now = handover + timedelta(hours=1)  # a milestone passed: the timer looks, and asks sourcing
    h.check()

    assert [r["status"] for r in h.on("at-risk")] == ["at_risk"]  # its risk is reported as before
    assert entry(h.index, "O-R") == ["O-R", 2, epoch_ms(T0) + POLICY.rejected_ms]
    row, _ = h.runtime.lookup("O-R")  # type: ignore[misc]
    assert row.rejected  # kept: the sweep need not find the sourcing row again
    h.runtime.sourcing = None  # the sourcing row may be gone first
    h.now = T0 + timedelta(days=7)
    assert h.sweep() == 1 and "O-R" not in h.table
    h.runtime.export_gauges()
    assert h.metrics.open_orders._value.get() == 0  # no longer watched once removed
    assert removed(h.metrics, "orders", "rejected") == 1


def test_an_event_for_a_removed_order_is_an_orphan_that_leaves_too(orders: Orders) -> None:
    orders.now = T0 + timedelta(days=50)
    orders.apply(orders.fulfilment("O-GONE", "carrier_delay", new_eta=orders.now.isoformat()))
    assert entry(orders.index, "O-GONE") == ["O-GONE", 2, epoch_ms(orders.now) + POLICY.orphaned_ms]
    orders.now += timedelta(days=14)
    assert orders.sweep() == 1
    assert removed(orders.metrics, "orders", "orphaned") == 1


def test_a_row_whose_index_entry_was_lost_is_indexed_again_by_its_next_event(orders: Orders) -> None:
    orders.apply(orders.placement("O-1", click_and_collect(T0 + timedelta(hours=1))))
    orders.index.clear()
    successor = orders.runtime = orders.owner()
    asyncio.run(successor.reload())  # the index is empty: every row is read once
    orders.index.clear()
    orders.runtime.retention.forget()
    orders.collect("O-1")
    done = entry(orders.index, "O-1")
    assert done is not None and done[2] == epoch_ms(T0) + POLICY.delivered_ms


# --- sourcing -------------------------------------------------------------------------------------


class Sagas(SourcingHarness):
    def __init__(self) -> None:
        super().__init__()
        self.sourcing_table = Table()
        self.sourcing_index = Table()
        self.saga = self.saga_owner()

    def saga_owner(self) -> SourcingRuntime:
        retention = RetentionIndex(
            self.sourcing_index, self.sourcing_table, "placed", "sourcing", POLICY, self.metrics
        )
        return SourcingRuntime(
            self.sourcing_table,
            self.network,
            self.view,
            TransitModel(),
            SOURCING_TOPICS,
            self._produce,
            self.metrics,
            retention=retention,
        )


@pytest.fixture
def sagas(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sagas]:
    h = Sagas()
    monkeypatch.setattr(sourcing_runtime, "now_ms", lambda: epoch_ms(h.now))
    yield h


def test_a_saga_is_open_while_it_holds_stock_and_finished_once_every_unit_left(sagas: Sagas) -> None:
    sagas.stock("SKU-TENT", DC_NORTH=5)
    sagas.place("ORDER-1", {"SKU-TENT": 1})
    assert entry(sagas.sourcing_index, "ORDER-1") == ["ORDER-1", 0, None]
    sagas.run(*(sagas.answer(c, "reserved", 4) for c in sagas.commands("reserve")))
    assert entry(sagas.sourcing_index, "ORDER-1") == ["ORDER-1", 0, None]  # allocated: live

    sagas.now = T0 + timedelta(days=1)
    sagas.run(sagas.fulfilment("ORDER-1", "handed_to_carrier", "DC-NORTH", "h-1", "wms"))
    assert entry(sagas.sourcing_index, "ORDER-1") == ["ORDER-1", 0, None]  # the fulfil awaits its answer
    sagas.run(sagas.answer(sagas.commands("fulfil")[0], "fulfilled"))
    due = epoch_ms(sagas.now) + POLICY.delivered_ms
    assert entry(sagas.sourcing_index, "ORDER-1") == ["ORDER-1", 0, due]

    sagas.now = T0 + timedelta(days=1 + 44)
    assert asyncio.run(sagas.saga.sweep()) == 1
    assert sagas.saga.lookup("ORDER-1") is None and sagas.sourcing_table.deleted == ["ORDER-1"]
    assert removed(sagas.metrics, "sourcing", "delivered") == 1


def test_a_refused_placement_leaves_after_the_rejected_retention_and_a_new_owner_reads_no_row(
    sagas: Sagas,
) -> None:
    sagas.stock("SKU-TENT", DC_NORTH=5)
    sagas.place("ORDER-U", {"SKU-TENT": 1_001})
    assert entry(sagas.sourcing_index, "ORDER-U") == ["ORDER-U", 0, epoch_ms(T0) + POLICY.rejected_ms]

    successor = sagas.saga_owner()
    sagas.sourcing_table.reads.clear()
    assert asyncio.run(successor.reload()) == 0
    assert sagas.sourcing_table.scans == 0 and sagas.sourcing_table.reads == []

    sagas.now = T0 + timedelta(days=7)
    assert asyncio.run(successor.sweep()) == 1
    assert removed(sagas.metrics, "sourcing", "rejected") == 1


def test_a_new_owner_resends_the_commands_of_open_sagas_only(sagas: Sagas) -> None:
    sagas.stock("SKU-TENT", DC_NORTH=5)
    sagas.place("ORDER-U", {"SKU-TENT": 1_001})  # refused at placement: finished
    sagas.place("ORDER-1", {"SKU-TENT": 1})  # its reserve is unanswered
    sagas.take_sent()
    sagas.sourcing_table.reads.clear()
    successor = sagas.saga_owner()
    assert asyncio.run(successor.reload()) == 1
    assert [c["order_id"] for c in sagas.commands("reserve")] == ["ORDER-1"]
    assert "ORDER-U" not in sagas.sourcing_table.reads


# --- returns --------------------------------------------------------------------------------------


def test_a_return_leaves_after_its_retention_from_its_latest_receipt(monkeypatch: pytest.MonkeyPatch) -> None:
    h = ReturnsHarness()
    monkeypatch.setattr(returns_runtime, "now_ms", lambda: epoch_ms(h.now))
    h.returns_table = Table()
    index = Table()
    retention = RetentionIndex(index, h.returns_table, "requested", "returns", POLICY, h.metrics)
    h.returns = ReturnsRuntime(
        h.returns_table, h.network, h.view, h.load, RETURN_TOPICS, h._produce, h.metrics, retention=retention
    )
    h.short("SKU-HELMET", STORE_AMSTERDAM_01=2)
    h.run(h.requested("RET-1", {"SKU-HELMET": 1}))
    h.now = T0 + timedelta(days=3)
    h.run(h.received("RET-1", AMSTERDAM, [("SKU-HELMET", 1, "resellable")], "rcv-1"))
    assert entry(index, "RET-1") == ["RET-1", 0, epoch_ms(h.now) + POLICY.returned_ms]

    assert asyncio.run(h.returns.reload()) == 1  # a new owner: nothing open, nothing read
    assert h.returns_table.scans == 0
    h.now += timedelta(milliseconds=POLICY.returned_ms - 1)
    assert asyncio.run(h.returns.sweep()) == 0
    h.now += timedelta(milliseconds=1)
    assert asyncio.run(h.returns.sweep()) == 1
    assert h.returns.lookup("RET-1") is None and index.deleted == ["RET-1"]
    assert removed(h.metrics, "returns", "returned") == 1


def test_policy_days_are_read_as_milliseconds() -> None:
    policy = RetentionPolicy.of_days(1, 2, 3, 4, 0.5)
    assert (policy.delivered_ms, policy.returned_ms) == (DAY_MS, DAY_MS // 2)
