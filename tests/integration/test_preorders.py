"""End to end on a real broker: a preorder promised from announced inbound, held, and allocated when
the goods arrive, while an ordinary order waiting for the same SKU gets only what is left.

An ERP announces three tents for DC-NORTH with an ETA; nothing is on hand. ``POST /promise`` offers a
``preorder`` option timed from the ETA; the order placed with it holds two inbound tents
(``GET /orders/{id}``: ``preordered``, its ETA), and ``oms audit`` is clean while it waits. An
ordinary order for a tent is backordered. When the three tents arrive, the preorder is allocated
from them and the backorder gets the one left: never a preordered one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.test_delivery_failures import assert_clean_audit
from tests.integration.test_promise_and_risk import UTRECHT_HOME
from tests.integration.test_sourcing import allocations_of, an_option, atp_at, outcome_of
from tests.worker_process import Events, WorkerProcess, wait_until


@pytest.fixture
def worker_env() -> dict[str, str]:
    return {"OMS_BACKORDER_CHECK_INTERVAL_S": "1"}


def announce(events: Events, sku: str, location: str, quantity: int, eta: datetime) -> None:
    event = {
        "event_id": f"{events.prefix}asn-{sku}-{location}",
        "occurred_at": datetime.now(UTC).isoformat(),
        "source": "erp",
        "sku": sku,
        "location_id": location,
        "kind": "inbound_announced",
        "quantity": quantity,
        "expected_at": eta.isoformat(),
    }
    events.send("oms.inventory.movements.v1", sku.encode(), json.dumps(event).encode())
    events.flush()


def lifecycle_is(worker: WorkerProcess, order_id: str, lifecycle: str) -> dict[str, Any] | None:
    status, body = worker.get(f"/orders/{order_id}")  # 404 until its owner has read the placement
    return body if status == 200 and body.get("lifecycle") == lifecycle else None


def waiting_preorder(worker: WorkerProcess, order_id: str) -> dict[str, Any] | None:
    """The order's preorder once every ledger held its inbound (the order is ``preordered``)."""
    body = lifecycle_is(worker, order_id, "preordered")
    preorder = (body or {}).get("sourcing", {}).get("preorder") or {}
    return preorder if preorder.get("status") == "waiting" else None


def preorder_option(worker: WorkerProcess, cart: dict[str, int]) -> dict[str, Any]:
    body = json.dumps(
        {"cart": [{"sku": s, "quantity": q} for s, q in cart.items()], "destination": UTRECHT_HOME}
    ).encode()

    def offered() -> dict[str, Any] | None:
        status, answer = worker.post("/promise", body)
        assert status == 200, answer
        return next((o for o in answer["options"] if o.get("preorder")), None)

    return wait_until(offered, 20, "a preorder option")


def test_a_preorder_holds_inbound_and_is_allocated_when_it_arrives_before_any_backorder(
    worker: WorkerProcess, events: Events
) -> None:
    eta = datetime.now(UTC) + timedelta(days=3)
    announce(events, "SKU-TENT", "DC-NORTH", 3, eta)
    option = preorder_option(worker, {"SKU-TENT": 2})
    assert option["option_id"] == "preorder:DC-NORTH" and option["method"] == "standard"
    assert datetime.fromisoformat(option["shipments"][0]["ready_at"]) >= eta  # timed from the ETA

    events.order_placed("ORDER-P1", option, UTRECHT_HOME)
    events.order_placed("ORDER-X1", an_option("standard", {"SKU-TENT": 1}), UTRECHT_HOME)
    events.flush()
    preorder = wait_until(lambda: waiting_preorder(worker, "ORDER-P1"), 30, "ORDER-P1's preorder held")
    assert abs(datetime.fromisoformat(preorder["expected_at"]) - eta) < timedelta(milliseconds=1)
    assert outcome_of(worker, "ORDER-X1")["outcome"] == "rejected"  # backordered: nothing on hand
    assert_clean_audit(worker.bootstrap, worker.prefix)  # a waiting preorder is owned, not missing

    events.movement("SKU-TENT", "DC-NORTH", "receipt", 3)
    events.flush()

    allocated = outcome_of(worker, "ORDER-P1")
    assert allocated["outcome"] == "allocated", allocated
    [allocation] = allocations_of(worker, "ORDER-P1")
    assert allocation["location_id"] == "DC-NORTH"
    assert [(line["sku"], line["quantity"]) for line in allocation["lines"]] == [("SKU-TENT", 2)]
    wait_until(lambda: lifecycle_is(worker, "ORDER-P1", "allocated"), 20, "ORDER-P1 allocated")
    backorder = outcome_of(worker, "ORDER-X1", round=2)
    assert backorder["outcome"] == "allocated", backorder  # the one tent left, not a preordered one
    wait_until(lambda: atp_at(worker, "SKU-TENT", "DC-NORTH") == 0, 20, "every tent held")
    assert_clean_audit(worker.bootstrap, worker.prefix)
