"""Returns: what stores and the webshop tell us, and what we decide (topics ``oms.returns.*.v1``).

- ``oms.returns.requested.v1`` (key: return id): a customer announces a shipped return.
- ``oms.returns.routed.v1`` (key: return id): where each item should be sent, with the explanation,
  for the label service.
- ``oms.returns.received.v1`` (key: return id): a store till or a DC registers returned items with
  their inspection grade.
- ``oms.returns.processed.v1`` (key: order id, or return id without an order): what became of each
  received item (restocked, unsellable, back to the vendor, or refused: more than the order
  delivered), linked to the original order.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, model_validator

from oms_streams.schemas.envelope import Envelope, Identifier, WireModel

GradeName = Literal["as_new", "resellable", "damaged", "defective"]
DispositionName = Literal["restock", "unsellable", "return_to_vendor", "refused"]
"""refused: not accepted against the order (more than it delivered, not in it, not shipped yet)."""
Quantity = Annotated[int, Field(ge=1, le=10_000)]


class Origin(WireModel):
    """Where the customer hands the parcel in (geocoded by the webshop)."""

    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]


class RequestedLine(WireModel):
    line_id: Identifier
    sku: Identifier
    quantity: Quantity
    reason: Annotated[str, Field(max_length=200)] | None = None


class ReturnRequested(Envelope):
    """A customer announces a shipped return; each line gets a return address."""

    return_id: Identifier
    order_id: Identifier | None = None
    channel: Annotated[str, Field(max_length=64)] | None = None
    origin: Origin
    lines: Annotated[list[RequestedLine], Field(min_length=1, max_length=100)]

    @model_validator(mode="after")
    def _unique_lines(self) -> ReturnRequested:
        ids = [line.line_id for line in self.lines]
        if len(set(ids)) != len(ids):
            raise ValueError("line_id must be unique within a return")
        return self


class ReceivedItem(WireModel):
    item_id: Identifier | None = Field(
        default=None, description="The item's id on the return (defaults to its SKU): the dedupe key."
    )
    sku: Identifier
    quantity: Quantity
    grade: GradeName


class ReturnReceived(Envelope):
    """Returned items registered and inspected at a location (a store till, or a DC's returns desk)."""

    return_id: Identifier
    location_id: Identifier
    order_id: Identifier | None = None
    channel: Annotated[str, Field(max_length=64)] | None = Field(
        default=None, description="The original order's sales channel (disposition rules may use it)."
    )
    sold_at: AwareDatetime | None = Field(
        default=None, description="When the items were bought (rules with max_days_since_sale use it)."
    )
    items: Annotated[list[ReceivedItem], Field(min_length=1, max_length=100)]

    def item_keys(self) -> list[str]:
        """Each item's key: its item id, or its SKU when it has none."""
        return [item.item_id or item.sku for item in self.items]

    @model_validator(mode="after")
    def _unique_items(self) -> ReturnReceived:
        keys = self.item_keys()
        if len(set(keys)) != len(keys):
            raise ValueError("items must be unique by item_id (or SKU when item_id is absent)")
        return self


class CandidateModel(WireModel):
    location_id: str
    km: float
    need: int
    load: int
    capacity: int | None
    score: float


class RoutedLineModel(WireModel):
    line_id: str
    sku: str
    quantity: int
    location_id: str | None = Field(description="Where to send the item; null: nowhere can receive it.")
    km: float | None
    central_location: str | None = Field(description="The central returns DC: the baseline.")
    central_km: float | None
    need_covered: int = Field(description="Units of the location's shortfall this item fills.")
    reason: str
    candidates: list[CandidateModel] = Field(description="The best scored locations, best first.")
    excluded: dict[str, int] = Field(description="Locations left out, per reason.")
    refused: int = Field(
        default=0,
        description="Units of the line not routed: more than the order delivered (quantity is the rest).",
    )
    refused_reason: str | None = Field(default=None, description="Why units were refused.")


class ReturnRouted(WireModel):
    event_id: str = Field(description="'<return id>:routed': a repeat is the same decision.")
    return_id: str
    order_id: str | None
    routed_at: AwareDatetime
    lines: list[RoutedLineModel]


class ProcessedItem(WireModel):
    item_key: str
    sku: str
    quantity: int
    grade: GradeName
    disposition: DispositionName
    rule: str = Field(description="The disposition rule that decided.")
    movement_event_id: str | None = Field(
        description="The stock movement sent to the ledger; null for refused units (no stock moves)."
    )
    routed_to: str | None = Field(description="Where routing had sent it (shipped returns).")
    reason: str | None = Field(
        default=None, description="Why the units were refused (e.g. more than the order delivered)."
    )


class ReturnProcessed(WireModel):
    event_id: str = Field(description="'<return id>:received:<received event id>'.")
    return_id: str
    order_id: str | None
    location_id: str
    handling: Literal["in_store", "shipped"] = Field(
        description="in_store: handed in at this location; shipped: sent here by return routing."
    )
    processed_at: AwareDatetime
    items: list[ProcessedItem]
    km_avoided: float = Field(description="Transport avoided against sending it all to the central DC.")
