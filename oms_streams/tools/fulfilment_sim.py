"""The demo's warehouse, store app and carrier: what they report for each allocation they are sent.

A WMS reads ``oms.fulfilment.allocations.v1`` and reports progress on ``oms.fulfilment.events.v1``;
so does this simulator, with compressed delays (seconds, scaled by ``FulfilmentTimes``) and faults at
small rates: a late pick, a short pick and a store rejection (both re-sourced by the worker), a
carrier delay.

A late pick is real, not a clock trick: the location is behind and starts the pick only
``late_pick_after_milestone_s`` after the allocation's latest pick start, so the worker sees that
milestone pass without a pick and puts the order at risk until the pick is reported. Milestones
follow the network's calendars, so for most orders that moment is hours away (a DC's carrier
pickup at 18:00); but an order picked from a store's own shelf for click & collect must start
picking at once (ready in the store's pick minutes), so its milestone is due when it is placed.
The first allocation whose latest pick start is that close (``first_late_pick_within_s``) is picked
late, so a short demo shows an order at risk while stores are open; later ones by ``late_pick``.

Time: the warehouse and store steps happen now, compressed. A carrier's transit does not fit in a
demo, so the carrier reports ``delivered`` after a few seconds but *stamped* with a realistic
transit after the handover (drawn from the service's stated transit hours): the transit the worker
learns from it is a carrier's, not the demo's compression.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from oms_streams.clock import now as business_now
from oms_streams.clock import speed
from oms_streams.schemas.config import NetworkConfig
from oms_streams.schemas.orders import FulfilmentKindName
from oms_streams.schemas.sourcing import Allocation
from oms_streams.tools.demo_options import FIRST_LATE_PICK_WITHIN_S, LATE_PICK_SHARE

COURIER_MINUTES = (20, 90)
"""A bike courier's ride, in minutes (stamped like a carrier's transit)."""
FALLBACK_TRANSIT_HOURS = (16, 20, 24, 40)


@dataclass(frozen=True)
class FulfilmentTimes:
    """Compressed delays in seconds (each drawn between half and one and a half times the value)."""

    pick_wait_s: float = 4.0
    pick_s: float = 3.0
    pack_s: float = 2.0
    handover_s: float = 3.0
    transit_s: float = 6.0
    collect_s: float = 8.0
    late_pick_after_milestone_s: float = 90.0
    """A late pick starts this long (wall seconds) after the allocation's latest pick start."""


@dataclass(frozen=True)
class FaultRates:
    late_pick: float = LATE_PICK_SHARE
    first_late_pick_within_s: float = FIRST_LATE_PICK_WITHIN_S
    """The first allocation whose latest pick start is due within this many seconds is picked late
    (0: no such rule; ``late_pick`` alone decides)."""
    short_pick: float = 0.03
    store_rejected: float = 0.04
    carrier_delay: float = 0.03


@dataclass(frozen=True, slots=True)
class Step:
    """One report: ``after_s`` after the previous step (or the allocation)."""

    after_s: float
    kind: FulfilmentKindName
    location_id: str
    reason: str = ""
    new_eta: datetime | None = None
    stamp_after_handover: timedelta | None = None
    """delivered: stamped this long after the shipment's handover (the carrier's real transit)."""
    not_before: datetime | None = None
    """Wait (real time) until then: a late pick waits past its milestone."""


@dataclass
class FulfilmentCounts:
    allocations: int = 0
    cancelled: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class FulfilmentPlanner:
    """Turns an allocation into the steps its location and carrier will report."""

    def __init__(
        self, network: NetworkConfig, rng: random.Random, times: FulfilmentTimes, faults: FaultRates
    ) -> None:
        self.rng = rng
        self.times = times
        self.faults = faults
        self.first_late_pick_done = faults.first_late_pick_within_s <= 0
        self.store_ids = {loc.location_id for loc in network.locations if loc.type == "store"}
        self.transit_hours = {
            service.service_id: tuple(service.prior_transit_hours) or FALLBACK_TRANSIT_HOURS
            for service in network.carrier_services
        }

    def _d(self, seconds: float) -> float:
        return seconds * self.rng.uniform(0.5, 1.5)

    def _chance(self, rate: float) -> bool:
        return self.rng.random() < rate

    def plan(self, allocation: Allocation, now: datetime | None = None) -> list[Step]:
        t, at = self.times, allocation.location_id
        first = self._start(allocation, now or business_now())
        if first.kind == "store_rejected":
            return [first]
        steps = [first]
        if self._chance(self.faults.short_pick):
            steps.append(Step(self._d(t.pick_s), "short_pick", at, reason="1 unit not found on the shelf"))
            return steps
        steps += [Step(self._d(t.pick_s), "picked", at), Step(self._d(t.pack_s), "packed", at)]
        if allocation.method == "click_and_collect":
            return steps + self._collect(allocation)
        return steps + self._ship(allocation)

    def _start(self, allocation: Allocation, now: datetime) -> Step:
        at, wait = allocation.location_id, self._d(self.times.pick_wait_s)
        rejectable = at in self.store_ids and at != allocation.pickup_store_id
        if rejectable and self._chance(self.faults.store_rejected):
            return Step(wait, "store_rejected", at, reason="store too busy to pick web orders now")
        latest = next((m.due for m in allocation.milestones if m.kind == "pick_start"), None)
        if latest is not None and (self._first_late(latest, now) or self._chance(self.faults.late_pick)):
            behind = timedelta(seconds=self.times.late_pick_after_milestone_s * speed())  # wall seconds
            late = max(latest, now) + behind
            return Step(wait, "pick_started", at, reason="late pick: the location is behind", not_before=late)
        return Step(wait, "pick_started", at)

    def _first_late(self, latest_pick_start: datetime, now: datetime) -> bool:
        """True once: for the first allocation whose pick must start within the configured horizon."""
        if self.first_late_pick_done:
            return False
        if (latest_pick_start - now).total_seconds() > self.faults.first_late_pick_within_s:
            return False
        self.first_late_pick_done = True
        return True

    def _collect(self, allocation: Allocation) -> list[Step]:
        t, at = self.times, allocation.location_id
        steps = []
        if allocation.route_id:  # rides the replenishment truck to the pickup store
            steps.append(Step(self._d(t.handover_s), "route_departed", at))
        steps.append(Step(self._d(t.handover_s), "ready_for_pickup", at))
        steps.append(Step(self._d(t.collect_s), "collected", at))
        return steps

    def _ship(self, allocation: Allocation) -> list[Step]:
        t, at = self.times, allocation.location_id
        steps = [Step(self._d(t.handover_s), "handed_to_carrier", at)]
        if allocation.method == "courier":
            ride = timedelta(minutes=self.rng.uniform(*COURIER_MINUTES))
            return [*steps, Step(self._d(t.transit_s), "delivered", at, stamp_after_handover=ride)]
        hours = self.rng.choice(self.transit_hours.get(allocation.service_id or "", FALLBACK_TRANSIT_HOURS))
        transit = timedelta(hours=hours * self.rng.uniform(0.85, 1.15))
        if self._chance(self.faults.carrier_delay) and allocation.arrives_at is not None:
            late_eta = allocation.arrives_at + timedelta(days=1)
            steps.append(
                Step(
                    self._d(t.transit_s) / 2,
                    "carrier_delay",
                    at,
                    reason="parcel missed its line haul",
                    new_eta=late_eta,
                )
            )
            transit += timedelta(days=1)
        return [*steps, Step(self._d(t.transit_s), "delivered", at, stamp_after_handover=transit)]


def occurred_at(step: Step, handed_at: datetime | None, now: datetime | None = None) -> datetime:
    """When a step happened: now, or for a delivery its handover plus the carrier's transit."""
    now = now or business_now()
    if step.stamp_after_handover is not None and handed_at is not None:
        return max(now, handed_at + step.stamp_after_handover)
    return now
