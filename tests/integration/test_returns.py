"""End to end on a real broker: a store return is restocked and visible at once and linked to its
order; units beyond what the order delivered are refused with the reason; a shipped return is
routed to the store that needs it and restocks it on arrival; repeats change nothing; bad returns
go to the dead-letter topic."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.integration.test_promise_and_risk import DLQ, UTRECHT_HOME, records_for, stock_up
from tests.integration.test_sourcing import an_option, atp_at, outcome_of
from tests.worker_process import Events, WorkerProcess, read_topic, wait_until

ROUTED = "oms.returns.routed.v1"
PROCESSED = "oms.returns.processed.v1"
RECEIVED = "oms.returns.received.v1"
REQUESTED = "oms.returns.requested.v1"
RETURNABLE = "oms.orders.returnable.v1"
MOVEMENTS = "oms.inventory.movements.v1"
CUSTOMER_IN_UTRECHT = {"lat": UTRECHT_HOME["lat"], "lon": UTRECHT_HOME["lon"]}


def availability(worker: WorkerProcess, sku: str) -> dict[str, Any]:
    return worker.get(f"/availability/{sku}")[1] or {}


def processed_of(worker: WorkerProcess, key: str) -> list[dict[str, Any]]:
    return records_for(worker, PROCESSED, key)


def delivered(worker: WorkerProcess, events: Events, order_id: str, units: dict[str, int]) -> None:
    """The carrier delivers the whole order; returns of it are checked against that from then on."""
    events.fulfilment(order_id, "delivered")
    events.flush()
    wait_until(
        lambda: any(r["shipped"] == units for r in records_for(worker, RETURNABLE, order_id)),
        20,
        f"{order_id} delivered, for the returns check",
    )
    time.sleep(0.5)  # the worker's follower of that topic fetches every 50 ms


def restocked(worker: WorkerProcess, sku: str, return_id: str) -> int:
    """Units restocked by the return's movements (a recent repeat re-sends them with the same ids)."""
    movements = {
        m["event_id"]: m["quantity"]
        for m in records_for(worker, MOVEMENTS, sku)
        if m.get("reference") == f"return:{return_id}" and m["kind"] == "customer_return_restocked"
    }
    return sum(movements.values())


def test_a_store_return_is_visible_at_once_graded_by_the_rules_and_linked_to_its_order(
    worker: WorkerProcess, events: Events
) -> None:
    stock_up(worker, events, ("SKU-TENT", "STORE-UTRECHT-01", 3), ("SKU-TENT", "DC-NORTH", 5))
    cart = {"SKU-TENT": 1, "SKU-EARBUDS": 1, "SKU-STOVE": 1, "SKU-PUMP": 2}
    events.order_placed("ORDER-R1", an_option("standard", cart), UTRECHT_HOME)
    events.flush()
    outcome_of(worker, "ORDER-R1")
    assert atp_at(worker, "SKU-TENT", "STORE-UTRECHT-01") == 2  # 3, less the store's safety stock
    delivered(worker, events, "ORDER-R1", cart)  # what the order delivered can all come back

    items = [
        ("SKU-TENT", 1, "as_new"),
        ("SKU-EARBUDS", 1, "resellable"),
        ("SKU-STOVE", 1, "damaged"),
        ("SKU-PUMP", 2, "defective"),
    ]
    receipt = events.return_received(
        "RET-1", "STORE-UTRECHT-01", items, order_id="ORDER-R1", channel="webshop"
    )
    events.flush()

    # Restocked in the store's own stock: the webshop sees it within the same flow.
    wait_until(lambda: atp_at(worker, "SKU-TENT", "STORE-UTRECHT-01") == 3, 20, "the tent back on sale")
    [processed] = wait_until(lambda: processed_of(worker, "ORDER-R1"), 20, "the processed return")
    assert processed["handling"] == "in_store" and processed["location_id"] == "STORE-UTRECHT-01"
    by_sku = {item["sku"]: item for item in processed["items"]}
    assert {sku: item["disposition"] for sku, item in by_sku.items()} == {
        "SKU-TENT": "restock",
        "SKU-EARBUDS": "unsellable",  # the hygiene rule from the return policy beats the default
        "SKU-STOVE": "unsellable",
        "SKU-PUMP": "return_to_vendor",
    }
    assert by_sku["SKU-EARBUDS"]["rule"].startswith("hygiene")
    assert processed["km_avoided"] > 0  # the tent did not travel to DC-NORTH
    # Kept but never sellable: on hand and unsellable both grew, so nothing became visible.
    stove = wait_until(lambda: availability(worker, "SKU-STOVE"), 20, "the stove's ledger")
    assert stove["network_atp"] == 0
    # The order knows what came back.
    order = wait_until(lambda: (worker.get("/orders/ORDER-R1")[1] or {}).get("returns"), 20, "linked")
    assert [r["return_id"] for r in order] == ["RET-1"]
    assert {i["sku"]: i["disposition"] for i in order[0]["items"]}["SKU-TENT"] == "restock"
    assert (
        worker.metric(
            "oms_returned_units_total",
            channel="webshop",
            grade="defective",
            disposition="return_to_vendor",
            handling="in_store",
        )
        == 2
    )

    # The till sends it again, then registers the same items under a new event id: nothing changes.
    events.send(RECEIVED, b"RET-1", json.dumps(receipt).encode())
    events.return_received("RET-1", "STORE-UTRECHT-01", items, order_id="ORDER-R1", channel="webshop")
    events.flush()
    wait_until(
        lambda: worker.metric("oms_returns_events_total", kind="received", verdict="duplicate") == 2,
        20,
        "both repeats recognised",
    )
    assert atp_at(worker, "SKU-TENT", "STORE-UTRECHT-01") == 3
    assert {p["event_id"] for p in processed_of(worker, "ORDER-R1")} == {processed["event_id"]}
    assert len((worker.get("/orders/ORDER-R1")[1] or {})["returns"]) == 1
    assert worker.get("/returns/RET-1")[1]["receipts"][receipt["event_id"]]["handling"] == "in_store"


def test_a_store_return_of_more_than_the_order_delivered_restocks_what_it_delivered_and_refuses_the_rest(
    worker: WorkerProcess, events: Events
) -> None:
    stock_up(worker, events, ("SKU-LANTERN", "DC-NORTH", 5))
    events.order_placed("ORDER-R4", an_option("standard", {"SKU-LANTERN": 2}), UTRECHT_HOME)
    events.flush()
    outcome_of(worker, "ORDER-R4")
    delivered(worker, events, "ORDER-R4", {"SKU-LANTERN": 2})

    items = [("SKU-LANTERN", 3, "as_new")]
    receipt = events.return_received(
        "RET-4", "STORE-UTRECHT-01", items, order_id="ORDER-R4", channel="webshop"
    )
    events.flush()

    [processed] = wait_until(lambda: processed_of(worker, "ORDER-R4"), 20, "the processed return")
    back, refused = processed["items"]
    assert (back["disposition"], back["quantity"]) == ("restock", 2)
    assert (refused["disposition"], refused["quantity"], refused["movement_event_id"]) == ("refused", 1, None)
    assert (
        refused["reason"] == "1 more than delivered: order ORDER-R4 shipped 2 SKU-LANTERN, 0 came back before"
    )
    wait_until(lambda: restocked(worker, "SKU-LANTERN", "RET-4") == 2, 20, "two lanterns restocked")
    assert (
        worker.metric("oms_returns_refused_units_total", kind="received", reason="more_than_delivered") == 1
    )
    assert worker.get("/returns/RET-4")[1]["receipts"][receipt["event_id"]]["items"] == processed["items"]
    order = wait_until(lambda: (worker.get("/orders/ORDER-R4")[1] or {}).get("returns"), 20, "linked")
    assert [i["disposition"] for i in order[0]["items"]] == ["restock", "refused"]

    # The till sends it again, then registers it again under a new event id: nothing changes.
    events.send(RECEIVED, b"RET-4", json.dumps(receipt).encode())
    events.return_received("RET-4", "STORE-UTRECHT-01", items, order_id="ORDER-R4", channel="webshop")
    events.flush()
    wait_until(
        lambda: worker.metric("oms_returns_events_total", kind="received", verdict="duplicate") == 2,
        20,
        "both repeats recognised",
    )
    assert {p["event_id"] for p in processed_of(worker, "ORDER-R4")} == {processed["event_id"]}
    assert restocked(worker, "SKU-LANTERN", "RET-4") == 2
    assert (
        worker.metric("oms_returns_refused_units_total", kind="received", reason="more_than_delivered") == 1
    )


def test_a_shipped_return_goes_to_the_store_that_needs_it_and_restocks_it_on_arrival(
    worker: WorkerProcess, events: Events
) -> None:
    # Utrecht has helmets to spare; Amsterdam sold its last one and is short of its target.
    stock_up(worker, events, ("SKU-HELMET", "STORE-UTRECHT-01", 6))
    events.movement("SKU-HELMET", "STORE-AMSTERDAM-01", "receipt", 1)
    events.movement("SKU-HELMET", "STORE-AMSTERDAM-01", "sale", 1, source="pos:STORE-AMSTERDAM-01")
    events.flush()
    short = wait_until(
        lambda: availability(worker, "SKU-HELMET").get("short", {}).get("STORE-AMSTERDAM-01"),
        20,
        "Amsterdam short of helmets",
    )
    assert "STORE-UTRECHT-01" not in availability(worker, "SKU-HELMET")["short"]

    request = events.return_requested("RET-2", {"SKU-HELMET": 1}, CUSTOMER_IN_UTRECHT, order_id="ORDER-R2")
    events.flush()

    [routed] = wait_until(lambda: records_for(worker, ROUTED, "RET-2"), 20, "the routing decision")
    [line] = routed["lines"]
    # 35 km to a store that needs it beats 1 km to one that does not.
    assert line["location_id"] == "STORE-AMSTERDAM-01", line
    assert line["need_covered"] == 1 and line["reason"].startswith("needs")
    assert line["central_location"] == "DC-NORTH" and line["central_km"] > line["km"]
    candidates = [c["location_id"] for c in line["candidates"]]
    assert candidates[0] == "STORE-AMSTERDAM-01" and "STORE-UTRECHT-01" in candidates
    assert line["excluded"]["does not accept returns"] >= 3

    # The announcement again: the same decision, made once.
    events.send(REQUESTED, b"RET-2", json.dumps(request).encode())
    events.flush()
    wait_until(
        lambda: worker.metric("oms_returns_events_total", kind="requested", verdict="duplicate") == 1,
        20,
        "the repeat recognised",
    )
    assert {r["event_id"] for r in records_for(worker, ROUTED, "RET-2")} == {routed["event_id"]}
    assert worker.metric("oms_returns_routed_units_total", basis="need") == 1

    # The parcel arrives where it was sent: Amsterdam's shortfall shrinks by the returned unit.
    events.return_received(
        "RET-2", "STORE-AMSTERDAM-01", [("SKU-HELMET", 1, "resellable")], order_id="ORDER-R2"
    )
    events.flush()
    [processed] = wait_until(lambda: processed_of(worker, "ORDER-R2"), 20, "the processed return")
    assert processed["handling"] == "shipped"
    assert processed["items"][0]["routed_to"] == "STORE-AMSTERDAM-01"
    assert processed["items"][0]["disposition"] == "restock"
    assert processed["km_avoided"] > 0
    wait_until(
        lambda: availability(worker, "SKU-HELMET").get("short", {}).get("STORE-AMSTERDAM-01", 0) == short - 1,
        20,
        "Amsterdam restocked",
    )
    assert worker.metric("oms_returns_km_avoided_total") > 0


def test_bad_returns_go_to_the_dead_letter_topic_with_a_reason_and_the_stream_goes_on(
    worker: WorkerProcess, events: Events
) -> None:
    events.send(RECEIVED, b"RET-BAD-1", b"{not json")
    events.return_received("RET-BAD-2", "STORE-UTRECHT-01", [("SKU-TENT", 1, "slightly_used")])
    events.return_received("RET-BAD-3", "STORE-NOWHERE", [("SKU-TENT", 1, "as_new")])
    bad_key = {
        "event_id": "bad-key-1",
        "occurred_at": "2026-11-28T10:00:00+00:00",
        "source": "pos",
        "return_id": "RET-BAD-4",
        "location_id": "STORE-UTRECHT-01",
        "items": [{"sku": "SKU-TENT", "quantity": 1, "grade": "as_new"}],
    }
    events.send(RECEIVED, b"RET-SOMETHING-ELSE", json.dumps(bad_key).encode())
    events.send(REQUESTED, b"RET-BAD-5", json.dumps({"return_id": "RET-BAD-5"}).encode())
    events.flush()
    # The stream goes on: a good return after the bad ones is applied.
    stock_up(worker, events, ("SKU-LANTERN", "STORE-UTRECHT-01", 3))
    events.return_received("RET-GOOD", "STORE-UTRECHT-01", [("SKU-LANTERN", 1, "as_new")])
    events.flush()
    wait_until(lambda: processed_of(worker, "RET-GOOD"), 20, "the good return after the bad ones")

    def letters() -> list[dict[str, Any]]:
        return [
            json.loads(value)
            for key, value in read_topic(worker.bootstrap, worker.prefix + DLQ)
            if key is not None and b"returns" in key and value is not None
        ]

    found = wait_until(lambda: len(letters()) >= 5 and letters(), 20, "five dead letters")
    reasons = " | ".join(letter["reason"] for letter in found)
    for expected in ("malformed JSON", "grade", "unknown location 'STORE-NOWHERE'", "is not the return id"):
        assert expected in reasons, reasons
    assert worker.metric("oms_returns_events_total", kind="received", verdict="dead_lettered") == 4
    assert worker.metric("oms_returns_events_total", kind="requested", verdict="dead_lettered") == 1
