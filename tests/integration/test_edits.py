"""End to end on a real broker: an order edited by placing it again with a new event id.

An allocated order's new version increases one line and removes another: the removed line's holds
go back to its ledger (availability shows the units at once), the allocation that carried it is
withdrawn with a ``cancel`` record, the edit's round reserves the difference and allocates it, its
outcome on ``oms.orders.sourced.v1`` answers the edit, ``GET /orders/{id}`` shows version 2 with its
lines and shipments, the same edit read again changes nothing, and ``oms audit`` is clean.
"""

from __future__ import annotations

import json

from oms_streams.api.models import SourcingView
from tests.integration.test_cancellation import order
from tests.integration.test_delivery_failures import assert_clean_audit
from tests.integration.test_promise_and_risk import UTRECHT_HOME, stock_up
from tests.integration.test_sourcing import allocations_of, an_option, atp_at, outcome_of
from tests.worker_process import Events, WorkerProcess, wait_until


def test_an_edit_that_increases_one_line_and_removes_another_ends_with_the_right_allocations(
    worker: WorkerProcess, events: Events
) -> None:
    stock_up(worker, events, ("SKU-TENT", "DC-NORTH", 5), ("SKU-BIKE-LIGHT", "DC-NORTH", 10))
    events.order_placed(
        "ORDER-E1",
        an_option("standard", {"SKU-TENT": 2, "SKU-BIKE-LIGHT": 3}),
        UTRECHT_HOME,
        event_id="E1-v1",
    )
    events.flush()
    assert outcome_of(worker, "ORDER-E1")["outcome"] == "allocated"
    wait_until(lambda: atp_at(worker, "SKU-BIKE-LIGHT", "DC-NORTH") == 7, 20, "three lights held")

    edit = events.order_placed(
        "ORDER-E1", an_option("standard", {"SKU-TENT": 3}), UTRECHT_HOME, event_id="E1-v2"
    )
    events.flush()
    answer = outcome_of(worker, "ORDER-E1", round=2)
    assert answer["outcome"] == "allocated" and answer["allocations"] == ["ORDER-E1:2:0"], answer
    assert (answer["edit"]["status"], answer["edit"]["version"]) == ("accepted", 2)
    assert {line["sku"]: line["change"] for line in answer["edit"]["lines"]} == {
        "SKU-TENT": "increased",
        "SKU-BIKE-LIGHT": "removed",
    }
    wait_until(lambda: atp_at(worker, "SKU-BIKE-LIGHT", "DC-NORTH") == 10, 20, "the lights released")
    wait_until(lambda: atp_at(worker, "SKU-TENT", "DC-NORTH") == 2, 20, "three tents held")
    records = allocations_of(worker, "ORDER-E1")
    assert {(a["allocation_id"], a["kind"]) for a in records} == {
        ("ORDER-E1:1:0", "allocate"),
        ("ORDER-E1:1:0", "cancel"),
        ("ORDER-E1:2:0", "allocate"),
    }
    [new] = [a for a in records if a["allocation_id"] == "ORDER-E1:2:0"]
    assert [(line["sku"], line["quantity"]) for line in new["lines"]] == [("SKU-TENT", 3)]

    view = wait_until(
        lambda: (v := order(worker, "ORDER-E1"))["promise"]["version"] == 2 and v, 20, "version 2"
    )
    SourcingView.model_validate(view["sourcing"])  # as the OpenAPI document says
    assert [e["status"] for e in view["sourcing"]["edits"]] == ["accepted"]
    assert view["sourcing"]["version"] == 2 and view["sourcing"]["lines"] == [
        {"sku": "SKU-TENT", "quantity": 3}
    ]
    current = [s for s in view["shipments"] if s["state"] == "current"]
    assert [(s["location_id"], s["lines"]) for s in current] == [
        ("DC-NORTH", [{"sku": "SKU-TENT", "quantity": 3}])
    ]
    assert view["milestones"] and {m["location_id"] for m in view["milestones"]} == {"DC-NORTH"}

    # The same edit read again (a webshop retry): nothing changes.
    events.send("oms.orders.placed.v1", b"ORDER-E1", json.dumps(edit).encode())
    events.flush()
    assert_clean_audit(worker.bootstrap, worker.prefix)
    assert atp_at(worker, "SKU-TENT", "DC-NORTH") == 2 and atp_at(worker, "SKU-BIKE-LIGHT", "DC-NORTH") == 10
    assert order(worker, "ORDER-E1")["sourcing"]["round"] == 2
