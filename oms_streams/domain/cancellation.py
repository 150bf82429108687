"""Cancelling an order, or some of its lines, before they ship: what is withdrawn and what is refused.

Pure: the caller passes the order as its sourcing owner knows it (the lines as placed, every
allocation with its state, the lines cancelled before, the requests decided before) and the
request. The decision says, per line, whether it is cancelled now, was cancelled before, or is
refused and why (already shipped, not a line of the order); which allocations are withdrawn whole;
which keep some of their lines (the caller replaces them with an allocation of the rest); and which
holds to release.

A line is every unit of one SKU of the order. A line whose units are split over several allocations
is cancelled where they have not left yet; units that already left are refused, with where they
left from. A line that is only backordered (nothing allocated) is simply cancelled.

Idempotent twice over: a request decided before (same id) is a duplicate, and a line cancelled
before stays cancelled and changes nothing, so cancelling a cancelled order again is answered
``already_cancelled``. While a sourcing round is under way its result is not known yet, so the
request waits for it (``wait``) rather than being decided on a plan that may still change.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum


class AllocationStatus(StrEnum):
    LIVE = "live"
    FULFILLED = "fulfilled"
    """Its units left the location (handover, route departure, collection, courier delivery)."""
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Allocated:
    """One allocation of the order, as cancellation needs it."""

    allocation_id: str
    location_id: str
    lines: tuple[tuple[str, int], ...]
    """(SKU, units)."""
    status: AllocationStatus


@dataclass(frozen=True, slots=True)
class CancellableOrder:
    order_id: str
    ordered: tuple[tuple[str, int], ...]
    """(SKU, units) as placed."""
    allocations: tuple[Allocated, ...] = ()
    cancelled: frozenset[str] = frozenset()
    """SKUs cancelled by earlier requests."""
    decided: frozenset[str] = frozenset()
    """Ids of the requests decided before."""
    sourcing_under_way: bool = False
    """A sourcing round has asked ledgers for stock and has not heard back from all of them."""


@dataclass(frozen=True, slots=True)
class CancellationRequest:
    request_id: str
    order_id: str
    skus: tuple[str, ...] = ()
    """The lines to cancel; empty: the whole order."""


class Outcome(StrEnum):
    CANCELLED = "cancelled"
    """Every line asked for is cancelled (at least one of them now)."""
    PARTIALLY_CANCELLED = "partially_cancelled"
    """Some units were cancelled now, others were refused (shipped, not in the order)."""
    ALREADY_CANCELLED = "already_cancelled"
    """Nothing changed: every line asked for was cancelled before."""
    REFUSED = "refused"
    """Nothing was cancelled: the order is not known, or every line asked for is refused."""
    DUPLICATE = "duplicate"
    """Not an answer: this request was decided before (answer it as then)."""
    WAIT = "wait"
    """Not an answer: decide it once the sourcing round under way is over."""


class LineVerdict(StrEnum):
    CANCELLED = "cancelled"
    ALREADY_CANCELLED = "already_cancelled"
    SHIPPED = "shipped"
    """Refused: every unit of the line already left."""
    NOT_IN_ORDER = "not_in_order"
    """Refused: the order has no such line."""


@dataclass(frozen=True, slots=True)
class LineResult:
    sku: str
    verdict: LineVerdict
    cancelled_units: int
    refused_units: int
    """Units that had already shipped (a line cancelled in part says so too)."""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CancellationDecision:
    outcome: Outcome
    lines: tuple[LineResult, ...] = ()
    withdrawn: tuple[str, ...] = ()
    """Allocations withdrawn whole: every line of theirs is cancelled."""
    reduced: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = ()
    """(allocation id, the lines it keeps): withdrawn too, and replaced by an allocation of the rest."""
    releases: tuple[tuple[str, str], ...] = ()
    """(allocation id, SKU): the holds of those lines go back to stock."""
    reason: str = ""
    """Why not everything asked for was cancelled; empty when it was."""

    @property
    def cancelled_skus(self) -> tuple[str, ...]:
        return tuple(line.sku for line in self.lines if line.verdict is LineVerdict.CANCELLED)


def decide_cancellation(order: CancellableOrder | None, request: CancellationRequest) -> CancellationDecision:
    """What cancelling the request's lines (all lines when it names none) does to the order."""
    if order is None:
        why = f"order {request.order_id} is not known: not placed, or not seen yet"
        return CancellationDecision(Outcome.REFUSED, reason=why)
    if request.request_id in order.decided:
        return CancellationDecision(Outcome.DUPLICATE)
    if order.sourcing_under_way:
        return CancellationDecision(Outcome.WAIT)
    asked = _unique(request.skus) or tuple(sku for sku, _ in order.ordered)
    lines = tuple(_line(order, sku) for sku in asked)
    cancelled = {line.sku for line in lines if line.verdict is LineVerdict.CANCELLED}
    withdrawn, reduced, releases = _withdrawals(order.allocations, cancelled)
    return CancellationDecision(
        outcome=_outcome(lines),
        lines=lines,
        withdrawn=withdrawn,
        reduced=reduced,
        releases=releases,
        reason="; ".join(line.reason for line in lines if line.reason),
    )


def open_lines(order: CancellableOrder, newly_cancelled: Collection[str] = ()) -> tuple[tuple[str, int], ...]:
    """(SKU, units) still to ship: neither cancelled nor left their location."""
    gone = order.cancelled | set(newly_cancelled)
    left = ((sku, units - _shipped(order, sku)[0]) for sku, units in order.ordered if sku not in gone)
    return tuple((sku, units) for sku, units in left if units > 0)


def closed_shipments(shipment_skus: Sequence[Collection[str]], cancelled: Collection[str]) -> frozenset[int]:
    """The promised shipments nothing is left to ship of: every SKU they carry is cancelled."""
    return frozenset(i for i, skus in enumerate(shipment_skus) if skus and all(s in cancelled for s in skus))


# --- helpers ----------------------------------------------------------------------------------------


def _unique(skus: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(skus))


def _shipped(order: CancellableOrder, sku: str) -> tuple[int, tuple[str, ...]]:
    """Units of the SKU that left, and the locations they left from."""
    units, where = 0, []
    for allocation in order.allocations:
        if allocation.status is not AllocationStatus.FULFILLED:
            continue
        for line_sku, line_units in allocation.lines:
            if line_sku == sku:
                units += line_units
                where.append(allocation.location_id)
    return units, tuple(sorted(set(where)))


def _line(order: CancellableOrder, sku: str) -> LineResult:
    ordered = dict(order.ordered)
    if sku not in ordered:
        return LineResult(
            sku, LineVerdict.NOT_IN_ORDER, 0, 0, f"{sku} is not a line of order {order.order_id}"
        )
    if sku in order.cancelled:
        return LineResult(sku, LineVerdict.ALREADY_CANCELLED, 0, 0)
    shipped, where = _shipped(order, sku)
    left = f"already shipped from {', '.join(where)}"
    if shipped >= ordered[sku]:
        return LineResult(sku, LineVerdict.SHIPPED, 0, ordered[sku], f"{sku}: all {ordered[sku]} {left}")
    reason = f"{sku}: {shipped} of {ordered[sku]} {left}" if shipped else ""
    return LineResult(sku, LineVerdict.CANCELLED, ordered[sku] - shipped, shipped, reason)


def _withdrawals(
    allocations: Sequence[Allocated], cancelled: Collection[str]
) -> tuple[tuple[str, ...], tuple[tuple[str, tuple[tuple[str, int], ...]], ...], tuple[tuple[str, str], ...]]:
    withdrawn: list[str] = []
    reduced: list[tuple[str, tuple[tuple[str, int], ...]]] = []
    releases: list[tuple[str, str]] = []
    for allocation in allocations:
        if allocation.status is not AllocationStatus.LIVE:
            continue
        hit = [sku for sku, _ in allocation.lines if sku in cancelled]
        if not hit:
            continue
        releases += [(allocation.allocation_id, sku) for sku in hit]
        kept = tuple((sku, units) for sku, units in allocation.lines if sku not in cancelled)
        if kept:
            reduced.append((allocation.allocation_id, kept))
        else:
            withdrawn.append(allocation.allocation_id)
    return tuple(withdrawn), tuple(reduced), tuple(releases)


def _outcome(lines: Sequence[LineResult]) -> Outcome:
    if any(line.verdict is LineVerdict.CANCELLED for line in lines):
        refused = any(line.refused_units or line.verdict is LineVerdict.NOT_IN_ORDER for line in lines)
        return Outcome.PARTIALLY_CANCELLED if refused else Outcome.CANCELLED
    if lines and all(line.verdict is LineVerdict.ALREADY_CANCELLED for line in lines):
        return Outcome.ALREADY_CANCELLED
    return Outcome.REFUSED
