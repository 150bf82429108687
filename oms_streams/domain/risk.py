"""Orders at risk: fulfilment events (or their absence by a milestone) against the stored promise.

An order is on track while every milestone that is due has been reached. It goes at risk when a
milestone passes without its event, or when an event says so (store rejection, short pick, a
carrier delay past the promised window); it is cleared when a later event puts it back on track
(for instance the missed pick is reported late but still in time for the next milestone).

Progress is tracked per shipment of the promised option. A progress event at a stage proves every
milestone at or below that stage (``picked`` also proves the pick started; ``delivered`` proves the
handover). The assessment is a function of the *set* of events and the moment, never of their
arrival order: events are kept sorted by (occurrence, event id) and every tie is broken by a key.
Events are facts as reported: they count even when their occurrence is after ``now_ms`` (a producer
clock slightly ahead of ours must not hide a delivery).

The shipments watched are the ones sourcing allocated (``allocated_plan``): a shipment sourcing
moved elsewhere is *withdrawn* (nothing more is expected of it, its events no longer count) and the
shipment that took its units is watched with its own milestones against the same promise.

Priority when several risks apply, most urgent first:

1. explicit problems: store rejection, short pick, carrier delay past the window (in that order);
2. the promise is already broken: a shipment has not reached its promise stage (delivered, or ready
   for pickup for click & collect) and the window has ended, or an event of it occurred after the
   window end. Intermediate milestones no longer matter then: the customer must be told;
3. the promise will be broken: sourcing allocated a shipment whose plan arrives after the window
   (a re-sourced location that cannot make it), with the planned delay;
4. overdue milestones, earliest due first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from oms_streams.domain.network import DeliveryMethod
from oms_streams.domain.orders import Milestone, MilestoneKind, PromiseRecord

MAX_EVENTS = 64
"""Events kept per order. An order sees about ten; more means a misbehaving producer. The newest 64
by (occurrence, event id) are kept, so the kept set does not depend on arrival order either."""


class FulfilmentKind(StrEnum):
    PICK_STARTED = "pick_started"
    PICKED = "picked"
    PACKED = "packed"
    HANDED_TO_CARRIER = "handed_to_carrier"
    ROUTE_DEPARTED = "route_departed"
    READY_FOR_PICKUP = "ready_for_pickup"
    DELIVERED = "delivered"
    COLLECTED = "collected"
    STORE_REJECTED = "store_rejected"
    SHORT_PICK = "short_pick"
    CARRIER_DELAY = "carrier_delay"


@dataclass(frozen=True, slots=True)
class FulfilmentEvent:
    event_id: str
    kind: FulfilmentKind
    occurred_at_ms: int
    location_id: str | None = None
    shipment: int | None = None
    """Index of the order's shipment (the promise's, then those re-sourcing added); None = the
    shipment(s) at location_id, or all of them. An index naming a shipment at another location
    than location_id is taken for the allocation's own (the location decides). An event at the
    pickup store that ships nothing from there (ready for pickup, collected) applies to every
    shipment of the order."""
    new_eta_ms: int | None = None
    """CARRIER_DELAY: the carrier's new expected delivery. A delay without an ETA says nothing
    about the promise and is ignored; the milestones keep watching."""
    reason: str = ""


class RiskReason(StrEnum):
    PICK_NOT_STARTED = "pick_not_started"
    HANDOVER_MISSED = "handover_missed"
    ROUTE_DEPARTURE_MISSED = "route_departure_missed"
    NOT_READY_FOR_PICKUP = "not_ready_for_pickup"
    COURIER_NOT_DEPARTED = "courier_not_departed"
    NOT_DELIVERED = "not_delivered"
    STORE_REJECTED = "store_rejected"
    SHORT_PICK = "short_pick"
    CARRIER_DELAY = "carrier_delay"
    ALLOCATED_LATE = "allocated_late"
    """Sourcing allocated a shipment (a re-sourcing, or no location on time) that arrives after the window."""


class SuggestedAction(StrEnum):
    RESOURCE = "re-source"
    EXPEDITE = "expedite"
    INFORM_CUSTOMER = "inform_customer"


@dataclass(frozen=True, slots=True)
class Risk:
    reason: RiskReason
    action: SuggestedAction
    shipment: int
    location_id: str
    milestone: MilestoneKind | None
    expected_delay_ms: int | None
    """How late the order is expected to be (a lower bound when a milestone is simply overdue);
    None when it cannot be estimated (a rejection before re-sourcing)."""
    since_ms: int | None = None
    """When this risk began, from the record and the events only (never from ``now``): the missed
    milestone's due time, the problem event's occurrence, or the promise end."""


@dataclass(frozen=True, slots=True)
class OrderTracking:
    record: PromiseRecord
    events: tuple[FulfilmentEvent, ...] = ()
    closed: frozenset[int] = frozenset()
    """Shipments a cancellation withdrew: nothing more is expected of them, so nothing is at risk."""
    closed_at_ms: int | None = None
    """When the latest of those cancellations was decided."""
    withdrawn: frozenset[int] = frozenset()
    """Shipments sourcing moved elsewhere or left unallocated (``allocated_plan``): nothing more is
    expected of them either."""
    late: tuple[tuple[int, int, int], ...] = ()
    """(shipment, since ms, planned arrival ms): allocated to arrive after the window."""
    moved_at_ms: int | None = None
    """When sourcing last moved or withdrew a shipment."""


# --- stages ---------------------------------------------------------------------------------------

_K = FulfilmentKind

_STAGE: Mapping[FulfilmentKind, int] = {
    _K.PICK_STARTED: 1,
    _K.PICKED: 2,
    _K.PACKED: 3,
    _K.HANDED_TO_CARRIER: 4,
    _K.ROUTE_DEPARTED: 4,
    _K.READY_FOR_PICKUP: 5,
    _K.DELIVERED: 6,
    _K.COLLECTED: 6,
}
"""Progress events and their stage; handover and route departure are alternative branches."""

_FINAL = frozenset({_K.DELIVERED, _K.COLLECTED})

_SATISFIED_BY: Mapping[MilestoneKind, frozenset[FulfilmentKind]] = {
    MilestoneKind.PICK_START: frozenset(_STAGE),
    MilestoneKind.CARRIER_HANDOVER: frozenset({_K.HANDED_TO_CARRIER, _K.READY_FOR_PICKUP, *_FINAL}),
    MilestoneKind.ROUTE_DEPARTURE: frozenset({_K.ROUTE_DEPARTED, _K.READY_FOR_PICKUP, *_FINAL}),
    MilestoneKind.COURIER_DEPARTURE: frozenset({_K.HANDED_TO_CARRIER, _K.DELIVERED}),
    MilestoneKind.READY_FOR_PICKUP: frozenset({_K.READY_FOR_PICKUP, _K.COLLECTED}),
    MilestoneKind.DELIVERED: _FINAL,
}

_PROBLEMS: tuple[FulfilmentKind, ...] = (_K.STORE_REJECTED, _K.SHORT_PICK, _K.CARRIER_DELAY)
"""Explicit problems, most urgent first."""

_PROBLEM_STAGE: Mapping[FulfilmentKind, int] = {_K.STORE_REJECTED: 0, _K.SHORT_PICK: 1, _K.CARRIER_DELAY: 4}
"""Where a problem arises: a progress event at a later stage, occurring after it, resolves it."""

_OVERDUE: Mapping[MilestoneKind, tuple[RiskReason, SuggestedAction]] = {
    MilestoneKind.PICK_START: (RiskReason.PICK_NOT_STARTED, SuggestedAction.EXPEDITE),
    MilestoneKind.CARRIER_HANDOVER: (RiskReason.HANDOVER_MISSED, SuggestedAction.EXPEDITE),
    MilestoneKind.ROUTE_DEPARTURE: (RiskReason.ROUTE_DEPARTURE_MISSED, SuggestedAction.EXPEDITE),
    MilestoneKind.COURIER_DEPARTURE: (RiskReason.COURIER_NOT_DEPARTED, SuggestedAction.EXPEDITE),
    MilestoneKind.READY_FOR_PICKUP: (RiskReason.NOT_READY_FOR_PICKUP, SuggestedAction.INFORM_CUSTOMER),
    MilestoneKind.DELIVERED: (RiskReason.NOT_DELIVERED, SuggestedAction.INFORM_CUSTOMER),
}

_MILESTONE_ORDER: Mapping[MilestoneKind, int] = {kind: i for i, kind in enumerate(MilestoneKind)}


def _canonical(event: FulfilmentEvent) -> tuple[int, str]:
    return event.occurred_at_ms, event.event_id


@dataclass(frozen=True, slots=True)
class _Shipment:
    """One shipment's events, as the assessment needs them."""

    index: int
    location_id: str
    progress: tuple[FulfilmentEvent, ...]
    problems: tuple[FulfilmentEvent, ...]
    closed: bool = False

    @property
    def final(self) -> bool:
        return any(e.kind in _FINAL for e in self.progress)

    @property
    def open(self) -> bool:
        """Still expected to reach its promise: neither final nor withdrawn by a cancellation."""
        return not self.final and not self.closed

    def reached(self, kinds: frozenset[FulfilmentKind]) -> bool:
        return any(e.kind in kinds for e in self.progress)

    def latest_progress_ms(self) -> int | None:
        return max((e.occurred_at_ms for e in self.progress), default=None)

    def resolved(self, problem: FulfilmentEvent) -> bool:
        stage = _PROBLEM_STAGE[problem.kind]
        return any(
            _STAGE[e.kind] > stage and e.occurred_at_ms > problem.occurred_at_ms for e in self.progress
        )


def event_targets(event: FulfilmentEvent, record: PromiseRecord) -> range | tuple[int, ...]:
    """The shipment indexes an event applies to (none when it names an unknown one, or a location
    the promise ships nothing from, such as a store sourcing chose after a rejection)."""
    shipments = record.option.shipments
    if event.shipment is not None and not _index_elsewhere(event, record):
        return (event.shipment,) if 0 <= event.shipment < len(shipments) else ()
    if event.location_id is None:
        return range(len(shipments))
    here = tuple(i for i, s in enumerate(shipments) if s.location_id == event.location_id)
    if not here and event.location_id == record.option.pickup_store_id:
        # The pickup store reports on the whole order (ready, collected) though it ships nothing.
        return range(len(shipments))
    return here


def _index_elsewhere(event: FulfilmentEvent, record: PromiseRecord) -> bool:
    """The event names a shipment index at another location than its own (not the pickup store):
    the index is its allocation's (a re-sourced allocation counts from 0 again), the location decides."""
    shipments = record.option.shipments
    if event.shipment is None or event.location_id is None or not 0 <= event.shipment < len(shipments):
        return False
    here = event.location_id
    return here != shipments[event.shipment].location_id and here != record.option.pickup_store_id


def _shipments(order: OrderTracking) -> tuple[_Shipment, ...]:
    record = order.record
    progress: list[list[FulfilmentEvent]] = [[] for _ in record.option.shipments]
    problems: list[list[FulfilmentEvent]] = [[] for _ in record.option.shipments]
    for event in sorted(order.events, key=_canonical):
        bucket = progress if event.kind in _STAGE else problems
        for i in event_targets(event, record):
            bucket[i].append(event)
    return tuple(
        _Shipment(
            i,
            s.location_id,
            tuple(progress[i]),
            tuple(problems[i]),
            i in order.closed or i in order.withdrawn,
        )
        for i, s in enumerate(record.option.shipments)
    )


def _promise_stage(record: PromiseRecord) -> MilestoneKind:
    """What the window promises: delivery, or for click & collect, ready for pickup."""
    if record.option.method is DeliveryMethod.CLICK_AND_COLLECT:
        return MilestoneKind.READY_FOR_PICKUP
    return MilestoneKind.DELIVERED


def _pending_milestones(record: PromiseRecord, shipments: tuple[_Shipment, ...]) -> list[Milestone]:
    """Milestones of unfinished shipments whose event has not arrived. Milestones naming a
    shipment the option does not have are ignored."""
    return [
        m
        for m in record.milestones
        if 0 <= m.shipment < len(shipments)
        and shipments[m.shipment].open
        and not shipments[m.shipment].reached(_SATISFIED_BY[m.kind])
    ]


# --- public ---------------------------------------------------------------------------------------


def apply_fulfilment(order: OrderTracking, event: FulfilmentEvent) -> tuple[OrderTracking, bool]:
    """The order with the event recorded; False when it is a duplicate (same event id), or when the
    window is full and the event is older than every kept one (it would be dropped at once)."""
    if any(e.event_id == event.event_id for e in order.events):
        return order, False
    events = tuple(sorted((*order.events, event), key=_canonical))[-MAX_EVENTS:]
    if events == order.events:
        return order, False
    return replace(order, events=events), True


def assess(order: OrderTracking, now_ms: int) -> Risk | None:
    """The order's most urgent risk at ``now_ms``, or None when it is on track (or finished)."""
    record = order.record
    option = record.option
    shipments = _shipments(order)
    open_ = [s for s in shipments if s.open]
    if not open_:
        return None

    problems = [(p, s) for s in open_ for p in s.problems if p.kind in _PROBLEMS and not s.resolved(p)]
    risks: list[Risk] = []
    for problem, shipment in sorted(
        problems, key=lambda ps: (_PROBLEMS.index(ps[0].kind), ps[1].index, _canonical(ps[0]))
    ):
        risk = _problem_risk(record, shipment, problem)
        if risk is not None:
            risks.append(risk)
    if risks:
        return risks[0]

    promised = _promise_stage(record)
    for shipment in open_:
        if shipment.reached(_SATISFIED_BY[promised]):
            continue
        latest = shipment.latest_progress_ms()
        late_event = latest is not None and latest > option.window_end_ms
        if now_ms > option.window_end_ms or late_event:
            reason, action = _OVERDUE[promised]
            location = next(
                (
                    m.location_id
                    for m in record.milestones
                    if m.shipment == shipment.index and m.kind is promised
                ),
                shipment.location_id,
            )
            return Risk(
                reason,
                action,
                shipment.index,
                location,
                promised,
                max(now_ms, latest if latest is not None else now_ms) - option.window_end_ms,
                since_ms=option.window_end_ms,
            )

    late = _late_risk(order, shipments, promised)
    if late is not None:
        return late

    overdue = [m for m in _pending_milestones(record, shipments) if m.due_ms < now_ms]
    if not overdue:
        return None
    first = min(overdue, key=lambda m: (m.due_ms, m.shipment, _MILESTONE_ORDER[m.kind], m.location_id))
    reason, action = _OVERDUE[first.kind]
    if first.kind is MilestoneKind.ROUTE_DEPARTURE and option.method is DeliveryMethod.CLICK_AND_COLLECT:
        # The next route leaves days later: nothing to expedite, the customer must know.
        action = SuggestedAction.INFORM_CUSTOMER
    return Risk(
        reason, action, first.shipment, first.location_id, first.kind, now_ms - first.due_ms, first.due_ms
    )


def _late_risk(
    order: OrderTracking, shipments: tuple[_Shipment, ...], promised: MilestoneKind
) -> Risk | None:
    """The first open shipment sourcing allocated to arrive after the window, with its delay."""
    end = order.record.option.window_end_ms
    for index, since_ms, arrives_ms in sorted(order.late):
        if not 0 <= index < len(shipments) or arrives_ms <= end:
            continue
        shipment = shipments[index]
        if shipment.open and not shipment.reached(_SATISFIED_BY[promised]):
            return Risk(
                RiskReason.ALLOCATED_LATE,
                SuggestedAction.INFORM_CUSTOMER,
                index,
                shipment.location_id,
                promised,
                arrives_ms - end,
                since_ms,
            )
    return None


def _problem_risk(record: PromiseRecord, shipment: _Shipment, problem: FulfilmentEvent) -> Risk | None:
    option = record.option
    location = problem.location_id or shipment.location_id
    if problem.kind is _K.STORE_REJECTED:
        # A pickup store's rejection is not sent back to general sourcing: the customer chose it.
        action = (
            SuggestedAction.INFORM_CUSTOMER
            if option.method is DeliveryMethod.CLICK_AND_COLLECT
            else SuggestedAction.RESOURCE
        )
        return Risk(
            RiskReason.STORE_REJECTED, action, shipment.index, location, None, None, problem.occurred_at_ms
        )
    if problem.kind is _K.SHORT_PICK:
        return Risk(
            RiskReason.SHORT_PICK,
            SuggestedAction.RESOURCE,
            shipment.index,
            location,
            None,
            None,
            problem.occurred_at_ms,
        )
    # Carrier delay: only the latest announced ETA counts; one inside the window clears it.
    delays = [p for p in shipment.problems if p.kind is _K.CARRIER_DELAY and p.new_eta_ms is not None]
    if not delays or problem is not max(delays, key=_canonical):
        return None
    assert problem.new_eta_ms is not None
    if problem.new_eta_ms <= option.window_end_ms:
        return None
    return Risk(
        RiskReason.CARRIER_DELAY,
        SuggestedAction.INFORM_CUSTOMER,
        shipment.index,
        location,
        None,
        problem.new_eta_ms - option.window_end_ms,
        problem.occurred_at_ms,
    )


def next_check_ms(order: OrderTracking, after_ms: int | None = None) -> int | None:
    """The earliest time at which ``assess`` may change without a new event (the next pending
    milestone's due time, or the promise end while a shipment has not reached it), or None when
    nothing is pending.

    ``assess`` gives the same risk (up to a growing ``expected_delay_ms``) for every moment from
    ``after_ms`` up to and including the returned time; check again just after it. Without
    ``after_ms`` the first such time is returned even when it has passed; a caller on a timer
    passes its ``now`` so that a passed milestone is not returned again.
    """
    record = order.record
    shipments = _shipments(order)
    points = [m.due_ms for m in _pending_milestones(record, shipments)]
    promised = _SATISFIED_BY[_promise_stage(record)]
    if any(s.open and not s.reached(promised) for s in shipments):
        points.append(record.option.window_end_ms)
    if after_ms is not None:
        points = [p for p in points if p >= after_ms]
    return min(points, default=None)


def milestone_reached(order: OrderTracking, milestone: Milestone) -> bool:
    """Whether an event proves the milestone (its stage or a later one, at any time, late or not)."""
    shipments = _shipments(order)
    if not 0 <= milestone.shipment < len(shipments):
        return False
    shipment = shipments[milestone.shipment]
    return shipment.final or shipment.reached(_SATISFIED_BY[milestone.kind])


def latest_event_ms(order: OrderTracking) -> int | None:
    """The occurrence of the newest recorded event, cancellation or move (None without any)."""
    moments = [e.occurred_at_ms for e in order.events]
    moments += [at for at in (order.closed_at_ms, order.moved_at_ms) if at is not None]
    return max(moments, default=None)


def risk_event_id(order_id: str, risk: Risk | None, version: int, *, as_of_ms: int | None = None) -> str:
    """A deterministic id for publishing an order's risk state: the same state gives the same id, so
    a re-publication after a restart is recognisable downstream as a duplicate.

    A risk is identified by what it is and since when (``since_ms``), not by its growing expected
    delay; a carrier's announced delay is a fact and is part of it. The on-track state is
    identified by ``as_of_ms`` (pass ``latest_event_ms(order)``), so that a clearance after a risk
    is not mistaken for an earlier clearance.
    """
    parts: list[str | int | None]
    if risk is None:
        parts = [order_id, version, "on_track", as_of_ms]
    else:
        parts = [
            order_id,
            version,
            risk.reason.value,
            risk.action.value,
            risk.shipment,
            risk.location_id,
            risk.milestone.value if risk.milestone is not None else None,
            risk.since_ms,
            risk.expected_delay_ms if risk.reason is RiskReason.CARRIER_DELAY else None,
        ]
    digest = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:20]
    return f"RISK-{order_id}-v{version}-{digest}"
