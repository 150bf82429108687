"""Forecast-aware protection: the units a store keeps for its own walk-in shoppers.

A store's protection for a SKU is a quantile of its walk-in demand from now until its next
replenishment truck arrives: a unit that will probably sell in the store is not offered online.
It lowers what online channels see of the store (visibility) and makes the store's remaining stock
dearer to ship from (sourcing). Demand comes from a ``DemandForecaster`` learned from POS sales, so
a trained model can replace the streaming one without touching this module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from oms_streams.domain.calendar import MS_PER_DAY, MS_PER_MINUTE, local_date, local_time_ms, next_weekly
from oms_streams.domain.forecast import DemandForecaster, StateT
from oms_streams.domain.network import Route, Site

_LAST_DAY: dict[str, tuple[int, int, int]] = {}
"""Time zone -> (start ms, end ms, ordinal) of the local day last asked for: a ledger asks once per
till sale, nearly always about the same day, and a zone conversion costs more than the sale."""


def day_index(timezone: str, t_ms: int) -> int:
    """The store's local day as a day number (its weekday is ``day_index % 7`` shifted consistently)."""
    known = _LAST_DAY.get(timezone)
    if known is not None and known[0] <= t_ms < known[1]:
        return known[2]
    day = local_date(timezone, t_ms)
    start, end = local_time_ms(timezone, day, 0), local_time_ms(timezone, day, 24 * 60)
    if start <= t_ms < end:  # the day as its midnights bound it (a DST day is 23 or 25 hours)
        _LAST_DAY[timezone] = (start, end, day.toordinal())
    return day.toordinal()


def next_replenishment_ms(
    store_id: str, routes: Sequence[Route], sites: dict[str, Site] | None, now_ms: int
) -> int | None:
    """When the next route truck that stops at the store arrives there, or None if no route does."""
    best: int | None = None
    for route in routes:
        for stop_id, minutes in route.stops:
            if stop_id != store_id:
                continue
            origin = (sites or {}).get(route.origin_id)
            tz = origin.calendar.timezone if origin is not None else "UTC"
            departure = next_weekly(route.departures, tz, now_ms, origin.calendar if origin else None)
            if departure is not None:
                arrival = departure + minutes * MS_PER_MINUTE
                best = arrival if best is None else min(best, arrival)
    return best


def protection_units(
    forecaster: DemandForecaster[StateT],
    state: StateT | None,
    today: int,
    now_ms: int,
    replenished_at_ms: int | None,
    quantile: float,
    default_days: int,
) -> int:
    """Units to protect: the demand ``quantile`` over the days until the next replenishment
    (``default_days`` when no route serves the store), counting today; 0 without any sales yet."""
    if state is None or quantile <= 0.0:
        return 0
    days = default_days
    if replenished_at_ms is not None:
        days = max(1, math.ceil((replenished_at_ms - now_ms) / MS_PER_DAY))
    demand = forecaster.demand_quantile(state, today, days, min(quantile, 0.999))
    return max(0, math.ceil(demand - 1e-9))
