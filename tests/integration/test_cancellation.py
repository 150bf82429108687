"""End to end on a real broker: orders cancelled over HTTP and on ``oms.orders.cancellations.v1``.

An allocated order is cancelled: its holds go back to the ledgers (availability shows the units at
once, ``oms audit`` finds no hold without an owner), fulfilment gets a ``cancel`` record, the order's
risk is cleared and ``GET /orders/{id}`` says cancelled. A line that already shipped is refused with
the reason; a line cancelled out of a shipment leaves the rest allocated; a repeat changes nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.integration.conftest import NETWORK_YAML
from tests.integration.test_delivery_failures import assert_clean_audit
from tests.integration.test_promise_and_risk import AT_RISK, DLQ, UTRECHT_HOME, records_for, stock_up
from tests.integration.test_sourcing import allocations_of, an_option, atp_at, outcome_of
from tests.worker_process import Events, WorkerProcess, read_topic, wait_until

CANCELLATIONS = "oms.orders.cancellations.v1"
OUTCOMES = "oms.orders.cancellation-outcomes.v1"


def cancel_over_http(worker: WorkerProcess, order_id: str, **body: Any) -> tuple[int, Any]:
    return worker.post(f"/orders/{order_id}/cancellations", json.dumps(body).encode())


def cancel_on_topic(events: Events, order_id: str, request_id: str, *skus: str) -> None:
    body: dict[str, Any] = {
        "event_id": request_id,
        "occurred_at": datetime.now(UTC).isoformat(),
        "source": "customer-service",
        "order_id": order_id,
        "reason": "out of patience",
    }
    if skus:
        body["lines"] = [{"sku": sku} for sku in skus]
    events.send(CANCELLATIONS, order_id.encode(), json.dumps(body).encode())
    events.flush()


def answer_to(worker: WorkerProcess, order_id: str, request_id: str) -> dict[str, Any]:
    answers = wait_until(
        lambda: [a for a in records_for(worker, OUTCOMES, order_id) if a["request_id"] == request_id],
        30,
        f"the answer to {request_id}",
    )
    return answers[0]  # type: ignore[no-any-return]


def order(worker: WorkerProcess, order_id: str) -> dict[str, Any]:
    status, body = worker.get(f"/orders/{order_id}")
    assert status == 200, body
    return body  # type: ignore[no-any-return]


def allocated(worker: WorkerProcess, events: Events, order_id: str, cart: dict[str, int]) -> None:
    events.order_placed(order_id, an_option("standard", cart), UTRECHT_HOME)
    events.flush()
    assert outcome_of(worker, order_id)["outcome"] == "allocated"
    wait_until(
        lambda: (order(worker, order_id).get("sourcing") or {}).get("status") == "allocated", 20, "sourced"
    )


def test_an_order_cancelled_over_http_gives_its_stock_back_and_clears_its_risk_and_a_repeat_is_a_no_op(
    worker: WorkerProcess, events: Events
) -> None:
    stock_up(worker, events, ("SKU-TENT", "DC-NORTH", 5), ("SKU-BIKE-LIGHT", "DC-NORTH", 10))
    allocated(worker, events, "ORDER-C1", {"SKU-TENT": 2, "SKU-BIKE-LIGHT": 3})
    wait_until(lambda: atp_at(worker, "SKU-TENT", "DC-NORTH") == 3, 20, "two tents held")
    late = (datetime.now(UTC) + timedelta(days=10)).isoformat()  # past the promised window
    events.fulfilment("ORDER-C1", "carrier_delay", location_id="DC-NORTH", new_eta=late)
    events.flush()
    wait_until(lambda: order(worker, "ORDER-C1")["status"] == "at_risk", 20, "the order at risk")

    status, answer = cancel_over_http(worker, "ORDER-C1", reason="changed my mind", request_id="CANCEL-C1")

    assert status == 200, answer
    assert answer["outcome"] == "cancelled" and answer["order_cancelled"] is True, answer
    assert answer["withdrawn_allocations"] == ["ORDER-C1:1:0"] and answer["open_lines"] == []
    # The holds went back through the ledger: the webshop sees the units again.
    wait_until(lambda: atp_at(worker, "SKU-TENT", "DC-NORTH") == 5, 20, "the tents released")
    wait_until(lambda: atp_at(worker, "SKU-BIKE-LIGHT", "DC-NORTH") == 10, 20, "the lights released")
    cancel = wait_until(
        lambda: [a for a in allocations_of(worker, "ORDER-C1") if a["kind"] == "cancel"],
        20,
        "the cancel record",
    )
    assert (
        cancel[0]["allocation_id"] == "ORDER-C1:1:0" and cancel[0]["reason"] == "cancelled: changed my mind"
    )
    cleared = wait_until(
        lambda: [r for r in records_for(worker, AT_RISK, "ORDER-C1") if r["status"] == "cleared"],
        20,
        "cleared",
    )
    assert len(cleared) == 1
    view = order(worker, "ORDER-C1")
    assert view["status"] == "cancelled" and view["risk"] is None
    assert {line["sku"]: line["state"] for line in view["lines"]} == {
        "SKU-TENT": "cancelled",
        "SKU-BIKE-LIGHT": "cancelled",
    }
    assert view["sourcing"]["allocations"][0]["state"] == "cancelled"
    assert [c["request_id"] for c in view["cancellations"]] == ["CANCEL-C1"]

    # The same request again: the same answer, nothing new. A new one: already cancelled.
    assert cancel_over_http(worker, "ORDER-C1", reason="changed my mind", request_id="CANCEL-C1") == (
        200,
        answer,
    )
    status, again = cancel_over_http(worker, "ORDER-C1")
    assert status == 200 and again["outcome"] == "already_cancelled", again
    # A request read again is answered again with the same ids (consumers dedupe by event_id).
    cancels = {a["event_id"] for a in allocations_of(worker, "ORDER-C1") if a["kind"] == "cancel"}
    assert cancels == {"ORDER-C1:1:0:cancel"}
    assert {a["event_id"] for a in records_for(worker, OUTCOMES, "ORDER-C1")} == {
        answer["event_id"],
        again["event_id"],
    }
    assert atp_at(worker, "SKU-TENT", "DC-NORTH") == 5

    assert cancel_over_http(worker, "ORDER-NOPE")[0] == 404
    status, bad = cancel_over_http(worker, "ORDER-C1", lines=[{"sku": "SKU-TENT", "quantity": 1}])
    assert status == 400 and "quantity" in bad["error"], bad
    assert_clean_audit(worker.bootstrap, worker.prefix)


def test_on_the_topic_a_shipped_line_is_refused_and_a_cancelled_line_leaves_the_rest_allocated(
    worker: WorkerProcess, events: Events
) -> None:
    stock_up(
        worker,
        events,
        ("SKU-LANTERN", "DC-NORTH", 4),
        ("SKU-STOVE", "DC-SOUTH", 4),
        ("SKU-PUMP", "DC-NORTH", 6),
        ("SKU-HELMET", "DC-NORTH", 6),
    )
    # Two shipments: the lantern from DC-NORTH, the stove from DC-SOUTH. The lantern leaves.
    allocated(worker, events, "ORDER-C2", {"SKU-LANTERN": 1, "SKU-STOVE": 1})
    events.fulfilment("ORDER-C2", "handed_to_carrier", location_id="DC-NORTH")
    events.flush()
    wait_until(
        lambda: any(a["state"] == "fulfilled" for a in order(worker, "ORDER-C2")["sourcing"]["allocations"]),
        20,
        "the lantern shipped",
    )
    wait_until(lambda: atp_at(worker, "SKU-STOVE", "DC-SOUTH") == 3, 20, "the stove held")

    cancel_on_topic(events, "ORDER-C2", "CANCEL-C2")

    answer = answer_to(worker, "ORDER-C2", "CANCEL-C2")
    assert answer["outcome"] == "partially_cancelled", answer
    assert answer["reason"] == "SKU-LANTERN: all 1 already shipped from DC-NORTH"
    assert {line["sku"]: line["status"] for line in answer["lines"]} == {
        "SKU-LANTERN": "shipped",
        "SKU-STOVE": "cancelled",
    }
    wait_until(lambda: atp_at(worker, "SKU-STOVE", "DC-SOUTH") == 4, 20, "the stove released")
    status, refused = cancel_over_http(worker, "ORDER-C2", lines=[{"sku": "SKU-LANTERN"}])
    assert status == 409 and refused["error"] == "SKU-LANTERN: all 1 already shipped from DC-NORTH", refused

    # One line out of a shipment of two: the shipment is replaced by one of the other line.
    allocated(worker, events, "ORDER-C3", {"SKU-PUMP": 2, "SKU-HELMET": 1})
    wait_until(lambda: atp_at(worker, "SKU-PUMP", "DC-NORTH") == 4, 20, "the pumps held")
    cancel_on_topic(events, "ORDER-C3", "CANCEL-C3", "SKU-PUMP")

    answer = answer_to(worker, "ORDER-C3", "CANCEL-C3")
    assert answer["outcome"] == "cancelled" and answer["order_cancelled"] is False, answer
    assert answer["replacement_allocations"] == ["ORDER-C3:2:0"]
    assert answer["open_lines"] == [{"sku": "SKU-HELMET", "quantity": 1}]
    wait_until(lambda: atp_at(worker, "SKU-PUMP", "DC-NORTH") == 6, 20, "the pumps released")
    assert atp_at(worker, "SKU-HELMET", "DC-NORTH") == 5  # still held, now by the replacement
    records = allocations_of(worker, "ORDER-C3")
    assert [(r["kind"], r["allocation_id"]) for r in records] == [
        ("allocate", "ORDER-C3:1:0"),
        ("cancel", "ORDER-C3:1:0"),
        ("allocate", "ORDER-C3:2:0"),
    ]
    assert records[2]["lines"] == [{"sku": "SKU-HELMET", "quantity": 1}]
    assert outcome_of(worker, "ORDER-C3", round=2)["allocations"] == ["ORDER-C3:2:0"]
    lines = {line["sku"]: line["state"] for line in order(worker, "ORDER-C3")["lines"]}
    assert lines == {"SKU-PUMP": "cancelled", "SKU-HELMET": "allocated"}
    assert_clean_audit(worker.bootstrap, worker.prefix)  # the replacement owns the helmet's hold

    # A malformed request is dead-lettered with the reason; the stream goes on.
    events.send(CANCELLATIONS, b"ORDER-C3", b'{"order_id": "ORDER-C3"}')
    cancel_on_topic(events, "ORDER-C3", "CANCEL-C3B", "SKU-HELMET")
    assert answer_to(worker, "ORDER-C3", "CANCEL-C3B")["order_cancelled"] is True
    letters = [
        json.loads(value)
        for key, value in read_topic(worker.bootstrap, worker.prefix + DLQ)
        if key is not None and b"cancellations" in key and value is not None
    ]
    assert len(letters) == 1 and "schema violation" in letters[0]["reason"], letters
    assert worker.metric("oms_order_cancellations_total", outcome="dead_lettered") == 1
    assert_clean_audit(worker.bootstrap, worker.prefix)


def test_any_worker_takes_a_cancellation_and_the_order_s_owner_decides_it(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, events: Events
) -> None:
    first = WorkerProcess(kafka_bootstrap, topic_prefix, tmp_path / "w1").start()
    events.config(NETWORK_YAML)
    second = WorkerProcess(kafka_bootstrap, topic_prefix, tmp_path / "w2").start()
    try:
        stock_up(first, events, ("SKU-TENT", "DC-NORTH", 20))
        orders = [f"ORDER-W{i}" for i in range(6)]
        for order_id in orders:
            events.order_placed(order_id, an_option("standard", {"SKU-TENT": 1}), UTRECHT_HOME)
        events.flush()
        for order_id in orders:
            outcome_of(first, order_id)
            wait_until(lambda o=order_id: second.get(f"/orders/{o}")[0] == 200, 30, f"{order_id} known")

        for order_id in orders:  # all through the first worker: it forwards what it does not own
            status, answer = cancel_over_http(first, order_id, request_id=f"CANCEL-{order_id}")
            assert status == 200 and answer["outcome"] == "cancelled", (order_id, answer)

        assert first.metric("oms_cancellation_requests_total", verdict="forwarded") > 0
        assert second.metric("oms_cancellation_requests_total", verdict="accepted") > 0
        wait_until(lambda: atp_at(first, "SKU-TENT", "DC-NORTH") == 20, 30, "every tent released")
        assert all(order(second, o)["status"] == "cancelled" for o in orders)
        assert_clean_audit(kafka_bootstrap, topic_prefix)
    finally:
        first.stop()
        second.stop()
