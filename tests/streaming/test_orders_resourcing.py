"""``track_orders`` follows sourcing's allocations, without a broker: the records are the ones
``source_orders`` publishes (its own ``RoundPublisher``, milestones derived from the network), the
table a dict, the clock set by the test.

After a short pick at DC-NORTH re-sourced to DC-SOUTH the order's milestones name DC-SOUTH, the short
pick's risk is cleared with the reason, a late pick at DC-SOUTH is at risk there and nothing more is
raised for DC-NORTH; repeats and restarts change nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

import oms_streams.streaming.orders_runtime as orders_runtime
from oms_streams.adapters.allocated import moves_view, shipments_view
from oms_streams.adapters.sourcing import AllocationState, SourcingRow
from oms_streams.adapters.timestamps import epoch_ms, utc_from_epoch_ms
from oms_streams.api.models import MoveView, ShipmentView
from oms_streams.streaming.orders_runtime import OrdersRuntime, OrderTopics
from oms_streams.streaming.sourcing_outcomes import RoundPublisher
from tests.streaming.test_orders_runtime import T0, UTRECHT_HOME, FakeEvent, Harness, standard

TOPICS = OrderTopics(
    "placed",
    "fulfilment",
    "at-risk",
    "observations",
    "bookings",
    "dlq",
    allocations="allocations",
    sourced="sourced",
)
HANDOVER, ARRIVAL = T0 + timedelta(hours=8), T0 + timedelta(days=1, hours=3)
"""The promise: handed over at 18:00 Amsterdam time, delivered the next day by 20:00 UTC."""


class Collected:
    """What ``RoundPublisher`` hands its outbox."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes | None]] = []

    def add(self, topic: str, key: bytes, value: bytes | None) -> None:
        self.records.append((topic, key, value))


class Sourcing:
    """The order's sourcing saga as far as it publishes: rounds of allocations, withdrawals."""

    def __init__(self, harness: Harness, order_id: str, option: dict[str, Any]) -> None:
        self.harness = harness
        self.outbox = Collected()
        self.publisher = RoundPublisher(
            self.outbox,  # type: ignore[arg-type]
            "allocations",
            "sourced",
            harness.network,
            harness.metrics,
        )
        self.row = SourcingRow(
            order_id=order_id,
            placement="ev-place",
            partition=2,
            method=option["method"],
            lines=[["SKU-TENT", 1]],
            destination=dict(UTRECHT_HOME),
            window_start_ms=epoch_ms(datetime.fromisoformat(option["window_start"])),
            promised_by_ms=epoch_ms(datetime.fromisoformat(option["window_end"])),
            channel="webshop",
        )

    def round(self, location: str, *, outcome: str = "allocated", late: bool = False) -> list[FakeEvent]:
        """A round that allocates the tent at ``location`` (none: rejected), as source_orders publishes it."""
        row = self.row
        now = epoch_ms(self.harness.now)
        shipments = []
        if outcome != "rejected":
            ready = now + 75 * 60_000
            handover = epoch_ms(HANDOVER) if not late else epoch_ms(HANDOVER + timedelta(days=2))
            shipments = [
                {
                    "location_id": location,
                    "lines": [["SKU-TENT", 1]],
                    "service_id": "POSTNL-STANDARD",
                    "route_id": None,
                    "ready_at_ms": ready,
                    "handover_at_ms": handover,
                    "arrives_at_ms": handover + 20 * 3_600_000,
                    "distance_km": 80.0,
                    "co2e_g": 900.0,
                    "late": late,
                }
            ]
        row.plan = {
            "outcome": outcome,
            "reason": f"round {row.round}",
            "shipments": shipments,
            "trace": None,
            "backorder": [],
        }
        row.status = outcome
        row.backorder = [] if shipments else [["SKU-TENT", 1]]
        allocations = [
            AllocationState(
                f"{row.order_id}:{row.round}:0",
                f"{row.order_id}/{row.round}",
                row.round,
                0,
                location,
                [["SKU-TENT", 1]],
            )
            for _ in shipments
        ]
        row.allocations += allocations
        self.publisher.publish(row, allocations, None, now)
        return self.take()

    def short_pick(self, reason: str = "not on the shelf") -> list[FakeEvent]:
        """Withdraws the live allocation (its ``cancel``) and starts the next round."""
        from oms_streams.adapters.sourcing import allocation_record

        row = self.row
        [live] = [a for a in row.allocations if a.state == "live"]
        live.state = "cancelled"
        why = f"short_pick at {live.location_id}: {reason}"
        record = allocation_record(
            row, live, None, [], None, epoch_ms(self.harness.now), kind="cancel", reason=why
        )
        self.outbox.add("allocations", row.order_id.encode(), record)
        row.round += 1
        row.resourced = [row.round, why]
        return self.take()

    def take(self) -> list[FakeEvent]:
        events = [FakeEvent(topic, key, value, partition=2) for topic, key, value in self.outbox.records]
        self.outbox.records.clear()
        return events


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    h = Harness()
    h.runtime = OrdersRuntime(h.table, h.network, TOPICS, h._produce, h.metrics)
    monkeypatch.setattr(orders_runtime, "now_ms", lambda: epoch_ms(h.now))
    yield h


def placed(harness: Harness, order_id: str = "O-1") -> Sourcing:
    option = standard(HANDOVER, ARRIVAL)
    harness.apply(harness.placement(order_id, option, event_id="ev-place"))
    return Sourcing(harness, order_id, option)


def at_risk(harness: Harness) -> list[dict[str, Any]]:
    return harness.on("at-risk")


def milestones(harness: Harness, order_id: str = "O-1") -> list[tuple[str, str, int]]:
    found = harness.runtime.lookup(order_id)
    assert found is not None and found[1] is not None
    return [(m.kind.value, m.location_id, m.shipment) for m in found[1].record.milestones]


def pick_due(events: list[FakeEvent]) -> datetime:
    [allocation] = [json.loads(e.message.value) for e in events if e.message.topic == "allocations"]
    due = next(m["due"] for m in allocation["milestones"] if m["kind"] == "pick_start")
    return datetime.fromisoformat(due)


def short_picked_north_and_moved_south(harness: Harness) -> tuple[Sourcing, list[FakeEvent]]:
    sourcing = placed(harness)
    harness.apply(*sourcing.round("DC-NORTH"))
    harness.now += timedelta(minutes=20)
    harness.apply(harness.fulfilment("O-1", "short_pick", location_id="DC-NORTH", reason="not on the shelf"))
    withdrawal = sourcing.short_pick()
    harness.apply(*withdrawal)
    harness.now += timedelta(seconds=5)
    second = sourcing.round("DC-SOUTH")
    harness.apply(*second)
    return sourcing, [*withdrawal, *second]


def test_a_re_sourced_order_is_watched_where_it_ships_from_now(harness: Harness) -> None:
    sourcing = placed(harness)
    harness.apply(*sourcing.round("DC-NORTH"))
    assert {loc for _, loc, _ in milestones(harness)} == {"DC-NORTH"}
    assert at_risk(harness) == []

    harness.now += timedelta(minutes=20)
    harness.apply(harness.fulfilment("O-1", "short_pick", location_id="DC-NORTH", reason="not on the shelf"))
    [short] = at_risk(harness)
    assert (short["status"], short["reason"], short["location_id"]) == ("at_risk", "short_pick", "DC-NORTH")

    harness.apply(*sourcing.short_pick())  # the cancel alone: round 2 is still being sourced
    assert len(at_risk(harness)) == 1 and {loc for _, loc, _ in milestones(harness)} == {"DC-NORTH"}

    harness.now += timedelta(seconds=5)
    second = sourcing.round("DC-SOUTH")
    harness.apply(*second)
    cleared = at_risk(harness)[-1]
    assert (cleared["status"], cleared["reason"]) == ("cleared", "resourced")
    assert milestones(harness) == [
        ("pick_start", "DC-SOUTH", 1),
        ("carrier_handover", "DC-SOUTH", 1),
        ("delivered", "DC-SOUTH", 1),
    ]
    assert harness.metrics.order_events.labels("allocation", "applied")._value.get() == 3
    assert harness.metrics.order_events.labels("sourced", "applied")._value.get() == 2

    # A late pick at DC-SOUTH: at risk there, once; DC-NORTH raises nothing more.
    harness.now = pick_due(second) + timedelta(minutes=1)
    assert harness.check() == 1
    late = at_risk(harness)[-1]
    assert (late["status"], late["reason"], late["location_id"], late["shipment"]) == (
        "at_risk",
        "pick_not_started",
        "DC-SOUTH",
        1,
    )
    assert [r["location_id"] for r in at_risk(harness) if r["status"] == "at_risk"] == [
        "DC-NORTH",
        "DC-SOUTH",
    ]
    # The WMS at DC-NORTH reports a pick after the cancel: ignored for the milestones.
    harness.apply(harness.fulfilment("O-1", "pick_started", location_id="DC-NORTH"))
    assert at_risk(harness)[-1] == late
    harness.apply(harness.fulfilment("O-1", "pick_started", location_id="DC-SOUTH"))
    assert at_risk(harness)[-1]["status"] == "cleared"


def test_the_order_view_shows_the_shipments_as_allocated_and_why_they_moved(harness: Harness) -> None:
    short_picked_north_and_moved_south(harness)
    found = harness.runtime.lookup("O-1")
    assert found is not None and found[1] is not None
    row, tracking = found
    assert row.plan is not None
    north, south = shipments_view(row.plan, tracking.closed)
    assert (north["location_id"], north["state"], north["round"], north["lines"]) == (
        "DC-NORTH",
        "withdrawn",
        0,
        [],
    )
    assert (south["location_id"], south["state"], south["round"]) == ("DC-SOUTH", "current", 2)
    assert south["lines"] == [{"sku": "SKU-TENT", "quantity": 1}]
    [move] = moves_view(row.plan)
    assert move["round"] == 2 and move["from_location_id"] == "DC-NORTH"
    assert move["to"] == [{"shipment": 1, "location_id": "DC-SOUTH"}]
    assert move["reason"] == "short_pick at DC-NORTH: not on the shelf" and move["withdrawn"]
    # As GET /orders/{id} documents them (OpenAPI).
    assert [ShipmentView.model_validate(s).state for s in (north, south)] == ["withdrawn", "current"]
    assert MoveView.model_validate(move).to[0]["location_id"] == "DC-SOUTH"
    # The promise to the customer is the one placed.
    promise = row.promise_record()
    assert promise is not None and promise.option.shipments[0].location_id == "DC-NORTH"


def test_repeats_and_a_restart_change_nothing(harness: Harness) -> None:
    _, records = short_picked_north_and_moved_south(harness)
    published = list(harness.sent)
    row_before = harness.table["O-1"]

    harness.apply(*records)  # redelivered (a round published again after a crash has the same ids)
    assert harness.table["O-1"] == row_before
    assert harness.metrics.order_events.labels("sourced", "duplicate")._value.get() == 1
    # Only the clearance goes out again, with its id (it may not have left before a crash).
    ids = [json.loads(v)["event_id"] for _, _, v in harness.sent if v]
    assert set(ids[len(published) :]) == {at_risk(harness)[-1]["event_id"]} <= set(ids[: len(published)])
    published = list(harness.sent)

    successor = OrdersRuntime(harness.table, harness.network, TOPICS, harness._produce, harness.metrics)
    assert asyncio.run(successor.reload()) == 1
    assert asyncio.run(successor.check_due()) == 0 and harness.sent == published
    found = successor.lookup("O-1")
    assert found is not None and found[1] is not None
    assert {m.location_id for m in found[1].record.milestones} == {"DC-SOUTH"}


def test_a_clearance_lost_in_a_crash_is_published_again_with_its_id(harness: Harness) -> None:
    """The row was stored, the batch's outputs never left: the round read again republishes them."""
    _, records = short_picked_north_and_moved_south(harness)
    cleared = at_risk(harness)[-1]
    harness.sent.clear()
    harness.apply(*records)
    assert [(r["event_id"], r["status"], r["reason"]) for r in at_risk(harness)] == [
        (cleared["event_id"], "cleared", "resourced")
    ]


def test_the_outcome_may_come_before_its_allocations(harness: Harness) -> None:
    sourcing = placed(harness)
    first = sourcing.round("DC-NORTH")
    outcome = [e for e in first if e.message.topic == "sourced"]
    harness.apply(*outcome)
    assert {loc for _, loc, _ in milestones(harness)} == {"DC-NORTH"}  # the promise's, still
    harness.apply(*sourcing.short_pick())
    second = sourcing.round("DC-SOUTH")
    harness.apply(*[e for e in second if e.message.topic == "sourced"])
    assert {loc for _, loc, _ in milestones(harness)} == {"DC-NORTH"}  # round 1's allocation unseen
    harness.apply(*[e for e in [*first, *second] if e.message.topic == "allocations"])
    assert {loc for _, loc, _ in milestones(harness)} == {"DC-SOUTH"}


def test_a_rejected_order_clears_its_risk_and_is_no_longer_watched(harness: Harness) -> None:
    sourcing = placed(harness)
    harness.now = HANDOVER + timedelta(hours=1)  # the handover passed: at risk
    assert harness.check() == 1 and at_risk(harness)[-1]["status"] == "at_risk"
    harness.apply(*sourcing.round("DC-NORTH", outcome="rejected"))
    cleared = at_risk(harness)[-1]
    assert (cleared["status"], cleared["reason"]) == ("cleared", "rejected")
    harness.runtime.export_gauges()
    assert harness.metrics.open_orders._value.get() == 0  # nothing to watch (retention asks sourcing)


def test_a_new_location_that_cannot_make_the_promise_puts_the_order_at_risk_at_once(harness: Harness) -> None:
    sourcing = placed(harness)
    harness.apply(*sourcing.round("DC-NORTH"))
    harness.apply(*sourcing.short_pick())
    harness.apply(*sourcing.round("DC-SOUTH", late=True))
    late = at_risk(harness)[-1]
    assert (late["status"], late["reason"], late["suggested_action"]) == (
        "at_risk",
        "allocated_late",
        "inform_customer",
    )
    assert late["location_id"] == "DC-SOUTH" and late["milestone"] == "delivered"
    window_end = datetime.fromisoformat(standard(HANDOVER, ARRIVAL)["window_end"])
    arrives = HANDOVER + timedelta(days=2, hours=20)
    assert late["expected_delay_minutes"] == (arrives - window_end) // timedelta(minutes=1)
    assert late["promised_by"] == utc_from_epoch_ms(epoch_ms(window_end)).isoformat()  # the promise stands


def test_a_placement_this_tracker_could_not_read_leaves_a_row_that_retention_removes(
    harness: Harness,
) -> None:
    """Sourcing refused it in round 0: the row holds only that answer, indexed finished (rejected)."""
    sourcing = placed(harness, "O-UNREAD")
    harness.table.clear()
    harness.runtime = OrdersRuntime(harness.table, harness.network, TOPICS, harness._produce, harness.metrics)
    sourcing.row.round = 0
    harness.apply(*sourcing.round("DC-NORTH", outcome="rejected"))
    assert harness.on("at-risk") == []
    assert harness.runtime.retention.due(epoch_ms(T0 + timedelta(days=30))) == [("O-UNREAD", 2)]


def test_a_re_sourced_parcel_teaches_transit_from_where_it_left(harness: Harness) -> None:
    short_picked_north_and_moved_south(harness)
    handed = HANDOVER + timedelta(minutes=5)
    # The WMS at DC-SOUTH names its allocation's own index (0 in round 2): the location decides.
    harness.apply(
        harness.fulfilment("O-1", "handed_to_carrier", at=handed, location_id="DC-SOUTH", shipment=0)
    )
    harness.apply(harness.fulfilment("O-1", "delivered", at=handed + timedelta(hours=20)))
    in_transit, delivered = harness.on("observations")
    assert [in_transit["event_id"], delivered["event_id"]] == ["O-1:1:in_transit", "O-1:1:delivered"]
    assert in_transit["origin_id"] == delivered["origin_id"] == "DC-SOUTH"
    assert delivered["origin_region"] == "NL-NB"
