"""Where an order's shipments really ship from: the promise's shipments, moved where sourcing
allocated them.

The promise names shipments (location, lines, times) and the milestones derived backwards from
them (``orders.derive_milestones``). Sourcing then allocates the order in rounds: one allocation per
shipment of its own plan, carrying the milestones derived the same way from that plan
(``oms.fulfilment.allocations.v1``), and one outcome per round listing them
(``oms.orders.sourced.v1``). A short pick, a store rejection or a shed withdraws an allocation
(``cancel``) and sources its lines again in the next round. This module folds those facts over the
promise:

- an allocation at the location of a shipment the round replaces *confirms* it: the shipment keeps
  its index and its milestones (the promise's, or those of the allocation that added it);
- an allocation elsewhere *adds* a shipment, appended (indexes never change, so events, risk states
  and transit observations that name one stay valid), with the allocation's own milestones;
- a replaced shipment no allocation of the round confirms is *withdrawn*: nothing more is expected
  of it, its milestones leave the plan, and a ``Move`` says where its units went (nowhere: the
  round found no stock for them), in which round and why.

A round replaces the shipments that carry its SKUs and were never allocated (before the first
round: the promise's) or whose allocation was withdrawn. Units are conserved: every unit of the
order is on exactly one shipment, and units a round did not allocate (backordered, rejected) stay
on the shipment they came from, *waiting*, until a later round allocates them (a round that sources
a backorder when stock arrives takes them from there, wherever they wait).

The promise to the customer does not change: its window stays, except when a courier order's slot
was full at placement and the slots' owner booked the next free one: the round says so (``window``)
and that booked slot is the window from then on. An allocation whose plan arrives after the window
is *late*: the risk watch says so at once, with the expected delay
(``risk.RiskReason.ALLOCATED_LATE``), instead of waiting for the window to pass.

Pure and independent of arrival order: facts are keyed (allocation id, round) and folded in round
order; a round is applied once its outcome and every allocation it lists are known (the two topics
are not ordered with each other), and the rounds after it wait for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from oms_streams.domain.orders import Milestone, MilestoneKind, PromiseRecord
from oms_streams.domain.promise_types import CartLine, Shipment


@dataclass(frozen=True, slots=True)
class Allocated:
    """One allocation of a round: its shipment as sourcing planned it and the milestones it carries
    (their ``shipment`` index is ignored: the plan gives each its own)."""

    allocation_id: str
    round: int
    shipment: Shipment
    milestones: tuple[Milestone, ...] = ()
    late: bool = False
    """The plan arrives after the promise's window."""


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """An allocation withdrawn (a ``cancel``): by a short pick, a rejection, a shed, a cancellation."""

    allocation_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class SourcingRound:
    """A round's outcome: what it allocated (allocation ids) and what it could not (backorder)."""

    round: int
    outcome: str
    """allocated | partially_allocated | rejected."""
    allocation_ids: tuple[str, ...]
    backorder: tuple[str, ...]
    """SKUs the round could not allocate (all of them when it was rejected)."""
    reason: str
    at_ms: int
    edit: bool = False
    """The round an accepted edit opened: the shipments whose allocations it withdrew whole are
    replaced whatever it covers (a line the edit removed is sourced nowhere)."""
    window: tuple[int, int] | None = None
    """The window the order is delivered in from this round on, when it is no longer the promise's
    (a courier slot moved to the next free one); None: unchanged."""


@dataclass(frozen=True, slots=True)
class Move:
    """Units of a shipment that a sourcing round put elsewhere, or withdrew without a new place."""

    shipment: int
    round: int
    location_id: str
    """Where they were to ship from."""
    lines: tuple[CartLine, ...]
    """What went to the shipments ``to``."""
    to: tuple[int, ...]
    """The shipments that took them; empty when nothing did (the round found no stock)."""
    withdrawn: bool
    """The whole shipment was withdrawn (else it keeps shipping its other lines)."""
    reason: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class AllocatedPlan:
    record: PromiseRecord
    """The promise (order, version, window) with the shipments and milestones as allocated."""
    rounds: tuple[int, ...]
    """Per shipment, the round that added it (0: the promise)."""
    withdrawn: frozenset[int]
    moves: tuple[Move, ...]
    late: tuple[tuple[int, int, int], ...]
    """(shipment, since ms, planned arrival ms) of live shipments whose allocation arrives late."""
    moved_at_ms: int | None
    """When the latest round that moved or withdrew something was decided."""
    round: int
    """The latest round applied (0: none yet)."""


@dataclass(slots=True)
class _Slot:
    shipment: Shipment
    milestones: tuple[Milestone, ...]
    units: dict[str, int]
    """SKU -> units it ships (promised, or allocated)."""
    origin: int
    bound: set[str] = field(default_factory=set)
    withdrawn: bool = False
    late: tuple[int, int] | None = None
    """(since, planned arrival) of the allocation that confirmed or added it, when late."""
    waiting: dict[str, int] = field(default_factory=dict)
    """SKU -> units it carried that no round allocated since (backordered): they stay here."""


def allocated_plan(
    promise: PromiseRecord,
    allocations: Iterable[Allocated],
    withdrawals: Iterable[Withdrawal],
    rounds: Iterable[SourcingRound],
) -> AllocatedPlan:
    """The promise's shipments moved where the complete rounds allocated them (see the module)."""
    by_id = {a.allocation_id: a for a in allocations}
    cancelled = {w.allocation_id: w.reason for w in withdrawals}
    slots = _promise_slots(promise)
    moves: list[Move] = []
    applied, moved_at = 0, None
    for outcome in sorted(rounds, key=lambda r: r.round):
        if any(i not in by_id for i in outcome.allocation_ids):
            break  # its allocations are still on their way; later rounds build on it
        moved = _apply_round(slots, outcome, [by_id[i] for i in outcome.allocation_ids], cancelled)
        moves += moved
        applied = outcome.round
        if moved:
            moved_at = outcome.at_ms
        if outcome.window is not None:
            start, end = outcome.window
            promise = replace(
                promise, option=replace(promise.option, window_start_ms=start, window_end_ms=end)
            )
    if applied == 0 and not moves:
        return AllocatedPlan(promise, (0,) * len(slots), frozenset(), (), (), None, 0)
    return _plan(promise, slots, tuple(moves), moved_at, applied)


def clearance_reason(plan: AllocatedPlan, shipment: int | None) -> str | None:
    """Why a risk about ``shipment`` ended, when sourcing ended it: ``resourced`` (its units moved
    to another shipment), ``rejected`` (nothing of the order is allocated any more) or
    ``backordered`` (its units wait for stock while other shipments go on); None otherwise."""
    if shipment is None or shipment not in plan.withdrawn:
        return None
    if len(plan.withdrawn) == len(plan.record.option.shipments):
        return "rejected"
    move = next((m for m in reversed(plan.moves) if m.shipment == shipment and m.withdrawn), None)
    return "resourced" if move is not None and move.to else "backordered"


# --- the fold ---------------------------------------------------------------------------------------


def _promise_slots(promise: PromiseRecord) -> list[_Slot]:
    slots = []
    for index, shipment in enumerate(promise.option.shipments):
        units: dict[str, int] = {}
        for line in shipment.lines:
            units[line.sku] = units.get(line.sku, 0) + line.quantity
        own = tuple(m for m in promise.milestones if m.shipment == index)
        slots.append(_Slot(shipment, own, units, 0))
    return slots


def _apply_round(
    slots: list[_Slot], outcome: SourcingRound, allocations: list[Allocated], cancelled: Mapping[str, str]
) -> list[Move]:
    covered = {line.sku for a in allocations for line in a.shipment.lines} | set(outcome.backorder)
    orphaned = {i for i, s in enumerate(slots) if outcome.edit and _orphaned(s, cancelled)}
    sources = [i for i, s in enumerate(slots) if i in orphaned or _replaced(s, covered, cancelled)]
    # A shipment no round allocated yet gives all it carries: what the round does not cover waits on
    # it (a line an edit added to a promised shipment is not also counted as shipping from there).
    pool = {i: _take(slots[i], set() if i in orphaned or not slots[i].bound else covered) for i in sources}
    why = {
        i: "; ".join(dict.fromkeys(cancelled[a] for a in sorted(slots[i].bound) if a in cancelled))
        for i in sources
    }
    confirmed: set[int] = set()
    given: dict[int, dict[int, dict[str, int]]] = {}
    """giving shipment -> receiving shipment -> SKU -> units."""
    waiting = {i: slot.waiting for i, slot in enumerate(slots)}
    for allocation in allocations:
        target = _target(slots, sources, pool, allocation, outcome, cancelled)
        confirmed.add(target)
        for line in allocation.shipment.lines:
            slots[target].units[line.sku] = slots[target].units.get(line.sku, 0) + line.quantity
            need = _draw(pool, [target, *sources], line, target, given)
            if need:  # a backorder's units, waiting where an earlier round left them
                _draw(waiting, waiting, CartLine(line.sku, need), target, given)
    for i in sources:  # what no allocation took stays where it was, waiting (backordered)
        for sku, units in pool[i].items():
            if units:
                slots[i].waiting[sku] = slots[i].waiting.get(sku, 0) + units
        if i not in confirmed:
            slots[i].withdrawn = True
    gave = {i for i, to in given.items() if set(to) - {i}}
    return [
        _move(i, slots[i], outcome, given.get(i, {}), why.get(i) or outcome.reason)
        for i in sorted(gave | {i for i in sources if slots[i].withdrawn})
    ]


def _replaced(slot: _Slot, covered: set[str], cancelled: Mapping[str, str]) -> bool:
    """Whether a round that sources ``covered`` replaces the shipment."""
    if slot.withdrawn or (slot.bound and not slot.bound & cancelled.keys()):
        return False
    return not covered or any(slot.units.get(sku) for sku in covered)


def _orphaned(slot: _Slot, cancelled: Mapping[str, str]) -> bool:
    """Every allocation that confirmed or added the shipment was withdrawn."""
    return not slot.withdrawn and bool(slot.bound) and slot.bound <= cancelled.keys()


def _take(slot: _Slot, covered: set[str]) -> dict[str, int]:
    taken = {sku: units for sku, units in slot.units.items() if units and (not covered or sku in covered)}
    for sku in taken:
        slot.units[sku] = 0  # kept as a key: the lines keep their order
    return taken


def _target(
    slots: list[_Slot],
    sources: list[int],
    pool: dict[int, dict[str, int]],
    allocation: Allocated,
    outcome: SourcingRound,
    cancelled: Mapping[str, str],
) -> int:
    """The shipment the allocation confirms (a replaced one at its location that carried its SKUs),
    or a new one. A confirmed shipment answers to its live allocations only."""
    skus = {line.sku for line in allocation.shipment.lines}
    here = allocation.shipment.location_id
    late = (outcome.at_ms, allocation.shipment.arrives_at_ms) if allocation.late else None
    for i in sources:
        slot = slots[i]
        if slot.shipment.location_id == here and skus & pool[i].keys():
            slot.bound = (slot.bound - cancelled.keys()) | {allocation.allocation_id}
            slot.late = late
            if outcome.window is not None:  # a moved slot: its times and milestones, not the promise's
                slot.shipment = replace(allocation.shipment, lines=slot.shipment.lines)
                slot.milestones = allocation.milestones
            return i
    slots.append(
        _Slot(
            replace(allocation.shipment, lines=()),
            allocation.milestones,
            {},
            outcome.round,
            {allocation.allocation_id},
            late=late,
        )
    )
    return len(slots) - 1


def _draw(
    pool: Mapping[int, dict[str, int]],
    order: Iterable[int],
    line: CartLine,
    target: int,
    given: dict[int, dict[int, dict[str, int]]],
) -> int:
    """Take the line's units out of ``pool`` (shipment -> SKU -> units) in ``order``; returns the
    units still needed."""
    need = line.quantity
    for i in dict.fromkeys(order):
        if need <= 0:
            break
        have = pool.get(i, {}).get(line.sku, 0)
        if not have:
            continue
        took = min(have, need)
        pool[i][line.sku] = have - took
        need -= took
        to = given.setdefault(i, {}).setdefault(target, {})
        to[line.sku] = to.get(line.sku, 0) + took
    return need


def _move(
    index: int, slot: _Slot, outcome: SourcingRound, given: dict[int, dict[str, int]], why: str
) -> Move:
    moved: dict[str, int] = {}
    for to, units in given.items():
        if to == index:
            continue
        for sku, n in units.items():
            moved[sku] = moved.get(sku, 0) + n
    return Move(
        shipment=index,
        round=outcome.round,
        location_id=slot.shipment.location_id,
        lines=tuple(CartLine(sku, n) for sku, n in moved.items() if n),
        to=tuple(sorted(to for to in given if to != index)),
        withdrawn=slot.withdrawn,
        reason=why,
        at_ms=outcome.at_ms,
    )


_KIND_ORDER = {kind: i for i, kind in enumerate(MilestoneKind)}


def _lines(slot: _Slot) -> tuple[CartLine, ...]:
    """What the shipment carries: what it ships, and what waits on it for stock."""
    units = dict(slot.units)
    for sku, n in slot.waiting.items():
        units[sku] = units.get(sku, 0) + n
    return tuple(CartLine(sku, n) for sku, n in units.items() if n > 0)


def _fit(promise: PromiseRecord, slots: list[_Slot]) -> None:
    """Waiting units beyond what the promise's version asks for leave (on live shipments first,
    then on withdrawn ones; newest shipments first): an edit reduced or removed them, or a version
    came after the allocations that carried them. Allocated units never leave here: their
    allocation is withdrawn first."""
    asked: dict[str, int] = {}
    for shipment in promise.option.shipments:
        for line in shipment.lines:
            asked[line.sku] = asked.get(line.sku, 0) + line.quantity
    live = [s for s in slots if not s.withdrawn]
    gone = [s for s in slots if s.withdrawn]
    for sku in {sku for s in slots for sku in (*s.units, *s.waiting)}:
        excess = sum(s.units.get(sku, 0) + s.waiting.get(sku, 0) for s in live) - asked.get(sku, 0)
        excess += sum(s.waiting.get(sku, 0) for s in gone)
        for slot in (*reversed(live), *reversed(gone)):
            if excess <= 0:
                break
            took = min(excess, slot.waiting.get(sku, 0))
            if took:
                slot.waiting[sku] -= took
                excess -= took


def _plan(
    promise: PromiseRecord, slots: list[_Slot], moves: tuple[Move, ...], moved_at: int | None, applied: int
) -> AllocatedPlan:
    _fit(promise, slots)
    shipments = tuple(replace(s.shipment, lines=_lines(s)) for s in slots)
    milestones = [
        replace(m, shipment=i) for i, s in enumerate(slots) if not s.withdrawn for m in s.milestones
    ]
    milestones.sort(key=lambda m: (m.due_ms, m.shipment, _KIND_ORDER[m.kind]))
    record = replace(
        promise, option=replace(promise.option, shipments=shipments), milestones=tuple(milestones)
    )
    return AllocatedPlan(
        record=record,
        rounds=tuple(s.origin for s in slots),
        withdrawn=frozenset(i for i, s in enumerate(slots) if s.withdrawn),
        moves=moves,
        late=tuple((i, *s.late) for i, s in enumerate(slots) if s.late is not None and not s.withdrawn),
        moved_at_ms=moved_at,
        round=applied,
    )
