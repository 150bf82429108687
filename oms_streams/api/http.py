"""HTTP views on the worker's faust web server (aiohttp)."""

from __future__ import annotations

from typing import Any, cast

import faust
from aiohttp import web
from faust.web import Request, Response, View

from oms_streams.api.openapi import openapi_document
from oms_streams.domain.visibility import distances_within
from oms_streams.metrics import CONTENT_TYPE
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


def register_views(worker: Worker) -> None:
    app: faust.App = worker.app

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
            response = web.Response(body=worker.metrics.scrape(), headers={"Content-Type": CONTENT_TYPE})
            return cast(Response, response)

    @app.page("/health")
    class HealthPage(View):
        async def get(self, request: Request) -> Response:
            network = worker.runtime.network
            return self.json(
                {
                    "status": "ok",
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
