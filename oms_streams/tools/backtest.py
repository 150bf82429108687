"""``oms promise backtest``: replay delivered shipments and score the promises the model would have made.

Input: a CSV with ``order_id, placed_at, origin_id, origin_lat, origin_lon, origin_region, dest_postal,
dest_lat, dest_lon, dest_region, handed_to_carrier_at, delivered_at`` and optionally
``estimated_delivery`` (the promise the business actually made: a date ``YYYY-MM-DD`` means
delivered by the end of that UTC day, a timestamp means by that instant). Timestamps are ISO 8601,
with or without an offset (naive = UTC).

The replay never looks ahead. Orders are taken in ``placed_at`` order and merged with the delivered
shipments in ``delivered_at`` order; before an order is promised, every shipment delivered strictly
before it was placed is learned, and nothing else:

- its transit (delivered_at - handed_to_carrier_at) on its lane (service "" — the file names no
  carrier service —, origin region, destination region, great-circle km) in a ``TransitModel``;
- its handling time (placed_at → handed_to_carrier_at) for its origin.

The promise at quantile q::

    promised_by = end of the UTC day holding
                  placed_at + handling_q(origin) + transit_q(lane)

handling_q comes from the origin's own history when it has ``min_samples`` shipments, else from all
origins, else a prior of 24 h; transit_q from the lane when it has ``min_samples``, else the lane's
distance band, else a prior (24, 48, 72 h, quantile taken over those samples). An order is on time
when delivered_at <= promised_by (the end of day is its last millisecond). Reported, for the model
and for ``estimated_delivery`` when present: orders evaluated, on-time rate, median and mean promised
lead time (promised_by - placed_at), median slack (promised_by - delivered_at), and for the model the
share of promises whose transit came from lane, band or prior. Rows that cannot be used are counted
by reason and reported, never dropped silently; a bad ``estimated_delivery`` only removes the row
from the business figures. With ``warmup_days`` the orders of the first days still teach the model
but are not scored.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from oms_streams.adapters.timestamps import epoch_ms
from oms_streams.domain.transit import (
    SOURCE_BAND,
    SOURCE_LANE,
    SOURCE_PRIOR,
    HoursHistogram,
    Lane,
    TransitModel,
)
from oms_streams.domain.visibility import haversine_km

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
SERVICE_ID = ""
"""The history names no carrier service: every lane is of one anonymous service."""
PRIOR_TRANSIT_HOURS = (24.0, 48.0, 72.0)
PRIOR_HANDLING_HOURS = 24.0

REQUIRED_COLUMNS = (
    "order_id",
    "placed_at",
    "origin_id",
    "origin_lat",
    "origin_lon",
    "origin_region",
    "dest_postal",
    "dest_lat",
    "dest_lon",
    "dest_region",
    "handed_to_carrier_at",
    "delivered_at",
)
ESTIMATED = "estimated_delivery"

HANDLING_ORIGIN = "origin"
HANDLING_ALL = "all_origins"
HANDLING_PRIOR = "prior"


class RowError(ValueError):
    """Why a row cannot be used; the message is the reason it is counted under."""


@dataclass(frozen=True, slots=True)
class Shipment:
    order_id: str
    placed_ms: int
    origin_id: str
    origin_region: str
    dest_region: str
    distance_km: float
    handed_ms: int
    delivered_ms: int
    estimated_ms: int | None = None
    """End of the promised day (or the promised instant); None when the file has none for the row."""
    estimated_error: str | None = None
    """Why the row's ``estimated_delivery`` could not be read, when it could not."""


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    quantile: float = 0.95
    min_samples: int = 30
    prior_transit_hours: tuple[float, ...] = PRIOR_TRANSIT_HOURS
    prior_handling_hours: float = PRIOR_HANDLING_HOURS
    warmup_days: float = 0.0
    """Orders placed within this many days of the first order teach but are not scored."""
    method: str = "sum"
    """'sum': handling_q + transit_q, the live promise's structure (conservative: a sum of two
    quantiles, then the end of the day). 'days': the q-quantile of whole calendar days from the
    order's day to its delivery day, per lane (lane, band, prior like transit): calibrated to q."""


def end_of_utc_day_ms(instant_ms: int) -> int:
    """The last millisecond of the UTC day holding ``instant_ms``."""
    return (instant_ms // DAY_MS + 1) * DAY_MS - 1


def parse_instant_ms(text: str) -> int:
    """ISO 8601 timestamp (offset optional, naive = UTC) to epoch milliseconds."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return epoch_ms(moment)


def parse_promise_ms(text: str) -> int:
    """A promise: ``YYYY-MM-DD`` is the end of that UTC day, a timestamp is that instant."""
    if len(text) == 10:
        day = date.fromisoformat(text)
        return end_of_utc_day_ms(epoch_ms(datetime(day.year, day.month, day.day, tzinfo=UTC)))
    return parse_instant_ms(text)


def _parse_row(fields: Sequence[str], index: dict[str, int], estimated_at: int | None) -> Shipment:
    values: dict[str, str] = {}
    for name in REQUIRED_COLUMNS:
        value = fields[index[name]].strip()
        if not value and name != "dest_postal":
            raise RowError(f"missing {name}")
        values[name] = value
    instants: dict[str, int] = {}
    for name in ("placed_at", "handed_to_carrier_at", "delivered_at"):
        try:
            instants[name] = parse_instant_ms(values[name])
        except (ValueError, OverflowError):
            raise RowError(f"bad timestamp {name}") from None
    try:
        coordinates = [float(values[name]) for name in ("origin_lat", "origin_lon", "dest_lat", "dest_lon")]
    except ValueError:
        raise RowError("bad coordinates") from None
    if not all(math.isfinite(c) for c in coordinates) or any(abs(c) > 90 for c in coordinates[::2]):
        raise RowError("bad coordinates")
    if any(abs(c) > 180 for c in coordinates[1::2]):
        raise RowError("bad coordinates")
    placed, handed, delivered = (
        instants["placed_at"],
        instants["handed_to_carrier_at"],
        instants["delivered_at"],
    )
    if handed < placed:
        raise RowError("handed to carrier before placed")
    if delivered < handed:
        raise RowError("delivered before handed to carrier")
    estimated_ms: int | None = None
    estimated_error: str | None = None
    if estimated_at is not None and estimated_at < len(fields) and fields[estimated_at].strip():
        try:
            estimated_ms = parse_promise_ms(fields[estimated_at].strip())
        except (ValueError, OverflowError):
            estimated_error = "bad estimated_delivery"
    return Shipment(
        order_id=values["order_id"],
        placed_ms=placed,
        origin_id=values["origin_id"],
        origin_region=values["origin_region"],
        dest_region=values["dest_region"],
        distance_km=haversine_km(*coordinates),
        handed_ms=handed,
        delivered_ms=delivered,
        estimated_ms=estimated_ms,
        estimated_error=estimated_error,
    )


@dataclass(slots=True)
class ParsedHistory:
    shipments: list[Shipment]
    rows: int
    skipped: Counter[str] = field(default_factory=Counter)
    has_estimated: bool = False


def parse_rows(rows: Iterable[Sequence[str]]) -> ParsedHistory:
    """Header first, then data rows; unusable rows are counted under their reason, not raised.

    A header that lacks a required column is the one fatal error (``ValueError``).
    """
    iterator = iter(rows)
    header = next(iterator, None)
    if header is None:
        raise ValueError("empty file: no header")
    index = {name.strip(): i for i, name in enumerate(header)}
    missing = [name for name in REQUIRED_COLUMNS if name not in index]
    if missing:
        raise ValueError(f"missing columns: {', '.join(missing)}")
    estimated_at = index.get(ESTIMATED)
    needed = {name: index[name] for name in REQUIRED_COLUMNS}
    width = max(needed.values()) + 1
    parsed = ParsedHistory(shipments=[], rows=0, has_estimated=estimated_at is not None)
    seen: set[str] = set()
    for fields in iterator:
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # a blank line is no row
        parsed.rows += 1
        try:
            if len(fields) < width:
                raise RowError("wrong number of fields")
            shipment = _parse_row(fields, needed, estimated_at)
            if shipment.order_id in seen:
                raise RowError("duplicate order_id")
        except RowError as error:
            parsed.skipped[str(error)] += 1
            continue
        seen.add(shipment.order_id)
        parsed.shipments.append(shipment)
    return parsed


def read_history(path: Path) -> ParsedHistory:
    with path.open(newline="", encoding="utf-8-sig") as f:  # tolerate a spreadsheet BOM
        return parse_rows(csv.reader(f))


@dataclass(slots=True)
class _Figures:
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


def _shares(counts: Counter[str], keys: Sequence[str], total: int) -> dict[str, float | None]:
    return {key: (round(counts[key] / total, 4) if total else None) for key in keys}


@dataclass(slots=True)
class BacktestReport:
    config: BacktestConfig
    rows: int
    skipped: Counter[str]
    warmup_orders: int
    model: _Figures
    transit_sources: Counter[str]
    handling_sources: Counter[str]
    on_time_by_source: Counter[str]
    business: _Figures | None
    business_skipped: Counter[str]
    source_file: str | None = None
    elapsed_s: float = 0.0

    @property
    def orders_evaluated(self) -> int:
        return len(self.model.lead_ms)

    def to_dict(self) -> dict[str, Any]:
        evaluated = self.orders_evaluated
        model = self.model.to_dict()
        model["transit_source"] = _shares(
            self.transit_sources, (SOURCE_LANE, SOURCE_BAND, SOURCE_PRIOR), evaluated
        )
        model["handling_source"] = _shares(
            self.handling_sources, (HANDLING_ORIGIN, HANDLING_ALL, HANDLING_PRIOR), evaluated
        )
        model["on_time_rate_by_transit_source"] = {
            key: (
                round(self.on_time_by_source[key] / self.transit_sources[key], 4)
                if self.transit_sources[key]
                else None
            )
            for key in (SOURCE_LANE, SOURCE_BAND, SOURCE_PRIOR)
        }
        business: dict[str, Any] | None = None
        if self.business is not None:
            business = self.business.to_dict()
            business["skipped"] = dict(sorted(self.business_skipped.items()))
        return {
            "file": self.source_file,
            "config": {
                "quantile": self.config.quantile,
                "min_samples": self.config.min_samples,
                "prior_transit_hours": list(self.config.prior_transit_hours),
                "prior_handling_hours": self.config.prior_handling_hours,
                "warmup_days": self.config.warmup_days,
                "method": self.config.method,
            },
            "rows": self.rows,
            "orders_evaluated": evaluated,
            "warmup_orders": self.warmup_orders,
            "skipped": {"total": sum(self.skipped.values()), "by_reason": dict(sorted(self.skipped.items()))},
            "model": model,
            "estimated_delivery": business,
            "elapsed_s": round(self.elapsed_s, 3),
        }

    def render(self) -> str:
        """A readable table of the headline figures."""
        data = self.to_dict()
        model, business = data["model"], data["estimated_delivery"]
        skipped = data["skipped"]
        lines = [
            f"promise backtest  {data['file'] or '(rows)'}  q={self.config.quantile}  "
            f"method={self.config.method}  "
            f"min_samples={self.config.min_samples}",
            f"rows {data['rows']:,}  evaluated {data['orders_evaluated']:,}  "
            f"warm-up {data['warmup_orders']:,}  skipped {skipped['total']:,}  ({data['elapsed_s']:.2f} s)",
        ]
        for reason, count in skipped["by_reason"].items():
            lines.append(f"  skipped: {reason}: {count:,}")
        header = f"{'':30}{'model q=' + str(self.config.quantile):>18}"
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
        transit = model["transit_source"]
        lines.append(
            f"{'transit from lane/band/prior':30}"
            + " / ".join(_pct(transit[key]) for key in (SOURCE_LANE, SOURCE_BAND, SOURCE_PRIOR))
        )
        by_source = model["on_time_rate_by_transit_source"]
        lines.append(
            f"{'on time by lane/band/prior':30}"
            + " / ".join(_pct(by_source[key]) for key in (SOURCE_LANE, SOURCE_BAND, SOURCE_PRIOR))
        )
        handling = model["handling_source"]
        lines.append(
            f"{'handling origin/all/prior':30}"
            + " / ".join(_pct(handling[key]) for key in (HANDLING_ORIGIN, HANDLING_ALL, HANDLING_PRIOR))
        )
        if business is not None and business["skipped"]:
            for reason, count in business["skipped"].items():
                lines.append(f"  estimated_delivery not scored: {reason}: {count:,}")
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


class _HandlingModel:
    """Handling hours (placed → handed to carrier) per origin, and over all origins."""

    __slots__ = ("_all", "_by_origin")

    def __init__(self) -> None:
        self._by_origin: dict[str, HoursHistogram] = {}
        self._all = HoursHistogram()

    def observe(self, origin_id: str, hours: float) -> None:
        histogram = self._by_origin.get(origin_id)
        if histogram is None:
            histogram = self._by_origin[origin_id] = HoursHistogram()
        histogram.add(hours)
        self._all.add(hours)

    def estimate(self, origin_id: str, quantile: float, min_samples: int, prior: float) -> tuple[float, str]:
        needed = max(1, min_samples)
        histogram = self._by_origin.get(origin_id)
        if histogram is not None and histogram.count >= needed:
            return histogram.quantile(quantile), HANDLING_ORIGIN
        if self._all.count >= needed:
            return self._all.quantile(quantile), HANDLING_ALL
        return prior, HANDLING_PRIOR


def _lane(shipment: Shipment) -> Lane:
    return Lane(SERVICE_ID, shipment.origin_region, shipment.dest_region, shipment.distance_km)


def run_backtest(history: ParsedHistory, config: BacktestConfig = BacktestConfig()) -> BacktestReport:
    """Replay ``history`` in time order, learning only from the past (see the module docstring)."""
    if not 0.0 <= config.quantile <= 1.0:
        raise ValueError(f"quantile must be within [0, 1], got {config.quantile}")
    if config.method not in ("sum", "days"):
        raise ValueError(f"method must be 'sum' or 'days', got {config.method!r}")
    started = time.perf_counter()
    orders = sorted(history.shipments, key=lambda s: s.placed_ms)
    deliveries = sorted(history.shipments, key=lambda s: s.delivered_ms)
    transit = TransitModel()
    handling = _HandlingModel()
    lead_days = TransitModel()  # whole days, kept as hours (days x 24) in the same lane histograms
    model = _Figures()
    business = _Figures() if history.has_estimated else None
    business_skipped: Counter[str] = Counter()
    transit_sources: Counter[str] = Counter()
    handling_sources: Counter[str] = Counter()
    on_time_by_source: Counter[str] = Counter()
    warmup_until = (orders[0].placed_ms + round(config.warmup_days * DAY_MS)) if orders else 0
    warmup_orders = 0
    q, min_samples = config.quantile, config.min_samples
    prior_transit, prior_handling = config.prior_transit_hours, config.prior_handling_hours
    learned = 0
    for order in orders:
        while learned < len(deliveries) and deliveries[learned].delivered_ms < order.placed_ms:
            done = deliveries[learned]
            transit.observe(_lane(done), (done.delivered_ms - done.handed_ms) / HOUR_MS)
            handling.observe(done.origin_id, (done.handed_ms - done.placed_ms) / HOUR_MS)
            lead_days.observe(_lane(done), 24.0 * (done.delivered_ms // DAY_MS - done.placed_ms // DAY_MS))
            learned += 1
        if order.placed_ms < warmup_until:
            warmup_orders += 1
            continue
        handling_hours, handling_source = handling.estimate(order.origin_id, q, min_samples, prior_handling)
        if config.method == "days":
            prior_days = tuple(24.0 * math.ceil((prior_handling + h) / 24) for h in prior_transit)
            estimate = lead_days.estimate(_lane(order), q, min_samples, prior_days)
            # The bucket's upper edge is within the hour after a whole day: floor gives the day.
            promised = end_of_utc_day_ms(order.placed_ms) + int(estimate.hours // 24) * DAY_MS
        else:
            estimate = transit.estimate(_lane(order), q, min_samples, prior_transit)
            promised = end_of_utc_day_ms(
                order.placed_ms + math.ceil((handling_hours + estimate.hours) * HOUR_MS)
            )
        model.add(order.placed_ms, promised, order.delivered_ms)
        transit_sources[estimate.source] += 1
        handling_sources[handling_source] += 1
        if order.delivered_ms <= promised:
            on_time_by_source[estimate.source] += 1
        if business is not None:
            if order.estimated_ms is not None:
                business.add(order.placed_ms, order.estimated_ms, order.delivered_ms)
            else:
                business_skipped[order.estimated_error or "no estimated_delivery"] += 1
    return BacktestReport(
        config=config,
        rows=history.rows,
        skipped=history.skipped,
        warmup_orders=warmup_orders,
        model=model,
        transit_sources=transit_sources,
        handling_sources=handling_sources,
        on_time_by_source=on_time_by_source,
        business=business,
        business_skipped=business_skipped,
        elapsed_s=time.perf_counter() - started,
    )


def backtest_file(path: Path, config: BacktestConfig = BacktestConfig()) -> BacktestReport:
    """Read and replay a deliveries CSV; ``elapsed_s`` covers reading too."""
    started = time.perf_counter()
    report = run_backtest(read_history(path), config)
    report.source_file = str(path)
    report.elapsed_s = time.perf_counter() - started
    return report


def report_json(report: BacktestReport) -> str:
    return json.dumps(report.to_dict(), indent=2)
