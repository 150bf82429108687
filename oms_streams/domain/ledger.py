"""One SKU's ledger across its locations: applies a batch of stock events and gives each a verdict.

The batch belongs to one SKU because stock is partitioned by SKU: one owner sees all of a SKU's
events in order, so nothing here needs a lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from oms_streams.domain.inventory import (
    StockEvent,
    StockPosition,
    SupplierFeed,
    Verdict,
    apply_stock_event,
)
from oms_streams.domain.visibility import Location, LocationType


@dataclass(frozen=True, slots=True)
class StockCommand:
    location_id: str
    event: StockEvent


@dataclass(frozen=True, slots=True)
class LedgerResult:
    changed: dict[str, StockPosition]
    """New positions of the locations whose stock changed."""
    verdicts: list[tuple[Verdict, str]]
    """One per command, in order: the verdict and, when rejected, why."""


def location_problem(command: StockCommand, locations: Mapping[str, Location]) -> str | None:
    location = locations.get(command.location_id)
    if location is None:
        return f"unknown location {command.location_id!r}: publish it on the locations config topic first"
    if isinstance(command.event, SupplierFeed) and location.type is not LocationType.THIRD_PARTY:
        return f"supplier feed for {command.location_id!r}, which is a {location.type.value}, not third_party"
    return None


def apply_commands(
    positions: Mapping[str, StockPosition],
    commands: list[StockCommand],
    locations: Mapping[str, Location],
) -> LedgerResult:
    changed: dict[str, StockPosition] = {}
    verdicts: list[tuple[Verdict, str]] = []
    for command in commands:
        problem = location_problem(command, locations)
        if problem is not None:
            verdicts.append((Verdict.REJECTED, problem))
            continue
        current = changed.get(command.location_id) or positions.get(command.location_id) or StockPosition()
        outcome = apply_stock_event(current, command.event)
        if outcome.changed:
            changed[command.location_id] = outcome.position
        verdicts.append((outcome.verdict, outcome.reason))
    return LedgerResult(changed, verdicts)
