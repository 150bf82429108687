"""Forecast-aware protection: a store keeps its likely walk-in demand until the next truck."""

from __future__ import annotations

import pytest

from oms_streams.domain.calendar import MS_PER_DAY, local_date
from oms_streams.domain.forecast import HoltWintersForecaster
from oms_streams.domain.inventory import StockPosition
from oms_streams.domain.network import Route, Site
from oms_streams.domain.protection import day_index, next_replenishment_ms, protection_units
from oms_streams.domain.visibility import HiddenBy, LocationType, sku_availability
from tests.unit.builders import SKU, a_channel, a_store, network, some_rules
from tests.unit.promise_builders import AMS, TUE, at

FORECASTER = HoltWintersForecaster()
MONDAY_NOON = at("2024-05-06 12:00")


def a_store_selling(per_day: float, weeks: int = 4):
    state = FORECASTER.initial()
    today = day_index(AMS, MONDAY_NOON)
    for day in range(today - 7 * weeks, today):
        state = FORECASTER.observe(state, day, per_day)
    return state


def test_a_store_without_sales_protects_nothing():
    assert protection_units(FORECASTER, None, 0, MONDAY_NOON, None, 0.9, 7) == 0


def test_protection_covers_the_days_until_the_next_truck():
    state = a_store_selling(per_day=4)
    today = day_index(AMS, MONDAY_NOON)

    one_day = protection_units(FORECASTER, state, today, MONDAY_NOON, MONDAY_NOON + MS_PER_DAY, 0.9, 7)
    a_week = protection_units(FORECASTER, state, today, MONDAY_NOON, None, 0.9, 7)

    assert one_day >= 4
    assert a_week >= 28
    assert one_day < a_week


def test_the_next_replenishment_is_the_first_truck_that_stops_at_the_store():
    dc = Site("DC-NORTH", 52.5, 6.1)
    route = Route("ROUTE-NORTH-MID", "DC-NORTH", ((TUE, 5 * 60),), (("STORE-UTRECHT-01", 90),))

    arrival = next_replenishment_ms("STORE-UTRECHT-01", (route,), {"DC-NORTH": dc}, MONDAY_NOON)

    # Tuesday 05:00 in UTC (the DC has no time zone of its own here) plus 90 minutes of driving.
    assert arrival is not None and arrival - MONDAY_NOON < MS_PER_DAY
    assert next_replenishment_ms("STORE-AMSTERDAM-02", (route,), {"DC-NORTH": dc}, MONDAY_NOON) is None


def test_protected_units_leave_every_channel_and_are_reported():
    locations = network(a_store("STORE-UTRECHT-01"))
    availability = sku_availability(
        SKU,
        {"STORE-UTRECHT-01": StockPosition(on_hand=10)},
        locations,
        some_rules(channels=[a_channel()]),
        {"STORE-UTRECHT-01": 4},
    )

    assert availability.protected == {"STORE-UTRECHT-01": 4}
    assert availability.channel("webshop").total == 6
    assert availability.hidden[("webshop", LocationType.STORE, HiddenBy.PROTECTION)] == 4


@pytest.mark.parametrize("timezone", ["Europe/Amsterdam", "America/Chicago", "Australia/Lord_Howe", "UTC"])
def test_day_index_with_its_cache_is_the_local_date_in_any_order_and_across_dst(timezone: str) -> None:
    # Minutes around both 2024 DST changes in Europe, then instants spread over a year, forwards and back.
    instants = [1_711_846_800_000 + m * 60_000 for m in range(-600, 600)]
    instants += [1_729_990_800_000 + m * 60_000 for m in range(-600, 600)]
    instants += [1_700_000_000_000 + k * 7_654_321 for k in range(5_000)]
    for t_ms in [*instants, *reversed(instants)]:
        assert day_index(timezone, t_ms) == local_date(timezone, t_ms).toordinal()
