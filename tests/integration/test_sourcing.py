"""End to end on a real broker: a placed order is reserved across SKU partitions and allocated;
short picks re-source, and the order's milestones and risk follow; click & collect rides the
replenishment route; bad input goes to the DLQ."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from oms_streams.streaming.partitioning import partition_for
from tests.integration.conftest import NETWORK_YAML
from tests.integration.test_promise_and_risk import AT_RISK, DLQ, UTRECHT_HOME, records_for, stock_up
from tests.worker_process import Events, WorkerProcess, read_topic, wait_until

SOURCED = "oms.orders.sourced.v1"
ALLOCATIONS = "oms.fulfilment.allocations.v1"
RESERVATIONS = "oms.inventory.reservations.v2"


def an_option(
    method: str, cart: dict[str, int], *, location: str = "DC-NORTH", **extra: Any
) -> dict[str, Any]:
    """A promised option as the webshop places it; sourcing reads its method, lines and window."""
    now = datetime.now(UTC)
    end = now + timedelta(days=6)
    return {
        "option_id": method if "pickup_store_id" not in extra else f"{method}:{extra['pickup_store_id']}",
        "method": method,
        "window_start": (end - timedelta(hours=12)).isoformat(),
        "window_end": end.isoformat(),
        "confidence": 0.95,
        "parcels": 1,
        "co2e_g": 100.0,
        "shipments": [
            {
                "location_id": location,
                "lines": [{"sku": sku, "quantity": q} for sku, q in cart.items()],
                "ready_at": now.isoformat(),
                "handover_at": now.isoformat(),
                "arrives_at": end.isoformat(),
            }
        ],
        **extra,
    }


def outcome_of(worker: WorkerProcess, order_id: str, round: int = 1) -> dict[str, Any]:
    """The round's outcome (a preorder's interim answer 'preordered' is not one)."""
    return wait_until(
        lambda: [
            r
            for r in records_for(worker, SOURCED, order_id)
            if r["round"] == round and r["outcome"] != "preordered"
        ],
        30,
        f"{order_id} sourced (round {round})",
    )[0]


def allocations_of(worker: WorkerProcess, order_id: str) -> list[dict[str, Any]]:
    return records_for(worker, ALLOCATIONS, order_id)


def atp_at(worker: WorkerProcess, sku: str, location: str) -> int:
    _, body = worker.get(f"/availability/{sku}?channel=webshop")
    return sum(row["quantity"] for row in (body or {}).get("locations", []) if row["location_id"] == location)


def test_an_order_is_reserved_across_skus_allocated_per_shipment_and_availability_drops_at_once(
    worker: WorkerProcess, events: Events
) -> None:
    stock_up(worker, events, ("SKU-TENT", "DC-NORTH", 5), ("SKU-BIKE-LIGHT", "DC-NORTH", 10))
    cart = {"SKU-TENT": 2, "SKU-BIKE-LIGHT": 3}
    events.order_placed("ORDER-1", an_option("standard", cart), UTRECHT_HOME)
    events.flush()

    outcome = outcome_of(worker, "ORDER-1")
    assert outcome["outcome"] == "allocated", outcome
    assert outcome["attempts"] == 1 and outcome["backorder"] == []
    [allocation] = wait_until(lambda: allocations_of(worker, "ORDER-1"), 20, "the allocation")
    assert allocation["allocation_id"] == outcome["allocations"][0] == "ORDER-1:1:0"
    assert allocation["location_id"] == "DC-NORTH" and allocation["service_id"] == "POSTNL-STANDARD"
    assert {line["sku"]: line["quantity"] for line in allocation["lines"]} == cart
    assert {m["kind"] for m in allocation["milestones"]} >= {"pick_start", "carrier_handover", "delivered"}
    trace = allocation["trace"]
    assert trace["search"] == "exact" and trace["splits"] == 1 and trace["gap"] == 0
    assert any(c["location_id"] == "DC-NORTH" and c["filtered"] is None for c in trace["candidates"])
    # Availability reflects the reservation: reserved units are no longer visible.
    wait_until(lambda: atp_at(worker, "SKU-TENT", "DC-NORTH") == 3, 20, "SKU-TENT reserved at DC-NORTH")
    wait_until(lambda: atp_at(worker, "SKU-BIKE-LIGHT", "DC-NORTH") == 7, 20, "lights reserved")
    view = wait_until(lambda: (worker.get("/orders/ORDER-1")[1] or {}).get("sourcing"), 20, "sourcing view")
    assert view["status"] == "allocated" and view["allocations"][0]["state"] == "live"

    # The parcel leaves: the units leave on hand and reserved together.
    events.fulfilment("ORDER-1", "handed_to_carrier", location_id="DC-NORTH")
    events.flush()
    wait_until(
        lambda: (
            (worker.get("/orders/ORDER-1")[1] or {})["sourcing"]["allocations"][0]["state"] == "fulfilled"
        ),
        20,
        "allocation fulfilled",
    )
    wait_until(lambda: worker.get("/availability/SKU-TENT")[1]["network_atp"] == 3, 20, "3 tents left")


def test_a_short_pick_cancels_the_allocation_and_sources_the_lines_elsewhere(
    worker: WorkerProcess, events: Events
) -> None:
    stock_up(worker, events, ("SKU-STOVE", "DC-NORTH", 1), ("SKU-STOVE", "DC-SOUTH", 1))
    events.order_placed("ORDER-2", an_option("standard", {"SKU-STOVE": 1}), UTRECHT_HOME)
    events.flush()
    first = outcome_of(worker, "ORDER-2")
    [allocation] = wait_until(lambda: allocations_of(worker, "ORDER-2"), 20, "first allocation")
    picked_at = allocation["location_id"]
    other = "DC-SOUTH" if picked_at == "DC-NORTH" else "DC-NORTH"
    assert first["outcome"] == "allocated"

    events.fulfilment("ORDER-2", "short_pick", location_id=picked_at, reason="not on the shelf")
    events.flush()

    second = outcome_of(worker, "ORDER-2", round=2)
    assert second["outcome"] == "allocated", second
    records = allocations_of(worker, "ORDER-2")
    cancel = [r for r in records if r["kind"] == "cancel"]
    assert [c["allocation_id"] for c in cancel] == [allocation["allocation_id"]]
    assert "short_pick" in cancel[0]["reason"]
    new = [r for r in records if r["kind"] == "allocate" and r["round"] == 2]
    assert [r["location_id"] for r in new] == [other]
    # The short-picked store's hold is released; the new one is held.
    wait_until(lambda: atp_at(worker, "SKU-STOVE", picked_at) == 1, 20, "hold released")
    wait_until(lambda: atp_at(worker, "SKU-STOVE", other) == 0, 20, "held at the other DC")


def a_network_with_a_truck_every_minute_from_dc_south(tmp_path: Path) -> Path:
    """The test network plus ROUTE-SOUTH-UTRECHT, leaving DC-SOUTH for STORE-UTRECHT-01 every
    minute: a transfer allocated there must start picking within a minute (its latest pick start is
    the departure less the DC's pick and pack), so the test sees that milestone pass."""
    network = yaml.safe_load(NETWORK_YAML.read_text())
    every_minute = [f"{h:02d}:{m:02d}" for h in range(24) for m in range(60)]
    network["routes"].append(
        {
            "route_id": "ROUTE-SOUTH-UTRECHT",
            "origin_id": "DC-SOUTH",
            "departures": {"daily": every_minute},
            "stops": [{"location_id": "STORE-UTRECHT-01", "travel_minutes": 60}],
        }
    )
    path = tmp_path / "network-south-route.yaml"
    path.write_text(yaml.safe_dump(network))
    return path


def test_after_a_short_pick_the_milestones_and_the_risk_follow_the_re_sourced_shipment(
    worker: WorkerProcess, events: Events, tmp_path: Path
) -> None:
    events.config(a_network_with_a_truck_every_minute_from_dc_south(tmp_path))
    stock_up(worker, events, ("SKU-LANTERN", "DC-NORTH", 1))
    pickup = {"pickup_store_id": "STORE-UTRECHT-01"}
    option = an_option("click_and_collect", {"SKU-LANTERN": 1}, **pickup)
    # Promised on DC-NORTH's truck of tomorrow: its milestones are a day away.
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    option["shipments"][0] |= {
        "route_id": "ROUTE-NORTH-UTRECHT",
        "ready_at": (tomorrow - timedelta(minutes=75)).isoformat(),
        "handover_at": tomorrow.isoformat(),
        "arrives_at": (tomorrow + timedelta(minutes=75)).isoformat(),
    }
    events.order_placed("ORDER-MOVE", option, pickup)
    events.flush()
    assert outcome_of(worker, "ORDER-MOVE")["outcome"] == "allocated"
    [first] = wait_until(lambda: allocations_of(worker, "ORDER-MOVE"), 20, "the first allocation")
    assert (first["location_id"], first["route_id"]) == ("DC-NORTH", "ROUTE-NORTH-UTRECHT")
    order = wait_until(lambda: order_with_shipments(worker, "ORDER-MOVE"), 20, "the allocation tracked")
    assert {m["location_id"] for m in order["milestones"]} == {"DC-NORTH", "STORE-UTRECHT-01"}

    # DC-SOUTH gets the lantern; the worker knows its truck (a promise rides it).
    stock_up(worker, events, ("SKU-LANTERN", "DC-SOUTH", 1))
    wait_until(
        lambda: promised_route(worker, "SKU-LANTERN", pickup) == "ROUTE-SOUTH-UTRECHT", 30, "DC-SOUTH's truck"
    )

    events.fulfilment("ORDER-MOVE", "short_pick", location_id="DC-NORTH", reason="not on the shelf")
    events.flush()
    second = outcome_of(worker, "ORDER-MOVE", round=2)
    assert second["outcome"] == "allocated", second
    [moved] = [r for r in allocations_of(worker, "ORDER-MOVE") if r["kind"] == "allocate" and r["round"] == 2]
    assert (moved["location_id"], moved["route_id"]) == ("DC-SOUTH", "ROUTE-SOUTH-UTRECHT")
    pick_due = datetime.fromisoformat(
        next(m["due"] for m in moved["milestones"] if m["kind"] == "pick_start")
    )

    # The order's milestones name DC-SOUTH now; DC-NORTH's shipment is withdrawn, with why.
    order = wait_until(lambda: order_with_moves(worker, "ORDER-MOVE"), 20, "the move tracked")
    assert {(m["kind"], m["location_id"]) for m in order["milestones"]} == {
        ("pick_start", "DC-SOUTH"),
        ("route_departure", "DC-SOUTH"),
        ("ready_for_pickup", "STORE-UTRECHT-01"),
    }
    states = {(s["location_id"], s["state"], s["round"]) for s in order["shipments"]}
    assert states == {("DC-NORTH", "withdrawn", 0), ("DC-SOUTH", "current", 2)}
    [move] = order["moves"]
    assert (
        move["round"] == 2 and move["to"][0]["location_id"] == "DC-SOUTH" and "short_pick" in move["reason"]
    )

    # DC-SOUTH does not start picking in time: at risk there.
    wait_s = max(0.0, (pick_due - datetime.now(UTC)).total_seconds()) + 30
    late = wait_until(
        lambda: [r for r in records_for(worker, AT_RISK, "ORDER-MOVE") if r.get("location_id") == "DC-SOUTH"],
        wait_s,
        "ORDER-MOVE at risk at DC-SOUTH",
    )[0]
    assert (late["status"], late["reason"], late["suggested_action"]) == (
        "at_risk",
        "pick_not_started",
        "expedite",
    )
    assert late["milestone"] == "pick_start" and late["promise_version"] == 1
    events.fulfilment("ORDER-MOVE", "pick_started", location_id="DC-SOUTH")
    events.flush()
    wait_until(
        lambda: records_for(worker, AT_RISK, "ORDER-MOVE")[-1]["status"] == "cleared",
        20,
        "cleared by the pick",
    )

    # Nothing was raised for DC-NORTH but the short pick itself, and that was cleared by the move.
    states_seen = records_for(worker, AT_RISK, "ORDER-MOVE")
    north = [r for r in states_seen if r.get("location_id") == "DC-NORTH"]
    assert all(r["reason"] == "short_pick" for r in north), states_seen
    if north:
        after = states_seen[states_seen.index(north[-1]) + 1]
        assert (after["status"], after["reason"]) == ("cleared", "resourced"), states_seen


def order_with_shipments(worker: WorkerProcess, order_id: str) -> dict[str, Any] | None:
    order = worker.get(f"/orders/{order_id}")[1] or {}
    return order if order.get("shipments") and order["sourcing"]["round"] >= 1 else None


def order_with_moves(worker: WorkerProcess, order_id: str) -> dict[str, Any] | None:
    order = worker.get(f"/orders/{order_id}")[1] or {}
    return order if order.get("moves") else None


def promised_route(worker: WorkerProcess, sku: str, pickup: dict[str, str]) -> str | None:
    body = {"cart": [{"sku": sku, "quantity": 1}], "destination": pickup}
    _, answer = worker.post("/promise", json.dumps(body).encode())
    for option in (answer or {}).get("options", []):
        for shipment in option["shipments"]:
            if shipment.get("route_id"):
                return str(shipment["route_id"])
    return None


def test_click_and_collect_takes_the_store_shelf_first_and_rides_the_route_for_the_rest(
    worker: WorkerProcess, events: Events
) -> None:
    stock_up(
        worker,
        events,
        ("SKU-HELMET", "STORE-UTRECHT-01", 4),
        ("SKU-HELMET", "DC-NORTH", 10),
        ("SKU-PUMP", "DC-NORTH", 10),
        ("SKU-PUMP", "DC-SOUTH", 10),
    )
    pickup = {"pickup_store_id": "STORE-UTRECHT-01"}
    option = an_option(
        "click_and_collect", {"SKU-HELMET": 1, "SKU-PUMP": 1}, location="STORE-UTRECHT-01", **pickup
    )
    events.order_placed("ORDER-3", option, pickup)
    events.flush()

    outcome = outcome_of(worker, "ORDER-3")
    assert outcome["outcome"] == "allocated", outcome
    by_location = {a["location_id"]: a for a in allocations_of(worker, "ORDER-3")}
    assert set(by_location) == {"STORE-UTRECHT-01", "DC-NORTH"}, by_location
    assert by_location["STORE-UTRECHT-01"]["lines"] == [{"sku": "SKU-HELMET", "quantity": 1}]
    transfer = by_location["DC-NORTH"]
    assert transfer["route_id"] == "ROUTE-NORTH-UTRECHT" and transfer["lines"] == [
        {"sku": "SKU-PUMP", "quantity": 1}
    ]
    assert transfer["trace"]["search"] == "click_and_collect"


def test_duplicates_change_nothing_and_bad_commands_go_to_the_dead_letter_topic(
    worker: WorkerProcess, events: Events
) -> None:
    stock_up(worker, events, ("SKU-LANTERN", "DC-NORTH", 3))
    placed = events.order_placed("ORDER-4", an_option("standard", {"SKU-LANTERN": 2}), UTRECHT_HOME)
    events.order_placed(
        "ORDER-4", an_option("standard", {"SKU-LANTERN": 2}), UTRECHT_HOME, event_id=placed["event_id"]
    )
    events.order_placed("ORDER-4", an_option("standard", {"SKU-LANTERN": 2}), UTRECHT_HOME)  # an edit
    events.send(RESERVATIONS, b"SKU-LANTERN", b'{"kind": "reserve", "oops": true}')
    events.send(
        RESERVATIONS,
        b"SKU-OTHER",
        json.dumps(
            {
                "event_id": "bad-key",
                "occurred_at": datetime.now(UTC).isoformat(),
                "source": "test",
                "schema_version": 2,
                "commands": [
                    {
                        "event_id": "bad-key-1",
                        "occurred_at": datetime.now(UTC).isoformat(),
                        "source": "test",
                        "kind": "reserve",
                        "reservation_id": "X/1",
                        "order_id": "X",
                        "sku": "SKU-LANTERN",
                        "lines": [{"location_id": "DC-NORTH", "quantity": 1}],
                    }
                ],
            }
        ).encode(),
    )
    # A batch may only hold SKUs of its own partition: one from elsewhere would be applied by a
    # worker that does not own that SKU's ledger.
    home = partition_for(b"SKU-LANTERN", 3)
    elsewhere = next(f"SKU-{n}" for n in range(100) if partition_for(f"SKU-{n}".encode(), 3) != home)
    events.send(
        RESERVATIONS,
        b"SKU-LANTERN",
        json.dumps(
            {
                "event_id": "stray",
                "occurred_at": datetime.now(UTC).isoformat(),
                "source": "test",
                "schema_version": 2,
                "commands": [
                    {
                        "event_id": f"stray-{sku}",
                        "occurred_at": datetime.now(UTC).isoformat(),
                        "source": "test",
                        "kind": "release",
                        "reservation_id": "X/1",
                        "order_id": "X",
                        "sku": sku,
                    }
                    for sku in ("SKU-LANTERN", elsewhere)
                ],
            }
        ).encode(),
    )
    events.flush()

    outcome_of(worker, "ORDER-4")

    def reservation_letters() -> list[dict[str, Any]]:
        return [
            json.loads(value)
            for key, value in read_topic(worker.bootstrap, worker.prefix + DLQ)
            if key is not None and b"reservations" in key and value is not None
        ]

    letters = wait_until(
        lambda: len(reservation_letters()) >= 3 and reservation_letters(), 20, "dead letters"
    )
    reasons = " | ".join(letter["reason"] for letter in letters)
    assert "schema violation" in reasons and "is not the SKU" in reasons, reasons
    assert f"item key {elsewhere!r} belongs in partition" in reasons, reasons
    # The re-promise (a new event id, the same lines) is an edit that changes no line: accepted in a
    # round of its own that allocates nothing new (docs/edits.md).
    outcomes = wait_until(
        lambda: len(records_for(worker, SOURCED, "ORDER-4")) == 2 and records_for(worker, SOURCED, "ORDER-4"),
        20,
        "the edit's answer",
    )
    assert [(o["round"], o["allocations"], (o.get("edit") or {}).get("status")) for o in outcomes] == [
        (1, ["ORDER-4:1:0"], None),
        (2, [], "accepted"),
    ]
    assert len(allocations_of(worker, "ORDER-4")) == 1
    wait_until(lambda: atp_at(worker, "SKU-LANTERN", "DC-NORTH") == 1, 20, "two lanterns reserved once")


def test_a_store_protects_its_walk_in_demand_from_online_channels(
    worker: WorkerProcess, events: Events
) -> None:
    stock_up(worker, events, ("SKU-PROTECT", "STORE-UTRECHT-01", 60))
    now = datetime.now(UTC)
    for days_ago in range(10, 0, -1):  # ten days of till sales, 3 a day
        events.movement(
            "SKU-PROTECT", "STORE-UTRECHT-01", "sale", 3, at=now - timedelta(days=days_ago), source="pos"
        )
    events.flush()

    def protected() -> int:
        _, body = worker.get("/availability/SKU-PROTECT")
        return int((body or {}).get("protected", {}).get("STORE-UTRECHT-01", 0))

    kept = wait_until(protected, 20, "the store to protect some units")
    # 30 units sold; what the store keeps for walk-ins (and its safety stock) is not offered online.
    _, record = worker.get("/availability/SKU-PROTECT")
    assert record["network_atp"] == 30 - kept
    assert atp_at(worker, "SKU-PROTECT", "STORE-UTRECHT-01") <= 30 - kept - 1
    assert worker.metric("oms_units_hidden", channel="webshop", rule="protection") >= kept
