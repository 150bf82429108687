"""Working time over a network calendar: opening hours, closed dates and weekly schedules.

Instants in and out are epoch milliseconds (UTC); the rules (opening hours, carrier pickups, route
departures) are local wall-clock times, so each local day is turned into UTC intervals through
zoneinfo. That is what makes a 09:00 opening stay 09:00 across a daylight-saving change.

Daylight saving never raises: a wall-clock time that does not exist (spring forward) or happens
twice (fall back) is read with fold=0 (the offset in force before the change) and the resulting
intervals are normalised so they stay ordered and non-overlapping.

Every search stops after ``HORIZON_DAYS`` days; beyond it the answer is None ("not within any
horizon we would promise on"), so a calendar that never opens cannot loop forever.

Speed: a promise runs per HTTP request, so the per-(calendar, date) conversions and the ZoneInfo
objects are cached; the caches are bounded and hold only values derived from immutable inputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from oms_streams.domain.network import Calendar, DayTime

HORIZON_DAYS = 60
"""How far (in days) any calendar search looks before giving up."""

MS_PER_MINUTE = 60_000
MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000

_EPOCH = datetime(1970, 1, 1)
_ONE_MS = timedelta(milliseconds=1)

Window = tuple[int, int]
"""[start, end] in epoch milliseconds UTC."""


@lru_cache(maxsize=512)
def zone(tz: str) -> ZoneInfo:
    """The (cached) ZoneInfo for a time-zone name."""
    return ZoneInfo(tz)


def _ordinal(tz: str, t_ms: int) -> int:
    """Proleptic Gregorian ordinal of the local date of ``t_ms`` in ``tz``."""
    return datetime.fromtimestamp(t_ms / 1000, zone(tz)).toordinal()


def local_date(tz: str, t_ms: int) -> date:
    """The local calendar date of an instant in a time zone."""
    return date.fromordinal(_ordinal(tz, t_ms))


def _weekday(ordinal: int) -> int:
    # Ordinal 1 (0001-01-01) was a Monday, and Monday is weekday 0 here as in datetime.
    return (ordinal - 1) % 7


@lru_cache(maxsize=65_536)
def _local_ms(tz: str, ordinal: int, minute: int) -> int:
    """Local wall-clock ``minute`` (0..1440) of a local date, as epoch ms UTC.

    fold=0 for times that are skipped or repeated by a DST change: never raises."""
    d = date.fromordinal(ordinal)
    # Aware + timedelta is wall-clock arithmetic in Python, so minute 1440 is the next local midnight.
    wall = datetime(d.year, d.month, d.day, tzinfo=zone(tz)) + timedelta(minutes=minute)
    offset = wall.utcoffset() or timedelta(0)
    return (wall.replace(tzinfo=None) - offset - _EPOCH) // _ONE_MS


def local_time_ms(tz: str, day: date, minute: int) -> int:
    """Local wall-clock time (``minute`` after midnight of ``day`` in ``tz``) as epoch ms UTC."""
    return _local_ms(tz, day.toordinal(), minute)


def is_working_date(cal: Calendar, day: date) -> bool:
    """The location (or carrier) works on this local date: not a closed date, and open that weekday."""
    return day not in cal.closed_dates and bool(cal.weekly[day.weekday()])


@lru_cache(maxsize=65_536)
def _day(cal: Calendar, ordinal: int) -> tuple[Window, ...]:
    """The opening intervals of one local date, in UTC ms, ordered and non-overlapping."""
    if date.fromordinal(ordinal) in cal.closed_dates:
        return ()
    out: list[Window] = []
    previous_end = -(2**62)
    for start_minute, end_minute in cal.weekly[_weekday(ordinal)]:
        # Normalise: a DST gap can map a later wall time to an earlier instant; clip, never overlap.
        start = max(_local_ms(cal.timezone, ordinal, start_minute), previous_end)
        end = _local_ms(cal.timezone, ordinal, end_minute)
        if end > start:
            out.append((start, end))
            previous_end = end
    return tuple(out)


def opening_intervals(cal: Calendar, day: date) -> tuple[Window, ...]:
    """The opening intervals of a local date in UTC ms (empty on a closed date or weekday)."""
    return _day(cal, day.toordinal())


def _forward(cal: Calendar, t_ms: int) -> Iterator[Window]:
    # Start one day early: after DST normalisation an interval may straddle the local midnight.
    first = _ordinal(cal.timezone, t_ms) - 1
    for ordinal in range(first, first + HORIZON_DAYS + 2):
        yield from _day(cal, ordinal)


def _backward(cal: Calendar, t_ms: int) -> Iterator[Window]:
    last = _ordinal(cal.timezone, t_ms) + 1
    for ordinal in range(last, last - HORIZON_DAYS - 2, -1):
        yield from reversed(_day(cal, ordinal))


def is_open(cal: Calendar, t_ms: int) -> bool:
    """Whether ``t_ms`` falls inside an opening interval ([start, end), closing time is closed)."""
    ordinal = _ordinal(cal.timezone, t_ms)
    return any(start <= t_ms < end for o in (ordinal - 1, ordinal) for start, end in _day(cal, o))


def next_open(cal: Calendar, t_ms: int) -> int | None:
    """``t_ms`` itself if open, else the next opening; None beyond the horizon."""
    for start, end in _forward(cal, t_ms):
        if end > t_ms:
            return max(start, t_ms)
    return None


def add_working_minutes(cal: Calendar, t_ms: int, minutes: int) -> int | None:
    """When ``minutes`` of work started at ``t_ms`` is done, counting only opening time.

    Zero minutes from a closed moment gives the next opening (work cannot even start before it);
    work that ends exactly at closing time ends at the closing instant."""
    if minutes < 0:
        raise ValueError(f"minutes must be >= 0, got {minutes}")
    remaining = minutes * MS_PER_MINUTE
    cursor = t_ms
    for start, end in _forward(cal, t_ms):
        if end <= cursor:
            continue
        begin = max(start, cursor)
        if remaining <= end - begin:
            return begin + remaining
        remaining -= end - begin
        cursor = end
    return None


def subtract_working_minutes(cal: Calendar, t_ms: int, minutes: int) -> int | None:
    """The latest start from which ``minutes`` of work (opening time only) is done by ``t_ms``.

    The inverse of :func:`add_working_minutes`: for ``m > 0``, ``add(subtract(t, m), m) <= t`` and
    no later start would do. Zero minutes from an open moment is that moment, from a closed moment
    the previous closing time."""
    if minutes < 0:
        raise ValueError(f"minutes must be >= 0, got {minutes}")
    remaining = minutes * MS_PER_MINUTE
    cursor = t_ms
    for start, end in _backward(cal, t_ms):
        if start > cursor:
            continue
        finish = min(end, cursor)
        if remaining <= finish - start:
            return finish - remaining
        remaining -= finish - start
        cursor = start
    return None


@lru_cache(maxsize=1024)
def _by_weekday(times: tuple[DayTime, ...]) -> tuple[tuple[int, ...], ...]:
    """Weekly (weekday, minute) times grouped per weekday, sorted, duplicates dropped."""
    return tuple(tuple(sorted({m for wd, m in times if wd == weekday})) for weekday in range(7))


def _skipped(closed: Calendar | None, ordinal: int) -> bool:
    if closed is None:
        return False
    return not closed.weekly[_weekday(ordinal)] or date.fromordinal(ordinal) in closed.closed_dates


def next_weekly(times: tuple[DayTime, ...], tz: str, t_ms: int, closed: Calendar | None = None) -> int | None:
    """The first weekly time (weekday, local minute in ``tz``) at or after ``t_ms``.

    Dates on which ``closed`` does not work (a closed date, or a weekday without opening hours)
    are skipped: nobody is there to hand a parcel over or load a truck."""
    by_day = _by_weekday(times)
    if not any(by_day):
        return None
    first = _ordinal(tz, t_ms) - 1
    for ordinal in range(first, first + HORIZON_DAYS + 2):
        minutes = by_day[_weekday(ordinal)]
        if not minutes or _skipped(closed, ordinal):
            continue
        for minute in minutes:
            instant = _local_ms(tz, ordinal, minute)
            if instant >= t_ms:
                return instant
    return None


def previous_weekly(
    times: tuple[DayTime, ...], tz: str, t_ms: int, closed: Calendar | None = None
) -> int | None:
    """The latest weekly time at or before ``t_ms``, skipping dates ``closed`` does not work."""
    by_day = _by_weekday(times)
    if not any(by_day):
        return None
    last = _ordinal(tz, t_ms) + 1
    for ordinal in range(last, last - HORIZON_DAYS - 2, -1):
        minutes = by_day[_weekday(ordinal)]
        if not minutes or _skipped(closed, ordinal):
            continue
        for minute in reversed(minutes):
            instant = _local_ms(tz, ordinal, minute)
            if instant <= t_ms:
                return instant
    return None


def day_window(cal: Calendar, t_ms: int) -> Window | None:
    """The hours (first opening to last closing) of the first working day that has not ended at
    ``t_ms``: an arrival during or before a delivery day is delivered within that day's hours, an
    arrival after its end on the next working day. None beyond the horizon."""
    first = _ordinal(cal.timezone, t_ms) - 1
    for ordinal in range(first, first + HORIZON_DAYS + 2):
        intervals = _day(cal, ordinal)
        # The window is inclusive: arriving exactly at the end of the day is still that day.
        if intervals and intervals[-1][1] >= t_ms:
            return intervals[0][0], intervals[-1][1]
    return None
