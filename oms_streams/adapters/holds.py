"""Cart holds between the wire and the worker: the request's commands, the records of
``oms.holds.v1`` (see ``schemas.holds``), and a hold put together from its records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from oms_streams.adapters.reservations import batch_record
from oms_streams.adapters.stock import Failure, parse_model
from oms_streams.adapters.timestamps import epoch_ms_from_iso, utc_from_epoch_ms
from oms_streams.schemas.holds import HoldLineModel, HoldRequest

SOURCE = "oms-streams:holds"
ENDED = ("taken_over", "released", "expired")
"""A hold's end states, the first present naming a hold whose SKUs ended differently."""


def parse_request(body: bytes) -> HoldRequest | Failure:
    """The request with its ``lines``: given, or those of its option's shipments."""
    request = parse_model(HoldRequest, body, "the hold request")
    if isinstance(request, Failure):
        return request
    if (request.lines is None) == (request.option is None):
        return Failure("a hold request gives either its option (as POST /promise returned it) or its lines")
    if request.option is not None:
        units: dict[tuple[str, str], int] = {}
        for shipment in request.option.shipments:
            for line in shipment.lines:
                where = (line.sku, shipment.location_id)
                units[where] = units.get(where, 0) + line.quantity
        lines = [HoldLineModel(sku=sku, location_id=loc, quantity=n) for (sku, loc), n in units.items()]
        return request.model_copy(update={"lines": lines})
    assert request.lines is not None
    seen = {(line.sku, line.location_id) for line in request.lines}
    if len(seen) != len(request.lines):
        return Failure("each (sku, location_id) may appear once in a hold's lines")
    return request


def held_lines(request: HoldRequest) -> list[HoldLineModel]:
    assert request.lines is not None, "parse_request gives every request its lines"
    return request.lines


def hold_cart(request: HoldRequest) -> dict[str, int]:
    """SKU -> units the hold asks for, over every location (what the placement limits bound)."""
    cart: dict[str, int] = {}
    for line in held_lines(request):
        cart[line.sku] = cart.get(line.sku, 0) + line.quantity
    return cart


def hold_point(request: HoldRequest) -> tuple[float, float] | None:
    """The home the option was promised for (as a placement's: a pickup store's has none)."""
    destination = request.destination
    if destination is None or destination.lat is None or destination.lon is None:
        return None
    return destination.lat, destination.lon


def _envelope(event_id: str, now_ms: int) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "occurred_at": utc_from_epoch_ms(now_ms).isoformat(),
        "source": SOURCE,
        "schema_version": 1,
    }


def hold_command(
    kind: str,
    hold_id: str,
    sku: str,
    channel: str,
    lines: list[tuple[str, int]],
    expires_at_ms: int,
    now_ms: int,
) -> dict[str, Any]:
    """Matches ``schemas.sourcing.ReservationCommand``: reservation id = order id = hold id."""
    body = _envelope(f"{hold_id}:{sku}:{kind}", now_ms)
    body.update(kind=kind, reservation_id=hold_id, order_id=hold_id, sku=sku, channel=channel)
    body["lines"] = [{"location_id": loc, "quantity": units} for loc, units in lines]
    if kind == "reserve":
        body["expires_at"] = utc_from_epoch_ms(expires_at_ms).isoformat()
    return body


def command_batch_record(commands: list[dict[str, Any]], now_ms: int) -> bytes:
    """Matches ``schemas.sourcing.ReservationBatch`` (commands for SKUs of one partition)."""
    return batch_record("commands", commands, SOURCE, now_ms)


def request_record(hold_id: str, request: HoldRequest, expires_at_ms: int, now_ms: int) -> bytes:
    """Matches ``schemas.holds.HoldRecord`` for the request (key: the hold id)."""
    lines = [line.model_dump() for line in held_lines(request)]
    skus = sorted({line.sku for line in held_lines(request)})
    return hold_record(hold_id, None, "requested", request.channel, expires_at_ms, lines, now_ms, skus=skus)


def hold_record(
    hold_id: str,
    sku: str | None,
    status: str,
    channel: str,
    expires_at_ms: int,
    lines: list[dict[str, Any]],
    now_ms: int,
    **extra: Any,
) -> bytes:
    """Matches ``schemas.holds.HoldRecord``; ``extra``: skus, order_id, reason."""
    body = _envelope(f"{hold_id}:{sku or 'request'}:{status}", now_ms)
    body.update(
        hold_id=hold_id,
        sku=sku,
        status=status,
        channel=channel,
        expires_at=utc_from_epoch_ms(expires_at_ms).isoformat(),
        lines=lines,
        **{k: v for k, v in extra.items() if v},
    )
    return orjson.dumps(body)


def hold_view(records: Mapping[str | None, dict[str, Any]]) -> dict[str, Any] | None:
    """A hold from its records (SKU -> latest record; None -> the request), or None if none.

    refused if any SKU was refused (the API gives the others back: a hold is all or nothing);
    pending while a SKU of the request is unanswered; held when every SKU is; else how it ended."""
    if not records:
        return None
    request = records.get(None)
    answers = {sku: r for sku, r in records.items() if sku is not None}
    skus = request["skus"] if request is not None else sorted(answers)
    statuses = {answers[sku]["status"] if sku in answers else "pending" for sku in skus}
    any_record = request or next(iter(answers.values()))
    if "refused" in statuses:
        status = "refused"
    elif "pending" in statuses:
        status = "pending"
    elif statuses == {"held"}:
        status = "held"
    else:
        status = next(s for s in ENDED if s in statuses)
    view = {
        "hold_id": any_record["hold_id"],
        "status": status,
        "channel": any_record["channel"],
        "expires_at": any_record["expires_at"],
        "skus": [_sku_view(sku, answers.get(sku)) for sku in skus],
        "reason": "; ".join(answers[s]["reason"] for s in skus if s in answers and answers[s].get("reason")),
    }
    orders = sorted({a["order_id"] for a in answers.values() if a.get("order_id")})
    if orders:
        view["order_id"] = orders[0]
    return view


def _sku_view(sku: str, record: dict[str, Any] | None) -> dict[str, Any]:
    if record is None:
        return {"sku": sku, "status": "pending", "lines": []}
    lines = [{"location_id": line["location_id"], "quantity": line["quantity"]} for line in record["lines"]]
    return {"sku": sku, "status": record["status"], "lines": lines}


def expires_at_ms(record: dict[str, Any]) -> int:
    return epoch_ms_from_iso(record["expires_at"])
