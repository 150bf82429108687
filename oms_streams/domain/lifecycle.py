"""Where an order is in its life, from what its promise tracking and its sourcing saga know.

``status`` on ``GET /orders/{id}`` stays the risk view (on_track / at_risk / cancelled); the
lifecycle is a separate field, since an allocated or shipped order can be at risk too.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Lifecycle(StrEnum):
    PLACED = "placed"
    """Accepted, not sourced yet (or sourcing under way with nothing allocated)."""
    ALLOCATED = "allocated"
    PARTIALLY_ALLOCATED = "partially_allocated"
    """Some lines allocated; the rest backordered or being sourced again."""
    PREORDERED = "preordered"
    """A preorder holds announced inbound for it; allocated when the goods arrive (``docs/preorders.md``)."""
    BACKORDERED = "backordered"
    """Nothing allocated (any more) and nothing shipped: a round found no stock, and the lines wait
    for it within their horizon (``domain.backorders``), or waited past it after an allocation."""
    SHIPPED = "shipped"
    """At least one shipment left its location; not all delivered."""
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class LifecycleFacts:
    sourcing: str | None
    """The saga's status (reserving | allocated | partially_allocated | rejected); None: no row."""
    round: int = 1
    """The saga's round: 0 refused at placement, 1 first sourcing, more after a re-sourcing."""
    live: int = 0
    """Allocations released to a location whose units have not left it."""
    backordered: bool = False
    """Lines the latest round could not allocate."""
    left: int = 0
    """Shipments whose units left their location (handed over, departed, collected, delivered)."""
    delivered: int = 0
    """Of those, the ones delivered or collected."""
    cancelled: bool = False
    """Every line was cancelled (what had not shipped)."""
    awaiting_stock: bool = False
    """The backorder is sourced again when stock arrives (within its horizon): not final yet."""
    allocated_ever: bool = True
    """Some round allocated something (a rejected order whose backorder rounds found nothing was not)."""
    preordered: bool = False
    """The current round holds announced inbound and waits for the goods."""


def lifecycle(facts: LifecycleFacts) -> Lifecycle:
    """The order's lifecycle state; first match wins (cancelled and rejected only while nothing left)."""
    if facts.left == 0:
        if facts.cancelled:
            return Lifecycle.CANCELLED
        never = facts.round <= 1 or not facts.allocated_ever
        if facts.sourcing == "rejected" and facts.live == 0 and never and not facts.awaiting_stock:
            return Lifecycle.REJECTED  # never allocated; a later round that finds nothing backorders
    if facts.left:
        done = facts.delivered >= facts.left and facts.live == 0 and facts.sourcing != "reserving"
        return Lifecycle.DELIVERED if done and not facts.awaiting_stock else Lifecycle.SHIPPED
    if facts.live == 0:
        if facts.preordered:
            return Lifecycle.PREORDERED
        if facts.sourcing in (None, "reserving"):
            return Lifecycle.PLACED
        return (
            Lifecycle.BACKORDERED if facts.backordered or facts.sourcing == "rejected" else Lifecycle.PLACED
        )
    if facts.backordered or facts.sourcing in ("reserving", "rejected"):
        return Lifecycle.PARTIALLY_ALLOCATED
    return Lifecycle.ALLOCATED
