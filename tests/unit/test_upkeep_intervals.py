"""Upkeep timers that decide business behaviour keep their business resolution on a fast clock
(``clock.upkeep_interval_s``); technical ones, and every one without ``OMS_CLOCK``, stay as set."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from oms_streams import clock
from oms_streams.config import Settings
from oms_streams.streaming import upkeep


@pytest.fixture
def at_speed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[float | None], None]]:
    def set_speed(speed: float | None) -> None:
        if speed is None:
            monkeypatch.delenv(clock.ENV, raising=False)
        else:
            monkeypatch.setenv(clock.ENV, f"2026-03-10T06:00:00+01:00@{time.time():.3f}*{speed:g}")
        clock.current.cache_clear()

    yield set_speed
    monkeypatch.delenv(clock.ENV, raising=False)
    clock.current.cache_clear()


def test_without_a_clock_an_interval_is_the_setting(at_speed: Callable[[float | None], None]) -> None:
    at_speed(None)
    assert [clock.upkeep_interval_s(s) for s in (0.01, 1.0, 5.0, 3600.0)] == [0.01, 1.0, 5.0, 3600.0]
    at_speed(1)
    assert clock.upkeep_interval_s(5.0) == 5.0


def test_a_fast_clock_divides_the_interval_by_its_speed_down_to_a_floor(
    at_speed: Callable[[float | None], None],
) -> None:
    at_speed(600)
    assert clock.upkeep_interval_s(3600.0) == pytest.approx(6.0)  # protection: every business hour
    assert clock.upkeep_interval_s(300.0) == pytest.approx(0.5)
    assert clock.upkeep_interval_s(5.0) == clock.UPKEEP_FLOOR_S  # hold expiry: 2.5 business minutes
    assert clock.upkeep_interval_s(0.1) == 0.1  # a setting already under the floor is kept
    at_speed(2)
    assert clock.upkeep_interval_s(5.0) == pytest.approx(2.5)
    at_speed(0.5)  # a slow clock: fewer wall checks, the same business resolution
    assert clock.upkeep_interval_s(5.0) == pytest.approx(10.0)


class FakeApp:
    """Records the intervals of the timers the upkeep functions register."""

    def __init__(self) -> None:
        self.timers: dict[str, float] = {}
        self.on_partitions_revoked = self.on_rebalance_complete = self

    def timer(self, interval: float) -> Callable[[Any], Any]:
        def register(function: Any) -> Any:
            self.timers[function.__name__] = interval
            return function

        return register

    def task(self, function: Any) -> Any:
        return function

    def connect(self, function: Any) -> Any:
        return function


def timers(settings: Settings) -> dict[str, float]:
    app = FakeApp()
    upkeep.order_upkeep(app, settings, *(object(),) * 3)  # type: ignore[arg-type]
    upkeep.ledger_upkeep(app, settings, object(), object())  # type: ignore[arg-type]
    return app.timers


def test_the_business_timers_follow_the_clock_and_the_technical_ones_do_not(
    at_speed: Callable[[float | None], None],
) -> None:
    settings = Settings(hold_expiry_check_s=5.0, protection_refresh_s=3600.0, backorder_check_interval_s=30.0)
    at_speed(None)
    wall = timers(settings)
    assert wall["release_expired_holds"] == 5.0 and wall["refresh_protection"] == 3600.0
    at_speed(600)
    fast = timers(settings)
    business = {
        "check_overdue_milestones",
        "source_backorders_again",
        "remove_finished_rows",
        "refresh_protection",
        "release_expired_holds",
    }
    for name in business:
        assert fast[name] == clock.upkeep_interval_s(wall[name]) < wall[name], name
    assert fast["refresh_protection"] == pytest.approx(6.0)
    for name in set(wall) - business:  # reply chasing, the dedupe sweep: technical
        assert fast[name] == wall[name], name
