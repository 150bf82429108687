"""Business time (``oms_streams.clock``): the wall clock by default, else the shared simulated clock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from oms_streams import clock
from oms_streams.clock import ClockError, SimulatedClock, parse
from oms_streams.tools.demo_clock import demo_clock, main
from oms_streams.tools.demo_options import DEMO_NETWORK

START = datetime(2026, 3, 10, 5, tzinfo=UTC)  # 06:00 in Amsterdam


@pytest.fixture
def env_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    clock.current.cache_clear()
    yield monkeypatch
    monkeypatch.delenv(clock.ENV, raising=False)
    clock.current.cache_clear()


def test_without_a_setting_it_is_exactly_the_wall_clock(env_clock: pytest.MonkeyPatch) -> None:
    env_clock.delenv(clock.ENV, raising=False)
    before = time.time_ns() // 1_000_000
    now = clock.now_ms()
    after = time.time_ns() // 1_000_000
    assert before <= now <= after
    assert clock.current() is None and clock.speed() == 1.0 and clock.wall_seconds(90) == 90
    assert clock.wall_span_ms(30) == 30_000 and clock.business_ms(1_765_180_800_123) == 1_765_180_800_123
    assert clock.now().tzinfo is UTC and abs(clock.now().timestamp() - time.time()) < 5
    env_clock.setenv(clock.ENV, "  ")
    clock.current.cache_clear()
    assert clock.current() is None


def test_business_time_runs_from_its_start_at_its_speed() -> None:
    simulated = parse("2026-03-10T06:00:00+01:00@1765180800*60")
    assert simulated == SimulatedClock(int(START.timestamp() * 1000), 1_765_180_800_000, 60.0)
    assert simulated is not None
    assert simulated.business_ms(1_765_180_800_000) == START.timestamp() * 1000
    # One wall minute later it is an hour later; a wall minute before, an hour before.
    assert simulated.business_ms(1_765_180_860_000) == (START.timestamp() + 3600) * 1000
    assert simulated.business_ms(1_765_180_740_000) == (START.timestamp() - 3600) * 1000
    assert simulated.wall_seconds(3600) == 60
    assert parse(str(simulated)) == simulated


def test_every_process_reading_the_setting_agrees(env_clock: pytest.MonkeyPatch) -> None:
    wall = round(time.time(), 3)
    env_clock.setenv(clock.ENV, f"2026-03-10T05:00:00Z@{wall:.3f}*120")
    clock.current.cache_clear()
    assert clock.speed() == 120 and clock.wall_seconds(120) == 1
    assert clock.wall_span_ms(30) == 30 * 1000 * 120  # a 30 s timeout: 30 wall seconds, 1 business hour
    assert clock.business_ms(round(wall * 1000)) == START.timestamp() * 1000
    elapsed_wall_s = time.time() - wall
    business = clock.now()
    assert business.tzinfo is UTC
    assert (business - START).total_seconds() == pytest.approx(elapsed_wall_s * 120, abs=120)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-03-10T06:00:00+01:00", "START@WALL"),
        ("2026-03-10T06:00:00+01:00@1765180800", "START@WALL"),
        ("tomorrow@1765180800*60", "START@WALL"),
        ("2026-03-10T06:00:00@1765180800*60", "UTC offset"),
        ("2026-03-10T06:00:00Z@1765180800*0", "SPEED"),
        ("2026-03-10T06:00:00Z@1765180800*-5", "SPEED"),
        ("2026-03-10T06:00:00Z@1765180800*nan", "SPEED"),
        ("2026-03-10T06:00:00Z@1765180800000*60", "WALL"),
    ],
)
def test_a_bad_setting_is_refused_with_what_it_should_be(text: str, message: str) -> None:
    with pytest.raises(ClockError, match=message):
        parse(text)


def test_the_demo_clock_starts_at_six_in_the_networks_zone() -> None:
    wall = datetime(2026, 3, 10, 15, 30, tzinfo=UTC).timestamp()  # 16:30 in Amsterdam
    text = demo_clock(DEMO_NETWORK, 60, wall_s=wall)
    assert text == f"2026-03-10T06:00:00+01:00@{wall:.3f}*60"
    simulated = parse(text)
    assert simulated is not None and simulated.business_ms(int(wall * 1000)) == START.timestamp() * 1000
    assert demo_clock(DEMO_NETWORK, 600, "2026-07-01T08:00:00Z", wall).startswith(
        "2026-07-01T08:00:00+00:00@"
    )
    with pytest.raises(ClockError, match="SPEED"):
        demo_clock(DEMO_NETWORK, 0, wall_s=wall)
    assert main(["--speed", "60", "--start", "2026-07-01T08:00"]) == 2  # no offset: refused in one line
