"""Till sales shaped on real daily sales (``oms_streams.tools.demand_shape``) and the simulator using it.

The derivation runs on synthetic series with a known shape and on ``tests/fixtures/m5_sample.csv.gz``
(cut from the shared M5 file, see tests/unit/test_forecast.py); the committed
``deploy/demo/demand_shape.json`` is checked against a fresh derivation when ``../shared`` is there.
"""

from __future__ import annotations

import csv
import gzip
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from oms_streams.schemas.config import LocationRecord, NetworkConfig
from oms_streams.tools.demand_shape import (
    DEFAULT_SHAPE,
    DemandShape,
    StoreDemand,
    StoreProfile,
    assign_profiles,
    derive_profile,
    derive_shape,
    load_shape,
    main,
)
from oms_streams.tools.simulator import ACTIONS, RetailDay

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SHARED_M5 = Path(__file__).resolve().parents[3] / "shared" / "data" / "demand" / "m5_store_dept_daily.csv.gz"
WEEKDAY = (1.0, 0.8, 0.8, 0.9, 1.1, 1.6, 1.3)
"""Synthetic weekly shape, Monday first (mean 1.071)."""


def synthetic(days: int = 3 * 365, start: date = date(2013, 1, 1)) -> dict[date, float]:
    """100 units a day x WEEKDAY x (1.2 in July), closed on 25 December."""
    series: dict[date, float] = {}
    for i in range(days):
        day = start + timedelta(days=i)
        if (day.month, day.day) != (12, 25):
            series[day] = 100.0 * WEEKDAY[day.weekday()] * (1.2 if day.month == 7 else 1.0)
    return series


def test_the_derived_profile_recovers_a_known_shape() -> None:
    profile = derive_profile("TX_9", synthetic())
    mean = sum(WEEKDAY) / 7
    assert profile.state == "TX"
    assert profile.weekday == pytest.approx([w / mean for w in WEEKDAY], abs=0.02)
    assert profile.month[6] == pytest.approx(1.2 / (1 + 0.2 / 12), abs=0.03)  # July, the rest ~1
    assert all(
        m == pytest.approx(1 / (1 + 0.2 / 12), abs=0.03) for i, m in enumerate(profile.month) if i != 6
    )
    assert profile.closed == ("12-25",)
    assert profile.daily_units == pytest.approx(
        100 * mean, rel=0.03
    )  # the last 52 weeks (no July peak left out)


def test_units_follow_weekday_month_and_closed_days() -> None:
    profile = StoreProfile("CA_9", "CA", 100.0, WEEKDAY, tuple([1.0] * 6 + [1.5] + [1.0] * 5), ("12-25",))
    assert profile.units(date(2026, 12, 5)) == pytest.approx(160.0)  # a Saturday
    assert profile.units(date(2026, 12, 8)) == pytest.approx(80.0)  # a Tuesday
    assert profile.units(date(2026, 7, 7)) == pytest.approx(120.0)  # a Tuesday in July
    assert profile.units(date(2026, 12, 25)) == 0.0


def test_derivation_from_the_m5_sample_and_the_command(tmp_path: Path) -> None:
    shape = derive_shape(FIXTURES / "m5_sample.csv.gz", ("HOBBIES_1",))
    assert [p.store_id for p in shape.profiles] == ["TX_2"]  # the sample's only HOBBIES_1 series
    weekday = shape.profiles[0].weekday
    assert sum(weekday) / 7 == pytest.approx(1.0, abs=0.01)
    assert weekday[5] > weekday[1]  # Saturday sells more than Tuesday

    out = tmp_path / "shape.json"
    assert (
        main(["--data", str(FIXTURES / "m5_sample.csv.gz"), "--out", str(out), "--departments", "HOBBIES_1"])
        == 0
    )
    again = load_shape(out)
    assert again.profiles == shape.profiles
    assert "--departments HOBBIES_1" in out.read_text()
    with pytest.raises(ValueError, match="no rows"):
        derive_shape(FIXTURES / "m5_sample.csv.gz", ("NO_SUCH_DEPT",))


def test_the_committed_shape_is_real_weekly_retail() -> None:
    shape = load_shape(DEFAULT_SHAPE)
    assert len(shape.profiles) == 10 and DEFAULT_SHAPE.stat().st_size < 8_000
    for profile in shape.profiles:
        assert sum(profile.weekday) / 7 == pytest.approx(1.0, abs=0.01)
        assert sum(profile.month) / 12 == pytest.approx(1.0, abs=0.01)
        assert profile.weekday[5] > 1.05 and profile.weekday[5] > max(profile.weekday[:4])  # busy Saturdays
        assert profile.closed == ("12-25",) and 200 < profile.daily_units < 700


@pytest.mark.skipif(not SHARED_M5.exists(), reason="needs ../shared/data/demand (not in a plain checkout)")
def test_the_committed_shape_is_what_the_shared_file_gives() -> None:
    assert derive_shape(SHARED_M5).profiles == load_shape(DEFAULT_SHAPE).profiles


def store(location_id: str, country: str | None = None, subdivision: str | None = None) -> LocationRecord:
    return LocationRecord(
        location_id=location_id,
        type="store",
        timezone="America/Chicago" if country == "US" else "Europe/Amsterdam",
        country=country,
        subdivision=subdivision,
    )


def test_stores_take_profiles_of_their_own_state_else_all_in_turn() -> None:
    shape = load_shape(DEFAULT_SHAPE)
    us = [store(f"STORE-TX-{i}", "US", "TX") for i in range(4)] + [store("STORE-OK-1", "US", "OK")]
    assigned = assign_profiles(shape, us)
    assert [assigned[f"STORE-TX-{i}"].store_id for i in range(4)] == ["TX_1", "TX_2", "TX_3", "TX_1"]
    assert assigned["STORE-OK-1"].store_id == "CA_1"  # no M5 store in Oklahoma: all profiles in turn
    nl = assign_profiles(shape, [store(f"STORE-NL-{i}", "NL") for i in range(12)])
    assert Counter(p.store_id for p in nl.values())["CA_1"] == 2  # 12 stores over 10 profiles


def test_store_factors_average_one_and_follow_the_local_day() -> None:
    shape = load_shape(DEFAULT_SHAPE)
    demand = StoreDemand(shape, [store(f"STORE-TX-{i}", "US", "TX") for i in range(3)])
    year = [datetime(2026, 1, 1, 18, tzinfo=UTC) + timedelta(days=i) for i in range(365)]
    assert sum(demand.network_factor(at) for at in year) / 365 == pytest.approx(1.0, abs=0.03)
    saturday, tuesday = datetime(2026, 3, 7, 18, tzinfo=UTC), datetime(2026, 3, 10, 18, tzinfo=UTC)
    assert demand.factor("STORE-TX-0", saturday) > 1.1 * demand.factor("STORE-TX-0", tuesday)
    # 03:00 UTC on a Sunday is still Saturday evening in Texas.
    assert demand.local_day("STORE-TX-0", datetime(2026, 3, 8, 3, tzinfo=UTC)) == date(2026, 3, 7)
    assert demand.network_factor(datetime(2026, 12, 25, 18, tzinfo=UTC)) == 0.0


def network() -> NetworkConfig:
    dc = LocationRecord(location_id="DC-1", type="dc")
    stores = [store("STORE-TX-A", "US", "TX"), store("STORE-TX-B", "US", "TX")]
    return NetworkConfig(locations=[dc, *stores])


def shape_two_stores(rate_a: float, rate_b: float) -> DemandShape:
    flat = (1.0,) * 7
    month = (1.0,) * 12
    return DemandShape(
        (
            StoreProfile("TX_1", "TX", rate_a, flat, month, ("12-25",)),
            StoreProfile("TX_2", "TX", rate_b, flat, month),
        )
    )


def till_sales(day: RetailDay, steps: int) -> Counter[str]:
    sales: Counter[str] = Counter()
    for _ in range(steps):
        for item in day.step():
            if item.kind == "sale":
                sales[item.model.location_id] += 1  # type: ignore[attr-defined]
    return sales


def test_the_simulator_sells_at_each_stores_real_rate() -> None:
    at = datetime(2026, 3, 3, 15, tzinfo=UTC)
    day = RetailDay(network(), seed=3, run_id="t", clock=lambda: at, demand=shape_two_stores(300.0, 100.0))
    day.opening()
    sales = till_sales(day, 3000)
    assert sales["STORE-TX-A"] > 2 * sales["STORE-TX-B"] > 0  # 3:1 by the stores' real rates
    assert day.pace_factor() == pytest.approx(1.0)


def test_a_closed_store_sells_nothing_and_the_pace_drops() -> None:
    christmas = datetime(2026, 12, 25, 18, tzinfo=UTC)
    day = RetailDay(
        network(), seed=3, run_id="t", clock=lambda: christmas, demand=shape_two_stores(100.0, 100.0)
    )
    day.opening()
    sales = till_sales(day, 2000)
    assert sales["STORE-TX-A"] == 0 < sales["STORE-TX-B"]  # TX_1 is closed on 25 December
    assert day.sales_factor() == pytest.approx(0.5)
    sale, total = ACTIONS[0][1], sum(weight for _, weight in ACTIONS)
    assert day.pace_factor() == pytest.approx((sale * 0.5 + total - sale) / total)  # other actions go on


def test_without_a_shape_every_store_and_day_is_alike() -> None:
    day = RetailDay(network(), seed=3, run_id="t")
    assert day.demand is None and day.sales_factor() == 1.0 == day.pace_factor()


def test_the_m5_sample_has_the_rows_the_tests_expect() -> None:
    with gzip.open(FIXTURES / "m5_sample.csv.gz", "rt", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["dept_id"] == "HOBBIES_1"]
    assert {r["store_id"] for r in rows} == {"TX_2"} and len(rows) == 399
