"""Backordered lines sourced again when stock arrives, within a horizon after placement.

A sourcing round that cannot allocate every line leaves the rest backordered: the order is
``partially_allocated`` with ``backorder`` lines, or ``rejected`` when the round found nothing.
Such lines wait for stock until ``BackorderPolicy.horizon_ms`` after the placement. While they
wait, the order's owner looks at them now and then (``next_step``): when the availability it
follows shows stock the planner can use for them, a new round sources them again; at the horizon
the backorder is final (``final_reason``) and the order's outcome says so.

What waits for stock (``final_reason``): lines a round could not allocate for lack of stock, that
were not cancelled, of an order that was accepted (not refused at placement: a limit, a token, an
unreadable placement), delivered by any method but the same-day courier (its slot has passed by
the time stock arrives; a new slot is the customer's choice), and that the planner could source at
all (not an unknown pickup store, no carrier service for the method, no coordinates). A round given
up after its reservations kept being refused, or never answered, counts as a lack of stock: the
next round is tried when the view shows stock again.

Rounds of one order are spaced (``backoff_ms``): at least ``retry_ms`` after the last one started,
doubling with each round up to ``max_retry_ms``, so an order whose stock other orders keep taking
does not loop.

Pure: time is passed in.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from oms_streams.domain.network import DeliveryMethod
from oms_streams.domain.promise_types import CartLine
from oms_streams.domain.sourcing import Outcome

HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class BackorderPolicy:
    horizon_ms: int = 72 * HOUR_MS
    """Backordered lines are sourced again until this long after placement (0: never)."""
    retry_ms: int = 300_000
    """At least this long between the starts of two rounds that source one order's backorder."""
    max_retry_ms: int = HOUR_MS
    """The spacing doubles with each such round up to this (or ``retry_ms`` if that is longer)."""
    check_ms: int = 30_000
    """How long a backorder the view shows no usable stock for waits before it is looked at again."""

    @classmethod
    def of(cls, horizon_h: float, retry_s: float, check_s: float) -> BackorderPolicy:
        return cls(int(horizon_h * HOUR_MS), int(retry_s * 1000), HOUR_MS, int(check_s * 1000))


class Step(StrEnum):
    NONE = "none"
    """Nothing waits for stock: no open backorder, a final one, or a round is under way."""
    WAIT = "wait"
    """The spacing after the order's last round is not over."""
    CHECK = "check"
    """Look for usable stock now."""
    EXPIRE = "expire"
    """The horizon passed: the backorder is final."""


@dataclass(frozen=True, slots=True)
class Backorder:
    """What an order's sourcing row says of its backorder."""

    lines: tuple[CartLine, ...]
    """Backordered lines not cancelled."""
    until_ms: int | None
    """Sourced again until then; None: not waiting (no backorder, or never re-sourced)."""
    final: bool
    busy: bool
    """A sourcing round is under way."""
    rounds: int
    """Rounds started so far to source the backorder again."""
    tried_ms: int | None
    """When the latest of them started."""


@dataclass(frozen=True, slots=True)
class Next:
    step: Step
    at_ms: int | None
    """When to look at the order again (None with ``Step.NONE``)."""


def deadline_ms(placed_at_ms: int, policy: BackorderPolicy) -> int:
    return placed_at_ms + policy.horizon_ms


@dataclass(frozen=True, slots=True)
class Final:
    reason: str
    expired: bool
    """Final because the horizon passed (else it never waited for stock)."""


def final_reason(
    *,
    method: DeliveryMethod,
    round: int,
    stock_short: bool,
    placed_at_ms: int | None,
    now_ms: int,
    policy: BackorderPolicy,
) -> Final | None:
    """Why a backorder is not, or no longer, sourced again when stock arrives; None while it waits.
    ``stock_short``: the round's planner found too little stock (not an order it cannot serve)."""
    if round == 0:
        return Final("refused at placement", False)
    if policy.horizon_ms <= 0:
        return Final("backorders are not sourced again (the horizon is 0)", False)
    if method is DeliveryMethod.COURIER:
        return Final("a same-day courier delivery is not sourced again when stock arrives", False)
    if not stock_short:
        return Final("not for lack of stock: the order cannot be served by its method", False)
    if placed_at_ms is None:
        return Final("placed before backorders were sourced again", False)
    if now_ms >= deadline_ms(placed_at_ms, policy):
        return Final(f"not in stock within {policy.horizon_ms / HOUR_MS:g} h of placement", True)
    return None


def backoff_ms(rounds: int, policy: BackorderPolicy) -> int:
    """The least time from the start of the ``rounds``-th round to the start of the next one."""
    if rounds <= 0:
        return 0
    cap = max(policy.max_retry_ms, policy.retry_ms)
    doubled: int = policy.retry_ms << min(rounds - 1, 32)
    return min(cap, doubled)


def next_step(backorder: Backorder, now_ms: int, policy: BackorderPolicy) -> Next:
    """What to do about an order's backorder now, and when to look at it next."""
    until = backorder.until_ms
    if not backorder.lines or until is None or backorder.final or backorder.busy:
        return Next(Step.NONE, None)
    if now_ms >= until:
        return Next(Step.EXPIRE, now_ms)
    if backorder.tried_ms is not None:
        ready = backorder.tried_ms + backoff_ms(backorder.rounds, policy)
        if now_ms < ready:
            return Next(Step.WAIT, min(ready, until))
    return Next(Step.CHECK, now_ms)


def look_again_ms(now_ms: int, until_ms: int, policy: BackorderPolicy) -> int:
    """When to look again at a backorder the view showed no usable stock for (never past its horizon)."""
    return min(now_ms + policy.check_ms, until_ms)


def with_stock(
    lines: Iterable[CartLine],
    units: Mapping[str, Mapping[str, int]],
    excluded: Collection[tuple[str, str]] = (),
) -> tuple[str, ...]:
    """The backordered SKUs the view shows units of at a location the order may take them from (a
    cheap test before the planner decides whether it can use them)."""
    return tuple(
        line.sku
        for line in lines
        if any(n > 0 and (loc, line.sku) not in excluded for loc, n in units.get(line.sku, {}).items())
    )


def open_lines(backorder: Iterable[CartLine], cancelled: Collection[str]) -> tuple[CartLine, ...]:
    """The backordered lines that still wait: a cancelled SKU never does."""
    return tuple(line for line in backorder if line.sku not in cancelled and line.quantity > 0)


def carry_backorder(kept: Iterable[CartLine], short: Iterable[CartLine]) -> tuple[CartLine, ...]:
    """The order's backorder after a round: what earlier rounds left (a round that sources the
    backorder takes it out first) plus what this round could not allocate, per SKU."""
    units: dict[str, int] = {}
    for line in (*kept, *short):
        units[line.sku] = units.get(line.sku, 0) + line.quantity
    return tuple(CartLine(sku, n) for sku, n in units.items() if n > 0)


def round_outcome(planned: str, allocated: bool, backordered: bool) -> str:
    """A finished round's outcome: rejected when it allocated nothing; partially allocated when the
    order keeps a backorder from an earlier round although this one allocated all it looked for."""
    if not allocated:
        return Outcome.REJECTED.value
    if planned == Outcome.ALLOCATED.value and backordered:
        return Outcome.PARTIAL.value
    return planned


def final_outcome(has_allocations: bool) -> str:
    """The outcome of the round that says a backorder is final: nothing new is allocated."""
    return Outcome.PARTIAL.value if has_allocations else Outcome.REJECTED.value


def describe(lines: Iterable[CartLine]) -> str:
    return ", ".join(f"{line.sku} x {line.quantity}" for line in lines)
