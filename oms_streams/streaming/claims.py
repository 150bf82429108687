"""What the order owner knows of stock that the availability feed may not show yet (``Claims``).

Sourcing plans over the replicated availability feed, which trails the ledgers by a batch or two.
Between a reservation and the feed record that shows it, this worker corrects the feed with what
it knows better, so that a burst of orders does not plan on the same units again and again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from oms_streams.adapters.sourcing import Reply

CLAIM_TTL_MS = 30_000
"""How long this worker remembers its own reservations and the ledgers' hints over the feed."""


class Claims:
    """What this worker knows of stock that the availability feed may not show yet.

    Units it asked ledgers for and has no answer to are taken (in flight); units a ledger reserved
    for it count as taken until the feed publishes a record at least as new as the reservation;
    a ledger's answer says what is left at a location as of its time, newer than the feed's record.
    """

    def __init__(self) -> None:
        self.in_flight: dict[tuple[str, str], int] = defaultdict(int)
        self.reserved: dict[tuple[str, str], list[tuple[int, int]]] = {}
        self.hints: dict[tuple[str, str], tuple[int, int]] = {}
        self.by_sku: dict[str, set[str]] = defaultdict(set)
        """SKU -> locations with any claim or hint: the rest of the feed is used as it is."""

    def asked(self, sku: str, lines: Iterable[list[Any]]) -> None:
        for loc, units, *_ in lines:
            self.in_flight[(sku, loc)] += units
            self.by_sku[sku].add(loc)

    def answered(self, reply: Reply, asked: Iterable[list[Any]], at_ms: int) -> None:
        self.withdrawn(reply.sku, asked)
        for loc, units, available in reply.lines:
            key = (reply.sku, loc)
            self.by_sku[reply.sku].add(loc)
            self.hints[key] = (at_ms, available)
            if reply.status == "reserved":
                self.reserved.setdefault(key, []).append((at_ms, units))

    def withdrawn(self, sku: str, asked: Iterable[list[Any]]) -> None:
        """An ask given up unanswered: its units are no longer in flight (its release follows)."""
        for loc, units, *_ in asked:
            key = (sku, loc)
            left = self.in_flight.get(key, 0) - units
            if left > 0:
                self.in_flight[key] = left
            else:
                self.in_flight.pop(key, None)

    def usable(self, sku: str, loc: str, view_units: int, view_at_ms: int, now_ms: int) -> int:
        key = (sku, loc)
        base, base_at = view_units, view_at_ms
        hint = self.hints.get(key)
        if hint is not None:
            if hint[0] < now_ms - CLAIM_TTL_MS:
                del self.hints[key]
            elif hint[0] > base_at:
                base_at, base = hint
        taken = self.in_flight.get(key, 0)
        reserved = self.reserved.get(key)
        if reserved:
            reserved[:] = [
                (at, units) for at, units in reserved if at > view_at_ms and at > now_ms - CLAIM_TTL_MS
            ]
            taken += sum(units for at, units in reserved if at > base_at)
            if not reserved:
                del self.reserved[key]
        return max(0, base - taken)

    def adjust(self, sku: str, shown: Mapping[str, int], view_at_ms: int, now_ms: int) -> Mapping[str, int]:
        """The feed's units of the SKU per location, corrected by what this worker knows better."""
        claimed = self.by_sku.get(sku)
        if not claimed:
            return shown  # the common case: nothing to correct, no copy
        usable = dict(shown)
        for loc in list(claimed):
            usable[loc] = self.usable(sku, loc, shown.get(loc, 0), view_at_ms, now_ms)
            key = (sku, loc)
            if key not in self.hints and key not in self.in_flight and key not in self.reserved:
                claimed.discard(loc)
        if not claimed:
            del self.by_sku[sku]
        return usable

    def clear(self) -> None:
        self.in_flight.clear()
        self.reserved.clear()
        self.hints.clear()
        self.by_sku.clear()
