"""Courier slot requests and answers (``oms.orders.courier-slots.v1``) and the slot owner's table row.

A request (``book``, ``release``) is keyed by store id, so the one worker that owns the store id's
partition decides every booking of that store's slots, in order; its answer is keyed by order id,
back to the order's owner. The owner keeps one row per store in the ``courier_slots`` table:
``{"slots": {"<slot start ms>": [order id, ...]}}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from oms_streams.adapters.stock import Failure, key_problem, parse_model
from oms_streams.adapters.timestamps import epoch_ms, utc_from_epoch_ms
from oms_streams.schemas.sourcing import CourierSlotRecord

SOURCE = "oms-streams:source_orders"
REQUESTS = frozenset({"book", "release"})
KEEP_MS = 2 * 86_400_000
"""Slots that ended longer ago than this leave the store's row (a booking only matters that day)."""


@dataclass(frozen=True, slots=True)
class SlotMessage:
    kind: str
    order_id: str
    store_id: str
    requested_ms: int
    slot_ms: int | None
    reason: str

    @property
    def is_request(self) -> bool:
        return self.kind in REQUESTS


def decode_slot_message(key: bytes | None, value: bytes | None) -> SlotMessage | Failure:
    wire = parse_model(CourierSlotRecord, value, "the courier slots topic")
    if isinstance(wire, Failure):
        return wire
    # Requests meet their store's slots in one partition only when keyed by store id; answers
    # meet their order's saga only when keyed by order id.
    expected = wire.store_id if wire.kind in REQUESTS else wire.order_id
    wrong = key_problem(key, expected, "store id" if wire.kind in REQUESTS else "order id")
    if wrong is not None:
        return wrong
    return SlotMessage(
        kind=wire.kind,
        order_id=wire.order_id,
        store_id=wire.store_id,
        requested_ms=epoch_ms(wire.requested_start),
        slot_ms=epoch_ms(wire.slot_start) if wire.slot_start is not None else None,
        reason=wire.reason,
    )


def slot_record(
    kind: str,
    order_id: str,
    store_id: str,
    requested_ms: int,
    now_ms: int,
    slot: tuple[int, int] | None = None,
    reason: str = "",
) -> bytes:
    """Matches ``CourierSlotRecord``; a deterministic event id per (order, kind, requested slot)."""
    return orjson.dumps(
        {
            "event_id": f"{order_id}:slot:{kind}:{requested_ms}",
            "occurred_at": utc_from_epoch_ms(now_ms).isoformat(),
            "source": SOURCE,
            "schema_version": 1,
            "kind": kind,
            "order_id": order_id,
            "store_id": store_id,
            "requested_start": utc_from_epoch_ms(requested_ms).isoformat(),
            "slot_start": utc_from_epoch_ms(slot[0]).isoformat() if slot else None,
            "slot_end": utc_from_epoch_ms(slot[1]).isoformat() if slot else None,
            "reason": reason,
        }
    )


def booking_key(store_id: str, slot_ms: int, order_id: str) -> bytes:
    """The key of a booking on ``oms.promise.courier-bookings.v1`` (one key per booking)."""
    return f"{store_id}|{slot_ms}|{order_id}".encode()


def booking_record(store_id: str, slot_ms: int, order_id: str) -> bytes:
    return orjson.dumps(
        {"store_id": store_id, "slot_start": utc_from_epoch_ms(slot_ms).isoformat(), "order_id": order_id}
    )


def decode_store_slots(raw: bytes | None) -> dict[int, list[str]]:
    if raw is None:
        return {}
    return {int(slot): list(orders) for slot, orders in orjson.loads(raw)["slots"].items()}


def encode_store_slots(slots: dict[int, list[str]], now_ms: int) -> bytes:
    since = now_ms - KEEP_MS
    kept = {str(slot): orders for slot, orders in sorted(slots.items()) if orders and slot >= since}
    return orjson.dumps({"slots": kept})


def courier_slot_view(courier: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ``courier_slot`` of an order's outcome (``CourierSlotModel``), once a slot is booked."""
    if not courier or courier.get("status") not in ("booked", "released") or courier.get("slot_ms") is None:
        return None
    return {
        "store_id": courier["store"],
        "requested_start": utc_from_epoch_ms(courier["requested_ms"]).isoformat(),
        "slot_start": utc_from_epoch_ms(courier["slot_ms"]).isoformat(),
        "slot_end": utc_from_epoch_ms(courier["slot_end_ms"]).isoformat(),
        "moved": courier["slot_ms"] != courier["requested_ms"],
    }
