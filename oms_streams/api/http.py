"""HTTP views on the worker's faust web server (aiohttp)."""

from __future__ import annotations

import uuid
from typing import Any, cast
from zoneinfo import ZoneInfo

import faust
import orjson
from aiohttp import web
from faust.web import Request, Response, View

from oms_streams import clock
from oms_streams.adapters.allocated import moves_view, shipments_view
from oms_streams.adapters.courier_slots import courier_slot_view
from oms_streams.adapters.lifecycle import order_lifecycle
from oms_streams.adapters.orders import milestone_view, risk_view
from oms_streams.adapters.promise import option_to_wire, parse_query, to_request
from oms_streams.adapters.sourcing import EDIT_WIRE
from oms_streams.adapters.stock import Failure
from oms_streams.adapters.timestamps import epoch_ms, utc_from_epoch_ms
from oms_streams.api.cancellation import cancellation_view, register_cancellation_view
from oms_streams.api.holds import register_hold_views
from oms_streams.api.openapi import openapi_document
from oms_streams.domain.risk import assess, milestone_reached
from oms_streams.domain.visibility import distances_within
from oms_streams.metrics import CONTENT_TYPE
from oms_streams.schemas.promise import PromiseQuery
from oms_streams.streaming.app import Worker

MAX_RADIUS_KM = 20_000.0


class BadRequest(Exception):
    pass


def _parse_near(query: Any) -> tuple[float, float, float] | None:
    near, radius = query.get("near"), query.get("radius_km")
    if near is None and radius is None:
        return None
    if near is None or radius is None:
        raise BadRequest("near=lat,lon and radius_km= go together")
    try:
        lat_text, lon_text = near.split(",")
        lat, lon, radius_km = float(lat_text), float(lon_text), float(radius)
    except ValueError as error:
        raise BadRequest(
            f"near must be 'lat,lon' in degrees and radius_km a number, got {near!r}, {radius!r}"
        ) from error
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise BadRequest(f"near {near!r} is not a point on earth (lat -90..90, lon -180..180)")
    if not 0 < radius_km <= MAX_RADIUS_KM:
        raise BadRequest(f"radius_km must be in (0, {MAX_RADIUS_KM:g}], got {radius}")
    return lat, lon, radius_km


def channel_view(
    worker: Worker, record: dict[str, Any], channel: str, near: tuple[float, float, float] | None
) -> dict[str, Any]:
    locations = worker.runtime.network.locations
    nearby = distances_within(locations.values(), *near) if near is not None else None
    rows = []
    for location_id, quantity in record["channels"][channel]["locations"].items():
        location = locations.get(location_id)
        row: dict[str, Any] = {"location_id": location_id, "quantity": quantity}
        if location is not None:
            row["type"], row["name"] = location.type.value, location.name
        if location_id in record.get("lead_time_hours", {}):
            row["lead_time_hours"] = record["lead_time_hours"][location_id]
        if nearby is not None:
            if location_id not in nearby:
                continue
            row["distance_km"] = round(nearby[location_id], 2)
        rows.append(row)
    rows.sort(key=lambda r: (r.get("distance_km", 0.0), -r["quantity"], r["location_id"]))
    return {
        "sku": record["sku"],
        "channel": channel,
        "total": sum(r["quantity"] for r in rows),
        "locations": rows,
        "published_at": record["published_at"],
        "rules_version": record["rules_version"],
    }


def _json(body: Any, status: int = 200) -> Response:
    # orjson straight into the response: the promise path is measured in milliseconds.
    response = web.Response(body=orjson.dumps(body), status=status, content_type="application/json")
    return cast(Response, response)


def _check_query(worker: Worker, query: PromiseQuery) -> str | None:
    """What the schema cannot know: the network's stores, the time zone database."""
    store = query.destination.pickup_store_id
    if store is not None and store not in worker.promises.network.promise_network.sites:
        return f"unknown pickup store {store!r}"
    if query.destination.timezone is not None:
        try:
            ZoneInfo(query.destination.timezone)
        except (ValueError, KeyError, OSError):
            return f"unknown time zone {query.destination.timezone!r}"
    return None


def order_view(worker: Worker, order_id: str) -> dict[str, Any] | None:
    found = worker.orders.lookup(order_id)
    sourcing = worker.sourcing.lookup(order_id)
    if found is None:
        # A placement refused unread (track_orders dead-lettered it) has only its sourcing answer.
        return refused_view(worker, order_id) if sourcing is not None and sourcing.round == 0 else None
    row, tracking = found
    if tracking is None:
        refused = sourcing is not None and sourcing.round == 0
        return {
            "order_id": order_id,
            "status": "rejected" if refused else "awaiting_placement",
            "lifecycle": order_lifecycle(None, sourcing, False) if refused else None,
            "events": len(row.events or []),
            "returns": row.returns or [],
            **({"sourcing": sourcing_view(worker, order_id)} if refused else {}),
        }
    now = clock.now_ms()
    record = row.promise_record() or tracking.record
    plan = row.plan
    risk = assess(tracking, now)
    cancelled = cancellation_view(sourcing) if sourcing is not None else {}
    status = "at_risk" if risk is not None else "on_track"
    return {
        "order_id": order_id,
        "status": "cancelled" if cancelled.get("cancelled") else status,
        "lifecycle": order_lifecycle(tracking, sourcing, bool(cancelled.get("cancelled"))),
        "promise": {
            "version": record.version,
            "placed_at": utc_from_epoch_ms(record.placed_at_ms).isoformat(),
            "option": option_to_wire(record.option),
        },
        "milestones": [milestone_view(m, milestone_reached(tracking, m)) for m in tracking.record.milestones],
        "shipments": shipments_view(plan, tracking.closed) if plan is not None else [],
        "moves": moves_view(plan) if plan is not None else [],
        "events": [
            {
                "event_id": e.event_id,
                "kind": e.kind.value,
                "occurred_at": utc_from_epoch_ms(e.occurred_at_ms).isoformat(),
                "location_id": e.location_id,
                "shipment": e.shipment,
            }
            for e in sorted(tracking.events, key=lambda e: e.occurred_at_ms)
        ],
        "risk": risk_view(risk),
        "sourcing": sourcing_view(worker, order_id),
        "returns": row.returns or [],
        "lines": cancelled.get("lines", []),
        "cancellations": cancelled.get("cancellations", []),
    }


def missing_order(worker: Worker, order_id: str) -> str:
    """Why an order has no row: never placed (or not read yet), or finished and removed after its
    retention, which the order's returnable record (kept 120 days, followed by every worker) tells."""
    if worker.returns.orders.get(order_id) is None:
        return f"no order {order_id!r}"
    s = worker.settings
    return (
        f"no order {order_id!r}: it finished and was removed after its retention (delivered orders are "
        f"kept {s.retention_delivered_days:g} days after their last event, cancelled "
        f"{s.retention_cancelled_days:g}, rejected {s.retention_rejected_days:g}); its events stay on "
        "the order topics for their retention"
    )


def refused_view(worker: Worker, order_id: str) -> dict[str, Any]:
    """An order whose placement was refused before it was read (no promise to show)."""
    return {
        "order_id": order_id,
        "status": "rejected",
        "lifecycle": "rejected",
        "sourcing": sourcing_view(worker, order_id),
    }


def _preorder_view(preorder: dict[str, Any] | None) -> dict[str, Any] | None:
    if preorder is None:
        return None
    at = {key: preorder.get(key) for key in ("expected_at_ms", "until_ms")}
    iso = {key: None if ms is None else utc_from_epoch_ms(ms).isoformat() for key, ms in at.items()}
    return {
        "status": preorder["status"],
        "expected_at": iso["expected_at_ms"],
        "given_up_at": iso["until_ms"],
    }


def sourcing_view(worker: Worker, order_id: str) -> dict[str, Any] | None:
    row = worker.sourcing.lookup(order_id)
    if row is None:
        return None
    until_ms, final = row.backorder_state()
    return {
        "status": row.status,
        "version": row.version,
        "lines": [{"sku": sku, "quantity": units} for sku, units in row.ordered],
        "edits": [{key: e[key] for key in EDIT_WIRE} for e in row.edits],
        "round": row.round,
        "attempts": row.round_attempts,
        "allocations": [
            {
                "allocation_id": a.allocation_id,
                "location_id": a.location_id,
                "lines": [{"sku": sku, "quantity": units} for sku, units in a.lines],
                "state": a.state,
            }
            for a in row.allocations
        ],
        "backorder": [{"sku": sku, "quantity": units} for sku, units in row.backorder],
        "backorder_until": None if until_ms is None else utc_from_epoch_ms(until_ms).isoformat(),
        "backorder_final": final,
        "backorder_rounds": row.backorder_rounds,
        "preorder": _preorder_view(row.preorder),
        "reason": row.reason(),
        "outstanding": [
            {
                "kind": entry["kind"],
                "reservation_id": entry["reservation_id"],
                "sku": entry["sku"],
                "since": utc_from_epoch_ms(entry["since_ms"]).isoformat(),
                "last_sent": utc_from_epoch_ms(entry["sent_ms"]).isoformat(),
                "sends": entry["sends"],
            }
            for entry in row.outstanding
        ],
        "courier_slot": courier_slot_view(row.courier),
    }


def register_views(worker: Worker) -> None:
    from oms_streams.api.console.views import register_console_views  # it reads order_view from here

    app: faust.App = worker.app
    register_cancellation_view(worker)
    register_hold_views(worker)
    register_console_views(worker)

    @app.page("/promise")
    class PromisePage(View):
        async def post(self, request: Request) -> Response:
            query = parse_query(await request.read())
            if isinstance(query, Failure):
                worker.metrics.promise_requests.labels("http", "rejected").inc()
                return _json({"error": query.reason}, status=400)
            problem = _check_query(worker, query)
            if problem is not None:
                worker.metrics.promise_requests.labels("http", "rejected").inc()
                return _json({"error": problem}, status=400)
            asked_at = epoch_ms(query.asked_at) if query.asked_at else clock.now_ms()
            request_id = query.request_id or uuid.uuid4().hex
            body = worker.promises.answer(to_request(query, request_id, asked_at), "http")
            response = web.Response(body=body, content_type="application/json")
            return cast(Response, response)

    @app.page("/orders/{order_id}")
    class OrderPage(View):
        @app.table_route(table=worker.orders.table, match_info="order_id")  # type: ignore[arg-type]
        async def get(self, request: Request, order_id: str) -> Response:
            # table_route answers from the worker that owns the order's partition (proxying to it).
            view = order_view(worker, order_id)
            if view is None:
                return self.json({"error": missing_order(worker, order_id)}, status=404)
            return self.json(view)

    @app.page("/returns/{return_id}")
    class ReturnPage(View):
        @app.table_route(table=worker.returns.table, match_info="return_id")  # type: ignore[arg-type]
        async def get(self, request: Request, return_id: str) -> Response:
            # Answered by the worker that owns the return's partition (proxying to it).
            row = worker.returns.lookup(return_id)
            if row is None:
                return self.json({"error": f"no return {return_id!r}"}, status=404)
            return self.json(row)

    @app.page("/availability/{sku}")
    class AvailabilityPage(View):
        async def get(self, request: Request, sku: str) -> Response:
            query = request.query
            try:
                near = _parse_near(query)
            except BadRequest as error:
                return self.json({"error": str(error)}, status=400)
            channel = query.get("channel")
            record = worker.runtime.view.get(sku)
            if record is None:
                return self.json({"error": f"no availability published for SKU {sku!r}"}, status=404)
            if channel is None:
                if near is not None:
                    return self.json({"error": "near= needs channel="}, status=400)
                return self.json(record)
            if channel not in record["channels"]:
                known = ", ".join(sorted(record["channels"]))
                return self.json(
                    {"error": f"unknown channel {channel!r}; known channels: {known}"}, status=400
                )
            return self.json(channel_view(worker, record, channel, near))

    @app.page("/metrics")
    class MetricsPage(View):
        async def get(self, request: Request) -> Response:
            # aiohttp refuses parameters in content_type=, so the exposition header is set whole.
            worker.runtime.export_gauges()
            worker.orders.export_gauges()
            worker.sourcing.export_gauges()
            response = web.Response(body=worker.metrics.scrape(), headers={"Content-Type": CONTENT_TYPE})
            return cast(Response, response)

    @app.page("/health")
    class HealthPage(View):
        async def get(self, request: Request) -> Response:
            network = worker.runtime.network
            stalled = worker.stall_watch.stalled
            return self.json(
                {
                    "status": "stalled" if stalled else "ok",
                    "stalled_partitions": stalled,
                    "ready": worker.runtime.ready,
                    "locations": len(network.locations),
                    "rules_version": network.rules.version,
                    "availability_records": len(worker.runtime.view.records),
                }
            )

    @app.page("/admin/resync")
    class ResyncPage(View):
        async def post(self, request: Request) -> Response:
            mode = request.query.get("mode", "quick")
            if mode not in ("quick", "full"):
                return self.json({"error": f"mode must be 'quick' or 'full', got {mode!r}"}, status=400)
            published = await worker.runtime.resync(full=mode == "full")
            return self.json({"mode": mode, "published": published})

    @app.page("/openapi.json")
    class OpenApiPage(View):
        async def get(self, request: Request) -> Response:
            return self.json(openapi_document())
