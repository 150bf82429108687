"""When in the day customers buy (``oms_streams.tools.hourly_shape``): the web curve derived from
Olist's purchase times, the store curve inside opening hours, and the simulators following them.

The committed ``deploy/demo/hourly_shape.json`` is checked against a fresh derivation when
``../shared`` is there."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from oms_streams.schemas.config import LocationRecord, NetworkConfig
from oms_streams.tools.demo_options import HOURLY_SHAPE
from oms_streams.tools.hourly_shape import (
    STORE_CURVE,
    HourlyShape,
    StoreHours,
    WebArrivals,
    customer_hour,
    derive_hours,
    load_hours,
    main,
    web_zone,
)
from oms_streams.tools.simulator import RetailDay

SHARED_OLIST = Path(__file__).resolve().parents[3] / "shared" / "data" / "deliveries" / "olist_dev.csv.gz"
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
HEADER = (
    "order_id,placed_at,origin_id,origin_lat,origin_lon,origin_region,dest_postal,dest_lat,dest_lon,"
    "dest_region,handed_to_carrier_at,delivered_at,estimated_delivery"
)


def day_minutes(day: date, tz: ZoneInfo = AMSTERDAM) -> list[datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    return [start + timedelta(minutes=m) for m in range(24 * 60)]


def nl_store(location_id: str = "STORE-1", hours: dict[str, list[str]] | None = None) -> LocationRecord:
    return LocationRecord(
        location_id=location_id,
        type="store",
        timezone="Europe/Amsterdam",
        country="NL",
        opening_hours=hours if hours is not None else {"weekdays": ["09:00-21:00"], "sat": ["09:00-18:00"]},
    )


# --- the committed curves ---------------------------------------------------------------------------


def test_the_committed_web_curve_is_real_e_commerce_by_the_hour() -> None:
    shape = load_hours(HOURLY_SHAPE)
    assert len(shape.web) == 24 and HOURLY_SHAPE.stat().st_size < 2_000
    assert sum(shape.web) / 24 == pytest.approx(1.0, abs=0.01)  # mean 1 over the day
    assert max(shape.web[2:6]) < 0.15  # the small hours are quiet
    assert min(shape.web[10:23]) > 1.2  # busy from mid-morning to late evening
    assert shape.store == STORE_CURVE and "not data" in shape.store_source


@pytest.mark.skipif(
    not SHARED_OLIST.exists(), reason="needs ../shared/data/deliveries (not in a plain checkout)"
)
def test_the_committed_curve_is_what_the_shared_file_gives() -> None:
    assert derive_hours(SHARED_OLIST).web == load_hours(HOURLY_SHAPE).web


def test_olist_times_are_read_as_sao_paulo_and_taken_in_the_customers_zone() -> None:
    assert customer_hour("2017-06-01 21:00:00", "BR-SP") == 21
    assert customer_hour("2017-06-01 21:00:00", "BR-MT") == 20  # Cuiabá is an hour behind
    assert customer_hour("2017-06-01 21:00:00", "BR-AC") == 19  # Rio Branco two
    # In São Paulo's summer time (January 2017) Bahia, without it, is an hour behind too.
    assert customer_hour("2017-01-10 21:00:00", "BR-BA") == 20
    assert customer_hour("2017-06-01 21:00:00", "BR-BA") == 21


def test_derivation_and_the_command(tmp_path: Path) -> None:
    data = tmp_path / "olist.csv"
    rows = [f"o{i},2017-06-0{1 + i % 5} 1{i % 2}:30:00,,,,,,,,BR-SP,,," for i in range(30)]
    rows += ["x,2017-06-01 11:10:00,,,,,,,,BR-MT,,,"]  # 10 h in Cuiabá
    data.write_text("\n".join([HEADER, *rows]) + "\n")
    out = tmp_path / "hours.json"
    assert main(["--data", str(data), "--out", str(out)]) == 0
    shape = load_hours(out)
    assert shape.web[10] == pytest.approx(16 * 24 / 31, abs=0.001)
    assert shape.web[11] == pytest.approx(15 * 24 / 31, abs=0.001)
    assert sum(shape.web) == pytest.approx(24, abs=0.01)
    assert f"--data {data}" in out.read_text()


def test_a_bad_hours_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(HourlyShape((1.0,) * 23).to_json("test"))
    with pytest.raises(ValueError, match="24"):
        load_hours(bad)


# --- stores: only while open, mean 1 over the day --------------------------------------------------


def test_a_store_sells_only_while_open_and_its_day_averages_one() -> None:
    hours = StoreHours(load_hours(HOURLY_SHAPE), [nl_store()])
    tuesday = day_minutes(date(2026, 3, 10))
    factors = [hours.factor("STORE-1", at) for at in tuesday]
    assert sum(factors) / len(factors) == pytest.approx(1.0, abs=0.001)
    for at, factor in zip(tuesday, factors, strict=True):
        assert (factor > 0) == (9 <= at.hour < 21), at  # 09:00-21:00; closing time is closed
    # Busier at lunchtime than just after opening.
    assert hours.factor("STORE-1", tuesday[12 * 60 + 30]) > 1.5 * hours.factor(
        "STORE-1", tuesday[9 * 60 + 10]
    )


def test_a_shorter_day_sells_the_same_day_faster_and_a_closed_day_not_at_all() -> None:
    hours = StoreHours(load_hours(HOURLY_SHAPE), [nl_store()])
    saturday = [hours.factor("STORE-1", at) for at in day_minutes(date(2026, 3, 14))]  # 09-18
    assert sum(saturday) / len(saturday) == pytest.approx(1.0, abs=0.001)
    assert all(
        f == 0 for f in [hours.factor("STORE-1", at) for at in day_minutes(date(2026, 3, 15))]
    )  # Sunday
    kings_day = day_minutes(date(2026, 4, 27))  # a Monday, an NL public holiday
    assert all(hours.factor("STORE-1", at) == 0 for at in kings_day)


def test_a_store_always_open_follows_the_curve_itself() -> None:
    always = LocationRecord(location_id="STORE-24", type="store", timezone="America/Chicago")
    hours = StoreHours(HourlyShape((1.0,) * 24), [always])
    chicago = day_minutes(date(2026, 3, 10), ZoneInfo("America/Chicago"))
    factors = [hours.factor("STORE-24", at) for at in chicago]
    assert sum(factors) / len(factors) == pytest.approx(1.0, abs=0.001)
    mean = sum(STORE_CURVE) / 24
    assert factors[3 * 60] == pytest.approx(STORE_CURVE[3] / mean)  # read on the store's own clock
    assert hours.factor("STORE-24", datetime(2026, 3, 10, 9, tzinfo=UTC)) == pytest.approx(
        STORE_CURVE[3] / mean
    )


def test_the_simulator_sells_and_takes_returns_only_at_open_stores() -> None:
    late = nl_store("STORE-LATE", {"daily": ["12:00-23:00"]})
    network = NetworkConfig(locations=[LocationRecord(location_id="DC-1", type="dc"), nl_store(), late])
    shape = load_hours(HOURLY_SHAPE)
    night = datetime(2026, 3, 10, 3, tzinfo=AMSTERDAM)
    day = RetailDay(network, seed=3, run_id="t", clock=lambda: night, hours=shape)
    day.opening()
    assert day.sales_factor() == 0.0
    kinds = Counter(item.kind for _ in range(500) for item in day.step())
    assert kinds["sale"] == 0 == kinds["return"]
    evening = datetime(2026, 3, 10, 22, tzinfo=AMSTERDAM)  # only STORE-LATE is open
    day = RetailDay(network, seed=3, run_id="t", clock=lambda: evening, hours=shape)
    day.opening()
    sold = Counter(
        item.model.location_id  # type: ignore[attr-defined]
        for _ in range(500)
        for item in day.step()
        if item.kind in ("sale", "return")
    )
    assert set(sold) == {"STORE-LATE"} and sold["STORE-LATE"] > 50


# --- the webshop: customers by the hour ------------------------------------------------------------


def test_webshop_customers_follow_the_curve_and_the_days_mean_rate() -> None:
    shape = load_hours(HOURLY_SHAPE)
    arrivals = WebArrivals(4.0, shape, "Europe/Amsterdam", random.Random(5))
    start = datetime(2026, 3, 10, tzinfo=AMSTERDAM)
    by_hour: Counter[int] = Counter()
    t = 0.0
    while t < 86_400 * 20:  # twenty days, on a virtual clock
        t += arrivals.next_gap_s()
        at = start + timedelta(seconds=t)
        if arrivals.stays(at):
            by_hour[at.astimezone(AMSTERDAM).hour] += 1
    per_day = sum(by_hour.values()) / 20
    assert per_day == pytest.approx(4.0 * 1440, rel=0.03)  # the day's mean rate is kept
    for hour in (3, 11, 20):
        assert by_hour[hour] / 20 == pytest.approx(4.0 * 60 * shape.web[hour], rel=0.25, abs=3)


def test_without_a_shape_every_candidate_is_a_customer() -> None:
    arrivals = WebArrivals(6.0, None, "UTC", random.Random(1))
    assert arrivals.rate_per_s == pytest.approx(0.1)
    assert all(arrivals.stays(datetime(2026, 1, 1, h, tzinfo=UTC)) for h in range(24))


def test_the_webshop_keeps_the_time_of_most_of_its_stores() -> None:
    stores = [nl_store("A"), nl_store("B"), LocationRecord(location_id="C", type="store", timezone="UTC")]
    assert web_zone(stores) == "Europe/Amsterdam"
    assert web_zone([]) == "UTC"
