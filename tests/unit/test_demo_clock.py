"""The demo's simulators on business time (``oms_streams.clock``): with ``OMS_CLOCK`` set they stamp
and pace their events on the shared simulated clock; without it, on the wall clock as before."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from oms_streams import clock
from oms_streams.schemas.returns import Origin
from oms_streams.streaming.config_publisher import load_network_config
from oms_streams.streaming.sourcing_runtime import placed_at
from oms_streams.tools.fulfilment_sim import FaultRates, FulfilmentPlanner, FulfilmentTimes, Step, occurred_at
from oms_streams.tools.simulator import SKUS, RetailDay
from oms_streams.tools.webshop_sim import PlacedOrder, Webshop
from tests.unit.test_demo_fulfilment import allocation

NETWORK = load_network_config(Path(__file__).resolve().parent.parent / "fixtures" / "network.yaml")
START = datetime(2026, 3, 10, 5, tzinfo=UTC)


@pytest.fixture
def simulated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Business time START now, running at 60 x the wall clock."""
    monkeypatch.setenv(clock.ENV, f"{START.isoformat()}@{time.time():.3f}*60")
    clock.current.cache_clear()
    yield
    monkeypatch.delenv(clock.ENV)
    clock.current.cache_clear()


def near_start(at: datetime) -> bool:
    return abs((at - START).total_seconds()) < 600  # within ten business minutes (10 wall seconds)


def test_the_stock_simulator_stamps_business_time(simulated: None) -> None:
    day = RetailDay(NETWORK, seed=3, run_id="t")
    stamps = [item.model.occurred_at for item in day.opening()]  # type: ignore[attr-defined]
    stamps += [item.model.occurred_at for _ in range(20) for item in day.step()]  # type: ignore[attr-defined]
    assert all(near_start(at) for at in stamps)
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)  # still strictly increasing


def test_the_webshop_and_the_wms_stamp_business_time(simulated: None) -> None:
    shop = Webshop(NETWORK, SKUS, "http://127.0.0.1:1", random.Random(1))
    order = PlacedOrder("O-1", "standard", Origin(lat=52.09, lon=5.11), START, {"SKU-BELL": 1})
    assert near_start(shop.parcel_return(order, {"SKU-BELL": 1}, "e-1").occurred_at)
    assert near_start(occurred_at(Step(1.0, "picked", "DC-NORTH"), None))


def test_a_late_pick_is_behind_by_wall_seconds(simulated: None) -> None:
    wms = FulfilmentPlanner(NETWORK, random.Random(1), FulfilmentTimes(), FaultRates(late_pick=1.0))
    now = clock.now()
    assert near_start(now)
    first = wms.plan(allocation("O-1", now - timedelta(seconds=1)), now=now)[0]
    # 90 wall seconds behind its milestone: 90 business minutes at 60 x.
    assert first.not_before == now + timedelta(seconds=90 * 60)


def test_without_the_setting_the_simulators_use_the_wall_clock() -> None:
    clock.current.cache_clear()
    assert clock.current() is None
    day = RetailDay(NETWORK, seed=3, run_id="t")
    stamp = day.opening()[0].model.occurred_at  # type: ignore[attr-defined]
    assert abs((stamp - datetime.now(UTC)).total_seconds()) < 5
    assert abs((occurred_at(Step(1.0, "picked", "DC-NORTH"), None) - datetime.now(UTC)).total_seconds()) < 5


def test_a_placement_reached_its_topic_at_the_business_time_of_the_brokers_stamp(simulated: None) -> None:
    """The token's expiry is checked against the broker's (wall) stamp, mapped to business time."""
    wall_s = time.time()
    event = SimpleNamespace(message=SimpleNamespace(timestamp=wall_s))
    later = clock.now_ms() + 3_600_000
    assert placed_at(event, later) == clock.business_ms(int(wall_s * 1000))
    assert near_start(datetime.fromtimestamp(placed_at(event, later) / 1000, UTC))
    earlier = clock.now_ms() - 600_000
    assert placed_at(event, earlier) == earlier  # never after now
    no_stamp = SimpleNamespace(message=SimpleNamespace(timestamp=None))
    assert placed_at(no_stamp, later) == later
