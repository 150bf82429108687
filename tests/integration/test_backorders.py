"""End to end on a real broker: backordered lines are sourced again when a receipt brings stock.

One order is partially allocated at placement (one tent of three in stock), another rejected (no
stove anywhere): both wait for stock within their horizon. A receipt at another DC makes the
worker's backorder timer start a new round for each: reserved on the SKUs' ledgers, allocated, an
outcome for round 2 that says why; ``GET /orders/{id}`` follows, and ``oms audit`` is clean.
"""

from __future__ import annotations

import pytest

from tests.integration.test_cancellation import order
from tests.integration.test_delivery_failures import assert_clean_audit
from tests.integration.test_promise_and_risk import UTRECHT_HOME, stock_up
from tests.integration.test_sourcing import allocations_of, an_option, atp_at, outcome_of
from tests.worker_process import Events, WorkerProcess, wait_until


@pytest.fixture
def worker_env() -> dict[str, str]:
    return {"OMS_BACKORDER_CHECK_INTERVAL_S": "1"}  # a look every second rather than every 30


def test_orders_backordered_at_placement_are_allocated_after_a_receipt_brings_stock(
    worker: WorkerProcess, events: Events
) -> None:
    stock_up(worker, events, ("SKU-TENT", "DC-NORTH", 1))
    events.order_placed("ORDER-B1", an_option("standard", {"SKU-TENT": 3}), UTRECHT_HOME)
    events.order_placed("ORDER-B2", an_option("standard", {"SKU-STOVE": 1}), UTRECHT_HOME)
    events.flush()

    partial, rejected = outcome_of(worker, "ORDER-B1"), outcome_of(worker, "ORDER-B2")
    assert partial["outcome"] == "partially_allocated", partial
    assert partial["backorder"] == [{"sku": "SKU-TENT", "quantity": 2}] and partial["backorder_until"]
    assert rejected["outcome"] == "rejected" and rejected["backorder_until"], rejected
    waiting = wait_until(lambda: order(worker, "ORDER-B2").get("sourcing"), 20, "ORDER-B2's sourcing")
    assert waiting["backorder_until"] == rejected["backorder_until"] and waiting["backorder_final"] is None
    assert order(worker, "ORDER-B2")["lifecycle"] == "backordered"

    events.movement("SKU-TENT", "DC-SOUTH", "receipt", 5)
    events.movement("SKU-STOVE", "DC-SOUTH", "receipt", 2)
    events.flush()

    for order_id, sku, units in (("ORDER-B1", "SKU-TENT", 2), ("ORDER-B2", "SKU-STOVE", 1)):
        again = outcome_of(worker, order_id, round=2)
        assert again["outcome"] == "allocated" and again["backorder"] == [], again
        assert again["reason"].startswith(f"stock arrived for the backorder ({sku} x {units})"), again
        [allocation] = [a for a in allocations_of(worker, order_id) if a["round"] == 2]
        assert allocation["location_id"] == "DC-SOUTH" and allocation["allocation_id"] == f"{order_id}:2:0"
        assert [(line["sku"], line["quantity"]) for line in allocation["lines"]] == [(sku, units)]
        wait_until(
            lambda order_id=order_id: order(worker, order_id)["lifecycle"] == "allocated", 20, "allocated"
        )
        assert order(worker, order_id)["sourcing"]["backorder_rounds"] == 1
    wait_until(lambda: atp_at(worker, "SKU-TENT", "DC-SOUTH") == 3, 20, "two tents held at DC-SOUTH")
    wait_until(lambda: atp_at(worker, "SKU-STOVE", "DC-SOUTH") == 1, 20, "a stove held at DC-SOUTH")
    assert worker.metric("oms_backorders_total", event="resourced") == 2
    assert_clean_audit(worker.bootstrap, worker.prefix)
