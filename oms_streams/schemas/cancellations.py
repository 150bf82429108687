"""Order cancellations (``oms.orders.cancellations.v1``) and their answers
(``oms.orders.cancellation-outcomes.v1``), both keyed by order id.

A request names the order and, optionally, the lines (SKUs) to cancel; without lines it cancels the
whole order. A line is every unit of its SKU: one unit less is an edit of the order, not a
cancellation. Each request gets exactly one answer (a redelivered request gets the same one again,
with the same event id).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from oms_streams.schemas.envelope import Envelope, Identifier, WireModel
from oms_streams.schemas.promise import CartLineModel

CancellationOutcomeName = Literal["cancelled", "partially_cancelled", "already_cancelled", "refused"]
LineVerdictName = Literal["cancelled", "already_cancelled", "shipped", "not_in_order"]


class CancelLine(WireModel):
    sku: Identifier


CancelLines = Annotated[list[CancelLine], Field(min_length=1, max_length=100)]
Reason = Annotated[str, Field(max_length=256)]


class OrderCancellationRequested(Envelope):
    """Cancel an order, or some of its lines, before they ship (webshop, customer service).

    ``event_id`` is the request's id: a request sent again with it changes nothing and gets the
    answer it got the first time."""

    order_id: Identifier
    lines: CancelLines | None = Field(
        default=None, description="The lines (SKUs) to cancel, every unit of each; omitted: the whole order."
    )
    reason: Reason = Field(default="", description="Why the customer cancels (kept with the answer).")


class CancellationBody(WireModel):
    """``POST /orders/{order_id}/cancellations``: the event without its envelope."""

    lines: CancelLines | None = Field(default=None, description="Omitted: the whole order.")
    reason: Reason = ""
    request_id: Identifier | None = Field(
        default=None,
        description="Your id for this request (the event id): sending it again with the same id is "
        "a no-op answered as the first time. Generated when omitted.",
    )


class CancelledLine(WireModel):
    sku: str
    status: LineVerdictName = Field(
        description="cancelled (now), already_cancelled, or refused: shipped (every unit already left) "
        "or not_in_order"
    )
    cancelled_quantity: int = Field(description="Units cancelled by this request.")
    refused_quantity: int = Field(description="Units that had already shipped.")
    reason: str = ""


class OrderCancellationOutcome(Envelope):
    """The answer to one cancellation request (``oms.orders.cancellation-outcomes.v1``).

    Withdrawn allocations get a ``cancel`` record on ``oms.fulfilment.allocations.v1`` first; an
    allocation that keeps some lines is withdrawn and replaced by a new one holding the rest (the
    order's next sourcing round, with its outcome on ``oms.orders.sourced.v1``)."""

    order_id: Identifier
    request_id: str
    outcome: CancellationOutcomeName
    lines: list[CancelledLine]
    withdrawn_allocations: list[str] = Field(description="Allocation ids withdrawn (a 'cancel' record each).")
    replacement_allocations: list[str] = Field(
        default=[], description="New allocations holding the lines a withdrawn one kept."
    )
    open_lines: list[CartLineModel] = Field(description="What is still to ship after this request.")
    order_cancelled: bool = Field(description="Every line of the order is cancelled now.")
    reason: str = Field(default="", description="Why not everything asked for was cancelled.")
    request_reason: str = Field(default="", description="The reason the request gave.")
    requested_at: AwareDatetime = Field(description="The request's occurred_at.")
