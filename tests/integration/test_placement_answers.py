"""End to end on a real broker: every placement is answered on oms.orders.sourced.v1, also one the
OMS refuses or dead-letters, and GET /orders/{id} shows where the order is in its life."""

from __future__ import annotations

import json
from typing import Any

from tests.integration.test_promise_and_risk import DLQ, UTRECHT_HOME, records_for, stock_up
from tests.integration.test_sourcing import SOURCED, an_option, outcome_of
from tests.worker_process import Events, WorkerProcess, read_topic, wait_until


def placement_letters(worker: WorkerProcess) -> list[dict[str, Any]]:
    return [
        json.loads(value)
        for key, value in read_topic(worker.bootstrap, worker.prefix + DLQ)
        if key is not None and b"orders.placed" in key and value is not None
    ]


def lifecycle_of(worker: WorkerProcess, order_id: str) -> Any:
    return (worker.get(f"/orders/{order_id}")[1] or {}).get("lifecycle")


def test_an_absurd_quantity_and_an_impossible_cart_are_answered_rejected_with_the_reason(
    worker: WorkerProcess, events: Events
) -> None:
    stock_up(worker, events, ("SKU-TENT", "DC-NORTH", 5))
    events.order_placed(
        "ORDER-UNKNOWN", an_option("standard", {"SKU-TENT": 1, "SKU-NOPE": 2_000}), UTRECHT_HOME
    )
    # A cart that does not match its option: track_orders dead-letters it, sourcing answers it.
    bad = events.order_placed("ORDER-BAD", an_option("standard", {"SKU-TENT": 1}), UTRECHT_HOME)
    bad["cart"] = [{"sku": "SKU-TENT", "quantity": 4}]
    bad["event_id"] = "ORDER-BAD-forged"
    events.send("oms.orders.placed.v1", b"ORDER-BAD", json.dumps(bad).encode())
    events.flush()

    unknown = outcome_of(worker, "ORDER-UNKNOWN", round=0)
    limit = "quantity over the limit of 1000 units per line: SKU-NOPE x 2000"
    assert unknown["outcome"] == "rejected" and unknown["reason"] == limit
    assert unknown["event_id"] == "ORDER-UNKNOWN:sourced:0" and unknown["allocations"] == []
    assert wait_until(lambda: lifecycle_of(worker, "ORDER-UNKNOWN"), 20, "lifecycle") == "rejected"
    view = worker.get("/orders/ORDER-UNKNOWN")[1]
    assert view["sourcing"]["reason"] == limit and view["sourcing"]["round"] == 0

    # ORDER-BAD's first placement was valid and sourced; the forged one (a new event id: an edit) is
    # dead-lettered and answered as a refused edit, which changes nothing.
    assert outcome_of(worker, "ORDER-BAD")["outcome"] == "allocated"
    wait_until(lambda: placement_letters(worker), 20, "the forged placement dead-lettered")
    assert any("impossible option" in letter["reason"] for letter in placement_letters(worker))
    answers = wait_until(
        lambda: [r for r in records_for(worker, SOURCED, "ORDER-BAD") if r.get("edit")],
        20,
        "the edit refused",
    )
    assert [(a["round"], a["edit"]["status"], a["outcome"]) for a in answers] == [(1, "refused", "allocated")]
    assert "impossible option" in answers[0]["edit"]["reason"], answers
    assert [r["round"] for r in records_for(worker, SOURCED, "ORDER-BAD") if not r.get("edit")] == [1]


def test_a_placement_that_cannot_be_read_is_answered_rejected_and_shown_rejected(
    worker: WorkerProcess, events: Events
) -> None:
    stock_up(worker, events, ("SKU-TENT", "DC-NORTH", 5))
    placed = events.order_placed("ORDER-READ", an_option("standard", {"SKU-TENT": 1}), UTRECHT_HOME)
    # Not sent as is: the same order with a cart that does not match its option, sent twice.
    placed["order_id"], placed["event_id"] = "ORDER-MISMATCH", "ORDER-MISMATCH-1"
    placed["cart"] = [{"sku": "SKU-TENT", "quantity": 3}]
    for _ in range(2):
        events.send("oms.orders.placed.v1", b"ORDER-MISMATCH", json.dumps(placed).encode())
    events.flush()

    answer = outcome_of(worker, "ORDER-MISMATCH", round=0)
    assert answer["outcome"] == "rejected" and "impossible option" in answer["reason"]
    assert wait_until(lambda: lifecycle_of(worker, "ORDER-MISMATCH"), 20, "lifecycle") == "rejected"
    assert worker.get("/orders/ORDER-MISMATCH")[1]["status"] == "rejected"
    # However often it comes, the answer is the same one (same event id, same reason).
    answers = records_for(worker, SOURCED, "ORDER-MISMATCH")
    assert {(a["event_id"], a["reason"]) for a in answers} == {(answer["event_id"], answer["reason"])}


def test_an_allocated_order_is_shown_allocated_then_shipped_then_delivered(
    worker: WorkerProcess, events: Events
) -> None:
    stock_up(worker, events, ("SKU-TENT", "DC-NORTH", 5))
    events.order_placed("ORDER-LIFE", an_option("standard", {"SKU-TENT": 2}), UTRECHT_HOME)
    events.flush()
    assert outcome_of(worker, "ORDER-LIFE")["outcome"] == "allocated"
    wait_until(lambda: lifecycle_of(worker, "ORDER-LIFE") == "allocated", 20, "allocated")
    assert worker.get("/orders/ORDER-LIFE")[1]["status"] == "on_track"  # the risk view is unchanged

    events.fulfilment("ORDER-LIFE", "handed_to_carrier", location_id="DC-NORTH")
    events.flush()
    wait_until(lambda: lifecycle_of(worker, "ORDER-LIFE") == "shipped", 20, "shipped")
    events.fulfilment("ORDER-LIFE", "delivered", location_id="DC-NORTH")
    events.flush()
    wait_until(lambda: lifecycle_of(worker, "ORDER-LIFE") == "delivered", 20, "delivered")
