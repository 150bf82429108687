"""End to end on a real broker: a preorder promised from announced inbound, held, and allocated when
the goods arrive, while an ordinary order waiting for the same SKU gets only what is left.

An ERP announces three tents for DC-NORTH with an ETA; nothing is on hand. ``POST /promise`` offers a
``preorder`` option timed from the ETA; the order placed with it holds two inbound tents
(``GET /orders/{id}``: ``preordered``, its ETA), and ``oms audit`` is clean while it waits. An
ordinary order for a tent is backordered. The webshop hears of the preorder at once: an interim
answer 'preordered' on ``oms.orders.sourced.v1`` with the ETA and when it is given up. When the
three tents arrive, the preorder is allocated from them (its round's one outcome) and the backorder
gets the one left: never a preordered one.

A second preorder of a tent and a stove has its stove line cancelled while it waits: the stove
goes back to the inbound others may preorder at once, and the tent keeps waiting.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.test_delivery_failures import assert_clean_audit
from tests.integration.test_promise_and_risk import UTRECHT_HOME, records_for
from tests.integration.test_sourcing import SOURCED, allocations_of, an_option, atp_at, outcome_of
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


def answers_of(worker: WorkerProcess, order_id: str) -> list[dict[str, Any]]:
    """Every record of the order on the outcomes topic, repeats folded (same event id, same record)."""
    distinct: dict[str, dict[str, Any]] = {}
    for record in records_for(worker, SOURCED, order_id):
        seen = distinct.setdefault(record["event_id"], record)
        assert seen == record, f"two different records {record['event_id']}: {seen} {record}"
    return list(distinct.values())


def interim_of(worker: WorkerProcess, order_id: str) -> dict[str, Any]:
    return wait_until(
        lambda: next((r for r in answers_of(worker, order_id) if r["outcome"] == "preordered"), None),
        30,
        f"{order_id}'s interim answer 'preordered'",
    )


def free_inbound(worker: WorkerProcess, sku: str, location: str) -> int | None:
    """Units of announced inbound a preorder may still take, as the SKU's latest availability record
    on ``oms.availability.v1`` says (None before any)."""
    records = records_for(worker, "oms.availability.v1", sku)
    return ((records[-1].get("inbound") or {}).get(location) or {}).get("units", 0) if records else None


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
    interim = interim_of(worker, "ORDER-P1")  # the webshop's answer while the preorder waits
    assert (interim["event_id"], interim["round"], interim["allocations"]) == ("ORDER-P1:preordered:1", 1, [])
    said = interim["preorder"]
    assert abs(datetime.fromisoformat(said["expected_at"]) - eta) < timedelta(milliseconds=1)
    assert datetime.fromisoformat(said["give_up_at"]) == datetime.fromisoformat(preorder["given_up_at"])
    assert [(line["sku"], line["quantity"], line["location_id"]) for line in said["lines"]] == [
        ("SKU-TENT", 2, "DC-NORTH")
    ]
    assert outcome_of(worker, "ORDER-X1")["outcome"] == "rejected"  # backordered: nothing on hand
    assert_clean_audit(worker.bootstrap, worker.prefix)  # a waiting preorder is owned, not missing

    events.movement("SKU-TENT", "DC-NORTH", "receipt", 3)
    events.flush()

    allocated = outcome_of(worker, "ORDER-P1")
    assert allocated["outcome"] == "allocated", allocated
    assert [r["outcome"] for r in answers_of(worker, "ORDER-P1")] == ["preordered", "allocated"]
    [allocation] = allocations_of(worker, "ORDER-P1")
    assert allocation["location_id"] == "DC-NORTH"
    assert [(line["sku"], line["quantity"]) for line in allocation["lines"]] == [("SKU-TENT", 2)]
    wait_until(lambda: lifecycle_is(worker, "ORDER-P1", "allocated"), 20, "ORDER-P1 allocated")
    backorder = outcome_of(worker, "ORDER-X1", round=2)
    assert backorder["outcome"] == "allocated", backorder  # the one tent left, not a preordered one
    wait_until(lambda: atp_at(worker, "SKU-TENT", "DC-NORTH") == 0, 20, "every tent held")
    assert_clean_audit(worker.bootstrap, worker.prefix)


def test_a_line_cancelled_while_its_preorder_waits_gives_its_inbound_back_at_once(
    worker: WorkerProcess, events: Events
) -> None:
    eta = datetime.now(UTC) + timedelta(days=4)
    announce(events, "SKU-TENT", "DC-NORTH", 2, eta)
    announce(events, "SKU-STOVE", "DC-NORTH", 3, eta)
    option = preorder_option(worker, {"SKU-TENT": 1, "SKU-STOVE": 2})
    events.order_placed("ORDER-P2", option, UTRECHT_HOME)
    events.flush()
    wait_until(lambda: waiting_preorder(worker, "ORDER-P2"), 30, "ORDER-P2's preorder held")
    interim_of(worker, "ORDER-P2")
    wait_until(lambda: free_inbound(worker, "SKU-STOVE", "DC-NORTH") == 1, 20, "two stoves preordered")

    body = {"lines": [{"sku": "SKU-STOVE"}], "reason": "no stove after all"}
    status, answer = worker.post("/orders/ORDER-P2/cancellations", json.dumps(body).encode())
    assert (status, answer["outcome"]) == (200, "cancelled"), answer  # decided now, not at the arrival
    wait_until(lambda: free_inbound(worker, "SKU-STOVE", "DC-NORTH") == 3, 20, "the stoves given back")
    assert waiting_preorder(worker, "ORDER-P2") is not None  # the tent still waits for its goods
    assert free_inbound(worker, "SKU-TENT", "DC-NORTH") == 1
    assert [r["outcome"] for r in answers_of(worker, "ORDER-P2")] == ["preordered"]
    assert_clean_audit(worker.bootstrap, worker.prefix)
