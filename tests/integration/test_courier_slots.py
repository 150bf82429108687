"""End to end on a real broker: courier capacity holds at placement.

Placements racing for a slot's last place (both promised while it showed one free) are booked by
the one owner of the store's slots, in order: one gets the slot, the other the next free slot of
that day, or, for the day's last slot, a refusal with the reason; the answer on
``oms.orders.sourced.v1`` and ``GET /orders/{id}`` say which, and the bookings every promise reads
count exactly the capacity.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tests.integration.test_delivery_failures import assert_clean_audit
from tests.integration.test_promise_and_risk import UTRECHT_HOME, records_for, stock_up
from tests.integration.test_sourcing import outcome_of
from tests.worker_process import Events, WorkerProcess, latest_by_key, wait_until

STORE = "STORE-UTRECHT-01"  # open around the clock in the test network: slots of 2 h, 4 deliveries each


def slot_at(local_hour: int) -> datetime:
    """A slot two days from now at ``local_hour`` in Utrecht (22: the day's last)."""
    day = (datetime.now(ZoneInfo("Europe/Amsterdam")) + timedelta(days=2)).date()
    return datetime(day.year, day.month, day.day, local_hour, tzinfo=ZoneInfo("Europe/Amsterdam")).astimezone(
        UTC
    )


def courier_option(slot: datetime) -> dict[str, Any]:
    lines = [{"sku": "SKU-TENT", "quantity": 1}]
    return {
        "option_id": f"courier:{STORE}",
        "method": "courier",
        "window_start": slot.isoformat(),
        "window_end": (slot + timedelta(hours=2)).isoformat(),
        "confidence": 0.95,
        "parcels": 1,
        "co2e_g": 0.0,
        "shipments": [
            {
                "location_id": STORE,
                "lines": lines,
                "ready_at": slot.isoformat(),
                "handover_at": slot.isoformat(),
                "arrives_at": slot.isoformat(),
            }
        ],
    }


def place(events: Events, slot: datetime, *order_ids: str) -> None:
    for order_id in order_ids:
        events.order_placed(order_id, courier_option(slot), UTRECHT_HOME)
    events.flush()  # in one flush: they race


def booked(worker: WorkerProcess, slot: datetime) -> int:
    bookings = latest_by_key(worker.bootstrap, worker.prefix + "oms.promise.courier-bookings.v1")
    start = int(slot.timestamp() * 1000)
    return sum(1 for key in bookings if key.decode().startswith(f"{STORE}|{start}|"))


def test_placements_racing_for_a_slot_s_last_place_get_it_the_next_slot_or_a_clear_refusal(
    worker: WorkerProcess, events: Events
) -> None:
    stock_up(worker, events, ("SKU-TENT", STORE, 20))
    evening, last = slot_at(20), slot_at(22)

    place(events, evening, "C-1", "C-2", "C-3")
    for order_id in ("C-1", "C-2", "C-3"):
        assert outcome_of(worker, order_id)["outcome"] == "allocated"
    place(events, evening, "C-A", "C-B")  # both were promised the evening slot's last place
    answers = {order_id: outcome_of(worker, order_id) for order_id in ("C-A", "C-B")}
    assert {a["outcome"] for a in answers.values()} == {"allocated"}
    slots = sorted((a["courier_slot"]["moved"], a["courier_slot"]["slot_start"]) for a in answers.values())
    assert [moved for moved, _ in slots] == [False, True]
    assert datetime.fromisoformat(slots[0][1]) == evening and datetime.fromisoformat(slots[1][1]) == last
    [moved] = [order_id for order_id, a in answers.items() if a["courier_slot"]["moved"]]
    status, view = worker.get(f"/orders/{moved}")
    assert status == 200 and view["sourcing"]["courier_slot"]["moved"] is True, view
    assert datetime.fromisoformat(view["sourcing"]["courier_slot"]["slot_start"]) == last

    place(events, last, "C-4", "C-5")  # the last slot: one place left after these
    for order_id in ("C-4", "C-5"):
        assert outcome_of(worker, order_id)["courier_slot"]["moved"] is False
    place(events, last, "C-X", "C-Y")
    answers = {order_id: outcome_of_any_round(worker, order_id) for order_id in ("C-X", "C-Y")}
    assert sorted(a["outcome"] for a in answers.values()) == ["allocated", "rejected"]
    [refused] = [a for a in answers.values() if a["outcome"] == "rejected"]
    assert refused["reason"].startswith("courier slot full"), refused
    assert refused["allocations"] == [] and refused["courier_slot"] is None

    status, view = worker.get(f"/orders/{refused['order_id']}")
    assert status == 200 and view["lifecycle"] == "rejected", view
    assert view["sourcing"]["reason"].startswith("courier slot full"), view
    wait_until(lambda: (booked(worker, evening), booked(worker, last)) == (4, 4), 30, "4 bookings per slot")
    assert worker.metric("oms_courier_slots_total", outcome="refused") == 1
    assert worker.metric("oms_courier_slots_total", outcome="moved") == 1
    assert_clean_audit(worker.bootstrap, worker.prefix)


def outcome_of_any_round(worker: WorkerProcess, order_id: str) -> dict[str, Any]:
    """The first answer of the order, whichever round (a refused slot answers in round 0)."""
    return wait_until(  # type: ignore[no-any-return]
        lambda: records_for(worker, "oms.orders.sourced.v1", order_id), 30, f"{order_id} answered"
    )[0]
