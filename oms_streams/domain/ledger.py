"""One SKU's ledger across its locations: applies a batch of stock events and gives each a verdict.

The batch belongs to one SKU because stock is partitioned by SKU: one owner sees all of a SKU's
events in order, so nothing here needs a lock.

Duplicates: a position's journal remembers its last movements (count semantics need them), but a
till that re-sends a day of sales after an outage re-sends more than that. So the caller also says
which movements it has applied before, by (location, event id), from a store that remembers every
applied movement for a window of days (``streaming/event_ids.py``); a movement it names is a
duplicate, and so is one repeated within the batch or in a journal as the batch began.
``LedgerResult.applied_ids`` are the ones to
remember, each with its position's ``applied`` count after it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from oms_streams.domain.inventory import (
    Movement,
    Outcome,
    StockEvent,
    StockPosition,
    SupplierFeed,
    Verdict,
    apply_stock_event,
)
from oms_streams.domain.values import value
from oms_streams.domain.visibility import Location, LocationType


@value(frozen=True)
class StockCommand:
    location_id: str
    event: StockEvent


@value(frozen=True)
class LedgerResult:
    changed: dict[str, StockPosition]
    """New positions of the locations whose stock changed."""
    verdicts: list[tuple[Verdict, str]]
    """One per command, in order: the verdict and, when rejected, why."""
    applied_ids: list[tuple[str, str, int]]
    """(location, event id, the position's ``applied`` count with it) of every movement applied, in
    order: what the caller remembers."""


def location_problem(command: StockCommand, locations: Mapping[str, Location]) -> str | None:
    location = locations.get(command.location_id)
    if location is None:
        return f"unknown location {command.location_id!r}: publish it on the locations config topic first"
    if isinstance(command.event, SupplierFeed) and location.type is not LocationType.THIRD_PARTY:
        return f"supplier feed for {command.location_id!r}, which is a {location.type.value}, not third_party"
    return None


def _knew(positions: Mapping[str, StockPosition], seen_id: tuple[str, str]) -> bool:
    """Whether the position's journal held the movement when the batch began: a new movement later
    in the batch may push it out, and its re-send after that must still be a duplicate."""
    position = positions.get(seen_id[0])
    return position is not None and position.knows(seen_id[1])


_REJECTED, _DUPLICATE = Verdict.REJECTED, Verdict.DUPLICATE  # enum reads cost 0.3 µs each


def apply_commands(
    positions: Mapping[str, StockPosition],
    commands: list[StockCommand],
    locations: Mapping[str, Location],
    seen: Collection[tuple[str, str]] = (),
) -> LedgerResult:
    """``seen``: (location, event id) of the batch's movements that were applied before."""
    changed: dict[str, StockPosition] = {}
    verdicts: list[tuple[Verdict, str]] = []
    applied_ids: list[tuple[str, str, int]] = []
    applied_now: set[tuple[str, str]] = set()
    for command in commands:
        problem = location_problem(command, locations)
        if problem is not None:
            verdicts.append((_REJECTED, problem))
            continue
        current = changed.get(command.location_id) or positions.get(command.location_id) or StockPosition()
        event = command.event
        seen_id = (command.location_id, event.event_id)
        if isinstance(event, Movement) and (
            seen_id in seen or seen_id in applied_now or _knew(positions, seen_id)
        ):
            outcome = Outcome(current, _DUPLICATE)
        else:
            outcome = apply_stock_event(current, event)
        if outcome.changed:
            changed[command.location_id] = outcome.position
            if isinstance(event, Movement):
                applied_ids.append((*seen_id, outcome.position.applied))
                applied_now.add(seen_id)
        verdicts.append((outcome.verdict, outcome.reason))
    return LedgerResult(changed, verdicts, applied_ids)
