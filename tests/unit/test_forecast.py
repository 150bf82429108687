"""The streaming store demand model and its backtest.

``tests/fixtures/m5_sample.csv.gz`` (1,197 rows, about 9 KB) was cut from
``../shared/data/demand/m5_store_dept_daily.csv.gz``: all columns, the rows of the three series
CA_1/FOODS_3, TX_2/HOBBIES_1 and WI_3/HOUSEHOLD_2 with day number d_1514 or later (the last 400 days
of the file, d_1514..d_1913; the M5 file has no row on Christmas day, so 399 rows each), in the
file's order, written with Python's csv writer (``\\n`` line ends) into gzip with mtime 0.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oms_streams.cli import main
from oms_streams.domain.forecast import (
    MAX_GAP_DAYS,
    SEASON_DAYS,
    DemandForecaster,
    DemandState,
    HoltWintersForecaster,
)
from oms_streams.tools.forecast_backtest import backtest_file, score_series

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "m5_sample.csv.gz"
MODEL = HoltWintersForecaster()
WEEKLY = (10.0, 12.0, 11.0, 14.0, 25.0, 40.0, 30.0)
"""A store week: quiet early in the week, busy Friday to Sunday."""


def learned(series: list[float], *, first_day: int = 0) -> DemandState:
    state = MODEL.initial()
    for offset, units in enumerate(series):
        state = MODEL.observe(state, first_day + offset, units)
    return state


def noisy_weekly(days: int, *, seed: int = 3) -> list[float]:
    rng = random.Random(seed)
    return [max(0.0, WEEKLY[d % 7] * rng.gauss(1.0, 0.15)) for d in range(days)]


def test_the_state_stays_the_same_size_however_long_the_history() -> None:
    short, long = learned([5.0] * 30), learned([5.0] * 3_000)
    assert len(short.season) == len(long.season) == SEASON_DAYS
    assert short.warmup == long.warmup == ()
    assert not hasattr(short, "__dict__")  # slotted (or a native class when compiled): no room to grow


def test_a_constant_demand_is_learned_as_its_level() -> None:
    state = learned([8.0] * 60)
    assert state.ready
    assert MODEL.forecast(state, 60, 7) == pytest.approx([8.0] * 7)


def test_a_weekly_pattern_is_learned_per_weekday() -> None:
    state = learned([WEEKLY[d % 7] for d in range(140)])
    assert MODEL.forecast(state, 140, 7) == pytest.approx([WEEKLY[d % 7] for d in range(140, 147)], rel=0.01)


def test_on_a_noisy_weekly_series_it_beats_same_weekday_last_week() -> None:
    sales = noisy_weekly(400)
    score = score_series("STORE-UTRECHT-01", "SKU-BIKE-LIGHT", sales, first_day=0, test_days=56)
    assert score is not None
    assert score.mase_model < 0.8 * score.mase_naive


def test_forecasting_before_any_sale_gives_zero_demand() -> None:
    state = MODEL.initial()
    assert MODEL.forecast(state, 0, 3) == [0.0, 0.0, 0.0]
    assert MODEL.demand_quantile(state, 0, 7, 0.95) == 0.0


def test_during_the_first_week_the_mean_so_far_is_forecast() -> None:
    state = learned([4.0, 6.0])
    assert not state.ready
    assert MODEL.forecast(state, 2, 2) == [5.0, 5.0]
    assert MODEL.demand_quantile(state, 2, 2, 0.9) > 10.0


def test_days_without_a_sale_are_learned_as_zero_demand() -> None:
    with_gap = learned([8.0] * 60)
    with_gap = MODEL.observe(with_gap, 70, 8.0)  # days 60..69 sold nothing
    explicit = learned([8.0] * 60 + [0.0] * 10 + [8.0])
    assert with_gap.level == pytest.approx(explicit.level)
    assert with_gap.season == pytest.approx(explicit.season)
    assert with_gap.level < 8.0


def test_a_long_silence_costs_a_bounded_update() -> None:
    state = MODEL.observe(learned([8.0] * 60), 10_000_000, 0.0)
    assert state.last_day == 10_000_000
    assert state.level == pytest.approx(learned([8.0] * 60 + [0.0] * (MAX_GAP_DAYS + 1)).level)


def test_a_total_for_an_already_closed_day_is_ignored() -> None:
    state = learned([8.0] * 30)
    assert MODEL.observe(state, 29, 100.0) is state
    assert MODEL.observe(state, 3, 100.0) is state


def test_sales_are_summed_per_day_and_learned_when_the_next_day_starts() -> None:
    state = MODEL.initial()
    for day in range(30):
        state = MODEL.record_sale(state, day, 3.0)
        state = MODEL.record_sale(state, day, 5.0)
    assert state.open_day == 29 and state.open_units == 8.0
    assert state.last_day == 28
    assert MODEL.forecast(state, 29, 1) == pytest.approx([8.0])
    assert MODEL.record_sale(state, 12, 1.0) is state


def test_the_holt_winters_model_is_a_demand_forecaster() -> None:
    forecaster: DemandForecaster[DemandState] = MODEL
    assert forecaster.forecast(forecaster.initial(), 0, 1) == [0.0]


def test_smoothing_constants_outside_zero_one_are_refused() -> None:
    with pytest.raises(ValueError):
        HoltWintersForecaster(alpha=0.0)
    with pytest.raises(ValueError):
        MODEL.demand_quantile(learned([1.0] * 10), 10, 1, 1.0)


@given(
    history=st.lists(st.floats(min_value=0.0, max_value=500.0), min_size=0, max_size=40),
    q_low=st.floats(min_value=0.01, max_value=0.98),
    q_step=st.floats(min_value=0.0, max_value=0.5),
    days=st.integers(min_value=0, max_value=30),
)
def test_the_protection_quantity_grows_with_q_and_days_and_is_never_negative(
    history: list[float], q_low: float, q_step: float, days: int
) -> None:
    state = learned(history)
    q_high = min(0.99, q_low + q_step)
    start = len(history)
    low = MODEL.demand_quantile(state, start, days, q_low)
    assert low >= 0.0 and math.isfinite(low)
    assert MODEL.demand_quantile(state, start, days, q_high) >= low - 1e-9
    assert MODEL.demand_quantile(state, start, days + 1, q_low) >= low - 1e-9


def test_the_backtest_of_the_sample_reports_the_aggregate() -> None:
    report = backtest_file(FIXTURE, test_days=28)
    aggregate = report.to_dict()["aggregate"]
    assert set(aggregate) == {
        "series",
        "mean_mase_model",
        "mean_mase_seasonal_naive",
        "improvement",
        "model_wins",
        "coverage_q90",
    }
    assert aggregate["series"] == 3
    assert aggregate["mean_mase_model"] < aggregate["mean_mase_seasonal_naive"]


def test_oms_forecast_backtest_prints_the_table_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.json"
    assert main(["forecast", "backtest", "--data", str(FIXTURE), "--json", str(out)]) == 0
    assert "MASE model" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert {s["dept_id"] for s in data["series"]} == {"FOODS_3", "HOBBIES_1", "HOUSEHOLD_2"}
    assert data["test_days"] == 28
