"""What ``oms promise backtest`` reports: figures for the model and ``estimated_delivery``, per
calendar quarter, the reliability of the quantile, a readable table, and plots."""

from __future__ import annotations

import base64
import io
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oms_streams.domain.transit import SOURCE_BAND, SOURCE_LANE, SOURCE_PRIOR, SOURCE_SERVICE

if TYPE_CHECKING:
    from oms_streams.tools.backtest import BacktestConfig

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
SOURCES = (SOURCE_LANE, SOURCE_BAND, SOURCE_SERVICE, SOURCE_PRIOR)
HANDLING_ORIGIN = "origin"
HANDLING_ALL = "all_origins"
HANDLING_PRIOR = "prior"


@dataclass(slots=True)
class Figures:
    on_time: int = 0
    lead_ms: list[int] = field(default_factory=list)
    slack_ms: list[int] = field(default_factory=list)

    def add(self, placed_ms: int, promised_ms: int, delivered_ms: int) -> None:
        self.lead_ms.append(promised_ms - placed_ms)
        self.slack_ms.append(promised_ms - delivered_ms)
        if delivered_ms <= promised_ms:
            self.on_time += 1

    def to_dict(self) -> dict[str, Any]:
        orders = len(self.lead_ms)
        if orders == 0:
            return {
                "orders": 0,
                "on_time": 0,
                "on_time_rate": None,
                "lead_time": None,
                "slack_hours_median": None,
            }
        median_lead = statistics.median(self.lead_ms) / HOUR_MS
        mean_lead = statistics.fmean(self.lead_ms) / HOUR_MS
        return {
            "orders": orders,
            "on_time": self.on_time,
            "on_time_rate": round(self.on_time / orders, 4),
            "lead_time": {
                "median_hours": round(median_lead, 2),
                "mean_hours": round(mean_lead, 2),
                "median_days": round(median_lead / 24, 3),
                "mean_days": round(mean_lead / 24, 3),
            },
            "slack_hours_median": round(statistics.median(self.slack_ms) / HOUR_MS, 2),
        }


@dataclass(slots=True)
class Scored:
    """One scored order: what is plotted and broken down by quarter."""

    quarter: str
    placed_ms: int
    delivered_ms: int
    promised_ms: int
    estimated_ms: int | None
    by_level: tuple[int, ...] = ()
    """Promised instants at ``BacktestConfig.reliability_levels`` (empty when not asked)."""


def _shares(counts: Counter[str], keys: Sequence[str], total: int) -> dict[str, float | None]:
    return {key: (round(counts[key] / total, 4) if total else None) for key in keys}


@dataclass(slots=True)
class BacktestReport:
    config: BacktestConfig
    rows: int
    skipped: Counter[str]
    warmup_orders: int
    model: Figures
    transit_sources: Counter[str]
    handling_sources: Counter[str]
    on_time_by_source: Counter[str]
    business: Figures | None
    business_skipped: Counter[str]
    scored: list[Scored] = field(default_factory=list)
    source_file: str | None = None
    elapsed_s: float = 0.0

    @property
    def orders_evaluated(self) -> int:
        return len(self.model.lead_ms)

    def quarters(self) -> list[dict[str, Any]]:
        """Per calendar quarter of placing: nominal confidence against realised on-time, both ways."""
        by_quarter: dict[str, list[Scored]] = {}
        for order in self.scored:
            by_quarter.setdefault(order.quarter, []).append(order)
        rows = []
        for quarter, orders in sorted(by_quarter.items()):
            model, business = Figures(), Figures()
            for o in orders:
                model.add(o.placed_ms, o.promised_ms, o.delivered_ms)
                if o.estimated_ms is not None:
                    business.add(o.placed_ms, o.estimated_ms, o.delivered_ms)
            m, b = model.to_dict(), business.to_dict()
            rows.append(
                {
                    "quarter": quarter,
                    "orders": m["orders"],
                    "nominal": self.config.quantile,
                    "on_time_rate": m["on_time_rate"],
                    "median_days": m["lead_time"]["median_days"],
                    "estimated_delivery_on_time_rate": b["on_time_rate"],
                    "estimated_delivery_median_days": b["lead_time"] and b["lead_time"]["median_days"],
                }
            )
        return rows

    def reliability(self) -> list[dict[str, Any]]:
        """For each nominal level asked: the share of orders delivered by the promise at that level,
        its median promised days, and how many quarters were within ±2 points of it (the frontier a
        planner chooses the confidence from)."""
        levels = self.config.reliability_levels
        if not self.scored or not self.scored[0].by_level:
            return []
        total = len(self.scored)
        return [
            {
                "nominal": level,
                "realised": round(sum(o.delivered_ms <= o.by_level[i] for o in self.scored) / total, 4),
                "median_days": round(
                    statistics.median(o.by_level[i] - o.placed_ms for o in self.scored) / DAY_MS, 3
                ),
                "quarters_within_2_points": self._quarters_within(i, level),
            }
            for i, level in enumerate(levels)
        ]

    def _quarters_within(self, index: int, level: float) -> str:
        """'k/n': quarters whose on-time rate at ``level`` is within ±2 points of it."""
        by_quarter: dict[str, list[bool]] = {}
        for o in self.scored:
            by_quarter.setdefault(o.quarter, []).append(o.delivered_ms <= o.by_level[index])
        within = sum(abs(sum(hits) / len(hits) - level) <= 0.02 + 1e-9 for hits in by_quarter.values())
        return f"{within}/{len(by_quarter)}"

    def to_dict(self) -> dict[str, Any]:
        evaluated = self.orders_evaluated
        model = self.model.to_dict()
        model["transit_source"] = _shares(self.transit_sources, SOURCES, evaluated)
        model["handling_source"] = _shares(
            self.handling_sources, (HANDLING_ORIGIN, HANDLING_ALL, HANDLING_PRIOR), evaluated
        )
        model["on_time_rate_by_transit_source"] = {
            key: (
                round(self.on_time_by_source[key] / self.transit_sources[key], 4)
                if self.transit_sources[key]
                else None
            )
            for key in SOURCES
        }
        business: dict[str, Any] | None = None
        if self.business is not None:
            business = self.business.to_dict()
            business["skipped"] = dict(sorted(self.business_skipped.items()))
        return {
            "file": self.source_file,
            "config": self.config.to_dict(),
            "rows": self.rows,
            "orders_evaluated": evaluated,
            "warmup_orders": self.warmup_orders,
            "skipped": {"total": sum(self.skipped.values()), "by_reason": dict(sorted(self.skipped.items()))},
            "model": model,
            "estimated_delivery": business,
            "quarters": self.quarters(),
            "reliability": self.reliability(),
            "elapsed_s": round(self.elapsed_s, 3),
        }

    def render(self) -> str:
        """A readable table of the headline figures, then one line per quarter."""
        data = self.to_dict()
        model, business = data["model"], data["estimated_delivery"]
        skipped = data["skipped"]
        config = self.config
        lines = [
            f"promise backtest  {data['file'] or '(rows)'}  q={config.quantile}  method={config.method}  "
            f"min_samples={config.min_samples}  half_life_days={config.half_life_days}  "
            f"calibration_rate={config.calibration_rate}",
            f"rows {data['rows']:,}  evaluated {data['orders_evaluated']:,}  "
            f"warm-up {data['warmup_orders']:,}  skipped {skipped['total']:,}  ({data['elapsed_s']:.2f} s)",
        ]
        for reason, count in skipped["by_reason"].items():
            lines.append(f"  skipped: {reason}: {count:,}")
        header = f"{'':30}{'model q=' + str(config.quantile):>18}"
        if business is not None:
            header += f"{'estimated_delivery':>22}"
        lines.append(header)
        rows: list[tuple[str, Any]] = [
            ("orders", lambda f: f"{f['orders']:,}"),
            ("on-time rate", lambda f: _pct(f["on_time_rate"])),
            ("lead time median (h / d)", lambda f: _hours_days(f, "median")),
            ("lead time mean (h / d)", lambda f: _hours_days(f, "mean")),
            ("slack median (h)", lambda f: _num(f["slack_hours_median"])),
        ]
        for label, show in rows:
            line = f"{label:30}{show(model):>18}"
            if business is not None:
                line += f"{show(business):>22}"
            lines.append(line)
        transit, by_source = model["transit_source"], model["on_time_rate_by_transit_source"]
        lines.append(f"{'from lane/band/service/prior':30}" + " / ".join(_pct(transit[k]) for k in SOURCES))
        lines.append(
            f"{'on time lane/band/service/prior':30} " + " / ".join(_pct(by_source[k]) for k in SOURCES)
        )
        if config.method == "sum":
            handling = model["handling_source"]
            keys = (HANDLING_ORIGIN, HANDLING_ALL, HANDLING_PRIOR)
            lines.append(f"{'handling origin/all/prior':30}" + " / ".join(_pct(handling[k]) for k in keys))
        if business is not None and business["skipped"]:
            for reason, count in business["skipped"].items():
                lines.append(f"  estimated_delivery not scored: {reason}: {count:,}")
        lines.append(
            f"{'quarter':10}{'orders':>8}{'nominal':>9}{'on time':>9}{'median d':>10}"
            f"{'est. on time':>14}{'est. d':>8}"
        )
        for q in data["quarters"]:
            lines.append(
                f"{q['quarter']:10}{q['orders']:>8,}{q['nominal']:>9.3f}{_pct(q['on_time_rate']):>9}"
                f"{q['median_days']:>10.2f}{_pct(q['estimated_delivery_on_time_rate']):>14}"
                f"{_num(q['estimated_delivery_median_days']):>8}"
            )
        if data["reliability"]:
            lines.append(
                "reliability: nominal -> realised on time, median promised, quarters within ±2 points"
            )
            lines.extend(
                f"  {r['nominal']:.2f} -> {r['realised'] * 100:5.1f} %  {r['median_days']:6.2f} d  "
                f"{r['quarters_within_2_points']}"
                for r in data["reliability"]
            )
        return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _hours_days(figures: dict[str, Any], which: str) -> str:
    lead = figures["lead_time"]
    if lead is None:
        return "-"
    return f"{lead[which + '_hours']:.1f} / {lead[which + '_days']:.2f}"


# --- plots ------------------------------------------------------------------------------------------


def write_plots(report: BacktestReport, path: Path) -> Path:
    """A reliability plot (nominal vs realised on-time, overall and per quarter) and histograms of
    promised vs actual lead time, as a PNG, or (``.html``) a page with the PNG and the table."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - the dev and report extras install it
        raise ValueError("plots need matplotlib: pip install 'oms-streams[report]'") from error
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2))
    _reliability_axes(left, report)
    _lead_time_axes(right, report)
    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=110)
    plt.close(figure)
    if path.suffix.lower() == ".html":
        encoded = base64.b64encode(image.getvalue()).decode()
        table = report.render().replace("&", "&amp;").replace("<", "&lt;")
        path.write_text(
            "<!doctype html><meta charset='utf-8'><title>promise backtest</title>"
            "<h1>Promise backtest</h1>"
            f"<img alt='reliability and lead times' src='data:image/png;base64,{encoded}'>"
            f"<pre>{table}</pre>\n"
        )
    else:
        path.write_bytes(image.getvalue())
    return path


def _reliability_axes(axes: Any, report: BacktestReport) -> None:
    reliability = report.reliability()
    axes.plot([0.5, 1.0], [0.5, 1.0], color="grey", linestyle=":", label="perfectly calibrated")
    if reliability:
        axes.plot(
            [r["nominal"] for r in reliability],
            [r["realised"] for r in reliability],
            marker="o",
            label="model, all scored orders",
        )
    quarters = report.quarters()
    axes.scatter(
        [report.config.quantile] * len(quarters),
        [q["on_time_rate"] for q in quarters],
        marker="x",
        color="black",
        label="model, per quarter at the configured level",
    )
    nominal = report.config.quantile
    axes.axhspan(nominal - 0.02, nominal + 0.02, color="green", alpha=0.1, label="±2 points")
    axes.set(xlabel="nominal confidence", ylabel="realised on-time rate", title="Reliability")
    axes.set_xlim(0.45, 1.0)
    axes.set_ylim(0.45, 1.0)
    axes.legend(loc="lower right", fontsize=8)


def _lead_time_axes(axes: Any, report: BacktestReport) -> None:
    day = 24 * HOUR_MS
    promised = [(o.promised_ms - o.placed_ms) / day for o in report.scored]
    actual = [(o.delivered_ms - o.placed_ms) / day for o in report.scored]
    estimated = [(o.estimated_ms - o.placed_ms) / day for o in report.scored if o.estimated_ms is not None]
    top = max([*promised, *actual, *estimated, 1.0])
    bins = [i for i in range(0, min(int(top) + 2, 90))]
    axes.hist(actual, bins=bins, alpha=0.5, label="actual")
    axes.hist(promised, bins=bins, alpha=0.5, label=f"model q={report.config.quantile}")
    if estimated:
        axes.hist(estimated, bins=bins, histtype="step", color="black", label="estimated_delivery")
    axes.set(xlabel="days from order", ylabel="orders", title="Promised vs actual lead time")
    axes.legend(fontsize=8)
