"""Promise requests and answers between the wire (HTTP body, Kafka event) and the domain."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pydantic import ValidationError

from oms_streams.adapters.availability import inbound_lots
from oms_streams.adapters.stock import Failure, key_problem, parse_model, validation_reason
from oms_streams.adapters.timestamps import epoch_ms, utc_from_epoch_ms
from oms_streams.domain.network import DeliveryMethod
from oms_streams.domain.promise_preorder import Inbound
from oms_streams.domain.promise_token import PromiseKeys, sign_promise
from oms_streams.domain.promise_types import (
    CartLine,
    DeliveryOption,
    Destination,
    PromiseRequest,
    PromiseResult,
    Shipment,
    Stock,
)
from oms_streams.schemas.promise import (
    CartLineModel,
    DeliveryOptionModel,
    DestinationModel,
    PromiseQuery,
    PromiseRequested,
)


def to_destination(wire: DestinationModel) -> Destination:
    return Destination(
        lat=wire.lat,
        lon=wire.lon,
        postal_code=wire.postal_code,
        region=wire.region,
        timezone=wire.timezone,
        pickup_store_id=wire.pickup_store_id,
    )


def to_cart(lines: Iterable[CartLineModel]) -> tuple[CartLine, ...]:
    return tuple(CartLine(line.sku, line.quantity) for line in lines)


def to_request(wire: PromiseQuery | PromiseRequested, request_id: str, asked_at_ms: int) -> PromiseRequest:
    return PromiseRequest(
        request_id=request_id,
        cart=to_cart(wire.cart),
        destination=to_destination(wire.destination),
        asked_at_ms=asked_at_ms,
        methods=frozenset(DeliveryMethod(m) for m in wire.methods)
        if wire.methods
        else frozenset(DeliveryMethod),
    )


def parse_query(body: bytes) -> PromiseQuery | Failure:
    """The body of POST /promise, or why it is not one (the 400's message)."""
    try:
        return PromiseQuery.model_validate_json(body)
    except ValidationError as error:
        if any(e["type"] == "json_invalid" for e in error.errors()):
            return Failure("malformed JSON")
        return Failure(validation_reason(error))


def decode_promise_request(key: bytes | None, value: bytes | None) -> PromiseRequest | Failure:
    wire = parse_model(PromiseRequested, value, "a promise request topic")
    if isinstance(wire, Failure):
        return wire
    wrong = key_problem(key, wire.request_id, "request id")
    if wrong is not None:
        return wrong
    asked_at = wire.asked_at or wire.occurred_at
    return to_request(wire, wire.request_id, epoch_ms(asked_at))


def stock_for(
    skus: Iterable[str], record_of: Callable[[str], dict[str, Any] | None], channels: Iterable[str]
) -> Stock:
    """channel -> SKU -> location -> visible units, from the availability records of the cart's SKUs."""
    stock: dict[str, dict[str, dict[str, int]]] = {channel: {} for channel in channels}
    for sku in skus:
        record = record_of(sku)
        if record is None:
            continue
        for channel, per_channel in stock.items():
            view = record["channels"].get(channel)
            if view is not None:
                per_channel[sku] = view["locations"]
    return stock


def inbound_for(skus: Iterable[str], record_of: Callable[[str], dict[str, Any] | None]) -> Inbound:
    """SKU -> location -> free inbound lots (ETA ms, units), from the cart SKUs' availability records."""
    inbound: dict[str, dict[str, tuple[tuple[int, int], ...]]] = {}
    for sku in skus:
        record = record_of(sku)
        if record is not None and record.get("inbound"):
            inbound[sku] = {loc: inbound_lots(seen) for loc, seen in record["inbound"].items()}
    return inbound


def _iso(ms: int) -> str:
    return utc_from_epoch_ms(ms).isoformat()


def _lines(lines: Iterable[CartLine]) -> list[dict[str, Any]]:
    return [{"sku": line.sku, "quantity": line.quantity} for line in lines]


def option_to_wire(option: DeliveryOption) -> dict[str, Any]:
    """Matches ``schemas.promise.DeliveryOptionModel`` (built as a dict: this is the HTTP hot path)."""
    return {
        "option_id": option.option_id,
        "method": option.method.value,
        "window_start": _iso(option.window_start_ms),
        "window_end": _iso(option.window_end_ms),
        "confidence": option.confidence,
        "parcels": option.parcels,
        "co2e_g": round(option.co2e_g, 1),
        "shipments": [
            {
                "location_id": s.location_id,
                "lines": _lines(s.lines),
                "ready_at": _iso(s.ready_at_ms),
                "handover_at": _iso(s.handover_at_ms),
                "arrives_at": _iso(s.arrives_at_ms),
                "service_id": s.service_id,
                "route_id": s.route_id,
                "distance_km": round(s.distance_km, 2),
                "transit_source": s.transit_source,
            }
            for s in option.shipments
        ],
        "pickup_store_id": option.pickup_store_id,
    } | ({"preorder": True} if option.preorder else {})


def result_to_wire(result: PromiseResult, network_generation: int) -> dict[str, Any]:
    """Matches ``schemas.promise.PromiseResponse``."""
    return {
        "request_id": result.request_id,
        "asked_at": _iso(result.asked_at_ms),
        "options": [option_to_wire(option) for option in result.options],
        "unavailable": [{"method": u.method.value, "reason": u.reason} for u in result.unavailable],
        "network_generation": network_generation,
    }


def add_tokens(
    wire_options: list[dict[str, Any]],
    options: Iterable[DeliveryOption],
    destination: Destination,
    keys: PromiseKeys,
    now_ms: int,
) -> None:
    """Each answered option with its promise token and the token's expiry (``DeliveryOptionModel``)."""
    point = None if destination.lat is None or destination.lon is None else (destination.lat, destination.lon)
    for wire, option in zip(wire_options, options, strict=True):
        token = sign_promise(option, point, keys, now_ms)
        wire["promise_token"] = token.text
        wire["token_expires_at"] = _iso(token.expires_at_ms)


def option_from_wire(wire: DeliveryOptionModel) -> DeliveryOption:
    return DeliveryOption(
        option_id=wire.option_id,
        method=DeliveryMethod(wire.method),
        window_start_ms=epoch_ms(wire.window_start),
        window_end_ms=epoch_ms(wire.window_end),
        confidence=wire.confidence,
        parcels=wire.parcels,
        co2e_g=wire.co2e_g,
        shipments=tuple(
            Shipment(
                location_id=s.location_id,
                lines=to_cart(s.lines),
                ready_at_ms=epoch_ms(s.ready_at),
                handover_at_ms=epoch_ms(s.handover_at),
                arrives_at_ms=epoch_ms(s.arrives_at),
                service_id=s.service_id,
                route_id=s.route_id,
                distance_km=s.distance_km,
                transit_source=s.transit_source,
            )
            for s in wire.shipments
        ),
        pickup_store_id=wire.pickup_store_id,
        preorder=wire.preorder,
    )
