"""Business time: the wall clock, or a simulated clock that every process of a demo shares.

``OMS_CLOCK`` unset (the default) is exactly the wall clock: ``now_ms()`` is ``time.time_ns() //
1_000_000``. Set, it is ``START@WALL*SPEED``: business time was ``START`` (ISO 8601 with its UTC
offset) at wall-clock epoch second ``WALL`` and runs ``SPEED`` times as fast as the wall clock, e.g.
``OMS_CLOCK=2026-03-10T06:00:00+01:00@1765180800*60`` plays an Amsterdam day from 06:00 at an hour a
minute. Every process reads the same text, so they agree on the business time to the precision of
their wall clocks (NTP), whenever each started: ``WALL`` is an absolute instant, never a process's
own start.

Only business time follows it: when an event happened, a promise's ``now``, milestones and risk
checks, hold expiry, the forecaster's local day, the simulators' events. Technical time (reply
and delivery timeouts, stall alarms, broker sessions, metrics' durations) stays on the wall and
monotonic clocks. The pure domain never reads a clock: its callers pass ``now`` in. See
docs/demo-clock.md for which reading is which.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime

ENV = "OMS_CLOCK"


class ClockError(ValueError):
    """``OMS_CLOCK`` is set but not ``START@WALL*SPEED``."""


@dataclass(frozen=True, slots=True)
class SimulatedClock:
    start_ms: int
    """Business time (epoch ms) at ``wall_ms``."""
    wall_ms: int
    """The wall-clock instant (epoch ms) the business time was ``start_ms``."""
    speed: float
    """Business seconds per wall second."""

    def business_ms(self, wall_ms: int) -> int:
        return self.start_ms + round((wall_ms - self.wall_ms) * self.speed)

    def wall_seconds(self, business_seconds: float) -> float:
        """Wall seconds a span of business time takes."""
        return business_seconds / self.speed

    def __str__(self) -> str:
        start = datetime.fromtimestamp(self.start_ms / 1000, UTC).isoformat()
        return f"{start}@{self.wall_ms / 1000:.3f}*{self.speed:g}"


def parse(text: str) -> SimulatedClock | None:
    """``START@WALL*SPEED`` to a clock; empty text: None (the wall clock)."""
    text = text.strip()
    if not text:
        return None
    try:
        start_text, rest = text.split("@", 1)
        wall_text, speed_text = rest.split("*", 1)
        start, wall, speed = datetime.fromisoformat(start_text), float(wall_text), float(speed_text)
    except ValueError as error:
        example = "2026-03-10T06:00:00+01:00@1765180800*60"
        raise ClockError(f"{ENV}={text!r}: expected START@WALL*SPEED, e.g. {example} ({error})") from error
    if start.tzinfo is None:
        raise ClockError(f"{ENV}={text!r}: START needs its UTC offset (e.g. +01:00 or Z)")
    if not speed > 0 or speed > 100_000:
        raise ClockError(f"{ENV}={text!r}: SPEED must be above 0 and at most 100000")
    if not 0 < wall < 2**33:
        raise ClockError(f"{ENV}={text!r}: WALL must be a Unix time in seconds")
    return SimulatedClock(round(start.timestamp() * 1000), round(wall * 1000), speed)


@functools.cache
def current() -> SimulatedClock | None:
    """The process's clock, read once from ``OMS_CLOCK`` (None: the wall clock)."""
    return parse(os.environ.get(ENV, ""))


def now_ms() -> int:
    """Business time now, epoch milliseconds."""
    wall_ms = time.time_ns() // 1_000_000
    clock = current()
    return wall_ms if clock is None else clock.business_ms(wall_ms)


def business_ms(wall_ms: int) -> int:
    """A wall-clock instant (a Kafka record's timestamp) in business time (itself on the wall clock)."""
    clock = current()
    return wall_ms if clock is None else clock.business_ms(wall_ms)


def now() -> datetime:
    """Business time now, aware (UTC)."""
    clock = current()
    if clock is None:
        return datetime.now(UTC)
    return datetime.fromtimestamp(now_ms() / 1000, UTC)


def speed() -> float:
    """Business seconds per wall second (1 on the wall clock)."""
    clock = current()
    return 1.0 if clock is None else clock.speed


def wall_span_ms(wall_seconds: float) -> int:
    """A technical span (a timeout, a grace for clock skew) of ``wall_seconds``, in the business
    milliseconds it is compared in: the same wall time at any speed."""
    return round(wall_seconds * 1000 * speed())


def wall_seconds(business_seconds: float) -> float:
    """Wall seconds a span of business time takes (the span itself on the wall clock)."""
    return business_seconds / speed()


UPKEEP_FLOOR_S = 0.25
"""The shortest wall interval ``upkeep_interval_s`` gives a timer on a fast clock (4 checks a wall
second: at 600 x, every 2.5 business minutes)."""


def upkeep_interval_s(business_seconds: float) -> float:
    """The wall interval of a timer whose checks decide business behaviour (hold expiry, milestones
    and risk, backorders, protection, retention), set as ``business_seconds``: the same business
    resolution at any speed, but never shorter than ``UPKEEP_FLOOR_S`` (nor than the setting itself
    when that is shorter). On the wall clock the setting as is."""
    clock = current()
    if clock is None:
        return business_seconds
    return max(clock.wall_seconds(business_seconds), min(UPKEEP_FLOOR_S, business_seconds))
