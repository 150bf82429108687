"""A hold the ledger shed (the stock under it went), on the order owner's side: the allocation is
cancelled with the ledger's reason and its lines are sourced again elsewhere, like after a short
pick; the new round's outcome says why; a repeated shed changes nothing."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from oms_streams.domain.transit import TransitModel
from oms_streams.streaming.sourcing_runtime import SourcingRuntime
from tests.streaming.test_orders_runtime import FakeEvent
from tests.streaming.test_sourcing_runtime import TOPICS, Harness

WHY = "stock gone: count at DC-NORTH left 3 on hand for 7 reserved"


def shed(order_id: str, rid: str, location: str, units: int, sku: str = "SKU-TENT") -> FakeEvent:
    reply = {
        "event_id": f"{rid}:{sku}:shed:{location}",
        "occurred_at": datetime.now(UTC).isoformat(),
        "source": "ledger",
        "kind": "shed",
        "reservation_id": rid,
        "order_id": order_id,
        "sku": sku,
        "status": "released",
        "lines": [{"location_id": location, "quantity": units, "available_after": 0}],
        "reason": WHY,
    }
    body = {"event_id": "s", "occurred_at": reply["occurred_at"], "source": "ledger", "schema_version": 2}
    return FakeEvent("replies", order_id.encode(), json.dumps({**body, "replies": [reply]}).encode())


def allocated(h: Harness, order_id: str) -> dict[str, Any]:
    [allocation] = [a for a in h.on("allocations") if a["order_id"] == order_id and a["kind"] == "allocate"]
    return allocation


def test_a_shed_hold_cancels_its_allocation_and_sources_the_lines_elsewhere_with_the_reason():
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=7)
    h.place("ORDER-1", {"SKU-TENT": 3})
    h.run(*(h.answer(c, "reserved", 4) for c in h.commands("reserve")))
    h.take_sent()
    h.place("ORDER-2", {"SKU-TENT": 4})
    h.run(*(h.answer(c, "reserved", 0) for c in h.commands("reserve")))
    first = allocated(h, "ORDER-2")
    assert first["location_id"] == "DC-NORTH"
    h.take_sent()
    h.stock("SKU-TENT", DC_NORTH=0, DC_SOUTH=5)  # the count took DC-NORTH's units; DC-SOUTH has some

    h.run(shed("ORDER-2", "ORDER-2/1", "DC-NORTH", 4))

    [cancel] = [a for a in h.on("allocations") if a["kind"] == "cancel"]
    assert cancel["allocation_id"] == first["allocation_id"]
    assert cancel["reason"] == f"shed at DC-NORTH: {WHY}"
    [again] = h.commands("reserve")
    assert again["reservation_id"] == "ORDER-2/2"
    assert [line["location_id"] for line in again["lines"]] == ["DC-SOUTH"]
    assert [c["reservation_id"] for c in h.commands("release")] == ["ORDER-2/1"]  # answered as a repeat
    h.take_sent()

    h.run(h.answer(again, "reserved", 1))

    [outcome] = h.on("sourced")
    assert (outcome["round"], outcome["outcome"]) == (2, "allocated")
    assert outcome["reason"].startswith(f"shed at DC-NORTH: {WHY}")
    assert allocated(h, "ORDER-2")["location_id"] == "DC-SOUTH"
    row = h.saga.lookup("ORDER-2")
    assert row is not None and row.reason().startswith("shed at DC-NORTH")
    h.take_sent()

    h.run(shed("ORDER-2", "ORDER-2/1", "DC-NORTH", 4))  # read again: its allocation is over
    # Nothing new: the same cancel and round again, with the same ids (the first reading's outputs
    # may have died with its worker after the row was stored).
    assert h.commands() == []
    assert [(a["kind"], a["event_id"]) for a in h.on("allocations")] == [
        ("cancel", cancel["event_id"]),
        ("allocate", allocated(h, "ORDER-2")["event_id"]),
    ]
    assert [a["reason"] for a in h.on("allocations") if a["kind"] == "cancel"] == [cancel["reason"]]
    assert [o["event_id"] for o in h.on("sourced")] == [outcome["event_id"]]
    assert h.saga.lookup("ORDER-1").allocations[0].state == "live"  # type: ignore[union-attr]


def test_a_shed_while_a_re_sourcing_is_under_way_waits_for_it_and_excludes_only_its_sku():
    h = Harness()
    # No DC holds both lines: the tents come from DC-NORTH, the stove from DC-SOUTH.
    h.stock("SKU-TENT", DC_NORTH=2, DC_SOUTH=1)
    h.stock("SKU-STOVE", DC_SOUTH=1)
    h.place("ORDER-1", {"SKU-TENT": 2, "SKU-STOVE": 1})
    h.run(*(h.answer(c, "reserved", 5) for c in h.commands("reserve")))
    at = {a["location_id"]: a for a in h.on("allocations")}
    h.take_sent()
    h.run(h.fulfilment("ORDER-1", "short_pick", "DC-NORTH", "sp", "wms"))
    round_two = h.commands("reserve")
    h.take_sent()

    h.run(shed("ORDER-1", "ORDER-1/1", "DC-SOUTH", 1, sku="SKU-STOVE"))  # parked: round 2 reserving
    assert h.sent == []
    h.run(*(h.answer(c, "reserved", 5) for c in round_two))

    cancelled = [a for a in h.on("allocations") if a["kind"] == "cancel"]
    assert [(a["allocation_id"], a["reason"]) for a in cancelled] == [
        (at["DC-SOUTH"]["allocation_id"], f"shed at DC-SOUTH: {WHY}")
    ]
    assert [o["round"] for o in h.on("sourced")] == [2, 3]
    row = h.saga.lookup("ORDER-1")
    assert row is not None and ["DC-SOUTH", "SKU-STOVE"] in row.excluded
    assert ["DC-SOUTH", "SKU-TENT"] not in row.excluded  # the tents there are still on the shelf


def test_a_round_ended_and_the_next_begun_in_one_lost_batch_has_its_outcome_published_again():
    # The reserve's answer and the shed of its hold came in one batch: round 1 allocated, then
    # withdrawn, round 2 reserving. The batch stored the row and died before anything left: the
    # row no longer shows round 1's outcome, but keeps it for whoever takes the order over.
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=4)
    h.place("ORDER-1", {"SKU-TENT": 4})
    [command] = h.commands("reserve")
    h.take_sent()
    h.stock("SKU-TENT", DC_NORTH=0, DC_SOUTH=5)
    batch = [h.answer(command, "reserved", 0), shed("ORDER-1", "ORDER-1/1", "DC-NORTH", 4)]
    h.run(*batch)
    assert [(o["round"], o["outcome"]) for o in h.on("sourced")] == [(1, "allocated")]
    assert h.saga.lookup("ORDER-1").status == "reserving"  # type: ignore[union-attr]
    h.take_sent()  # lost with the process
    restarted = SourcingRuntime(
        h.sourcing_table, h.network, h.view, TransitModel(), TOPICS, h._produce, h.metrics
    )

    asyncio.run(restarted.apply_batch(batch))

    assert [(o["event_id"], o["outcome"]) for o in h.on("sourced")] == [("ORDER-1:sourced:1", "allocated")]
    h.take_sent()
    asyncio.run(restarted.apply_batch(batch))
    assert h.on("sourced") == []  # once per order and worker
