"""Sourcing and reservations: the saga between order owners and SKU ledger owners, and its results.

- ``oms.inventory.reservations.v2`` carries reservation commands to the owner of the SKUs' ledgers,
  in the same partitions as the stock topics, so a reservation is applied in order with the SKU's
  movements by the one worker that owns its truth. A record is a batch: the commands one sourcing
  batch has for SKUs of one partition (keyed by the first command's SKU).
- ``oms.orders.reservation-replies.v2`` carries the ledger's answers back to the owner of the order,
  batched the same way per order partition (keyed by the first reply's order id).
- ``oms.fulfilment.allocations.v1`` (key: order id): one allocation per shipment, for fulfilment.
- ``oms.orders.sourced.v1`` (key: order id): one outcome per order and sourcing round (and a
  preorder's interim answer, ``preordered``, while it waits for its inbound: not an outcome).

Batching is what keeps the saga affordable: an order's commands and answers would otherwise be two
records per SKU, each paying the full per-record cost of Kafka and faust on both sides.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from oms_streams.schemas.envelope import Envelope, Identifier, WireModel
from oms_streams.schemas.promise import CartLineModel, DestinationModel, MethodName

ReservationKind = Literal["reserve", "release", "fulfil", "preorder"]
"""``preorder``: hold announced inbound with an ETA (``docs/preorders.md``)."""
ReplyKind = Literal["reserve", "release", "fulfil", "shed", "timeout", "preorder"]
"""``shed``: no command asked it; the ledger gave the hold back because the stock under it went.
``timeout``: not a ledger's: the order's owner gives an attempt nobody answered up when it reads it."""


class ReservationLine(WireModel):
    location_id: Identifier
    quantity: Annotated[int, Field(ge=1, le=1_000_000)]
    channel: Annotated[str, Field(max_length=64)] | None = Field(
        default=None,
        description="Overrides the command's channel for this line (a click & collect order's DC "
        "transfer takes what the webshop sees of the DC).",
    )


class ReservationCommand(Envelope):
    """A command to the owner of one SKU's ledger.

    ``reserve`` holds every line or none (all-or-nothing per SKU); ``release`` gives a reservation's
    holds back; ``fulfil`` says the held units left the location with the shipment: they leave on
    hand and reserved together. Release and fulfil name the locations they apply to (empty: all).
    Idempotent: a command repeated with the same reservation id changes nothing.
    """

    kind: ReservationKind
    reservation_id: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        description="'<order id>/<attempt>': one per sourcing attempt of an order."
    )
    order_id: Identifier
    sku: Identifier
    channel: Annotated[str, Field(max_length=64)] = Field(
        default="webshop", description="Whose visible stock a reservation may take (the channel's rules)."
    )
    lines: Annotated[list[ReservationLine], Field(max_length=100)] = []
    expires_at: AwareDatetime | None = Field(
        default=None,
        description="A cart hold's reserve (reservation id 'hold-<uuid>'): when its ledger releases it "
        "unless an order took it over. Required for a cart hold, judged by the ledger's clock.",
    )
    takes_over: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None,
        description="An order's reserve: the cart hold whose units it takes over (the order was placed "
        "with it). The hold's units are given back and the order's lines reserved in one step.",
    )


class ReservationBatch(Envelope):
    """Commands for SKUs of one ledger partition, applied in list order (v1 was one per record)."""

    schema_version: Annotated[int, Field(ge=2, le=2)] = 2
    commands: Annotated[list[ReservationCommand], Field(min_length=1, max_length=100_000)]


class ReplyLine(WireModel):
    location_id: Identifier
    quantity: int
    available_after: int = Field(description="Units still visible to the channel at the location afterwards.")
    expected_at: AwareDatetime | None = Field(
        default=None, description="A preorder's answer: when its units are expected at the location (ETA)."
    )


class ReservationReply(Envelope):
    """The ledger's answer to one command, keyed by order id (back to the order's owner), or its word
    that it shed a hold (kind ``shed``, status ``released``, the reason says what left the stock)."""

    kind: ReplyKind
    reservation_id: str
    order_id: Identifier
    sku: Identifier
    status: Literal["reserved", "refused", "released", "fulfilled", "preordered"] = Field(
        description="``preordered``: a preorder holds inbound units; once they arrive the ledger "
        "answers the same command again ``reserved`` (kind ``reserve``), unasked."
    )
    lines: list[ReplyLine] = []
    reason: str = ""


class ReplyBatch(Envelope):
    """Answers for orders of one partition (v1 was one per record)."""

    schema_version: Annotated[int, Field(ge=2, le=2)] = 2
    replies: Annotated[list[ReservationReply], Field(min_length=1, max_length=100_000)]


class MilestoneModel(WireModel):
    kind: str
    due: AwareDatetime


class CandidateModel(WireModel):
    location_id: str
    held: dict[str, int] = Field(description="Usable units of the cart's SKUs at this location.")
    filtered: str | None = Field(default=None, description="Why it was not considered; null when it was.")
    cost: float | None = None
    distance_km: float | None = None


class DecisionTraceModel(WireModel):
    """Why the plan won: the candidates, why each was filtered, the scores, the winning plan."""

    search: str = Field(description="exact | bounded | click_and_collect | courier | single_site")
    candidates: list[CandidateModel]
    candidates_total: int
    filtered_counts: dict[str, int]
    plans_evaluated: int
    splits: int
    splits_lower_bound: int
    cost: float
    cost_lower_bound: float
    gap: float = Field(description="(cost - lower bound) / cost; 0 when the plan is proven optimal.")
    winning: str
    notes: list[str] = []


class Allocation(Envelope):
    """One shipment of an order, for the fulfilment system of its location.

    ``allocate`` releases the shipment to the location; ``cancel`` withdraws it (a short pick or a
    rejection moved its lines elsewhere). allocation_id is '<order id>:<round>:<shipment index>'.
    """

    kind: Literal["allocate", "cancel"]
    allocation_id: str
    order_id: Identifier
    round: int = Field(description="1 for the first sourcing; +1 for each re-sourcing.")
    shipment: int
    location_id: Identifier
    lines: list[CartLineModel]
    method: MethodName
    service_id: str | None = None
    route_id: str | None = Field(default=None, description="The replenishment route a transfer rides.")
    pickup_store_id: str | None = None
    destination: DestinationModel | None = None
    promised_by: AwareDatetime | None = None
    ready_at: AwareDatetime | None = None
    handover_at: AwareDatetime | None = None
    arrives_at: AwareDatetime | None = None
    late: bool = False
    distance_km: float = 0.0
    co2e_g: float = 0.0
    milestones: list[MilestoneModel] = []
    trace: DecisionTraceModel | None = None
    reason: str = ""


SourcedOutcome = Literal["allocated", "partially_allocated", "rejected", "preordered"]
"""``preordered`` is not a round's outcome: a preorder's interim answer (``PreorderAnswerModel``)."""


CourierSlotKind = Literal["book", "release", "booked", "moved", "refused"]


class CourierSlotRecord(Envelope):
    """A courier slot asked of, or given back to, the owner of the store's slots (``book``,
    ``release``: keyed by store id, in the store id's partition), or that owner's answer to the
    order's owner (``booked`` the slot asked for, ``moved`` to the next free one of that day,
    ``refused`` with the reason: keyed by order id). The owner checks capacity and books in one
    step, in order, so two placements never both take a slot's last place."""

    kind: CourierSlotKind
    order_id: Identifier
    store_id: Identifier
    requested_start: AwareDatetime = Field(description="The slot the placement chose.")
    slot_start: AwareDatetime | None = Field(default=None, description="The slot booked (answers).")
    slot_end: AwareDatetime | None = None
    reason: str = ""


class CourierSlotModel(WireModel):
    """The courier slot a placement booked: the one it chose, or the next free one of that day."""

    store_id: Identifier
    requested_start: AwareDatetime
    slot_start: AwareDatetime
    slot_end: AwareDatetime
    moved: bool = Field(description="The chosen slot was full: this is the next free one.")


EditChange = Literal["unchanged", "increased", "added", "reduced", "removed", "refused"]


class EditLineModel(WireModel):
    sku: Identifier
    before: int = Field(description="Units of the version in force before the edit.")
    after: int = Field(description="Units the edit asks for.")
    change: EditChange
    reason: str = ""


class EditAnswerModel(WireModel):
    """The answer to an edit: a placement of a known order with a new event id (a new version)."""

    placement_event_id: Identifier = Field(description="The edit's placement event id.")
    version: int = Field(description="The order's version in force after the answer (1: as first placed).")
    status: Literal["accepted", "refused"]
    reason: str = ""
    lines: list[EditLineModel] = []


class PreorderLineModel(WireModel):
    sku: Identifier
    quantity: int
    location_id: Identifier
    expected_at: AwareDatetime | None = Field(
        description="When the line's units are expected at the location (the ETA the ledger answered); "
        "null: they had already arrived and are held for the order."
    )


class PreorderAnswerModel(WireModel):
    """A preorder the ledgers accepted: the announced inbound is held for the order until it arrives."""

    expected_at: AwareDatetime | None = Field(description="The latest ETA of the lines (null: all arrived).")
    give_up_at: AwareDatetime | None = Field(
        description="Unless the goods arrived by then (the latest ETA + OMS_PREORDER_GRACE_H), the "
        "preorder is given up: the round's outcome is then rejected with the reason."
    )
    lines: list[PreorderLineModel]


class OrderSourced(Envelope):
    """The outcome of one sourcing round of an order: exactly one per (order, round).

    An accepted edit opens a round: its outcome carries ``edit`` (status accepted). A refused edit
    opens none: its answer is a record of the round in force with ``edit`` (status refused, event
    id 'edit-<digest>'), which is not a round's outcome (nothing changed).

    Every placement is answered: one refused before sourcing (a limit, a placement
    that could not be read and went to the dead-letter topic too) is ``rejected`` in round 0, with
    the reason and nothing allocated.

    A preorder (docs/preorders.md) is answered twice in its round: once its ledgers held the inbound,
    an interim answer, outcome ``preordered`` with ``preorder`` (event id '<order>:preordered:<round>',
    at most one per round, never changed: read again it is the same record), then the round's
    outcome as for any order (``allocated`` when the goods arrived; ``rejected`` when the preorder is
    given up or the order cancelled). A consumer of round outcomes skips ``preordered``."""

    order_id: Identifier
    round: int = Field(
        description="1 for the first sourcing, +1 for each re-sourcing; 0: the placement was refused "
        "before any stock was asked for (outcome rejected)."
    )
    outcome: SourcedOutcome
    allocations: list[str]
    backorder: list[CartLineModel] = []
    reason: str = ""
    attempts: int = Field(description="Reservation attempts this round took (refusals re-source).")
    trace: DecisionTraceModel | None = None
    courier_slot: CourierSlotModel | None = Field(
        default=None,
        description="A courier delivery's slot, as its owner booked it (null for other methods, and "
        "when the slot was refused: the reason says why).",
    )
    backorder_until: AwareDatetime | None = Field(
        default=None,
        description="The backorder lines are sourced again when stock arrives until then (the "
        "placement plus OMS_BACKORDER_HORIZON_H): a later round of the order allocates them.",
    )
    backorder_final: bool = Field(
        default=False,
        description="The backorder lines are not sourced again: the horizon passed (the round that "
        "says so allocates nothing new, its reason says why), a courier order, not for lack of "
        "stock, or refused at placement.",
    )
    edit: EditAnswerModel | None = Field(
        default=None, description="The edit this record answers (docs/edits.md); null otherwise."
    )
    preorder: PreorderAnswerModel | None = Field(
        default=None,
        description="Outcome preordered: the inbound held for the order, its ETAs and when the "
        "preorder is given up unless the goods arrived; null otherwise.",
    )
