"""Orders and fulfilment events between the wire, the domain and the ``orders`` table rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from oms_streams.adapters.allocated import SourcingFact, plan_of
from oms_streams.adapters.promise import option_from_wire
from oms_streams.adapters.stock import Failure, key_problem, known_fields, parse_model
from oms_streams.adapters.timestamps import epoch_ms, utc_from_epoch_ms
from oms_streams.domain.allocated_plan import AllocatedPlan
from oms_streams.domain.cancellation import closed_shipments
from oms_streams.domain.orders import Milestone, MilestoneKind, PromiseRecord
from oms_streams.domain.promise_types import DeliveryOption
from oms_streams.domain.risk import FulfilmentEvent, FulfilmentKind, OrderTracking, Risk
from oms_streams.schemas.orders import FulfilmentEvent as FulfilmentEventModel
from oms_streams.schemas.orders import OrderPlaced
from oms_streams.schemas.promise import DeliveryOptionModel


@dataclass(frozen=True, slots=True)
class Placement:
    event_id: str
    order_id: str
    placed_at_ms: int
    option: DeliveryOption
    option_wire: dict[str, Any]
    """The chosen option as the webshop sent it (kept verbatim in the order row)."""
    destination: dict[str, Any]
    hold_id: str | None = None
    """The cart hold the order takes over (its reserve commands name it: ``takes_over``)."""
    promise_token: str | None = None
    """The chosen option's token from ``POST /promise`` (top level or left in the option)."""


@dataclass(frozen=True, slots=True)
class Fulfilment:
    order_id: str
    event: FulfilmentEvent


@dataclass(frozen=True, slots=True)
class ReturnLink:
    """A processed return as its order keeps it: what came back, where, and what became of it."""

    order_id: str
    event_id: str
    summary: dict[str, Any]


def decode_return_link(value: bytes | None) -> ReturnLink | None:
    """From ``oms.returns.processed.v1`` (our own records); None without an order to link to."""
    try:
        record = orjson.loads(value) if value is not None else None
        if not isinstance(record, dict) or not record.get("order_id"):
            return None
        summary = {
            "return_id": record["return_id"],
            "location_id": record["location_id"],
            "handling": record["handling"],
            "processed_at": record["processed_at"],
            "items": [_linked_item(item) for item in record["items"]],
        }
        return ReturnLink(record["order_id"], record["event_id"], summary)
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


def _linked_item(item: dict[str, Any]) -> dict[str, Any]:
    linked = {k: item[k] for k in ("sku", "quantity", "grade", "disposition")}
    if item.get("reason"):
        linked["reason"] = item["reason"]  # why units were refused
    return linked


M = TypeVar("M", OrderPlaced, FulfilmentEventModel)


def _keyed_by_order(model: type[M], key: bytes | None, value: bytes | None, where: str) -> M | Failure:
    wire = parse_model(model, value, where)
    if isinstance(wire, Failure):
        return wire
    # Orders and their fulfilment events meet in one partition only when both are keyed by order id.
    return key_problem(key, wire.order_id, "order id") or wire


_TOKEN_FIELDS = {"promise_token", "token_expires_at"}
"""Not part of the promise the order row keeps: the token was checked when the order was sourced."""

_RECENT_PLACEMENTS: dict[tuple[bytes | None, bytes | None], Placement | Failure] = {}
_RECENT_MAX = 4096


def decode_placement(key: bytes | None, value: bytes | None) -> Placement | Failure:
    """The placement, decoded once: ``track_orders`` and ``source_orders`` both read every one, so
    the second reader of a message gets the first one's (immutable) result."""
    recent = _RECENT_PLACEMENTS.get((key, value))
    if recent is not None:
        return recent
    if len(_RECENT_PLACEMENTS) >= _RECENT_MAX:
        _RECENT_PLACEMENTS.clear()
    decoded = _RECENT_PLACEMENTS[(key, value)] = _decode_placement(key, value)
    return decoded


def _decode_placement(key: bytes | None, value: bytes | None) -> Placement | Failure:
    wire = _keyed_by_order(OrderPlaced, key, value, "the orders topic")
    if isinstance(wire, Failure):
        return wire
    ordered = {line.sku: line.quantity for line in wire.cart}
    shipped: dict[str, int] = {}
    for shipment in wire.option.shipments:
        for line in shipment.lines:
            shipped[line.sku] = shipped.get(line.sku, 0) + line.quantity
    if shipped != ordered:
        return Failure("impossible option: its shipments do not carry exactly the cart's lines")
    return Placement(
        event_id=wire.event_id,
        order_id=wire.order_id,
        placed_at_ms=epoch_ms(wire.occurred_at),
        option=option_from_wire(wire.option),
        option_wire=wire.option.model_dump(mode="json", exclude=_TOKEN_FIELDS),
        destination=wire.destination.model_dump(mode="json"),
        hold_id=wire.hold_id,
        promise_token=wire.promise_token or wire.option.promise_token,
    )


def decode_fulfilment(key: bytes | None, value: bytes | None) -> Fulfilment | Failure:
    wire = _keyed_by_order(FulfilmentEventModel, key, value, "the fulfilment topic")
    if isinstance(wire, Failure):
        return wire
    if wire.kind == "carrier_delay" and wire.new_eta is None:
        return Failure("schema violation at new_eta: a carrier_delay needs the new ETA")
    return Fulfilment(
        wire.order_id,
        FulfilmentEvent(
            event_id=wire.event_id,
            kind=FulfilmentKind(wire.kind),
            occurred_at_ms=epoch_ms(wire.occurred_at),
            location_id=wire.location_id,
            shipment=wire.shipment,
            new_eta_ms=epoch_ms(wire.new_eta) if wire.new_eta is not None else None,
            reason=wire.reason,
        ),
    )


# --- the orders table row -----------------------------------------------------------------------
# One JSON object per order, written whole: its placements (event ids, so a redelivered placement is
# a duplicate), the current promise version with its option verbatim and derived milestones, the
# fulfilment events so far (also the ones that arrived before the placement), and the id of the last
# risk state published.


@dataclass(slots=True)
class OrderRow:
    order_id: str
    placements: list[str]
    version: int = 0
    placed_at_ms: int = 0
    option: dict[str, Any] | None = None
    destination: dict[str, Any] | None = None
    milestones: list[list[Any]] | None = None
    events: list[list[Any]] | None = None
    risk_id: str | None = None
    """The event id of the last risk state published for this order."""
    at_risk: bool = False
    """Whether that state was 'at risk' (so 'cleared' is published only after an 'at risk')."""
    partition: int = 0
    """The order's partition, for writes no event caused (the overdue-milestone timer)."""
    returns: list[dict[str, Any]] | None = None
    """Processed returns of the order's items (``ReturnLink.summary`` plus its ``event_id``)."""
    cancelled: list[str] | None = None
    """SKUs cancelled (from the answers on ``oms.orders.cancellation-outcomes.v1``)."""
    cancelled_at_ms: int | None = None
    """When the latest cancellation that cancelled something was decided."""
    returnable: str | None = None
    """Fingerprint of the last record published on ``oms.orders.returnable.v1`` for this order."""
    rejected: bool = False
    """Sourcing rejected the order (seen by the milestone timer): final, it only awaits removal."""
    allocations: dict[str, list[Any]] | None = None
    """Allocation id -> the ``allocate`` as kept (``adapters.allocated``): where each shipment ships from."""
    withdrawals: dict[str, list[Any]] | None = None
    """Allocation id -> its ``cancel`` (reason, round, location, lines)."""
    rounds: dict[str, list[Any]] | None = None
    """Sourcing round -> its outcome (outcome, allocation ids, backordered SKUs, reason, time)."""
    risk_shipment: int | None = None
    """The shipment the last 'at risk' state published was about (a 'cleared' says why it ended)."""
    edits: dict[str, list[Any]] | None = None
    """Edit placement event id -> sourcing's answer [status, version] (``adapters.allocated``)."""
    pending_edits: dict[str, list[Any]] | None = None
    """Edit placement event id -> [placed at ms, option as sent, destination]: a new version waits
    for sourcing's answer before it replaces the promise (a refused edit never does)."""
    plan: AllocatedPlan | None = field(default=None, compare=False, repr=False)
    """The tracked plan as last computed (not stored: it is folded from the row)."""
    promise: PromiseRecord | None = field(default=None, compare=False, repr=False)
    """The current promise version, decoded once (not stored: ``option`` and ``milestones`` are)."""

    def add_return(self, link: ReturnLink) -> bool:
        """Links a processed return to the order; False when it is already linked."""
        returns = self.returns if self.returns is not None else []
        if any(r["event_id"] == link.event_id for r in returns):
            return False
        self.returns = [*returns, {"event_id": link.event_id, **link.summary}]
        return True

    def add_sourcing(self, fact: SourcingFact) -> bool:
        """Keeps an allocation, withdrawal or round outcome; False when it is known already."""
        kept = getattr(self, fact.family) or {}
        if fact.key in kept:
            return False
        setattr(self, fact.family, {**kept, fact.key: fact.entry})
        return True

    def promise_record(self) -> PromiseRecord | None:
        """The current promise version as placed; None while only fulfilment events have arrived."""
        if self.option is None or self.milestones is None:
            return None
        if self.promise is None:
            self.promise = PromiseRecord(
                order_id=self.order_id,
                version=self.version,
                placed_at_ms=self.placed_at_ms,
                option=option_of_wire(self.option),
                milestones=tuple(
                    Milestone(MilestoneKind(k), loc, due, i) for k, loc, due, i in self.milestones
                ),
            )
        return self.promise

    def tracking(self) -> OrderTracking | None:
        """The domain's view of the order; None while only fulfilment events have arrived."""
        record = self.promise_record()
        return self.tracking_of(record) if record is not None else None

    def tracking_of(self, promise: PromiseRecord) -> OrderTracking:
        """The promise with its shipments where sourcing allocated them (``domain.allocated_plan``),
        the events so far and the shipments cancellations withdrew."""
        plan = self.plan = plan_of(promise, self.allocations, self.withdrawals, self.rounds)
        record = plan.record
        skus = [[line.sku for line in shipment.lines] for shipment in record.option.shipments]
        closed = closed_shipments(skus, self.cancelled or ())
        return OrderTracking(
            record,
            self.fulfilment_events(),
            closed,
            self.cancelled_at_ms,
            plan.withdrawn,
            plan.late,
            plan.moved_at_ms,
        )

    def fulfilment_events(self) -> tuple[FulfilmentEvent, ...]:
        return tuple(
            FulfilmentEvent(event_id, FulfilmentKind(kind), at, loc, shipment, eta, reason)
            for event_id, kind, at, loc, shipment, eta, reason in self.events or ()
        )

    def set_events(self, events: tuple[FulfilmentEvent, ...]) -> None:
        self.events = [
            [e.event_id, e.kind.value, e.occurred_at_ms, e.location_id, e.shipment, e.new_eta_ms, e.reason]
            for e in events
        ]

    def set_promise(
        self, record: PromiseRecord, option_wire: dict[str, Any], destination: dict[str, Any]
    ) -> None:
        self.promise = record
        self.version = record.version
        self.placed_at_ms = record.placed_at_ms
        self.option = option_wire
        self.destination = destination
        self.milestones = [[m.kind.value, m.location_id, m.due_ms, m.shipment] for m in record.milestones]

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "order_id": self.order_id,
                "placements": self.placements,
                "version": self.version,
                "placed_at_ms": self.placed_at_ms,
                "option": self.option,
                "destination": self.destination,
                "milestones": self.milestones,
                "events": self.events,
                "risk_id": self.risk_id,
                "at_risk": self.at_risk,
                "partition": self.partition,
                "returns": self.returns,
                "cancelled": self.cancelled,
                "cancelled_at_ms": self.cancelled_at_ms,
                "returnable": self.returnable,
                "rejected": self.rejected,
                "allocations": self.allocations,
                "withdrawals": self.withdrawals,
                "rounds": self.rounds,
                "risk_shipment": self.risk_shipment,
                "edits": self.edits,
                "pending_edits": self.pending_edits,
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> OrderRow:
        return cls(**known_fields(cls, orjson.loads(raw)))


def option_of_wire(wire: dict[str, Any]) -> DeliveryOption:
    """An option as kept verbatim (``OrderRow.option``, a waiting edit's)."""
    return option_from_wire(DeliveryOptionModel.model_validate(wire, strict=False))


def milestone_view(milestone: Milestone, reached: bool) -> dict[str, Any]:
    return {
        "kind": milestone.kind.value,
        "location_id": milestone.location_id,
        "shipment": milestone.shipment,
        "due": utc_from_epoch_ms(milestone.due_ms).isoformat(),
        "reached": reached,
    }


def risk_view(risk: Risk | None) -> dict[str, Any] | None:
    if risk is None:
        return None
    return {
        "reason": risk.reason.value,
        "suggested_action": risk.action.value,
        "milestone": risk.milestone.value if risk.milestone else None,
        "location_id": risk.location_id,
        "shipment": risk.shipment,
        "expected_delay_minutes": -(-risk.expected_delay_ms // 60_000)
        if risk.expected_delay_ms is not None
        else None,
    }


def at_risk_record(
    event_id: str,
    record: PromiseRecord,
    risk: Risk | None,
    now_ms: int,
    source: str,
    cleared: str | None = None,
) -> bytes:
    """Matches ``schemas.orders.OrderAtRisk``: the order's risk, or ``cleared`` when risk is None
    (``cleared``: why, when sourcing ended the risk, ``allocated_plan.clearance_reason``)."""
    body: dict[str, Any] = {
        "event_id": event_id,
        "occurred_at": utc_from_epoch_ms(now_ms).isoformat(),
        "source": source,
        "schema_version": 1,
        "order_id": record.order_id,
        "status": "at_risk" if risk is not None else "cleared",
        "promised_by": utc_from_epoch_ms(record.option.window_end_ms).isoformat(),
        "promise_version": record.version,
    }
    if risk is not None:
        body.update(risk_view(risk) or {})
    elif cleared is not None:
        body["reason"] = cleared
    return orjson.dumps(body)
