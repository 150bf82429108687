"""Edits between the wire, the domain (``domain.edits``) and the ``sourcing`` table rows.

An edit's answer is kept in the order's row (``SourcingRow.edits``, the latest ``KEPT_ANSWERS``) as a
plain dict: an accepted one rides on the outcome of the round it opened (``sourced_record``), a
refused one is its own record on ``oms.orders.sourced.v1`` (``refusal_record``, event id
'edit-<digest>'). An edit that arrives while a round is under way waits in the row (``parked``)
with what deciding it needs later.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson

from oms_streams.adapters.cancellations import cancellable
from oms_streams.adapters.orders import Placement
from oms_streams.adapters.promise import option_from_wire
from oms_streams.adapters.sourcing import EDIT_WIRE, SOURCE, SourcingRow
from oms_streams.adapters.timestamps import utc_from_epoch_ms
from oms_streams.domain.edits import Delivery, EditableOrder, EditDecision, EditRequest
from oms_streams.domain.network import DeliveryMethod
from oms_streams.domain.promise import CHANNEL_FOR_METHOD
from oms_streams.schemas.promise import DeliveryOptionModel

KEPT_ANSWERS = 16
"""Edit answers kept per order (an older placement read again is ignored as stale without one)."""


def delivery(method: str, destination: dict[str, Any], courier_store_id: str | None) -> Delivery:
    pickup = destination.get("pickup_store_id")
    home = (
        ()
        if method == DeliveryMethod.CLICK_AND_COLLECT.value
        else (
            destination.get("postal_code", ""),
            destination.get("lat"),
            destination.get("lon"),
        )
    )
    return Delivery(method, pickup, courier_store_id, home)


def editable(row: SourcingRow) -> EditableOrder:
    """The order as an edit sees it, from its sourcing row."""
    order = cancellable(row)
    return EditableOrder(
        order_id=row.order_id,
        ordered=order.ordered,
        delivery=delivery(row.method, row.destination, row.courier_store_id),
        allocations=order.allocations,
        backorder=tuple((str(sku), int(units)) for sku, units in row.backorder),
        cancelled=order.cancelled,
    )


def what_is_ordered(placement: Placement) -> tuple[dict[str, int], str | None, dict[str, Any]]:
    """The placement's cart (SKU -> units over its shipments), its courier store (a courier
    delivery's only source) and its destination with the pickup store: a first placement's and an
    edit's alike."""
    option = placement.option
    cart: dict[str, int] = {}
    for shipment in option.shipments:
        for line in shipment.lines:
            cart[line.sku] = cart.get(line.sku, 0) + line.quantity
    courier = option.shipments[0].location_id if option.method is DeliveryMethod.COURIER else None
    destination = dict(placement.destination)
    if option.pickup_store_id is not None:
        destination["pickup_store_id"] = option.pickup_store_id
    return cart, courier, destination


def edit_request(placement: Placement) -> EditRequest:
    cart, courier, destination = what_is_ordered(placement)
    return EditRequest(
        placement.event_id,
        tuple(cart.items()),
        delivery(placement.option.method.value, destination, courier),
    )


def redeliver(row: SourcingRow, placement: Placement) -> None:
    """The row's delivery becomes the edit's (method, destination, pickup store, channel); never a
    courier delivery (``domain.edits`` refuses a change to or from one)."""
    option = placement.option
    destination = dict(placement.destination)
    if option.pickup_store_id is not None:
        destination["pickup_store_id"] = option.pickup_store_id
    row.method = option.method.value
    row.destination = destination
    row.channel = CHANNEL_FOR_METHOD[option.method]
    row.courier_store_id = None


def parked(placement: Placement, placed_at: int) -> dict[str, Any]:
    """How an edit waits in the row for the round under way."""
    return {
        "event_id": placement.event_id,
        "occurred_ms": placement.placed_at_ms,
        "placed_at": placed_at,
        "option": placement.option_wire,
        "destination": placement.destination,
        "hold_id": placement.hold_id,
        "promise_token": placement.promise_token,
    }


def unpark(order_id: str, entry: dict[str, Any]) -> tuple[Placement, int]:
    option = option_from_wire(DeliveryOptionModel.model_validate(entry["option"], strict=False))
    placement = Placement(
        event_id=entry["event_id"],
        order_id=order_id,
        placed_at_ms=entry["occurred_ms"],
        option=option,
        option_wire=entry["option"],
        destination=entry["destination"],
        hold_id=entry["hold_id"],
        promise_token=entry["promise_token"],
    )
    return placement, int(entry["placed_at"])


def answer(
    event_id: str,
    version: int,
    decision: EditDecision | None,
    reason: str,
    round_: int,
    withdrawn: Sequence[str] = (),
) -> dict[str, Any]:
    """An edit's answer as the row keeps it (``EDIT_WIRE`` of it goes on the wire)."""
    lines = decision.lines if decision is not None else ()
    return {
        "placement_event_id": event_id,
        "version": version,
        "status": "refused" if reason else "accepted",
        "reason": reason,
        "lines": [
            {"sku": c.sku, "before": c.before, "after": c.after, "change": c.change.value, "reason": c.reason}
            for c in lines
        ],
        "round": round_,
        "withdrawn": list(withdrawn),
    }


def edit_event_id(order_id: str, placement_event_id: str) -> str:
    """Deterministic per edit (both ids can be 128 characters: the pair is hashed)."""
    digest = hashlib.sha256(f"{order_id}\x00{placement_event_id}".encode()).hexdigest()[:24]
    return f"edit-{digest}"


def refused(row: SourcingRow, kept: dict[str, Any]) -> dict[str, Any]:
    """A refused edit's answer with the order as it stood then (one event id, one content)."""
    backorder = [{"sku": sku, "quantity": units} for sku, units in row.backorder]
    return {**kept, "outcome": row.status, "backorder": backorder}


def refusal_record(row: SourcingRow, kept: dict[str, Any], now_ms: int) -> bytes:
    """Matches ``schemas.sourcing.OrderSourced``: the order as it stood, and the refused edit."""
    return orjson.dumps(
        {
            "event_id": edit_event_id(row.order_id, kept["placement_event_id"]),
            "occurred_at": utc_from_epoch_ms(now_ms).isoformat(),
            "source": SOURCE,
            "schema_version": 1,
            "order_id": row.order_id,
            "round": kept["round"],
            "outcome": kept.get("outcome", row.status),
            "allocations": [],
            "backorder": kept.get("backorder", []),
            "reason": kept["reason"],
            "attempts": 0,
            "trace": None,
            "edit": {key: kept[key] for key in EDIT_WIRE},
        }
    )
