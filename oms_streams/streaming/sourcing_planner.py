"""What a sourcing round plans on, and the planner's decision over it (``domain.sourcing``).

The planner sees the replicated availability view, which trails the ledgers by a batch or two,
corrected by what this worker knows better (``Claims``: units it asked for and has no answer to,
units reserved for it that the view does not show yet, what a ledger said is left); an order placed
with a cart hold also plans on its held units (the view hides them); and this worker's live
allocations per location are a cost. Rounds and backorders (``streaming.backorders``) plan on the
same snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from oms_streams.adapters.sourcing import SourcingRow
from oms_streams.adapters.timestamps import epoch_ms_from_iso
from oms_streams.domain.network import DeliveryMethod
from oms_streams.domain.promise import CHANNEL_FOR_METHOD
from oms_streams.domain.sourcing import SourcingDecision, SourcingPolicy, StockSnapshot, source_order
from oms_streams.domain.transit import TransitModel
from oms_streams.metrics import Metrics
from oms_streams.streaming.claims import Claims
from oms_streams.streaming.holds import HoldBook
from oms_streams.streaming.ledger_runtime import AvailabilityView
from oms_streams.streaming.network import NetworkState

TRANSFER_CHANNEL = CHANNEL_FOR_METHOD[DeliveryMethod.STANDARD]
"""Whose view of a DC a click & collect transfer takes (the pickup channel sees stores only)."""


class RoundPlanner:
    def __init__(
        self,
        network: NetworkState,
        view: AvailabilityView,
        transit: TransitModel,
        policy: SourcingPolicy | None,
        holds: HoldBook | None,
        claims: Claims,
        workload: dict[str, int],
        metrics: Metrics,
    ) -> None:
        self.network = network
        self.view = view
        self.transit = transit
        self.policy = policy
        self.holds = holds
        """Cart holds: an order placed with one plans on its held units too (availability hides them)."""
        self.claims = claims
        self.workload = workload
        """Live allocations per location among this worker's orders (the runtime's: a sourcing cost)."""
        self.metrics = metrics

    def decide(self, row: SourcingRow, now: int) -> SourcingDecision:
        """The planner's decision for the row's lines, nothing sent."""
        started = time.perf_counter()
        request = row.request(now)
        decision = source_order(
            request,
            self.snapshot(row.channel, [line.sku for line in request.lines], now, row.hold_id),
            self.network.promise_network,
            self.transit,
            self._policy(),
        )
        self.metrics.sourcing_decision_seconds.observe(time.perf_counter() - started)
        return decision

    def _policy(self) -> SourcingPolicy:
        if self.policy is not None:
            return self.policy
        return SourcingPolicy(max_splits=self.network.promise_network.policy.max_parcels)

    def snapshot(self, channel: str, skus: list[str], now: int, hold_id: str | None = None) -> StockSnapshot:
        """The stock a round of an order of ``channel`` (with the cart hold ``hold_id``) plans on."""
        units: dict[str, Mapping[str, int]] = {}
        held = self.holds.held_units(hold_id) if self.holds is not None and hold_id else {}
        protected: dict[str, dict[str, int]] = {}
        for sku in skus:
            record = self.view.get(sku)
            shown: dict[str, int] = {}
            at_ms = 0
            if record is not None:
                channels = record["channels"]
                shown = channels.get(channel, {}).get("locations", {})
                if channel != TRANSFER_CHANNEL:
                    # A pickup store's missing lines come from DCs, as the webshop sees them.
                    transfer = channels.get(TRANSFER_CHANNEL, {}).get("locations", {})
                    shown = {**transfer, **shown}
                at_ms = epoch_ms_from_iso(record["published_at"])
                protected[sku] = record.get("protected", {})
            units[sku] = self.claims.adjust(sku, shown, at_ms, now)
            if sku in held:  # the reserve takes the hold over: its units are the order's to plan on
                mine = held[sku]
                units[sku] = {loc: units[sku].get(loc, 0) + mine.get(loc, 0) for loc in {*units[sku], *mine}}
        return StockSnapshot(units=units, protected=protected, workload=self.workload)
