"""The OpenAPI 3.1 description of the HTTP API (served at /openapi.json, copied to docs/openapi.json)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from oms_streams import __version__
from oms_streams.api.models import (
    ApiError,
    CancellationPending,
    CancellationRefused,
    ChannelAvailabilityResponse,
    HoldRefused,
    HoldResponse,
    OrderResponse,
    ReturnResponse,
)
from oms_streams.schemas.availability import AvailabilityRecord
from oms_streams.schemas.cancellations import CancellationBody, OrderCancellationOutcome
from oms_streams.schemas.holds import HoldRequest
from oms_streams.schemas.promise import PromiseQuery, PromiseResponse


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


HOLD_PARAM = [{"name": "hold_id", "in": "path", "required": True, "schema": {"type": "string"}}]


def openapi_document() -> dict[str, Any]:
    components: dict[str, Any] = {}
    for model in (
        AvailabilityRecord,
        ChannelAvailabilityResponse,
        PromiseQuery,
        PromiseResponse,
        OrderResponse,
        ReturnResponse,
        CancellationBody,
        OrderCancellationOutcome,
        CancellationPending,
        CancellationRefused,
        HoldRequest,
        HoldResponse,
        HoldRefused,
        ApiError,
    ):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    error = _json(ApiError, "Bad request, with a message saying what is wrong")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "oms-streams",
            "version": __version__,
            "description": "Real-time inventory visibility, delivery promises and order tracking of an "
            "omnichannel retailer.",
        },
        "paths": {
            "/availability/{sku}": {
                "get": {
                    "summary": "Visible availability of a SKU, for one channel or all",
                    "parameters": [
                        {"name": "sku", "in": "path", "required": True, "schema": {"type": "string"}},
                        {
                            "name": "channel",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string"},
                            "description": "webshop, marketplace, click_and_collect...; omit for all",
                        },
                        {
                            "name": "near",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "pattern": r"^-?\d+(\.\d+)?,-?\d+(\.\d+)?$"},
                            "description": "lat,lon: only locations within radius_km (needs channel)",
                        },
                        {
                            "name": "radius_km",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": 20000},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "The channel's view (with channel=) or the whole record",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "oneOf": [_ref(ChannelAvailabilityResponse), _ref(AvailabilityRecord)]
                                    }
                                }
                            },
                        },
                        "400": error,
                        "404": _json(ApiError, "No availability has been published for this SKU"),
                    },
                }
            },
            "/promise": {
                "post": {
                    "summary": "Every delivery option the retailer can meet for a whole cart",
                    "description": "Standard and green home delivery, ship-from-store, click & collect per "
                    "nearby store (or the chosen pickup store), same-day courier. Each option: the window "
                    "(delivered or ready within it with probability >= confidence), parcels, CO2e, and "
                    "the shipments that would fulfil it. Methods that cannot be offered are listed under "
                    "'unavailable' with the reason.",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(PromiseQuery)}},
                    },
                    "responses": {
                        "200": _json(PromiseResponse, "The options, soonest first"),
                        "400": error,
                    },
                }
            },
            "/orders/{order_id}": {
                "get": {
                    "summary": "An order's promise, milestones, fulfilment events and risk",
                    "parameters": [
                        {"name": "order_id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": _json(OrderResponse, "The order as its owning worker tracks it"),
                        "404": _json(
                            ApiError,
                            "No such order (not placed, not yet seen, or finished and removed after its "
                            "retention: the message says so when the worker knows the order)",
                        ),
                    },
                }
            },
            "/orders/{order_id}/cancellations": {
                "post": {
                    "summary": "Cancel an order, or some of its lines, before they ship",
                    "description": "Sends the request on oms.orders.cancellations.v1 (the order's owner "
                    "decides it, as for the webshop's events) and waits up to 5 s for the answer. A line is "
                    "every unit of a SKU; units already shipped are refused with where they left from. "
                    "Holds are released, withdrawn allocations get a 'cancel' record on "
                    "oms.fulfilment.allocations.v1, risk is cleared and a courier slot freed. Idempotent: "
                    "the same request_id again changes nothing and gets the same answer.",
                    "parameters": [
                        {"name": "order_id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "requestBody": {
                        "required": False,
                        "content": {"application/json": {"schema": _ref(CancellationBody)}},
                    },
                    "responses": {
                        "200": _json(OrderCancellationOutcome, "Decided: cancelled, partially or already"),
                        "202": _json(
                            CancellationPending,
                            "Accepted, not decided yet (a sourcing round is "
                            "under way): the answer follows on oms.orders.cancellation-outcomes.v1",
                        ),
                        "400": error,
                        "404": _json(ApiError, "No such order (not placed, or not sourced yet)"),
                        "409": _json(CancellationRefused, "Refused: nothing could be cancelled, and why"),
                        "503": _json(ApiError, "No worker owns the order's partition right now"),
                    },
                }
            },
            "/holds": {
                "post": {
                    "summary": "Hold a cart's chosen stock at checkout for a while",
                    "description": "Sends a reserve per SKU to the SKUs' ledgers (as an order's) and waits "
                    "up to OMS_HOLD_ANSWER_WAIT_S (3 s) for their answers. All or nothing: a SKU its "
                    "ledger cannot hold whole refuses the hold, and the others are given back. Held units "
                    "leave availability at once. Unless an order placed with hold_id takes it over or "
                    "DELETE releases it, the ledgers release it at expires_at (ttl_s, else the channel's "
                    "default: OMS_HOLD_TTL_S, 900 s), across restarts and rebalances.",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref(HoldRequest)}},
                    },
                    "responses": {
                        "201": _json(HoldResponse, "Held: every line of every SKU"),
                        "202": _json(HoldResponse, "Not answered in time: see GET /holds/{hold_id}"),
                        "400": error,
                        "409": _json(HoldRefused, "Refused: a SKU's ledger could not hold its lines"),
                    },
                }
            },
            "/holds/{hold_id}": {
                "get": {
                    "summary": "A cart hold and what each SKU's ledger said of it",
                    "parameters": HOLD_PARAM,
                    "responses": {
                        "200": _json(HoldResponse, "The hold (any worker answers)"),
                        "404": _json(ApiError, "No such hold (unknown, or over for more than an hour)"),
                    },
                },
                "delete": {
                    "summary": "Release a cart hold early",
                    "description": "Sends a release per SKU still held and waits briefly for the ledgers. "
                    "A hold already over is answered as it is.",
                    "parameters": HOLD_PARAM,
                    "responses": {
                        "200": _json(HoldResponse, "Released (or over already)"),
                        "202": _json(HoldResponse, "Release sent, not confirmed yet"),
                        "404": _json(ApiError, "No such hold (unknown, or over for more than an hour)"),
                    },
                },
            },
            "/returns/{return_id}": {
                "get": {
                    "summary": "A return's routing decision and its receipts with their dispositions",
                    "parameters": [
                        {"name": "return_id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": _json(ReturnResponse, "The return as its owning worker keeps it"),
                        "404": _json(
                            ApiError,
                            "No such return (not announced or received yet, or removed after its retention)",
                        ),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {"description": "Prometheus text format", "content": {"text/plain": {}}}
                    },
                }
            },
            "/health": {
                "get": {
                    "summary": "Liveness and what the worker knows",
                    "responses": {"200": {"description": "ok", "content": {"application/json": {}}}},
                }
            },
            "/admin/resync": {
                "post": {
                    "summary": "Recompute availability of every SKU this worker owns",
                    "parameters": [
                        {
                            "name": "mode",
                            "in": "query",
                            "schema": {"enum": ["quick", "full"]},
                            "description": "quick publishes what differs from the topic; full, everything",
                        }
                    ],
                    "responses": {
                        "200": {"description": "records published", "content": {"application/json": {}}},
                        "400": error,
                    },
                }
            },
        },
        "components": {"schemas": components},
    }
