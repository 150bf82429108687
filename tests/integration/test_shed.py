"""End to end on a real broker: stock that disappears under a hold. Two orders reserve at DC-NORTH,
a count leaves fewer units than they hold: the ledger sheds the newest order's hold in the count's
batch, that order is re-sourced at DC-SOUTH (a cancel, a new allocation, the reason on its outcome
and in ``GET /orders/{id}``), the oldest keeps its allocation, and ``oms audit`` is clean."""

from __future__ import annotations

from tests.integration.test_delivery_failures import assert_clean_audit
from tests.integration.test_promise_and_risk import UTRECHT_HOME, stock_up
from tests.integration.test_sourcing import allocations_of, an_option, atp_at, outcome_of
from tests.worker_process import Events, WorkerProcess, wait_until

WHY = "stock gone: count at DC-NORTH left 4 on hand for 6 reserved"


def test_a_count_below_the_held_units_re_sources_the_newest_order_and_the_audit_is_clean(
    worker: WorkerProcess, events: Events
) -> None:
    stock_up(worker, events, ("SKU-KAYAK", "DC-NORTH", 6))
    for order_id in ("ORDER-S1", "ORDER-S2"):  # one after the other: ORDER-S2's hold is the newest
        events.order_placed(order_id, an_option("standard", {"SKU-KAYAK": 3}), UTRECHT_HOME)
        events.flush()
        assert outcome_of(worker, order_id)["outcome"] == "allocated"
        [first] = wait_until(lambda order_id=order_id: allocations_of(worker, order_id), 20, "allocated")
        assert first["location_id"] == "DC-NORTH"
    stock_up(worker, events, ("SKU-KAYAK", "DC-SOUTH", 5))

    events.count("SKU-KAYAK", {"DC-NORTH": 4})
    events.flush()

    second = outcome_of(worker, "ORDER-S2", round=2)
    assert second["outcome"] == "allocated" and WHY in second["reason"], second
    records = allocations_of(worker, "ORDER-S2")
    [cancel] = [r for r in records if r["kind"] == "cancel"]
    assert cancel["allocation_id"] == "ORDER-S2:1:0" and cancel["reason"] == f"shed at DC-NORTH: {WHY}"
    assert [r["location_id"] for r in records if r["kind"] == "allocate" and r["round"] == 2] == ["DC-SOUTH"]
    assert [r["kind"] for r in allocations_of(worker, "ORDER-S1")] == ["allocate"]  # the oldest keeps it
    view = wait_until(lambda: (worker.get("/orders/ORDER-S2")[1] or {}).get("sourcing"), 20, "sourcing view")
    assert view["round"] == 2 and WHY in view["reason"]
    wait_until(lambda: atp_at(worker, "SKU-KAYAK", "DC-NORTH") == 1, 20, "4 on hand, 3 held at DC-NORTH")
    wait_until(lambda: atp_at(worker, "SKU-KAYAK", "DC-SOUTH") == 2, 20, "3 held at DC-SOUTH")
    assert_clean_audit(worker.bootstrap, worker.prefix)
