"""What of an order can come back, between the ``orders`` table row, the domain and the compacted
``oms.orders.returnable.v1`` (``schemas.orders.OrderReturnable``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from oms_streams.adapters.orders import OrderRow
from oms_streams.adapters.timestamps import utc_from_epoch_ms
from oms_streams.domain.returnable import ReturnableOrder, ordered_units, shipped_units
from oms_streams.domain.risk import OrderTracking

REFUSED = "refused"
"""The disposition of units not accepted against their order (``schemas.returns.DispositionName``)."""


def accepted_units(items: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """SKU -> units accepted back among processed items (refused ones are not)."""
    units: dict[str, int] = {}
    for item in items:
        if item["disposition"] != REFUSED:
            units[item["sku"]] = units.get(item["sku"], 0) + int(item["quantity"])
    return units


def returnable_of(row: OrderRow, tracking: OrderTracking) -> ReturnableOrder:
    """The order as the returns check needs it, from its tracker's row and tracking."""
    returned: dict[str, dict[str, int]] = {}
    for linked in row.returns or ():
        mine = returned.setdefault(linked["return_id"], {})
        for sku, units in accepted_units(linked["items"]).items():
            mine[sku] = mine.get(sku, 0) + units
    return ReturnableOrder(
        row.order_id,
        ordered_units(tracking),
        shipped_units(tracking, row.cancelled or ()),
        {return_id: units for return_id, units in returned.items() if units},
    )


def fingerprint(order: ReturnableOrder) -> str:
    """Short digest of what the record says, so it is republished only when that changes."""
    body = orjson.dumps(_body(order), option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(body, digest_size=8).hexdigest()


def returnable_record(order: ReturnableOrder, now_ms: int) -> bytes:
    """Matches ``schemas.orders.OrderReturnable``."""
    return orjson.dumps({**_body(order), "updated_at": utc_from_epoch_ms(now_ms).isoformat()})


def _body(order: ReturnableOrder) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "ordered": dict(order.ordered),
        "shipped": dict(order.shipped),
        "returned": {return_id: dict(units) for return_id, units in order.returned.items()},
    }


def decode_returnable(value: bytes | None) -> ReturnableOrder | None:
    """Our own record; None for a tombstone or a record that cannot be read (it checks nothing)."""
    try:
        record = orjson.loads(value) if value is not None else None
        if not isinstance(record, dict):
            return None
        return ReturnableOrder(
            record["order_id"],
            _units(record["ordered"]),
            _units(record["shipped"]),
            {str(r): _units(units) for r, units in record["returned"].items()},
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None


def _units(raw: Mapping[str, Any]) -> dict[str, int]:
    return {str(sku): int(units) for sku, units in raw.items()}
