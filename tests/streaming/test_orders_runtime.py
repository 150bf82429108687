"""The orders runtime without a broker: a dict for the table, hand-made faust-like events, a set clock.

What it checks is the shell's bookkeeping around the domain: rows stored whole, duplicates and
re-promises, events that overtake their placement, risk states published once each, transit
observations and courier bookings emitted, bad input dead-lettered, ownership reloaded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import oms_streams.streaming.orders_runtime as orders_runtime
from oms_streams.adapters.timestamps import epoch_ms
from oms_streams.domain.transit import Lane, TransitModel
from oms_streams.metrics import Metrics
from oms_streams.streaming.config_publisher import load_network_config
from oms_streams.streaming.network import NetworkState
from oms_streams.streaming.orders_runtime import OrdersRuntime, OrderTopics
from oms_streams.streaming.promise_service import CourierBookings, TransitLearner

NETWORK_YAML = Path(__file__).resolve().parent.parent / "fixtures" / "network.yaml"
TOPICS = OrderTopics("placed", "fulfilment", "at-risk", "observations", "bookings", "dlq")
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
UTRECHT_HOME = {"postal_code": "3511 AB", "lat": 52.0894, "lon": 5.1100, "region": "NL-UT"}


class FakeEvent:
    """What the runtime reads of a faust event: ``event.message``; weak-referenceable like faust's."""

    __slots__ = ("__weakref__", "message")

    def __init__(
        self, topic: str, key: bytes, value: bytes | None, partition: int = 0, offset: int = 0
    ) -> None:
        self.message = SimpleNamespace(topic=topic, key=key, value=value, partition=partition, offset=offset)


class Harness:
    def __init__(self) -> None:
        self.table: dict[str, bytes] = {}
        self.sent: list[tuple[str, bytes, bytes | None]] = []
        self.metrics = Metrics()
        self.network = NetworkState(
            {"location": "L", "rules": "R", "carrier_service": "C", "route": "T", "promise_policy": "P"},
            self.metrics,
            lambda reason, record: None,
            lambda: None,
        )
        config = load_network_config(NETWORK_YAML)
        records = [self._config("L", loc.location_id, loc.model_dump_json()) for loc in config.locations]
        records += [self._config("C", s.service_id, s.model_dump_json()) for s in config.carrier_services]
        records += [self._config("T", r.route_id, r.model_dump_json()) for r in config.routes]
        self.network.on_records(records)
        self.runtime = OrdersRuntime(self.table, self.network, TOPICS, self._produce, self.metrics)
        self.now = T0
        self._seq = 0

    @staticmethod
    def _config(topic: str, key: str, value: str) -> SimpleNamespace:
        return SimpleNamespace(topic=topic, partition=0, offset=0, key=key.encode(), value=value.encode())

    async def _produce(self, topic: str, key: bytes, value: bytes | None) -> None:
        self.sent.append((topic, key, value))

    def on(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(v) for t, _, v in self.sent if t == topic and v is not None]

    def apply(self, *events: FakeEvent) -> None:
        asyncio.run(self.runtime.apply_batch(list(events)))

    def check(self) -> int:
        return asyncio.run(self.runtime.check_due())

    def placement(self, order_id: str, option: dict[str, Any], event_id: str | None = None) -> FakeEvent:
        cart: dict[str, int] = {}
        for shipment in option["shipments"]:
            for line in shipment["lines"]:
                cart[line["sku"]] = cart.get(line["sku"], 0) + line["quantity"]
        self._seq += 1
        body = {
            "event_id": event_id or f"ev-{self._seq}",
            "occurred_at": self.now.isoformat(),
            "source": "webshop",
            "order_id": order_id,
            "cart": [{"sku": s, "quantity": q} for s, q in cart.items()],
            "destination": UTRECHT_HOME
            if option["method"] != "click_and_collect"
            else {"pickup_store_id": option["pickup_store_id"]},
            "option": option,
        }
        return FakeEvent("placed", order_id.encode(), json.dumps(body).encode(), partition=2)

    def fulfilment(self, order_id: str, kind: str, at: datetime | None = None, **fields: Any) -> FakeEvent:
        self._seq += 1
        body = {
            "event_id": f"ev-{self._seq}",
            "occurred_at": (at or self.now).isoformat(),
            "source": "wms",
            "order_id": order_id,
            "kind": kind,
            **fields,
        }
        return FakeEvent("fulfilment", order_id.encode(), json.dumps(body).encode(), partition=2)


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    h = Harness()
    monkeypatch.setattr(orders_runtime, "now_ms", lambda: epoch_ms(h.now))
    yield h


def iso(moment: datetime) -> str:
    return moment.isoformat()


def click_and_collect(ready: datetime) -> dict[str, Any]:
    return {
        "option_id": "click_and_collect:STORE-AMSTERDAM-01",
        "method": "click_and_collect",
        "window_start": iso(ready),
        "window_end": iso(ready + timedelta(hours=2)),
        "confidence": 0.95,
        "parcels": 1,
        "co2e_g": 0.0,
        "shipments": [
            {
                "location_id": "STORE-AMSTERDAM-01",
                "lines": [{"sku": "SKU-TENT", "quantity": 1}],
                "ready_at": iso(ready),
                "handover_at": iso(ready),
                "arrives_at": iso(ready),
            }
        ],
        "pickup_store_id": "STORE-AMSTERDAM-01",
    }


def standard(handover: datetime, arrival: datetime) -> dict[str, Any]:
    return {
        "option_id": "standard",
        "method": "standard",
        "window_start": iso(arrival.replace(hour=8)),
        "window_end": iso(arrival.replace(hour=20)),
        "confidence": 0.95,
        "parcels": 1,
        "co2e_g": 700.0,
        "shipments": [
            {
                "location_id": "DC-NORTH",
                "lines": [{"sku": "SKU-TENT", "quantity": 1}],
                "ready_at": iso(handover - timedelta(hours=3)),
                "handover_at": iso(handover),
                "arrives_at": iso(arrival),
                "service_id": "POSTNL-STANDARD",
                "distance_km": 58.0,
                "transit_source": "prior",
            }
        ],
    }


def courier(slot: datetime) -> dict[str, Any]:
    """A courier delivery from STORE-UTRECHT-01 in the two hours from ``slot``."""
    option = standard(slot, slot) | {
        "option_id": "courier:STORE-UTRECHT-01",
        "method": "courier",
        "window_start": iso(slot),
        "window_end": iso(slot + timedelta(hours=2)),
    }
    option["shipments"][0] |= {"location_id": "STORE-UTRECHT-01", "service_id": None, "transit_source": None}
    return option


def test_a_placement_stores_the_promise_with_milestones_and_nothing_is_at_risk(harness: Harness) -> None:
    harness.apply(harness.placement("O-1", click_and_collect(T0 + timedelta(hours=1))))
    found = harness.runtime.lookup("O-1")
    assert found is not None
    row, tracking = found
    assert row.version == 1 and row.partition == 2 and tracking is not None
    assert [m.kind.value for m in tracking.record.milestones] == ["pick_start", "ready_for_pickup"]
    assert harness.on("at-risk") == []
    assert harness.metrics.order_events.labels("placed", "applied")._value.get() == 1


def test_a_redelivered_placement_is_a_duplicate_and_a_new_one_is_a_new_promise_version(
    harness: Harness,
) -> None:
    first = harness.placement("O-1", click_and_collect(T0 + timedelta(hours=1)), event_id="ev-place-1")
    harness.apply(first)
    harness.apply(first)
    harness.apply(harness.placement("O-1", click_and_collect(T0 + timedelta(hours=3)), event_id="ev-place-2"))
    found = harness.runtime.lookup("O-1")
    assert found is not None and found[0].version == 2 and found[0].placements == ["ev-place-1", "ev-place-2"]
    assert harness.metrics.order_events.labels("placed", "duplicate")._value.get() == 1


def test_a_missed_milestone_is_published_once_and_cleared_once_by_a_late_event(harness: Harness) -> None:
    harness.apply(harness.placement("O-1", click_and_collect(T0 + timedelta(minutes=30))))
    harness.now = T0 + timedelta(minutes=29, seconds=30)  # pick start was due at 29:00 (1 minute to pick)
    assert harness.check() == 1
    assert harness.check() == 0  # the same state is not published twice
    [at_risk] = harness.on("at-risk")
    assert at_risk["status"] == "at_risk" and at_risk["reason"] == "pick_not_started"
    harness.runtime.export_gauges()
    assert harness.metrics.orders_at_risk.labels("pick_not_started")._value.get() == 1

    harness.apply(harness.fulfilment("O-1", "picked", location_id="STORE-AMSTERDAM-01"))
    cleared = harness.on("at-risk")[-1]
    assert cleared["status"] == "cleared" and cleared["event_id"] != at_risk["event_id"]
    harness.apply(harness.fulfilment("O-1", "ready_for_pickup", location_id="STORE-AMSTERDAM-01"))
    assert len(harness.on("at-risk")) == 2  # on track stays quiet


def test_a_fulfilment_event_that_overtakes_its_placement_is_parked_then_applied(harness: Harness) -> None:
    harness.apply(harness.fulfilment("O-1", "store_rejected", location_id="STORE-AMSTERDAM-01"))
    assert harness.metrics.order_events.labels("store_rejected", "parked")._value.get() == 1
    assert harness.on("at-risk") == []
    harness.apply(harness.placement("O-1", click_and_collect(T0 + timedelta(hours=2))))
    [at_risk] = harness.on("at-risk")
    assert at_risk["reason"] == "store_rejected" and at_risk["suggested_action"] == "inform_customer"


def test_a_delivered_parcel_becomes_a_transit_observation_every_worker_learns_from(harness: Harness) -> None:
    handover, arrival = T0 + timedelta(hours=8), T0 + timedelta(days=1, hours=3)
    harness.apply(harness.placement("O-1", standard(handover, arrival)))
    harness.apply(
        harness.fulfilment(
            "O-1", "handed_to_carrier", at=handover + timedelta(minutes=5), location_id="DC-NORTH"
        )
    )
    harness.apply(harness.fulfilment("O-1", "delivered", at=handover + timedelta(hours=20, minutes=5)))
    in_transit, observation = harness.on("observations")  # handed over (in transit), then delivered
    assert in_transit["delivered_at"] is None and in_transit["event_id"] == "O-1:0:in_transit"
    assert observation["origin_region"] == "NL-OV" and observation["dest_region"] == "NL-UT"
    assert observation["service_id"] == "POSTNL-STANDARD" and observation["distance_km"] == 58.0
    assert observation["in_transit_reported"] and observation["placed_at"] and observation["origin_timezone"]

    model = TransitModel()
    learner = TransitLearner(model, Metrics())
    learner.on_records(
        [SimpleNamespace(value=json.dumps(seen).encode()) for seen in (in_transit, observation)]
    )
    lane = Lane("POSTNL-STANDARD", "NL-OV", "NL-UT", 58.0)
    estimate = model.estimate(lane, 0.95, 1, (99.0,))
    assert estimate.source == "lane" and estimate.fastest_hours == pytest.approx(20.0)
    lead = model.lead(lane, epoch_ms(T0), observation["origin_timezone"], 0.95, 1, ())
    assert lead is not None and lead[1].source == "lane" and lead[1].in_transit == 0


def test_a_courier_order_s_slot_is_booked_by_the_slots_owner_and_every_worker_counts_it(
    harness: Harness,
) -> None:
    slot = T0 + timedelta(hours=2)
    harness.apply(harness.placement("O-C", courier(slot)))
    # source_orders books it with the owner of the store's slots (tests/streaming/test_courier_slots.py).
    assert [s for s in harness.sent if s[0] == "bookings"] == []
    key = f"STORE-UTRECHT-01|{epoch_ms(slot)}|O-C".encode()
    value = json.dumps(
        {"store_id": "STORE-UTRECHT-01", "slot_start": slot.isoformat(), "order_id": "O-C"}
    ).encode()
    bookings = CourierBookings()
    bookings.on_records([SimpleNamespace(key=key, value=value)])
    assert bookings.counts == {("STORE-UTRECHT-01", epoch_ms(slot)): 1}
    bookings.on_records([SimpleNamespace(key=key, value=None)])  # cancelled: the slot is free again
    assert bookings.counts[("STORE-UTRECHT-01", epoch_ms(slot))] == 0


def test_bad_order_events_are_dead_lettered_and_the_batch_goes_on(harness: Harness) -> None:
    harness.apply(
        FakeEvent("placed", b"O-BAD", b"{"),
        harness.fulfilment("O-2", "carrier_delay"),  # no new ETA
        harness.placement("O-3", click_and_collect(T0 + timedelta(hours=1))),
    )
    reasons = [json.loads(v)["reason"] for t, _, v in harness.sent if t == "dlq" and v]
    assert reasons[0] == "malformed JSON" and "new ETA" in reasons[1]
    assert harness.runtime.lookup("O-3") is not None


def test_a_new_owner_reloads_open_orders_and_republishes_nothing_already_published(harness: Harness) -> None:
    harness.apply(harness.placement("O-1", click_and_collect(T0 + timedelta(minutes=30))))
    harness.now = T0 + timedelta(minutes=29, seconds=30)
    harness.check()
    published = len(harness.sent)
    successor = OrdersRuntime(harness.table, harness.network, TOPICS, harness._produce, harness.metrics)
    assert asyncio.run(successor.reload()) == 1
    assert asyncio.run(successor.check_due()) == 0
    assert len(harness.sent) == published


def test_a_duplicate_of_a_finished_order_does_not_bring_it_back_to_watch(harness: Harness) -> None:
    harness.apply(harness.placement("O-1", click_and_collect(T0 + timedelta(hours=1))))
    collected = harness.fulfilment("O-1", "collected", location_id="STORE-AMSTERDAM-01")
    harness.apply(collected)
    harness.runtime.export_gauges()
    assert harness.metrics.open_orders._value.get() == 0
    harness.apply(collected)  # redelivered
    harness.apply(FakeEvent("placed", b"O-2", b"{"))  # dead-lettered: no order to watch either
    harness.runtime.export_gauges()
    assert harness.metrics.open_orders._value.get() == 0
