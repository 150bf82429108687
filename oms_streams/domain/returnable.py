"""What of an order can come back: no more units of a SKU than the order shipped, less the units
other returns of the order brought back before.

"Shipped" is every unit of a promised shipment that left us for the customer: handed to the carrier
or courier, on the route to the pickup store, ready for pickup, delivered or collected. Delivery
scans and the till's "collected" often arrive after the customer is already at the returns desk (a
parcel refused at the door, an item collected and handed back at once), so waiting for "delivered"
would refuse real returns; a unit that never left a location cannot be in the customer's hands.

Where the events cannot be matched to a promised shipment (a store that sourcing chose after a
rejection ships nothing of the promise), every unit still ordered counts as shipped: the check then
only stops units beyond the order, and never refuses what may well have reached the customer. A
cancelled SKU counts only from shipments that had left when it was cancelled.

An order that is not known (a store sale, an order older than the topic's retention) is not checked:
the return policy decides alone. Pure: the caller passes the order as its tracker knows it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from oms_streams.domain.risk import FulfilmentKind, OrderTracking, event_targets

LEFT_FOR_CUSTOMER = frozenset(
    {
        FulfilmentKind.HANDED_TO_CARRIER,
        FulfilmentKind.ROUTE_DEPARTED,
        FulfilmentKind.READY_FOR_PICKUP,
        FulfilmentKind.DELIVERED,
        FulfilmentKind.COLLECTED,
    }
)
"""A shipment with one of these events has left us for the customer."""


@dataclass(frozen=True, slots=True)
class ReturnableOrder:
    order_id: str
    ordered: Mapping[str, int]
    """SKU -> units placed."""
    shipped: Mapping[str, int]
    """SKU -> units that left for the customer (see the module docstring)."""
    returned: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Return id -> SKU -> units accepted back (refused units are not in it)."""

    def returned_by_others(self, sku: str, return_id: str) -> int:
        """Units of the SKU that returns other than ``return_id`` brought back."""
        return sum(units.get(sku, 0) for other, units in self.returned.items() if other != return_id)


@dataclass(frozen=True, slots=True)
class ReturnClaim:
    """Units a return says come back: a received item, or a line of an announced return."""

    key: str
    sku: str
    quantity: int


class Refusal(StrEnum):
    NOT_IN_ORDER = "not_in_order"
    NOT_SHIPPED = "not_shipped"
    """Nothing of the SKU has left for the customer yet."""
    MORE_THAN_DELIVERED = "more_than_delivered"


REFUSAL_LABEL: Mapping[Refusal, str] = {
    Refusal.NOT_IN_ORDER: "refused: not in the order",
    Refusal.NOT_SHIPPED: "refused: not shipped yet",
    Refusal.MORE_THAN_DELIVERED: "refused: more than delivered",
}


@dataclass(frozen=True, slots=True)
class Allowed:
    """How much of a claim can come back against its order."""

    key: str
    sku: str
    accepted: int
    refused: int = 0
    refusal: Refusal | None = None
    reason: str = ""
    """One sentence when units are refused, e.g. ``1 more than delivered: order ORDER-1 shipped 2
    SKU-TENT, 2 came back before``."""


def shipped_units(order: OrderTracking, cancelled: Collection[str] = ()) -> dict[str, int]:
    """SKU -> units of the order that left for the customer (see the module docstring)."""
    record = order.record
    shipments = record.option.shipments
    left: dict[int, int] = {}
    """Shipment index -> when it first left."""
    for event in order.events:
        if event.kind not in LEFT_FOR_CUSTOMER:
            continue
        targets = event_targets(event, record) or range(len(shipments))  # unmatched: count them all
        for i in targets:
            left[i] = min(left.get(i, event.occurred_at_ms), event.occurred_at_ms)
    units: dict[str, int] = {}
    for i, at_ms in sorted(left.items()):
        for line in shipments[i].lines:
            if line.sku in cancelled and (order.closed_at_ms is None or at_ms > order.closed_at_ms):
                continue  # cancelled before this shipment left: it left without the SKU
            units[line.sku] = units.get(line.sku, 0) + line.quantity
    return units


def ordered_units(order: OrderTracking) -> dict[str, int]:
    """SKU -> units placed (the promised shipments carry exactly the cart)."""
    units: dict[str, int] = {}
    for shipment in order.record.option.shipments:
        for line in shipment.lines:
            units[line.sku] = units.get(line.sku, 0) + line.quantity
    return units


def allow_return(
    order: ReturnableOrder | None,
    return_id: str,
    claims: Sequence[ReturnClaim],
    own: Mapping[str, int] | None = None,
) -> tuple[Allowed, ...]:
    """Per claim, in order, the units that can come back; the rest refused with the reason.

    ``own``: SKU -> units this return already brought back (its earlier receipts): the caller's own
    record of them is exact, so the order's count for ``return_id`` is not used. Earlier claims of
    the same call take their room first. An unknown order (None) accepts everything."""
    if order is None:
        return tuple(Allowed(c.key, c.sku, c.quantity) for c in claims)
    taken = dict(own or {})
    allowed: list[Allowed] = []
    for claim in claims:
        before = order.returned_by_others(claim.sku, return_id) + taken.get(claim.sku, 0)
        room = max(0, order.shipped.get(claim.sku, 0) - before)
        accepted = min(claim.quantity, room)
        taken[claim.sku] = taken.get(claim.sku, 0) + accepted
        refused = claim.quantity - accepted
        if not refused:
            allowed.append(Allowed(claim.key, claim.sku, accepted))
            continue
        refusal, reason = _refusal(order, claim.sku, refused, before)
        allowed.append(Allowed(claim.key, claim.sku, accepted, refused, refusal, reason))
    return tuple(allowed)


def _refusal(order: ReturnableOrder, sku: str, refused: int, before: int) -> tuple[Refusal, str]:
    ordered = order.ordered.get(sku, 0)
    shipped = order.shipped.get(sku, 0)
    if not ordered and not shipped:
        return Refusal.NOT_IN_ORDER, f"{sku} is not a line of order {order.order_id}"
    if not shipped:
        return Refusal.NOT_SHIPPED, f"order {order.order_id} has not shipped {sku} yet ({ordered} ordered)"
    return (
        Refusal.MORE_THAN_DELIVERED,
        f"{refused} more than delivered: order {order.order_id} shipped {shipped} {sku}, "
        f"{before} came back before",
    )
