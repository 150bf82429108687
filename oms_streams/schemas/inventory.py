"""Stock events from ERP, POS and third parties (topics ``oms.inventory.*.v1``, keyed by SKU)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from oms_streams.schemas.envelope import Envelope, Identifier, WireModel

MovementKindName = Literal[
    "receipt",
    "sale",
    "customer_return_restocked",
    "customer_return_unsellable",
    "transfer_out",
    "transfer_in",
    "adjustment",
    "unsellable_in",
    "unsellable_out",
    "inbound_announced",
]


class StockMovement(Envelope):
    """A change of stock at one location. Quantities are positive; adjustments are signed."""

    sku: Identifier
    location_id: Identifier
    kind: MovementKindName
    quantity: int
    reference: Annotated[str, Field(max_length=128)] | None = Field(
        default=None, description="Document at the source: receipt number, till receipt, transfer id."
    )
    expected_at: AwareDatetime | None = Field(
        default=None,
        description="inbound_announced only: when the goods are expected to arrive (ETA). Inbound with "
        "an ETA can be preordered; without one it is tracked but never promised.",
    )


class CountedPosition(WireModel):
    location_id: Identifier
    on_hand: int
    unsellable: int | None = None


class StockCount(Envelope):
    """A full count of one SKU: absolute quantities as of ``occurred_at`` at one or more locations.

    Movements that occurred before ``occurred_at`` are already in the counted figure.
    """

    sku: Identifier
    positions: Annotated[list[CountedPosition], Field(min_length=1, max_length=10_000)]


class SupplierStock(Envelope):
    """A third party's stock snapshot for a SKU, with the lead time until it can ship."""

    sku: Identifier
    location_id: Identifier = Field(description="The third-party location (type third_party).")
    quantity: int
    lead_time_hours: int
