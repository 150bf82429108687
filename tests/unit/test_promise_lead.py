"""The promised lead time: one estimator and one rule, live (``POST /promise``, fed by the transit
observations topic) and in ``oms promise backtest``; parcels in transit count as censored; memory per
lane is bounded; the physical floor and the calendars still hold."""

from __future__ import annotations

import json
import random
from datetime import date, timedelta
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oms_streams.adapters.timestamps import utc_from_epoch_ms
from oms_streams.domain.calendar import MS_PER_DAY, MS_PER_HOUR, add_working_minutes, local_date
from oms_streams.domain.lead_time import MAX_LEAD_DAYS, LeadLevel, LeadTimes, lead_days
from oms_streams.domain.network import DeliveryMethod
from oms_streams.domain.promise import promise_options
from oms_streams.domain.transit import Lane, TransitModel
from oms_streams.domain.visibility import haversine_km
from oms_streams.metrics import Metrics
from oms_streams.streaming.promise_service import TransitLearner
from oms_streams.tools.backtest import (
    BacktestConfig,
    ParsedHistory,
    Shipment,
    end_of_local_day_ms,
    run_backtest,
)
from tests.unit.promise_builders import (
    AMS,
    UTRECHT_HOME,
    a_calendar,
    a_dc,
    a_network,
    a_request,
    a_service,
    a_stock,
    at,
    home,
    weekly,
)

DC = a_dc("DC-NORTH")
KM = haversine_km(DC.lat, DC.lon, *UTRECHT_HOME)
LANE = Lane("POSTNL-STANDARD", DC.region, "NL-MID", KM)
EVERY_DAY = range(7)
IN_DC = a_stock(webshop={"DC-NORTH": {"SKU-BIKE-LIGHT": 5}})
DAY0 = at("2024-05-06 10:00")


def days_model(*leads: int, half_life: float | None = None) -> LeadTimes:
    model = LeadTimes(half_life_days=half_life, pooling=10.0)
    for d in leads:
        model.add_delivered([("lane",)], date(2024, 5, 1), d, in_transit=False)
    return model


def quantile_days(model: LeadTimes, today: date, q: float = 0.95) -> int:
    found = model.estimate([("lane",)], ["lane"], today, q, 1, ())
    assert found is not None
    return found.days


# --- the estimator ------------------------------------------------------------------------------------


def test_the_quantile_of_delivered_lead_days_is_the_empirical_one():
    model = days_model(*range(1, 21))  # 1 .. 20 days
    assert quantile_days(model, date(2024, 6, 1), 0.95) == 19  # ceil(0.95 * 20) = 19th smallest
    assert quantile_days(model, date(2024, 6, 1), 0.5) == 10


def test_parcels_still_in_transit_make_the_promise_longer_at_once():
    model = days_model(*([3] * 20))
    today = date(2024, 6, 1)
    assert quantile_days(model, today) == 3
    for _ in range(10):  # ordered 8 days ago, not delivered: each is known to take 8 days or more
        model.add_in_transit([("lane",)], today - timedelta(days=8))
    assert quantile_days(model, today) > 3


def test_a_delivered_parcel_leaves_the_in_transit_count():
    model = days_model(*([3] * 20))
    today, ordered = date(2024, 6, 1), date(2024, 5, 24)
    for _ in range(10):
        model.add_in_transit([("lane",)], ordered)
    for _ in range(10):
        model.add_delivered([("lane",)], ordered, 4, in_transit=True)
    level = model.level(("lane",))
    assert level is not None and level.in_transit == pytest.approx(0.0)
    assert quantile_days(model, today) == 4


def test_memory_per_lane_is_bounded_whatever_was_observed():
    model = TransitModel()
    rng = random.Random(7)
    for i in range(3_000):
        placed = DAY0 + i * 3 * MS_PER_HOUR
        handed = placed + rng.randint(1, 48) * MS_PER_HOUR
        delivered = handed + rng.randint(1, 400) * MS_PER_HOUR
        model.observe_in_transit(LANE, placed, AMS)
        model.observe_delivery(LANE, placed, handed, delivered, AMS, in_transit=True)
    level = model.lead_times.level(("lane", LANE.service_id, LANE.origin_region, LANE.dest_region))
    assert level is not None and level.slots == LeadLevel().slots == 3 * MAX_LEAD_DAYS + 1
    assert model.lead_times.level_count == 3  # lane, band, service


def test_recent_orders_weigh_more():
    model = days_model(half_life=30.0)
    old, recent = date(2024, 1, 1), date(2024, 6, 1)
    for _ in range(50):
        model.add_delivered([("lane",)], old, 10, in_transit=False)
    for _ in range(50):
        model.add_delivered([("lane",)], recent, 2, in_transit=False)
    assert quantile_days(model, recent + timedelta(days=1), 0.9) == 2


def test_lead_days_are_counted_in_the_origins_local_days():
    # 23:30 and 00:30 in Amsterdam (CEST) are 21:30 and 22:30 UTC: one local day apart, none in UTC.
    placed = at("2024-05-06 23:30")
    delivered = at("2024-05-07 00:30")
    assert lead_days(placed, delivered, AMS) == 1
    assert lead_days(placed, delivered, "UTC") == 0


# --- one estimator, live and in the backtest ------------------------------------------------------------


def a_history(n: int = 400, seed: int = 3) -> list[Shipment]:
    rng = random.Random(seed)
    shipments = []
    for i in range(n):
        placed = DAY0 + rng.randint(0, 120 * 24) * MS_PER_HOUR + rng.randint(0, 59) * 60_000
        handed = placed + rng.randint(1, 60) * MS_PER_HOUR
        slow = rng.random() < 0.1
        delivered = handed + rng.randint(12, 300 if slow else 80) * MS_PER_HOUR
        dest = rng.choice(("NL-MID", "NL-WEST"))
        shipments.append(
            Shipment(f"O-{i:04d}", placed, DC.location_id, DC.region, dest, KM, handed, delivered, AMS)
        )
    return shipments


def observation(s: Shipment, delivered: bool) -> SimpleNamespace:
    """What ``track_orders`` publishes for the parcel (see OrdersRuntime._observe_transit)."""
    body = {
        "event_id": f"{s.order_id}:0:{'delivered' if delivered else 'in_transit'}",
        "occurred_at": utc_from_epoch_ms(s.delivered_ms if delivered else s.handed_ms).isoformat(),
        "source": "test",
        "schema_version": 1,
        "order_id": s.order_id,
        "service_id": LANE.service_id,
        "origin_id": s.origin_id,
        "origin_region": s.origin_region,
        "dest_region": s.dest_region,
        "distance_km": s.distance_km,
        "handed_to_carrier_at": utc_from_epoch_ms(s.handed_ms).isoformat(),
        "delivered_at": utc_from_epoch_ms(s.delivered_ms).isoformat() if delivered else None,
        "placed_at": utc_from_epoch_ms(s.placed_ms).isoformat(),
        "origin_timezone": AMS,
        "in_transit_reported": delivered,
    }
    return SimpleNamespace(key=None, value=json.dumps(body).encode())


def test_the_worker_learning_the_topic_promises_what_the_backtest_scored():
    history = a_history()
    config = BacktestConfig(quantile=0.9, min_samples=5, prior_transit_hours=(24.0, 48.0))
    report = run_backtest(ParsedHistory(history, rows=len(history)), config)
    orders = sorted(history, key=lambda s: s.placed_ms)
    scored = {order.order_id: s.promised_ms for order, s in zip(orders, report.scored, strict=True)}

    model = TransitModel()
    learner = TransitLearner(model, Metrics())
    events = sorted([(s.handed_ms, 0, s) for s in history] + [(s.delivered_ms, 1, s) for s in history])
    compared = taught = 0
    for order in orders:
        while taught < len(events) and events[taught][0] < order.placed_ms:
            _, kind, done = events[taught]
            learner.on_records([observation(done, delivered=kind == 1)])
            taught += 1
        lane = Lane(LANE.service_id, order.origin_region, order.dest_region, order.distance_km)
        found = model.lead(lane, order.placed_ms, AMS, 0.9, 5, (2, 3))  # the backtest's prior days
        if found is None:
            continue
        assert end_of_local_day_ms(found[0], AMS) == scored[order.order_id], order.order_id
        compared += 1
    assert compared > 300


def every_day_network():
    """Picks up and delivers every day, all day: the calendars never move the learned day."""
    service = a_service(
        pickups=weekly(EVERY_DAY, "00:30"),
        cutoff_minutes=0,
        delivery_calendar=a_calendar(hours=("00:00", "23:59"), days=EVERY_DAY),
    )
    dc = a_dc(
        "DC-NORTH",
        calendar=a_calendar(hours=("00:00", "23:59"), days=EVERY_DAY),
        pick_minutes=1,
        pack_minutes=1,
    )
    return a_network(sites=[dc], services=[service], routes=[])


def taught(history: list[Shipment], until_ms: int) -> TransitModel:
    model = TransitModel()
    learner = TransitLearner(model, Metrics())
    for s in sorted(history, key=lambda s: s.handed_ms):
        if s.handed_ms < until_ms:
            learner.on_records([observation(s, delivered=False)])
    for s in sorted(history, key=lambda s: s.delivered_ms):
        if s.delivered_ms < until_ms:
            learner.on_records([observation(s, delivered=True)])
    return model


def test_post_promise_delivers_on_the_learned_day():
    history = a_history()
    asked = DAY0 + 130 * MS_PER_DAY
    model = taught(history, asked)
    network = every_day_network()
    found = model.lead(LANE, asked, AMS, network.policy.quantile, network.policy.min_lane_samples, (1, 2, 3))
    assert found is not None
    day, estimate = found
    result = promise_options(
        a_request(asked_at=asked, destination=home(), methods=[DeliveryMethod.STANDARD]),
        IN_DC,
        network,
        model,
    )
    [standard] = result.options
    assert local_date(AMS, standard.window_end_ms) == day
    assert standard.shipments[0].transit_source == estimate.source == "lane"
    assert standard.confidence == network.policy.quantile


@settings(max_examples=60, deadline=None)
@given(asked_hours=st.integers(0, 24 * 14), fast=st.integers(1, 30))
def test_the_learned_promise_is_never_earlier_than_the_physical_floor(asked_hours: int, fast: int):
    """Pick, pack, the carrier pickup and the fastest transit ever seen bound the learned lead time."""
    history = [
        Shipment(
            f"O-{i}",
            DAY0 + i * MS_PER_HOUR,
            "DC-NORTH",
            DC.region,
            "NL-MID",
            KM,
            DAY0 + i * MS_PER_HOUR + MS_PER_HOUR,
            DAY0 + i * MS_PER_HOUR + (1 + fast) * MS_PER_HOUR,
            AMS,
        )
        for i in range(60)
    ]
    asked = DAY0 + 5 * MS_PER_DAY + asked_hours * MS_PER_HOUR
    model = taught(history, asked)
    network = a_network(services=[a_service()], routes=[])  # weekday pickups at 18:00, weekday deliveries
    result = promise_options(
        a_request(asked_at=asked, destination=home(), methods=[DeliveryMethod.STANDARD]),
        IN_DC,
        network,
        model,
    )
    service = network.services[0]
    for o in result.options:
        [shipment] = o.shipments
        assert shipment.transit_source == "lane"  # timed by the learned lead time
        ready = add_working_minutes(DC.calendar, asked, DC.pick_minutes + DC.pack_minutes)
        assert ready is not None and shipment.ready_at_ms == ready
        assert shipment.handover_at_ms - service.cutoff_minutes * 60_000 >= ready
        assert shipment.arrives_at_ms >= shipment.handover_at_ms + fast * MS_PER_HOUR
        assert o.window_end_ms >= shipment.arrives_at_ms
        weekday = local_date(AMS, o.window_end_ms).weekday()
        assert weekday < 5  # the carrier delivers on weekdays only
