"""End to end on a real broker: promises over HTTP and Kafka, orders placed with a promise, orders at risk."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.worker_process import Events, WorkerProcess, read_topic, wait_until

RESPONSES = "oms.promise.responses.v1"
AT_RISK = "oms.orders.at-risk.v1"
DLQ = "oms.dlq.v1"
UTRECHT_HOME = {"postal_code": "3511 AB", "lat": 52.0894, "lon": 5.1100, "region": "NL-UT"}


def records_for(worker: WorkerProcess, topic: str, key: str) -> list[dict[str, Any]]:
    return [
        json.loads(value)
        for k, value in read_topic(worker.bootstrap, worker.prefix + topic)
        if k == key.encode() and value is not None
    ]


def stock_up(worker: WorkerProcess, events: Events, *positions: tuple[str, str, int]) -> None:
    for sku, location, quantity in positions:
        events.movement(sku, location, "receipt", quantity)
    events.flush()
    for sku, location, _ in positions:
        wait_until(
            lambda sku=sku, location=location: any(
                row["location_id"] == location
                for row in (worker.get(f"/availability/{sku}?channel=webshop")[1] or {}).get("locations", [])
            ),
            20,
            f"{sku} at {location} visible",
        )


def test_a_promise_over_http_lists_every_option_and_the_event_path_answers_the_same(
    worker: WorkerProcess, events: Events
) -> None:
    stock_up(
        worker,
        events,
        ("SKU-BIKE-LIGHT", "DC-NORTH", 40),
        ("SKU-TENT", "DC-NORTH", 5),
        ("SKU-BIKE-LIGHT", "STORE-UTRECHT-01", 10),
        ("SKU-TENT", "STORE-UTRECHT-01", 4),
    )
    cart = {"SKU-BIKE-LIGHT": 2, "SKU-TENT": 1}
    body = {"cart": [{"sku": s, "quantity": q} for s, q in cart.items()], "destination": UTRECHT_HOME}
    status, answer = worker.post("/promise", json.dumps(body).encode())
    assert status == 200, answer
    options = {option["option_id"]: option for option in answer["options"]}
    assert "standard" in options and "click_and_collect:STORE-UTRECHT-01" in options, answer
    standard = options["standard"]
    # A fresh worker has learned no transit yet: the window is the carrier's prior, claimed at no
    # confidence (issue 16); the transit source says so.
    assert standard["parcels"] == 1 and standard["confidence"] is None
    assert standard["shipments"][0]["transit_source"] == "prior"
    assert standard["shipments"][0]["location_id"] == "DC-NORTH"
    assert (
        standard["window_end"]
        > standard["shipments"][0]["handover_at"]
        > standard["shipments"][0]["ready_at"]
    )
    assert standard["co2e_g"] > 0
    assert worker.metric("oms_promise_requests_total", path="http", outcome="answered") == 1

    events.promise_request("REQ-1", cart, UTRECHT_HOME)
    events.flush()
    response = wait_until(lambda: records_for(worker, RESPONSES, "REQ-1"), 20, "a response to REQ-1")[0]
    assert {o["option_id"] for o in response["options"]} == set(options)

    # The webshop places the order with the option it showed; the promise is stored with milestones.
    events.order_placed("ORDER-1", standard, UTRECHT_HOME)
    events.flush()
    order = wait_until(lambda: (worker.get("/orders/ORDER-1")[1] or {}).get("promise"), 20, "ORDER-1 stored")
    assert order["version"] == 1 and order["option"]["window_end"] == standard["window_end"]
    _, view = worker.get("/orders/ORDER-1")
    kinds = [m["kind"] for m in view["milestones"]]
    assert {"pick_start", "carrier_handover", "delivered"} <= set(kinds), view
    assert [m["due"] for m in view["milestones"]] == sorted(m["due"] for m in view["milestones"])

    # The parcel is handed over and delivered: its transit is learned by every worker.
    events.fulfilment("ORDER-1", "handed_to_carrier", location_id="DC-NORTH")
    events.fulfilment("ORDER-1", "delivered")
    events.flush()
    wait_until(
        lambda: worker.metric("oms_transit_observations_total", verdict="learned") == 1,
        20,
        "the delivered parcel learned",
    )
    # First in transit (counted as a censored lead time until delivered), then delivered.
    in_transit, observation = records_for(
        worker, "oms.promise.transit-observations.v1", "POSTNL-STANDARD|NL-OV|NL-UT"
    )
    assert (
        in_transit["delivered_at"] is None
        and worker.metric("oms_transit_observations_total", verdict="in_transit") == 1
    )
    assert observation["order_id"] == "ORDER-1" and observation["distance_km"] > 0
    assert observation["placed_at"] and observation["in_transit_reported"]


def click_and_collect_option(ready_in: timedelta, sku: str = "SKU-TENT") -> dict[str, Any]:
    """A click & collect promise from STORE-AMSTERDAM-01's own stock (open around the clock, 1 minute
    to pick): its pick-start milestone falls 1 minute before the promised ready time."""
    now = datetime.now(UTC)
    ready = now + ready_in
    return {
        "option_id": "click_and_collect:STORE-AMSTERDAM-01",
        "method": "click_and_collect",
        "window_start": ready.isoformat(),
        "window_end": (ready + timedelta(hours=2)).isoformat(),
        "confidence": 0.95,
        "parcels": 1,
        "co2e_g": 0.0,
        "shipments": [
            {
                "location_id": "STORE-AMSTERDAM-01",
                "lines": [{"sku": sku, "quantity": 1}],
                "ready_at": ready.isoformat(),
                "handover_at": ready.isoformat(),
                "arrives_at": ready.isoformat(),
            }
        ],
        "pickup_store_id": "STORE-AMSTERDAM-01",
    }


def test_an_order_goes_at_risk_when_a_milestone_passes_and_clears_when_the_event_comes_late_but_in_time(
    worker: WorkerProcess, events: Events
) -> None:
    pickup = {"pickup_store_id": "STORE-AMSTERDAM-01"}
    stock_up(
        worker, events, ("SKU-TENT", "STORE-AMSTERDAM-01", 3)
    )  # allocated there (a rejected order is not watched)
    # Pick must start by now + 3 s; ready for pickup by now + 63 s.
    placed = events.order_placed("ORDER-CC-1", click_and_collect_option(timedelta(seconds=63)), pickup)
    events.flush()
    at_risk = wait_until(
        lambda: [r for r in records_for(worker, AT_RISK, "ORDER-CC-1") if r["status"] == "at_risk"],
        20,
        "ORDER-CC-1 at risk",
    )[0]
    assert at_risk["reason"] == "pick_not_started" and at_risk["suggested_action"] == "expedite"
    assert at_risk["milestone"] == "pick_start" and at_risk["expected_delay_minutes"] >= 1
    assert at_risk["promise_version"] == 1
    _, order = worker.get("/orders/ORDER-CC-1")
    assert order["status"] == "at_risk" and order["risk"]["reason"] == "pick_not_started"
    assert worker.metric("oms_orders_at_risk", reason="pick_not_started") == 1

    # The store reports the pick late, still well before the ready-for-pickup milestone.
    events.fulfilment("ORDER-CC-1", "pick_started", location_id="STORE-AMSTERDAM-01")
    events.flush()
    cleared = wait_until(
        lambda: [r for r in records_for(worker, AT_RISK, "ORDER-CC-1") if r["status"] == "cleared"],
        20,
        "ORDER-CC-1 cleared",
    )[0]
    assert cleared["order_id"] == "ORDER-CC-1" and cleared["event_id"] != at_risk["event_id"]
    _, order = worker.get("/orders/ORDER-CC-1")
    assert order["status"] == "on_track"
    assert next(m for m in order["milestones"] if m["kind"] == "pick_start")["reached"] is True
    assert worker.metric("oms_orders_at_risk", reason="pick_not_started") == 0

    # A redelivered placement changes nothing: no new version, no new risk event.
    events.send("oms.orders.placed.v1", b"ORDER-CC-1", json.dumps(placed).encode())
    events.flush()
    wait_until(
        lambda: worker.metric("oms_order_events_total", kind="placed", verdict="duplicate") == 1,
        20,
        "the duplicate placement recognised",
    )
    assert worker.get("/orders/ORDER-CC-1")[1]["promise"]["version"] == 1
    assert len(records_for(worker, AT_RISK, "ORDER-CC-1")) == 2


def test_a_store_rejection_puts_a_click_and_collect_order_at_risk_with_inform_customer(
    worker: WorkerProcess, events: Events
) -> None:
    stock_up(
        worker, events, ("SKU-TENT", "STORE-AMSTERDAM-01", 3)
    )  # allocated there (a rejected order is not watched)
    events.order_placed(
        "ORDER-CC-2", click_and_collect_option(timedelta(hours=1)), {"pickup_store_id": "STORE-AMSTERDAM-01"}
    )
    events.fulfilment("ORDER-CC-2", "store_rejected", location_id="STORE-AMSTERDAM-01", reason="not found")
    events.flush()
    at_risk = wait_until(lambda: records_for(worker, AT_RISK, "ORDER-CC-2"), 20, "ORDER-CC-2 at risk")[0]
    assert at_risk["reason"] == "store_rejected" and at_risk["suggested_action"] == "inform_customer"


def test_bad_promise_requests_get_a_clear_4xx_over_http_and_a_dead_letter_on_the_topic(
    worker: WorkerProcess, events: Events
) -> None:
    cases = [
        (b"{not json", "malformed JSON"),
        (json.dumps({"cart": [], "destination": UTRECHT_HOME}).encode(), "cart"),
        (
            json.dumps({"cart": [{"sku": "SKU-TENT", "quantity": 0}], "destination": UTRECHT_HOME}).encode(),
            "quantity",
        ),
        (
            json.dumps({"cart": [{"sku": "SKU-TENT", "quantity": 1}], "destination": {}}).encode(),
            "destination",
        ),
        (
            json.dumps(
                {
                    "cart": [{"sku": "SKU-TENT", "quantity": 1}],
                    "destination": {"pickup_store_id": "STORE-NOWHERE"},
                }
            ).encode(),
            "unknown pickup store",
        ),
    ]
    for body, message in cases:
        status, answer = worker.post("/promise", body)
        assert status == 400 and message in answer["error"], (body, answer)

    events.send("oms.promise.requests.v1", b"REQ-BAD", b"{not json")
    events.promise_request("REQ-KEY", {"SKU-TENT": 1}, UTRECHT_HOME)  # keyed right: answered
    events.send(
        "oms.promise.requests.v1",
        b"SOMETHING-ELSE",
        json.dumps(
            {
                "event_id": "ev-wrong-key",
                "occurred_at": datetime.now(UTC).isoformat(),
                "source": "webshop",
                "request_id": "REQ-OTHER",
                "cart": [{"sku": "SKU-TENT", "quantity": 1}],
                "destination": UTRECHT_HOME,
            }
        ).encode(),
    )
    events.send("oms.orders.placed.v1", b"ORDER-BAD", b'{"order_id": "ORDER-BAD"}')
    events.fulfilment("ORDER-X", "carrier_delay")  # a delay without its new ETA
    events.flush()
    wait_until(lambda: records_for(worker, RESPONSES, "REQ-KEY"), 20, "the good request answered")

    def four_letters() -> list[dict[str, Any]] | None:
        got = [json.loads(v) for _, v in read_topic(worker.bootstrap, worker.prefix + DLQ) if v is not None]
        return got if len(got) >= 4 else None

    found = wait_until(four_letters, 20, "four dead letters")
    reasons = {letter["key"]: letter["reason"] for letter in found}
    assert reasons["REQ-BAD"] == "malformed JSON"
    assert "is not the request id" in reasons["SOMETHING-ELSE"]
    assert reasons["ORDER-BAD"].startswith("schema violation")
    assert "new ETA" in reasons["ORDER-X"]
    assert worker.metric("oms_promise_requests_total", path="topic", outcome="rejected") == 2
