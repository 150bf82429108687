"""The reliability table of ``oms promise backtest``: for each nominal level, the realised on-time
rate, the median promise and the quarters within ±2 points: the frontier a planner chooses from."""

from __future__ import annotations

from collections import Counter

from oms_streams.tools.backtest import BacktestConfig
from oms_streams.tools.backtest_report import BacktestReport, Figures, Scored

DAY = 86_400_000


def a_report(*scored: Scored, levels: tuple[float, ...]) -> BacktestReport:
    return BacktestReport(
        config=BacktestConfig(reliability_levels=levels),
        rows=len(scored),
        skipped=Counter(),
        warmup_orders=0,
        model=Figures(),
        transit_sources=Counter(),
        handling_sources=Counter(),
        on_time_by_source=Counter(),
        business=None,
        business_skipped=Counter(),
        scored=list(scored),
    )


def an_order(quarter: str, delivered_day: int, *promised_days: int) -> Scored:
    """Placed at 0, delivered after ``delivered_day`` days, promised ``promised_days`` per level."""
    promised = tuple(d * DAY for d in promised_days)
    return Scored(quarter, 0, delivered_day * DAY, promised[0], None, promised)


def test_each_level_reports_realised_on_time_median_promise_and_quarters_within_two_points() -> None:
    report = a_report(
        # 2017-Q1: on time 1 of 2 at 0.5 (within), 2 of 2 at 0.9 (10 points over)
        an_order("2017-Q1", 5, 4, 6),
        an_order("2017-Q1", 3, 3, 8),
        # 2017-Q2: on time 1 of 2 at 0.5 (within), 2 of 2 at 0.9
        an_order("2017-Q2", 9, 8, 10),
        an_order("2017-Q2", 2, 2, 12),
        levels=(0.5, 0.9),
    )

    assert report.reliability() == [
        {"nominal": 0.5, "realised": 0.5, "median_days": 3.5, "quarters_within_2_points": "2/2"},
        {"nominal": 0.9, "realised": 1.0, "median_days": 9.0, "quarters_within_2_points": "0/2"},
    ]


def test_a_quarter_exactly_two_points_off_is_within() -> None:
    hits = [an_order("2018-Q1", 1, 1) for _ in range(47)]
    misses = [an_order("2018-Q1", 2, 1) for _ in range(3)]  # 47 of 50: 0.94, two points under 0.96

    [row] = a_report(*hits, *misses, levels=(0.96,)).reliability()

    assert row["realised"] == 0.94 and row["quarters_within_2_points"] == "1/1"
    [row] = a_report(*hits, *misses, levels=(0.961,)).reliability()
    assert row["quarters_within_2_points"] == "0/1"


def test_without_levels_there_is_no_reliability() -> None:
    assert a_report(Scored("2017-Q1", 0, DAY, DAY, None), levels=()).reliability() == []
