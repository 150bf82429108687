"""``oms report``: what a run of the retailer's day did, from its public topics, as an HTML page.

Three modules: ``report_reader`` reads the topics (like ``oms audit``, from the beginning to the
end offsets seen at the start, no consumer group), this one computes the figures from the decoded
records (pure: no Kafka, no clock, so it is tested on hand-made records), ``report_render`` draws
the page (matplotlib PNGs embedded as base64, and tables).

Which records count: an order is in the report when its first placement (else its first allocation)
lies in ``[since, until)``; every later record of such an order counts, whenever it came. Records
that are not about one order (at-risk transitions, cancellation answers, returns, availability,
dead letters) count when their own time lies in the window.

The baselines ("everything from the nearest DC" and "each line from the nearest location holding
it", the rules of ``bench/sourcing_quality.py``) are derived from each order's first sourcing
decision trace: its candidates with the units each held at that moment and their great-circle km
(the engine's own distance; ``haversine_km`` from the locations topic where a filtered candidate
has none). Only home deliveries (standard, green, ship from store) allocated whole in round 1 are
compared, over the candidates the engine could use (not filtered, or filtered only for missing
the promise: the naive rules ignore it). A trace lists at most 25 candidates (the cheapest); such
orders are compared over the listed ones and counted.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from oms_streams.config import Settings
from oms_streams.domain.visibility import Location, LocationType, haversine_km
from oms_streams.schemas.orders import OrderPlaced
from oms_streams.schemas.sourcing import Allocation, CandidateModel, DecisionTraceModel
from oms_streams.tools.report_reader import ReportInput

HOME_METHODS = frozenset({"standard", "green", "ship_from_store"})
LATE_FILTER = "cannot deliver by"
"""A candidate the engine filtered only for missing the promise: the naive baselines may use it."""
HOUR_S = 3600.0

E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class Window:
    since: datetime | None = None
    until: datetime | None = None

    def holds(self, at: datetime | None) -> bool:
        if at is None:
            return self.since is None and self.until is None
        return (self.since is None or at >= self.since) and (self.until is None or at < self.until)

    def text(self) -> str:
        if self.since is None and self.until is None:
            return "everything on the topics"
        since = self.since.isoformat() if self.since else "the beginning"
        until = self.until.isoformat() if self.until else "the end"
        return f"from {since} until {until}"


def parse_instant(text: str) -> datetime:
    """ISO 8601; without an offset it is UTC."""
    at = datetime.fromisoformat(text)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


# --- the figures ------------------------------------------------------------------------------------


@dataclass(slots=True)
class PlanFigures:
    """Parcels, km and CO2e of one way of shipping a set of orders."""

    name: str
    orders: int = 0
    parcels: int = 0
    km: float = 0.0
    co2e_g: float = 0.0

    def add(self, parcels: int, km: float, co2e_g: float) -> None:
        self.orders += 1
        self.parcels += parcels
        self.km += km
        self.co2e_g += co2e_g

    def per_order(self, value: float) -> float | None:
        return value / self.orders if self.orders else None


@dataclass(slots=True)
class OrdersSummary:
    orders: int = 0
    """Orders placed (or first allocated) in the window."""
    shipped_orders: int = 0
    """Of those, orders with at least one allocation not cancelled."""
    parcels: Counter[int] = field(default_factory=Counter)
    """Parcels (allocations net of cancels) -> orders."""
    km: list[float] = field(default_factory=list)
    co2e_g: list[float] = field(default_factory=list)
    fully_cancelled: int = 0
    methods: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    """The last sourcing round's outcome per order."""
    resourced: int = 0
    """Orders sourced more than once (short pick, rejection, partial cancellation)."""

    @property
    def parcels_per_order(self) -> float | None:
        total = sum(n * orders for n, orders in self.parcels.items())
        return total / self.shipped_orders if self.shipped_orders else None


@dataclass(slots=True)
class Baselines:
    engine: PlanFigures = field(default_factory=lambda: PlanFigures("this engine"))
    nearest_dc: PlanFigures = field(default_factory=lambda: PlanFigures("everything from the nearest DC"))
    per_line: PlanFigures = field(
        default_factory=lambda: PlanFigures("each line from the nearest location holding it")
    )
    skipped: Counter[str] = field(default_factory=Counter)
    """Why orders were not compared -> orders."""
    truncated_traces: int = 0
    """Compared orders whose trace listed fewer candidates than the engine had."""


@dataclass(slots=True)
class PromiseSummary:
    promised: int = 0
    completed: int = 0
    on_time: int = 0
    open_orders: int = 0
    open_past_window: int = 0
    not_shipping: int = 0
    """Cancelled whole, or rejected by sourcing: neither on time nor late."""
    lead_hours: list[float] = field(default_factory=list)
    """Placed -> delivered or collected, completed orders."""
    promised_hours: list[float] = field(default_factory=list)
    """Placed -> end of the promised window, every promised order."""
    confidences: list[float] = field(default_factory=list)
    by_method: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    """Method -> [completed, on time]."""

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time / self.completed if self.completed else None


@dataclass(slots=True)
class RiskSummary:
    events: Counter[str] = field(default_factory=Counter)
    """Reason -> at-risk transitions."""
    actions: Counter[str] = field(default_factory=Counter)
    orders: int = 0
    cleared: int = 0
    delays_minutes: list[int] = field(default_factory=list)


@dataclass(slots=True)
class CancellationSummary:
    outcomes: Counter[str] = field(default_factory=Counter)
    units_cancelled: int = 0
    units_refused: int = 0
    orders_cancelled: int = 0


@dataclass(slots=True)
class ReturnsSummary:
    receipts: int = 0
    km_avoided: float = 0.0
    by_handling: dict[str, list[float]] = field(default_factory=lambda: defaultdict(lambda: [0, 0.0]))
    """Handling -> [receipts, km avoided]."""
    units: Counter[str] = field(default_factory=Counter)
    """Disposition -> units."""


@dataclass(slots=True)
class ProtectionSummary:
    series: list[tuple[datetime, int]] = field(default_factory=list)
    """After each availability record: units protected over all stores and SKUs."""
    per_store: dict[str, int] = field(default_factory=dict)
    """Units each store protects at the end of the window."""
    skus: int = 0
    """SKUs protected somewhere at the end."""

    @property
    def peak(self) -> int:
        return max((units for _, units in self.series), default=0)


@dataclass(slots=True)
class DeadLetterSummary:
    reasons: Counter[str] = field(default_factory=Counter)
    topics: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class DayReport:
    window: Window
    orders: OrdersSummary
    baselines: Baselines
    promise: PromiseSummary
    risk: RiskSummary
    cancellations: CancellationSummary
    returns: ReturnsSummary
    protection: ProtectionSummary
    dead_letters: DeadLetterSummary
    records: dict[str, int]
    undecodable: dict[str, Counter[str]]
    missing: tuple[str, ...]


# --- computing them ---------------------------------------------------------------------------------


def _unique(items: Iterable[E], key: str = "event_id") -> list[E]:
    seen: set[object] = set()
    out = []
    for item in items:
        k = getattr(item, key)
        if k not in seen:
            seen.add(k)
            out.append(item)
    return out


@dataclass(slots=True)
class _Order:
    order_id: str
    placements: list[OrderPlaced] = field(default_factory=list)
    allocated: dict[str, Allocation] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)
    first_allocated_at: datetime | None = None

    @property
    def placed_at(self) -> datetime | None:
        if self.placements:
            return min(p.occurred_at for p in self.placements)
        return self.first_allocated_at

    @property
    def live(self) -> list[Allocation]:
        return [a for aid, a in self.allocated.items() if aid not in self.cancelled]


def _orders(data: ReportInput, window: Window) -> dict[str, _Order]:
    orders: dict[str, _Order] = {}
    for placement in _unique(data.placed):
        orders.setdefault(placement.order_id, _Order(placement.order_id)).placements.append(placement)
    seen: set[tuple[str, str]] = set()
    for allocation in data.allocations:
        if (allocation.allocation_id, allocation.kind) in seen:
            continue
        seen.add((allocation.allocation_id, allocation.kind))
        order = orders.setdefault(allocation.order_id, _Order(allocation.order_id))
        if allocation.kind == "allocate":
            order.allocated[allocation.allocation_id] = allocation
            if order.first_allocated_at is None or allocation.occurred_at < order.first_allocated_at:
                order.first_allocated_at = allocation.occurred_at
        else:
            order.cancelled.add(allocation.allocation_id)
    return {oid: order for oid, order in orders.items() if window.holds(order.placed_at)}


def summarize_orders(orders: dict[str, _Order], data: ReportInput) -> OrdersSummary:
    summary = OrdersSummary(orders=len(orders))
    rounds: dict[str, tuple[int, str]] = {}
    for outcome in data.sourced:
        if outcome.order_id in orders and outcome.round >= rounds.get(outcome.order_id, (0, ""))[0]:
            rounds[outcome.order_id] = (outcome.round, outcome.outcome)
    for round_, last in rounds.values():
        summary.outcomes[last] += 1
        if round_ > 1:
            summary.resourced += 1
    for order in orders.values():
        method = (
            order.placements[-1].option.method
            if order.placements
            else next(iter(order.allocated.values())).method
            if order.allocated
            else "unknown"
        )
        summary.methods[method] += 1
        live = order.live
        if not live:
            if order.allocated:
                summary.fully_cancelled += 1
            continue
        summary.shipped_orders += 1
        summary.parcels[len(live)] += 1
        summary.km.append(sum(a.distance_km for a in live))
        summary.co2e_g.append(sum(a.co2e_g for a in live))
    return summary


def nearest_first(
    cart: Sequence[tuple[str, int]],
    ranked: Sequence[tuple[float, str]],
    held: dict[str, dict[str, int]],
    *,
    by_location: bool,
) -> dict[str, list[tuple[str, int]]] | None:
    """The baselines of ``bench/sourcing_quality.py``: with ``by_location`` the nearest location
    takes every line it holds whole, then the next nearest; without, each line comes from the
    nearest location holding it whole. A line no one holds whole is split nearest first. None when
    the locations together do not hold the cart."""
    taken: dict[str, list[tuple[str, int]]] = {}
    rest: list[tuple[str, int]] = []
    if by_location:
        todo = list(cart)
        for _, loc in ranked:
            keep = []
            for sku, quantity in todo:
                if held.get(loc, {}).get(sku, 0) >= quantity:
                    taken.setdefault(loc, []).append((sku, quantity))
                else:
                    keep.append((sku, quantity))
            todo = keep
            if not todo:
                break
        rest = todo
    else:
        for sku, quantity in cart:
            nearest = next((loc for _, loc in ranked if held.get(loc, {}).get(sku, 0) >= quantity), None)
            if nearest is None:
                rest.append((sku, quantity))
            else:
                taken.setdefault(nearest, []).append((sku, quantity))
    for sku, quantity in rest:
        left = quantity
        for _, loc in ranked:
            units = min(left, held.get(loc, {}).get(sku, 0))
            if units > 0:
                taken.setdefault(loc, []).append((sku, units))
                left -= units
                if not left:
                    break
        if left:
            return None
    return taken


def _distance(
    candidate: CandidateModel, locations: dict[str, Location], lat: float | None, lon: float | None
) -> float | None:
    if candidate.distance_km is not None:
        return candidate.distance_km
    site = locations.get(candidate.location_id)
    if site is None or site.lat is None or site.lon is None or lat is None or lon is None:
        return None
    return haversine_km(site.lat, site.lon, lat, lon)


def _first_round(order: _Order) -> list[Allocation]:
    return sorted((a for a in order.allocated.values() if a.round == 1), key=lambda a: a.shipment)


def compare_baselines(
    orders: dict[str, _Order], data: ReportInput, locations: dict[str, Location]
) -> Baselines:
    out = Baselines()
    traces: dict[str, DecisionTraceModel] = {}
    whole: set[str] = set()
    for outcome in data.sourced:
        if outcome.round == 1 and outcome.order_id in orders:
            if outcome.outcome == "allocated":
                whole.add(outcome.order_id)
            if outcome.trace is not None:
                traces[outcome.order_id] = outcome.trace
    first = {oid: _first_round(order) for oid, order in orders.items()}
    engine_km = sum(a.distance_km for allocs in first.values() for a in allocs if a.method in HOME_METHODS)
    engine_co2 = sum(a.co2e_g for allocs in first.values() for a in allocs if a.method in HOME_METHODS)
    fallback_factor = engine_co2 / engine_km if engine_km > 0 else 0.0
    for order_id in sorted(orders):
        allocations = first[order_id]
        if not allocations:
            out.skipped["no round-1 allocation"] += 1
            continue
        if allocations[0].method not in HOME_METHODS:
            out.skipped[f"{allocations[0].method} (not a home delivery)"] += 1
            continue
        if order_id not in whole:
            out.skipped["not allocated whole in round 1"] += 1
            continue
        trace = traces.get(order_id) or next((a.trace for a in allocations if a.trace is not None), None)
        if trace is None:
            out.skipped["no decision trace"] += 1
            continue
        destination = allocations[0].destination
        placements = orders[order_id].placements
        if destination is None and placements:
            destination = placements[0].destination
        lat = destination.lat if destination else None
        lon = destination.lon if destination else None
        cart: dict[str, int] = defaultdict(int)
        for allocation in allocations:
            for line in allocation.lines:
                cart[line.sku] += line.quantity
        usable = [c for c in trace.candidates if c.filtered is None or c.filtered.startswith(LATE_FILTER)]
        ranked: list[tuple[float, str]] = []
        for candidate in usable:
            km = _distance(candidate, locations, lat, lon)
            if km is not None:
                ranked.append((km, candidate.location_id))
        ranked.sort()
        held = {c.location_id: dict(c.held) for c in usable}
        km_of = {loc: km for km, loc in ranked}
        dcs = [(km, loc) for km, loc in ranked if _is_dc(locations.get(loc))]
        lines = sorted(cart.items())
        by_dc = nearest_first(lines, dcs, held, by_location=True)
        per_line = nearest_first(lines, ranked, held, by_location=False)
        if by_dc is None:
            out.skipped["its DC candidates do not hold the cart"] += 1
            continue
        if per_line is None:
            out.skipped["its candidates do not hold the cart"] += 1
            continue
        km = sum(a.distance_km for a in allocations)
        co2e = sum(a.co2e_g for a in allocations)
        factor = co2e / km if km > 0 else fallback_factor
        out.engine.add(len(allocations), km, co2e)
        for figures, plan in ((out.nearest_dc, by_dc), (out.per_line, per_line)):
            plan_km = sum(km_of[loc] for loc in plan)
            figures.add(len(plan), plan_km, plan_km * factor)
        if len(trace.candidates) < trace.candidates_total:
            out.truncated_traces += 1
    return out


def _is_dc(location: Location | None) -> bool:
    return location is not None and location.type is LocationType.DC


def summarize_promise(orders: dict[str, _Order], data: ReportInput) -> PromiseSummary:
    summary = PromiseSummary()
    done: dict[str, dict[str, datetime]] = defaultdict(dict)
    collected: dict[str, datetime] = {}
    for event in _unique(data.fulfilment):
        if event.order_id not in orders:
            continue
        if event.kind == "collected":
            if event.order_id not in collected or event.occurred_at > collected[event.order_id]:
                collected[event.order_id] = event.occurred_at
        elif event.kind == "delivered":
            shipment = (
                str(event.shipment) if event.shipment is not None else event.location_id or event.event_id
            )
            done[event.order_id][shipment] = event.occurred_at
    last = max(
        [e.occurred_at for e in data.fulfilment] + [a.occurred_at for a in data.allocations], default=None
    )
    last_round: dict[str, tuple[int, str]] = {}
    for outcome in data.sourced:
        if outcome.round >= last_round.get(outcome.order_id, (0, ""))[0]:
            last_round[outcome.order_id] = (outcome.round, outcome.outcome)
    for order_id, order in orders.items():
        if not order.placements:
            continue
        placed_at = min(p.occurred_at for p in order.placements)
        option = max(order.placements, key=lambda p: p.occurred_at).option
        summary.promised += 1
        summary.promised_hours.append((option.window_end - placed_at).total_seconds() / HOUR_S)
        if option.confidence is not None:
            summary.confidences.append(option.confidence)
        rejected = last_round.get(order_id, (0, ""))[1] == "rejected"
        if not order.live and (order.allocated or rejected):
            summary.not_shipping += 1  # cancelled whole or rejected: nothing to deliver
            continue
        finished: datetime | None = collected.get(order_id)
        delivered = done.get(order_id, {})
        if finished is None and delivered and len(delivered) >= max(1, len(order.live)):
            finished = max(delivered.values())
        if finished is None:
            summary.open_orders += 1
            if last is not None and last > option.window_end:
                summary.open_past_window += 1
            continue
        summary.completed += 1
        on_time = finished <= option.window_end
        summary.on_time += on_time
        summary.lead_hours.append((finished - placed_at).total_seconds() / HOUR_S)
        tally = summary.by_method[option.method]
        tally[0] += 1
        tally[1] += on_time
    return summary


def summarize_risk(data: ReportInput, window: Window) -> RiskSummary:
    summary = RiskSummary()
    at_risk: set[str] = set()
    for event in _unique(data.at_risk):
        if not window.holds(event.occurred_at):
            continue
        if event.status == "cleared":
            summary.cleared += 1
            continue
        at_risk.add(event.order_id)
        summary.events[event.reason or "unknown"] += 1
        summary.actions[event.suggested_action or "none"] += 1
        if event.expected_delay_minutes is not None:
            summary.delays_minutes.append(event.expected_delay_minutes)
    summary.orders = len(at_risk)
    return summary


def summarize_cancellations(data: ReportInput, window: Window) -> CancellationSummary:
    summary = CancellationSummary()
    for outcome in _unique(data.cancellations):
        if not window.holds(outcome.occurred_at):
            continue
        summary.outcomes[outcome.outcome] += 1
        summary.units_cancelled += sum(line.cancelled_quantity for line in outcome.lines)
        summary.units_refused += sum(line.refused_quantity for line in outcome.lines)
        summary.orders_cancelled += outcome.order_cancelled and outcome.outcome != "already_cancelled"
    return summary


def summarize_returns(data: ReportInput, window: Window) -> ReturnsSummary:
    summary = ReturnsSummary()
    for receipt in _unique(data.returns):
        if not window.holds(receipt.processed_at):
            continue
        summary.receipts += 1
        summary.km_avoided += receipt.km_avoided
        tally = summary.by_handling[receipt.handling]
        tally[0] += 1
        tally[1] += receipt.km_avoided
        for item in receipt.items:
            summary.units[item.disposition] += item.quantity
    return summary


def summarize_protection(data: ReportInput, window: Window) -> ProtectionSummary:
    summary = ProtectionSummary()
    latest: dict[str, dict[str, int]] = {}
    total = 0
    for record in sorted(data.availability, key=lambda r: r.published_at):
        if window.until is not None and record.published_at >= window.until:
            break
        before = latest.get(record.sku, {})
        total += sum(record.protected.values()) - sum(before.values())
        latest[record.sku] = dict(record.protected)
        if window.since is None or record.published_at >= window.since:
            summary.series.append((record.published_at, total))
    per_store: Counter[str] = Counter()
    for protected in latest.values():
        per_store.update({store: units for store, units in protected.items() if units > 0})
    summary.per_store = dict(sorted(per_store.items()))
    summary.skus = sum(1 for protected in latest.values() if any(u > 0 for u in protected.values()))
    return summary


def summarize_dead_letters(data: ReportInput, window: Window, prefix: str = "") -> DeadLetterSummary:
    summary = DeadLetterSummary()
    for letter in data.dead_letters:
        if not window.holds(letter.failed_at):
            continue
        summary.reasons[letter.reason.split(":")[0].strip()[:120]] += 1
        topic = letter.source_topic
        summary.topics[topic[len(prefix) :] if prefix and topic.startswith(prefix) else topic] += 1
    return summary


def compute(data: ReportInput, window: Window = Window(), prefix: str = "") -> DayReport:
    orders = _orders(data, window)
    return DayReport(
        window=window,
        orders=summarize_orders(orders, data),
        baselines=compare_baselines(orders, data, data.locations),
        promise=summarize_promise(orders, data),
        risk=summarize_risk(data, window),
        cancellations=summarize_cancellations(data, window),
        returns=summarize_returns(data, window),
        protection=summarize_protection(data, window),
        dead_letters=summarize_dead_letters(data, window, prefix),
        records=data.records,
        undecodable=data.undecodable,
        missing=data.missing,
    )


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def write_day_report(
    settings: Settings, out: Path, window: Window = Window(), *, timeout_s: float = 60.0
) -> DayReport:
    """Read the run's topics, compute the figures and write the page; returns the figures."""
    from oms_streams.tools.report_reader import read_report_input
    from oms_streams.tools.report_render import render_html

    report = compute(read_report_input(settings, timeout_s=timeout_s), window, settings.topic_prefix)
    out.write_text(render_html(report), encoding="utf-8")
    return report
