"""Streaming store demand per (store, SKU): level + weekly seasonality, with its uncertainty.

A store protects stock for its own shoppers: the protection quantity is a demand quantile over the
days until its next replenishment. Demand is learned from POS sales as they stream in, one small
immutable ``DemandState`` per (store, SKU), updated in O(1) per sale.

Sales are summed per day (``record_sale``); a day is closed when a sale of a later day arrives, and
its total is learned then (``observe``). Days without a sale between two closed days are zero-demand
days and are learned as such (at most ``MAX_GAP_DAYS`` of them, so a long silence costs a bounded
update; after that the state has forgotten its level anyway). A total for a day at or before the
last closed day is ignored: a redelivered or late total must not be learned twice.

The model is Holt-Winters exponential smoothing with multiplicative weekly seasonality and no trend
(seven indices, one per ``day_index % 7``), one-step forecast ``level * season[day % 7]``::

    level'       = alpha * units / season[i] + (1 - alpha) * level
    season'[i]   = gamma * units / level' + (1 - gamma) * season[i]
    variance'    = beta * (units - forecast)^2 + (1 - beta) * variance

The first ``SEASON_DAYS`` closed days only warm up: then level = their mean and season[i] = day /
mean. Uncertainty is the exponentially weighted variance of the one-step errors; for a total over k
days the errors of a level that is itself re-estimated add up (the simple exponential smoothing
result): ``Var = variance * sum_{m<k} (1 + alpha * m)^2``. The quantile is a normal approximation of
that total, never below zero and never smaller than the quantile of a shorter window (O(days)).

Smoothing constants (``DEFAULT_ALPHA``, ``DEFAULT_GAMMA``) were chosen by a grid search
(alpha, gamma in {0.02, 0.05, 0.1, 0.2, 0.3}, additive vs multiplicative seasonality) minimising
the mean one-step MASE over the 70 M5 store x department series on days d_1339..d_1520 only (the
half year ending a year before the 28-day test window of ``oms forecast backtest``); the test window
was never looked at. ``DEFAULT_BETA`` was set, not tuned.

``DemandForecaster`` is the interface the rest of the system uses, so a trained model (with events,
prices, SNAP days) can replace this one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Protocol, TypeVar

from oms_streams.domain.values import value

SEASON_DAYS = 7
"""One seasonal index per weekday."""
MAX_GAP_DAYS = 56
"""Zero-demand days learned at most for one silence; longer gaps are learned as this many."""
MIN_SEASON = 0.05
"""Floor of a seasonal index: a weekday that sold nothing for weeks must not divide by ~0."""
DEFAULT_ALPHA = 0.3
DEFAULT_GAMMA = 0.05
DEFAULT_BETA = 0.05

StateT = TypeVar("StateT")


class DemandForecaster(Protocol[StateT]):
    """What a demand model offers; states are immutable values kept per (store, SKU)."""

    def initial(self) -> StateT:
        """The state before any sale."""
        ...

    def record_sale(self, state: StateT, day_index: int, units: float) -> StateT:
        """Add units sold on ``day_index``; a later day closes (and learns) the open one."""
        ...

    def observe(self, state: StateT, day_index: int, units: float) -> StateT:
        """Learn the closed total of ``day_index``."""
        ...

    def forecast(self, state: StateT, from_day: int, horizon_days: int) -> list[float]:
        """Mean demand of each day ``from_day .. from_day + horizon_days - 1``."""
        ...

    def demand_quantile(self, state: StateT, from_day: int, days: int, q: float) -> float:
        """The q-quantile of total demand over ``days`` days from ``from_day``, never negative."""
        ...


@value(frozen=True)
class DemandState:
    """Bounded state of one (store, SKU): a dozen floats whatever the history length.

    ``last_day`` is the last closed (learned) day, ``None`` before the first. ``warmup`` holds the
    totals of the first closed days until a week is seen, then stays empty. ``open_day`` and
    ``open_units`` are the running total of the day still being sold.
    """

    level: float = 0.0
    season: tuple[float, ...] = (1.0,) * SEASON_DAYS
    variance: float = 0.0
    last_day: int | None = None
    warmup: tuple[float, ...] = ()
    open_day: int | None = None
    open_units: float = 0.0

    @property
    def ready(self) -> bool:
        """Whether a full week was seen, so level and seasonality are estimated."""
        return self.last_day is not None and not self.warmup


@dataclass(frozen=True, slots=True)
class HoltWintersForecaster:
    """Level + multiplicative weekly seasonality + exponentially weighted error variance."""

    alpha: float = DEFAULT_ALPHA
    gamma: float = DEFAULT_GAMMA
    beta: float = DEFAULT_BETA

    def __post_init__(self) -> None:
        for name in ("alpha", "gamma", "beta"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value}")

    def initial(self) -> DemandState:
        return DemandState()

    def record_sale(self, state: DemandState, day_index: int, units: float) -> DemandState:
        if state.open_day is None or day_index == state.open_day:
            # The constructor, not ``replace``: once per till sale learned, and replace's field
            # introspection costs more than the rest of the step.
            return DemandState(
                state.level,
                state.season,
                state.variance,
                state.last_day,
                state.warmup,
                day_index,
                state.open_units + units,
            )
        if day_index < state.open_day:
            return state  # the day was closed: a late sale cannot be learned without double counting
        closed = self.observe(state, state.open_day, state.open_units)
        return replace(closed, open_day=day_index, open_units=units)

    def observe(self, state: DemandState, day_index: int, units: float) -> DemandState:
        units = max(0.0, units)
        if state.last_day is None:
            return replace(state, last_day=day_index, warmup=(units,))
        if day_index <= state.last_day:
            return state
        gap = min(day_index - state.last_day - 1, MAX_GAP_DAYS)
        # days without a sale were zero-demand days; a longer silence is learned as MAX_GAP_DAYS
        for offset in range(gap, 0, -1):
            state = self._learn(state, day_index - offset, 0.0)
        return self._learn(state, day_index, units)

    def forecast(self, state: DemandState, from_day: int, horizon_days: int) -> list[float]:
        if state.last_day is None:
            return [0.0] * horizon_days
        if state.warmup:
            mean = sum(state.warmup) / len(state.warmup)
            return [mean] * horizon_days
        return [
            state.level * state.season[day % SEASON_DAYS] for day in range(from_day, from_day + horizon_days)
        ]

    def demand_quantile(self, state: DemandState, from_day: int, days: int, q: float) -> float:
        if not 0.0 < q < 1.0:
            raise ValueError(f"q must be in (0, 1), got {q}")
        if days <= 0:
            return 0.0
        z = NormalDist().inv_cdf(q)
        per_day = self._variance(state)
        total, best = 0.0, 0.0
        # demand is never negative, so a longer window's total can't be smaller: below the median the
        # normal approximation could shrink with more days, hence the running maximum (O(days))
        for k, mean in enumerate(self.forecast(state, from_day, days), start=1):
            total += mean
            spread = math.sqrt(max(0.0, per_day * _level_error_factor(self.alpha, k)))
            best = max(best, total + z * spread)
        return best

    def _variance(self, state: DemandState) -> float:
        if state.warmup:
            mean = sum(state.warmup) / len(state.warmup)
            # before a week is seen the spread of the days so far (or a Poisson guess) stands in
            spread = sum((x - mean) ** 2 for x in state.warmup) / len(state.warmup)
            return max(spread, mean)
        return state.variance

    def _learn(self, state: DemandState, day: int, units: float) -> DemandState:
        if state.warmup:
            warmup = (*state.warmup, units)
            if len(warmup) < SEASON_DAYS:
                return replace(state, last_day=day, warmup=warmup)
            level = sum(warmup) / SEASON_DAYS
            season = [1.0] * SEASON_DAYS
            for offset, value in enumerate(warmup):
                weekday = (day - SEASON_DAYS + 1 + offset) % SEASON_DAYS
                season[weekday] = max(MIN_SEASON, value / level) if level > 0 else 1.0
            spread = sum((x - level) ** 2 for x in warmup) / SEASON_DAYS
            return replace(
                state,
                level=level,
                season=tuple(season),
                variance=spread,
                last_day=day,
                warmup=(),
            )
        weekday = day % SEASON_DAYS
        index = state.season[weekday]
        error = units - state.level * index
        level = self.alpha * units / index + (1.0 - self.alpha) * state.level
        season = list(state.season)
        if level > 0:
            season[weekday] = max(MIN_SEASON, self.gamma * units / level + (1.0 - self.gamma) * index)
        return replace(
            state,
            level=level,
            season=tuple(season),
            variance=self.beta * error * error + (1.0 - self.beta) * state.variance,
            last_day=day,
        )


def _level_error_factor(alpha: float, days: int) -> float:
    """sum_{m=0}^{days-1} (1 + alpha m)^2 in closed form: the k-day total's variance per unit."""
    n = days
    sum_m = (n - 1) * n / 2
    sum_m2 = (n - 1) * n * (2 * n - 1) / 6
    return n + 2 * alpha * sum_m + alpha * alpha * sum_m2
