"""When a finished order, saga or return leaves the worker's state: pure decisions, time passed in.

An order's rows (``orders``, ``sourcing``) and a return's row are kept while something can still
happen to them, and for a retention after they finish, so that late events, customer service and
returns of the order still find them. Then the owning worker deletes them (a tombstone in the
table's changelog) and stops paying for them at every reload. This module decides *whether* a row
is finished (``order_finished``, ``saga_finished``, ``return_finished``) and *when* it may go
(``removal_due_ms``); the runtimes pass the facts and the time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from oms_streams.domain.lifecycle import Lifecycle

DAY_MS = 86_400_000


class Ending(StrEnum):
    DELIVERED = "delivered"
    """Everything that was not cancelled reached the customer (or left for them, on the saga's side)."""
    CANCELLED = "cancelled"
    """Every line was cancelled before it shipped."""
    REJECTED = "rejected"
    """Refused at placement, or no stock was found for it (nothing allocated, nothing shipped)."""
    ORPHANED = "orphaned"
    """Events for an order whose placement never came (or came and was removed before them)."""
    RETURNED = "returned"
    """A return: routed and/or received; it only waits for late receipts."""


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long each kind of finished row is kept after it finished, in milliseconds."""

    delivered_ms: int = 44 * DAY_MS
    """A 30-day return window plus two weeks for the parcel to come back and be received."""
    cancelled_ms: int = 7 * DAY_MS
    rejected_ms: int = 7 * DAY_MS
    orphaned_ms: int = 14 * DAY_MS
    returned_ms: int = 60 * DAY_MS

    @classmethod
    def of_days(
        cls, delivered: float, cancelled: float, rejected: float, orphaned: float, returned: float
    ) -> RetentionPolicy:
        return cls(*(int(days * DAY_MS) for days in (delivered, cancelled, rejected, orphaned, returned)))

    def keep_ms(self, ending: Ending) -> int:
        return {
            Ending.DELIVERED: self.delivered_ms,
            Ending.CANCELLED: self.cancelled_ms,
            Ending.REJECTED: self.rejected_ms,
            Ending.ORPHANED: self.orphaned_ms,
            Ending.RETURNED: self.returned_ms,
        }[ending]


@dataclass(frozen=True, slots=True)
class Finished:
    ending: Ending
    at_ms: int
    """When it finished (the last delivery, the cancellation, the placement, the last receipt)."""


def removal_due_ms(finished: Finished, policy: RetentionPolicy) -> int:
    """The moment from which the row may be removed."""
    return finished.at_ms + policy.keep_ms(finished.ending)


def removable(finished: Finished | None, policy: RetentionPolicy, now_ms: int) -> bool:
    """Finished, and its retention has passed at ``now_ms``."""
    return finished is not None and removal_due_ms(finished, policy) <= now_ms


def order_finished(state: Lifecycle | None, watched: bool, ended_at_ms: int | None) -> Finished | None:
    """An order row's end, from its lifecycle (``None``: only events came, no placement).

    ``watched``: a milestone check is pending or a risk is open, so the order can still change
    without an event (a delivered or cancelled order is never watched). A rejected order is over
    whatever its milestones say: nothing was allocated, nothing will ship.
    ``ended_at_ms``: the latest event, cancellation or placement time of the order."""
    if ended_at_ms is None:
        return None
    if state is Lifecycle.REJECTED:
        return Finished(Ending.REJECTED, ended_at_ms)
    if watched:
        return None
    if state is None:
        return Finished(Ending.ORPHANED, ended_at_ms)
    if state is Lifecycle.DELIVERED:
        return Finished(Ending.DELIVERED, ended_at_ms)
    if state is Lifecycle.CANCELLED:
        return Finished(Ending.CANCELLED, ended_at_ms)
    return None


@dataclass(frozen=True, slots=True)
class SagaFacts:
    """What a sourcing row says about whether anything can still happen to its order's stock."""

    busy: bool
    """A round is under way, a command awaits its answer, or a withdrawal or cancellation is parked."""
    live: int
    """Allocations whose units have not left their location."""
    fulfilled: int
    """Allocations whose units left (handed over, departed, collected)."""
    backordered: bool
    """Lines still waiting for stock."""
    rejected: bool
    all_cancelled: bool
    """Every ordered SKU was cancelled."""
    awaiting_stock: bool = False
    """Backordered lines are sourced again when stock arrives (within their horizon, not final:
    ``domain.backorders``)."""


def saga_ending(facts: SagaFacts) -> Ending | None:
    """The saga's end, or None while it holds stock, waits for an answer, or waits for stock. A
    backorder that no longer waits for stock (its horizon passed, or it never did) is final: what
    shipped decides, and an order that shipped nothing ends rejected."""
    if facts.busy or facts.live or facts.awaiting_stock:
        return None
    if facts.fulfilled:
        return Ending.DELIVERED
    if facts.all_cancelled:
        return Ending.CANCELLED
    if facts.rejected or facts.backordered:
        return Ending.REJECTED
    return None


def saga_finished(facts: SagaFacts, finished_at_ms: int | None, now_ms: int) -> Finished | None:
    """The saga's end, dated when it was first seen finished (``finished_at_ms``) or now."""
    ending = saga_ending(facts)
    if ending is None:
        return None
    return Finished(ending, finished_at_ms if finished_at_ms is not None else now_ms)


def return_finished(activity_ms: Iterable[int]) -> Finished | None:
    """A return waits only for late receipts: it is 'finished' from its latest routing or receipt."""
    latest = max(activity_ms, default=None)
    return None if latest is None else Finished(Ending.RETURNED, latest)
