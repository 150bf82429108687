"""``oms forecast backtest``: score the streaming demand model on real daily store sales.

Input: the M5 store x department daily sales (``date, d, store_id, dept_id, sales, weekday,
event_name_1, event_type_1, snap_CA, snap_TX, snap_WI``; gzip or plain CSV). A series is one
(store_id, dept_id); its days run over the day numbers ``d_N`` of the whole file, and a day with no
row is a zero-sales day (the M5 file leaves out days a store was closed, e.g. Christmas). The
number of such filled days is reported.

Protocol, the same for the model and for the seasonal-naive baseline: the last ``test_days`` days
of each series are the test window. The model learns online, one closed day at a time, through
everything before the window; then, rolling through the window, each day is forecast one day ahead
from what was learned up to the day before, and the day's actual is learned afterwards. The
seasonal-naive forecast of a day is the actual of the same weekday a week earlier (lag 7).

MASE of a series = MAE over the test window / MAE of the in-sample seasonal-naive (lag 7) one-step
errors over the training part (the standard scaling, so both methods share the denominator).
Reported: per series, per department and overall the mean MASE of model and seasonal naive, the
relative improvement ``1 - model / naive`` of the mean MASE, and how many series the model wins
(lower MASE). Also the share of test days whose actual was at or below the model's one-day 90 %
demand quantile (the protection quantity), a calibration check of the uncertainty.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oms_streams.domain.forecast import DemandState, HoltWintersForecaster

REQUIRED_COLUMNS = ("d", "store_id", "dept_id", "sales")
DEFAULT_TEST_DAYS = 28
SEASONAL_LAG = 7
COVERAGE_QUANTILE = 0.9
DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared/data/demand/m5_store_dept_daily.csv.gz"
"""``<repo>/../shared/data/demand/m5_store_dept_daily.csv.gz``."""


@dataclass(frozen=True, slots=True)
class SeriesScore:
    store_id: str
    dept_id: str
    days: int
    filled_days: int
    mase_model: float
    mase_naive: float
    coverage: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "store_id": self.store_id,
            "dept_id": self.dept_id,
            "days": self.days,
            "filled_zero_days": self.filled_days,
            "mase_model": round(self.mase_model, 4),
            "mase_seasonal_naive": round(self.mase_naive, 4),
            "coverage_q90": round(self.coverage, 4),
        }


@dataclass(frozen=True, slots=True)
class ForecastReport:
    file: str
    test_days: int
    series: tuple[SeriesScore, ...]
    skipped: Mapping[str, int]
    elapsed_s: float

    def to_dict(self) -> dict[str, Any]:
        by_dept: dict[str, list[SeriesScore]] = defaultdict(list)
        for score in self.series:
            by_dept[score.dept_id].append(score)
        return {
            "file": self.file,
            "protocol": "rolling one-day-ahead over the test window, same for both methods",
            "test_days": self.test_days,
            "model": "holt-winters level + multiplicative weekly seasonality",
            "aggregate": _summary(self.series),
            "by_department": {dept: _summary(scores) for dept, scores in sorted(by_dept.items())},
            "series": [score.to_dict() for score in self.series],
            "skipped": dict(self.skipped),
            "elapsed_s": round(self.elapsed_s, 3),
        }

    def render(self) -> str:
        """A readable table: aggregate, per department, then the series the model loses."""
        data = self.to_dict()
        lines = [
            f"forecast backtest  {self.file}  last {self.test_days} days, rolling 1-day-ahead  "
            f"({self.elapsed_s:.2f} s)",
            f"{'':22}{'series':>7}{'MASE model':>12}{'MASE snaive':>13}{'improvement':>13}"
            f"{'wins':>9}{'cover q90':>11}",
        ]
        rows = [("all", data["aggregate"]), *data["by_department"].items()]
        for label, summary in rows:
            lines.append(
                f"{label:22}{summary['series']:>7}{summary['mean_mase_model']:>12.3f}"
                f"{summary['mean_mase_seasonal_naive']:>13.3f}{summary['improvement'] * 100:>12.1f}%"
                f"{summary['model_wins']:>5}/{summary['series']:<3}{summary['coverage_q90'] * 100:>10.1f}%"
            )
        lost = [s for s in self.series if s.mase_model >= s.mase_naive]
        for score in lost:
            lines.append(
                f"  model loses {score.store_id}/{score.dept_id}: "
                f"{score.mase_model:.3f} vs {score.mase_naive:.3f}"
            )
        for reason, count in self.skipped.items():
            lines.append(f"  skipped: {reason}: {count:,}")
        return "\n".join(lines)


def _summary(scores: Sequence[SeriesScore]) -> dict[str, Any]:
    if not scores:
        return {
            "series": 0,
            "mean_mase_model": 0.0,
            "mean_mase_seasonal_naive": 0.0,
            "improvement": 0.0,
            "model_wins": 0,
            "coverage_q90": 0.0,
        }
    model = statistics.fmean(s.mase_model for s in scores)
    naive = statistics.fmean(s.mase_naive for s in scores)
    return {
        "series": len(scores),
        "mean_mase_model": round(model, 4),
        "mean_mase_seasonal_naive": round(naive, 4),
        "improvement": round(1.0 - model / naive, 4) if naive > 0 else 0.0,
        "model_wins": sum(s.mase_model < s.mase_naive for s in scores),
        "coverage_q90": round(statistics.fmean(s.coverage for s in scores), 4),
    }


def score_series(
    store_id: str,
    dept_id: str,
    sales: Sequence[float],
    *,
    first_day: int,
    filled_days: int = 0,
    test_days: int = DEFAULT_TEST_DAYS,
    forecaster: HoltWintersForecaster | None = None,
) -> SeriesScore | None:
    """Score one dense daily series (``sales[i]`` is day ``first_day + i``); None if too short."""
    model = forecaster or HoltWintersForecaster()
    train = len(sales) - test_days
    if test_days <= 0 or train <= 2 * SEASONAL_LAG:
        return None
    scale = statistics.fmean(abs(sales[t] - sales[t - SEASONAL_LAG]) for t in range(SEASONAL_LAG, train))
    if scale <= 0:
        return None
    state: DemandState = model.initial()
    for t in range(train):
        state = model.observe(state, first_day + t, sales[t])
    model_errors: list[float] = []
    naive_errors: list[float] = []
    covered = 0
    for t in range(train, len(sales)):
        day = first_day + t
        mean = model.forecast(state, day, 1)[0]
        protect = model.demand_quantile(state, day, 1, COVERAGE_QUANTILE)
        model_errors.append(abs(sales[t] - mean))
        naive_errors.append(abs(sales[t] - sales[t - SEASONAL_LAG]))
        covered += sales[t] <= protect
        state = model.observe(state, day, sales[t])
    return SeriesScore(
        store_id=store_id,
        dept_id=dept_id,
        days=len(sales),
        filled_days=filled_days,
        mase_model=statistics.fmean(model_errors) / scale,
        mase_naive=statistics.fmean(naive_errors) / scale,
        coverage=covered / test_days,
    )


def backtest_rows(
    rows: Iterable[Mapping[str, str]],
    *,
    test_days: int = DEFAULT_TEST_DAYS,
    file: str = "",
    forecaster: HoltWintersForecaster | None = None,
) -> ForecastReport:
    started = time.perf_counter()
    daily: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    skipped: dict[str, int] = defaultdict(int)
    for row in rows:
        try:
            day = int(row["d"].removeprefix("d_"))
            units = float(row["sales"])
        except (KeyError, ValueError, AttributeError):
            skipped["unparsable d or sales"] += 1
            continue
        daily[(row["store_id"], row["dept_id"])][day] = units
    if not daily:
        raise ValueError(f"{file or 'input'}: no usable rows")
    first = min(min(days) for days in daily.values())
    last = max(max(days) for days in daily.values())
    scores: list[SeriesScore] = []
    for (store_id, dept_id), days in sorted(daily.items()):
        sales = [days.get(day, 0.0) for day in range(first, last + 1)]
        score = score_series(
            store_id,
            dept_id,
            sales,
            first_day=first,
            filled_days=len(sales) - len(days),
            test_days=test_days,
            forecaster=forecaster,
        )
        if score is None:
            skipped["series too short or constant"] += 1
        else:
            scores.append(score)
    return ForecastReport(
        file=file,
        test_days=test_days,
        series=tuple(scores),
        skipped=dict(skipped),
        elapsed_s=time.perf_counter() - started,
    )


def backtest_file(path: Path, *, test_days: int = DEFAULT_TEST_DAYS) -> ForecastReport:
    started = time.perf_counter()
    raw = path.read_bytes()
    text = gzip.decompress(raw).decode() if raw[:2] == b"\x1f\x8b" else raw.decode()
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise ValueError(f"{path}: missing columns {', '.join(missing)}")
    report = backtest_rows(reader, test_days=test_days, file=str(path))
    return ForecastReport(
        file=report.file,
        test_days=report.test_days,
        series=report.series,
        skipped=report.skipped,
        elapsed_s=time.perf_counter() - started,
    )


def report_json(report: ForecastReport) -> str:
    return json.dumps(report.to_dict(), indent=2)
