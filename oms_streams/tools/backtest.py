"""``oms promise backtest``: replay delivered shipments and score the promises the model would have made.

Input: a CSV (or ``.csv.gz``) with ``order_id, placed_at, origin_id, origin_lat, origin_lon,
origin_region, dest_postal, dest_lat, dest_lon, dest_region, handed_to_carrier_at, delivered_at``
and optionally ``estimated_delivery`` (the promise the business actually made) and
``origin_timezone``. ``dest_postal`` is text (leading zeros kept). Timestamps are ISO 8601; one
without an offset is read in the origin's time zone: ``origin_timezone`` when the file has it, else
the zone of ``origin_region`` when it is a Brazilian state (``BR-SP`` ...), else ``--timezone``
(default UTC). A promised date ``YYYY-MM-DD`` means the end of that day there.

The replay never looks ahead. Orders are taken in ``placed_at`` order and merged with the delivered
shipments in ``delivered_at`` order; before an order is promised, every shipment delivered strictly
before it was placed is learned, and nothing else. The estimator is the live one
(``domain.transit.TransitModel``: lane -> distance band -> service -> prior pooling, recency
weights, optional online calibration of the level), on lanes (service "" — the file names no
carrier —, origin region, destination region, great-circle km):

- ``lead`` (default): it learns each shipment's whole days from the order's local day to the
  delivery's local day; the promise is the end of the local day that many days after the order's.
- ``sum``: it learns transit (handed to carrier -> delivered) and each origin's handling time
  (placed -> handed) is a quantile of its own; promised_by = the end of the day holding placed_at +
  handling_q + transit_q (the live promise's structure, conservative: two quantiles added).

An order is on time when delivered_at <= promised_by. Reported, for the model and for
``estimated_delivery``: on-time rate, median and mean promised lead time, median slack, then per
calendar quarter, and (with levels asked) the realised on-time rate at several nominal levels.
Rows that cannot be used are counted by reason, never dropped silently; a bad ``estimated_delivery``
only removes the row from the business figures. With ``warmup_days`` the orders of the first days
still teach the model but are not scored.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from oms_streams.adapters.timestamps import epoch_ms
from oms_streams.domain.transit import (
    SOURCE_PRIOR,
    HoursHistogram,
    Lane,
    TransitModel,
    TransitSettings,
    sample_quantile,
)
from oms_streams.domain.visibility import haversine_km
from oms_streams.tools.backtest_report import (
    HANDLING_ALL,
    HANDLING_ORIGIN,
    HANDLING_PRIOR,
    BacktestReport,
    Figures,
    Scored,
)

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
ORIGIN_TIMEZONE = "origin_timezone"
METHODS = ("lead", "sum")
RELIABILITY_LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.92, 0.93, 0.95, 0.97, 0.98)
"""Levels the reliability table and plot show: the round ones, and the frontier near 0.9-0.97."""

BRAZIL_TIMEZONES = {
    **dict.fromkeys(("SP", "RJ", "MG", "ES", "PR", "SC", "RS", "GO", "DF"), "America/Sao_Paulo"),
    **dict.fromkeys(("CE", "MA", "PI", "RN", "PB"), "America/Fortaleza"),
    **dict.fromkeys(("AL", "SE"), "America/Maceio"),
    **dict.fromkeys(("PA", "AP"), "America/Belem"),
    "BA": "America/Bahia",
    "PE": "America/Recife",
    "TO": "America/Araguaina",
    "MS": "America/Campo_Grande",
    "MT": "America/Cuiaba",
    "AM": "America/Manaus",
    "RR": "America/Boa_Vista",
    "RO": "America/Porto_Velho",
    "AC": "America/Rio_Branco",
}
"""IANA zone of each Brazilian state (``BR-<state>``), for timestamps written without an offset."""


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
    timezone: str = "UTC"
    """The zone naive times were read in; its days are the promise's days."""
    dest_postal: str = ""
    estimated_ms: int | None = None
    """End of the promised day (or the promised instant); None when the file has none for the row."""
    estimated_error: str | None = None
    """Why the row's ``estimated_delivery`` could not be read, when it could not."""


_LIVE = TransitSettings()
"""The live estimator's defaults: the backtest replays what a worker would promise."""


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    quantile: float = 0.95
    min_samples: int = 30
    prior_transit_hours: tuple[float, ...] = PRIOR_TRANSIT_HOURS
    prior_handling_hours: float = PRIOR_HANDLING_HOURS
    warmup_days: float = 0.0
    """Orders placed within this many days of the first order teach but are not scored."""
    method: str = "lead"
    """'lead': the quantile of whole days from order to delivery per lane; 'sum': handling_q +
    transit_q (see the module docstring)."""
    half_life_days: float | None = _LIVE.half_life_days
    pooling: float = _LIVE.pooling
    calibration_rate: float = _LIVE.calibration_rate
    in_transit: bool = True
    """``lead``: parcels handed to the carrier and not yet delivered count as censored observations
    (as a worker learns them from the in-transit observations); False: delivered parcels only."""
    reliability_levels: tuple[float, ...] = ()
    """Also promise at these levels (for the reliability plot): one more estimate per level."""

    @property
    def transit_settings(self) -> TransitSettings:
        return TransitSettings(
            half_life_days=self.half_life_days, pooling=self.pooling, calibration_rate=self.calibration_rate
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["prior_transit_hours"] = list(self.prior_transit_hours)
        data["reliability_levels"] = list(self.reliability_levels)
        return data


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def origin_timezone(region: str, default: str = "UTC") -> str:
    """The zone a naive time at an origin is read in: its Brazilian state's, else ``default``."""
    country, _, state = region.partition("-")
    if country == "BR" and state in BRAZIL_TIMEZONES:
        return BRAZIL_TIMEZONES[state]
    return default


def end_of_utc_day_ms(instant_ms: int) -> int:
    """The last millisecond of the UTC day holding ``instant_ms``."""
    return (instant_ms // DAY_MS + 1) * DAY_MS - 1


def local_day(instant_ms: int, timezone: str) -> date:
    return datetime.fromtimestamp(instant_ms / 1000, tz=_zone(timezone)).date()


def end_of_local_day_ms(day: date, timezone: str) -> int:
    """The last millisecond of ``day`` in ``timezone``."""
    following = day + timedelta(days=1)
    return epoch_ms(datetime(following.year, following.month, following.day, tzinfo=_zone(timezone))) - 1


def parse_instant_ms(text: str, timezone: str = "UTC") -> int:
    """ISO 8601 timestamp to epoch milliseconds; without an offset it is read in ``timezone``."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_zone(timezone))
    return epoch_ms(moment)


def parse_promise_ms(text: str, timezone: str = "UTC") -> int:
    """A promise: ``YYYY-MM-DD`` is the end of that day in ``timezone``, a timestamp is that instant."""
    if len(text) == 10:
        return end_of_local_day_ms(date.fromisoformat(text), timezone)
    return parse_instant_ms(text, timezone)


@dataclass(frozen=True, slots=True)
class _Columns:
    required: dict[str, int]
    estimated: int | None
    timezone: int | None
    default_timezone: str


def _row_timezone(fields: Sequence[str], columns: _Columns, region: str) -> str:
    given = (
        fields[columns.timezone].strip()
        if columns.timezone is not None and columns.timezone < len(fields)
        else ""
    )
    name = given or origin_timezone(region, columns.default_timezone)
    try:
        _zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RowError("unknown origin_timezone") from None
    return name


def _parse_row(fields: Sequence[str], columns: _Columns) -> Shipment:
    values: dict[str, str] = {}
    for name, at in columns.required.items():
        value = fields[at].strip()
        if not value and name != "dest_postal":
            raise RowError(f"missing {name}")
        values[name] = value
    timezone = _row_timezone(fields, columns, values["origin_region"])
    instants: dict[str, int] = {}
    for name in ("placed_at", "handed_to_carrier_at", "delivered_at"):
        try:
            instants[name] = parse_instant_ms(values[name], timezone)
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
    estimated_at = columns.estimated
    if estimated_at is not None and estimated_at < len(fields) and fields[estimated_at].strip():
        try:
            estimated_ms = parse_promise_ms(fields[estimated_at].strip(), timezone)
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
        timezone=timezone,
        dest_postal=values["dest_postal"],
        estimated_ms=estimated_ms,
        estimated_error=estimated_error,
    )


@dataclass(slots=True)
class ParsedHistory:
    shipments: list[Shipment]
    rows: int
    skipped: Counter[str] = field(default_factory=Counter)
    has_estimated: bool = False


def parse_rows(rows: Iterable[Sequence[str]], default_timezone: str = "UTC") -> ParsedHistory:
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
    _zone(default_timezone)  # an unknown default zone is the caller's error, not a row's
    needed = {name: index[name] for name in REQUIRED_COLUMNS}
    columns = _Columns(needed, index.get(ESTIMATED), index.get(ORIGIN_TIMEZONE), default_timezone)
    width = max(needed.values()) + 1
    parsed = ParsedHistory(shipments=[], rows=0, has_estimated=columns.estimated is not None)
    seen: set[str] = set()
    for fields in iterator:
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # a blank line is no row
        parsed.rows += 1
        try:
            if len(fields) < width:
                raise RowError("wrong number of fields")
            shipment = _parse_row(fields, columns)
            if shipment.order_id in seen:
                raise RowError("duplicate order_id")
        except RowError as error:
            parsed.skipped[str(error)] += 1
            continue
        seen.add(shipment.order_id)
        parsed.shipments.append(shipment)
    return parsed


def read_history(path: Path, default_timezone: str = "UTC") -> ParsedHistory:
    """Read a deliveries CSV, gzip-compressed when its name ends in ``.gz``."""
    with (
        gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as raw,
        io.TextIOWrapper(raw, newline="", encoding="utf-8-sig") as f,  # tolerate a spreadsheet BOM
    ):
        return parse_rows(csv.reader(f), default_timezone)


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


def _lead_hours(shipment: Shipment) -> float:
    """Whole local days from the order's day to the delivery's day, as hours."""
    placed = local_day(shipment.placed_ms, shipment.timezone)
    return 24.0 * (local_day(shipment.delivered_ms, shipment.timezone) - placed).days


def _quarter(shipment: Shipment) -> str:
    day = local_day(shipment.placed_ms, shipment.timezone)
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


class _Replay:
    """The models one replay learns and the promise each order gets."""

    def __init__(self, config: BacktestConfig) -> None:
        self.config = config
        self.transit = TransitModel(config.transit_settings)
        self.handling = _HandlingModel()
        handling = config.prior_handling_hours
        self.prior_days = tuple(math.ceil((handling + h) / 24) for h in config.prior_transit_hours)

    def handed(self, shipment: Shipment) -> None:
        """The parcel is with the carrier (``lead``: it counts as in transit until delivered)."""
        if self.config.method == "lead" and self.config.in_transit:
            self.transit.observe_in_transit(_lane(shipment), shipment.placed_ms, shipment.timezone)

    def learn(self, done: Shipment) -> None:
        if self.config.method == "lead":
            # What a worker's TransitLearner does with the same delivery (streaming.promise_service).
            self.transit.observe_delivery(
                _lane(done),
                done.placed_ms,
                done.handed_ms,
                done.delivered_ms,
                done.timezone,
                in_transit=self.config.in_transit,
            )
        else:
            self.transit.observe(
                _lane(done), (done.delivered_ms - done.handed_ms) / HOUR_MS, done.delivered_ms
            )
            self.handling.observe(done.origin_id, (done.handed_ms - done.placed_ms) / HOUR_MS)

    def promise(self, order: Shipment, quantile: float) -> tuple[int, str, str]:
        """(promised_by, transit source, handling source) at ``quantile``."""
        config = self.config
        if config.method == "lead":
            # The live promise's rule (TransitModel.lead): the end of the local day it names.
            found = self.transit.lead(
                _lane(order), order.placed_ms, order.timezone, quantile, config.min_samples, self.prior_days
            )
            if found is None:
                placed_day = local_day(order.placed_ms, order.timezone)
                day = placed_day + timedelta(days=int(sample_quantile(self.prior_days, quantile)))
                return end_of_local_day_ms(day, order.timezone), SOURCE_PRIOR, HANDLING_PRIOR
            day, lead = found
            return end_of_local_day_ms(day, order.timezone), lead.source, HANDLING_PRIOR
        handling_hours, handling_source = self.handling.estimate(
            order.origin_id, quantile, config.min_samples, config.prior_handling_hours
        )
        estimate = self.transit.estimate(
            _lane(order), quantile, config.min_samples, config.prior_transit_hours
        )
        ready = order.placed_ms + math.ceil((handling_hours + estimate.hours) * HOUR_MS)
        return (
            end_of_local_day_ms(local_day(ready, order.timezone), order.timezone),
            estimate.source,
            handling_source,
        )


def run_backtest(history: ParsedHistory, config: BacktestConfig = BacktestConfig()) -> BacktestReport:
    """Replay ``history`` in time order, learning only from the past (see the module docstring)."""
    if not 0.0 <= config.quantile <= 1.0:
        raise ValueError(f"quantile must be within [0, 1], got {config.quantile}")
    if config.method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {config.method!r}")
    started = time.perf_counter()
    orders = sorted(history.shipments, key=lambda s: s.placed_ms)
    deliveries = sorted(history.shipments, key=lambda s: s.delivered_ms)
    replay = _Replay(config)
    report = BacktestReport(
        config=config,
        rows=history.rows,
        skipped=history.skipped,
        warmup_orders=0,
        model=Figures(),
        transit_sources=Counter(),
        handling_sources=Counter(),
        on_time_by_source=Counter(),
        business=Figures() if history.has_estimated else None,
        business_skipped=Counter(),
    )
    warmup_until = (orders[0].placed_ms + round(config.warmup_days * DAY_MS)) if orders else 0
    # Handovers and deliveries in time order (a handover first at a tie): what a worker would have
    # read from the transit observations topic by the time the order was placed.
    events = sorted(
        [(s.handed_ms, 0, i) for i, s in enumerate(deliveries)]
        + [(s.delivered_ms, 1, i) for i, s in enumerate(deliveries)]
    )
    learned = 0
    for order in orders:
        while learned < len(events) and events[learned][0] < order.placed_ms:
            _, kind, at = events[learned]
            if kind == 0:
                replay.handed(deliveries[at])
            else:
                replay.learn(deliveries[at])
            learned += 1
        if order.placed_ms < warmup_until:
            report.warmup_orders += 1
            continue
        _score(report, replay, order)
    report.elapsed_s = time.perf_counter() - started
    return report


def _score(report: BacktestReport, replay: _Replay, order: Shipment) -> None:
    promised, source, handling_source = replay.promise(order, report.config.quantile)
    report.model.add(order.placed_ms, promised, order.delivered_ms)
    report.transit_sources[source] += 1
    report.handling_sources[handling_source] += 1
    if order.delivered_ms <= promised:
        report.on_time_by_source[source] += 1
    if report.business is not None:
        if order.estimated_ms is not None:
            report.business.add(order.placed_ms, order.estimated_ms, order.delivered_ms)
        else:
            report.business_skipped[order.estimated_error or "no estimated_delivery"] += 1
    by_level = tuple(replay.promise(order, level)[0] for level in report.config.reliability_levels)
    report.scored.append(
        Scored(_quarter(order), order.placed_ms, order.delivered_ms, promised, order.estimated_ms, by_level)
    )


def backtest_file(
    path: Path, config: BacktestConfig = BacktestConfig(), default_timezone: str = "UTC"
) -> BacktestReport:
    """Read and replay a deliveries CSV; ``elapsed_s`` covers reading too."""
    started = time.perf_counter()
    report = run_backtest(read_history(path, default_timezone), config)
    report.source_file = str(path)
    report.elapsed_s = time.perf_counter() - started
    return report


def report_json(report: BacktestReport) -> str:
    return json.dumps(report.to_dict(), indent=2)
