"""``POST /holds``, ``GET /holds/{hold_id}`` and ``DELETE /holds/{hold_id}``: cart holds at checkout.

The call decides nothing itself: it sends the hold's reserve commands to the SKUs' ledgers (the same
topic and path as an order's), each of which holds all of its SKU's lines or none and answers on
``oms.holds.v1``. Every worker follows that topic, so any worker answers for any hold. A hold is all
or nothing: when a ledger refuses its SKU, the call gives the other SKUs back (should this worker
die first, they expire). The ledger releases an unclaimed hold at its expiry; an order placed with
``hold_id`` takes it over.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, cast

import orjson
from aiohttp import web
from faust.web import Request, Response, View

from oms_streams import clock
from oms_streams.adapters.holds import (
    command_batch_record,
    held_lines,
    hold_cart,
    hold_command,
    hold_point,
    hold_view,
    parse_request,
    request_record,
)
from oms_streams.adapters.promise import option_from_wire
from oms_streams.adapters.stock import Failure
from oms_streams.adapters.timestamps import epoch_ms_from_iso, utc_from_epoch_ms
from oms_streams.domain.placement import placement_problem
from oms_streams.domain.promise_token import verify_promise
from oms_streams.schemas.holds import HoldRequest
from oms_streams.streaming.app import Worker
from oms_streams.streaming.partitioning import partition_for
from oms_streams.streaming.topics import HOLDS, RESERVATIONS

POLL_S = 0.02
ENDED = {"refused", "released", "expired", "taken_over"}


def _json(body: Any, status: int) -> Response:
    return cast(
        Response, web.Response(body=orjson.dumps(body), status=status, content_type="application/json")
    )


def register_hold_views(worker: Worker) -> None:
    app = worker.app

    @app.page("/holds")
    class HoldsPage(View):
        async def post(self, request: Request) -> Response:
            return await _hold(worker, await request.read())

    @app.page("/holds/{hold_id}")
    class HoldPage(View):
        async def get(self, request: Request, hold_id: str) -> Response:
            view = hold_view(worker.holds.get(hold_id))
            if view is None:
                return _json({"error": f"no hold {hold_id!r} (unknown, or over for more than an hour)"}, 404)
            return _json(view, 200)

        async def delete(self, request: Request, hold_id: str) -> Response:
            return await _release(worker, hold_id)


async def _hold(worker: Worker, body: bytes) -> Response:
    parsed = parse_request(body)
    channels = {rule.channel for rule in worker.runtime.network.rules.channels}
    if not isinstance(parsed, Failure) and parsed.channel not in channels:
        parsed = Failure(f"unknown channel {parsed.channel!r}; known channels: {', '.join(sorted(channels))}")
    if isinstance(parsed, Failure):
        worker.metrics.hold_requests.labels("unknown", "bad_request").inc()
        return _json({"error": parsed.reason}, 400)
    now = clock.now_ms()
    refusal = _refusal(worker, parsed, now)
    if refusal is not None:
        status, reason = refusal
        worker.metrics.hold_requests.labels(
            parsed.channel, "forbidden" if status == 403 else "bad_request"
        ).inc()
        return _json({"error": reason}, status)
    hold_id = f"hold-{uuid.uuid4().hex}"
    expires_at = now + 1000 * (parsed.ttl_s or worker.settings.hold_ttl_for(parsed.channel))
    lines = _lines_by_sku(parsed)
    await _send(worker, "reserve", hold_id, parsed.channel, lines, expires_at, now)
    # After the commands: whoever sees the request can release the hold (DELETE) in their wake.
    producer = worker.app.producer
    topic = worker.settings.topic(HOLDS.name)
    await producer.send(
        topic, hold_id.encode(), request_record(hold_id, parsed, expires_at, now), None, None, None
    )
    await producer.flush()
    view = await _answer(worker, hold_id, lambda v: v["status"] != "pending") or _pending(
        hold_id, parsed, expires_at
    )
    worker.metrics.hold_requests.labels(parsed.channel, view["status"]).inc()
    if view["status"] == "held":
        return _json(view, 201)
    if view["status"] == "refused":
        # All or nothing: the SKUs their ledgers held go back now rather than at expiry.
        await _send(worker, "release", hold_id, parsed.channel, lines, expires_at, now)
        await producer.flush()
        return _json({"error": view["reason"] or "refused", **view}, 409)
    return _json({**view, "detail": "not answered yet: see GET /holds/{hold_id}"}, 202)


def _refusal(worker: Worker, request: HoldRequest, now: int) -> tuple[int, str] | None:
    """Why the hold may not reserve stock, with its HTTP status: the placement checks. With a
    signing key only an option the OMS promised, with its valid token (403); always the
    per-order and per-line limits (400)."""
    limits = worker.sourcing.gate.limits
    keys = limits.promise_keys
    if keys is not None:
        if request.option is None:
            return 403, (
                "a hold needs the chosen option with its promise_token, as POST /promise returned it "
                "(this OMS signs its promises): lines alone are not accepted"
            )
        option = option_from_wire(request.option)
        problem = verify_promise(request.option.promise_token, option, hold_point(request), keys, now)
        if problem is not None:
            return 403, f"{problem.reason}: the hold reserves nothing"
    problem_text = placement_problem(hold_cart(request), limits)
    return None if problem_text is None else (400, problem_text)


async def _release(worker: Worker, hold_id: str) -> Response:
    records = worker.holds.get(hold_id)
    view = hold_view(records)
    if view is None:
        return _json({"error": f"no hold {hold_id!r} (unknown, or over for more than an hour)"}, 404)
    live = {s["sku"] for s in view["skus"] if s["status"] in ("held", "pending")}
    if not live:
        return _json(view, 200)  # over already: nothing to give back
    request = records.get(None)
    lines = {
        sku: [(line["location_id"], line["quantity"]) for line in request["lines"] if line["sku"] == sku]
        if request is not None
        else []
        for sku in live
    }
    now = clock.now_ms()
    await _send(
        worker, "release", hold_id, view["channel"], lines, epoch_ms_from_iso(view["expires_at"]), now
    )
    await worker.app.producer.flush()
    answered = await _answer(worker, hold_id, lambda v: all(s["status"] in ENDED for s in v["skus"]))
    return (
        _json(answered, 200) if answered is not None and answered["status"] in ENDED else _json(answered, 202)
    )


def _pending(hold_id: str, request: HoldRequest, expires_at: int) -> dict[str, Any]:
    """The hold before even its request reached this worker's book."""
    skus = sorted({line.sku for line in held_lines(request)})
    return {
        "hold_id": hold_id,
        "status": "pending",
        "channel": request.channel,
        "expires_at": utc_from_epoch_ms(expires_at).isoformat(),
        "skus": [{"sku": sku, "status": "pending", "lines": []} for sku in skus],
        "reason": "",
    }


def _lines_by_sku(request: HoldRequest) -> dict[str, list[tuple[str, int]]]:
    lines: dict[str, list[tuple[str, int]]] = {}
    for line in held_lines(request):
        lines.setdefault(line.sku, []).append((line.location_id, line.quantity))
    return lines


async def _send(
    worker: Worker,
    kind: str,
    hold_id: str,
    channel: str,
    lines: dict[str, list[tuple[str, int]]],
    expires_at: int,
    now: int,
) -> None:
    """The hold's commands, one batch per ledger partition (keyed by its first SKU)."""
    partitions = RESERVATIONS.partitions(worker.settings)
    batches: dict[int, list[dict[str, Any]]] = {}
    for sku, sku_lines in sorted(lines.items()):
        command = hold_command(kind, hold_id, sku, channel, sku_lines, expires_at, now)
        batches.setdefault(partition_for(sku.encode(), partitions), []).append(command)
    topic = worker.settings.topic(RESERVATIONS.name)
    for commands in batches.values():
        key = commands[0]["sku"].encode()
        await worker.app.producer.send(topic, key, command_batch_record(commands, now), None, None, None)


async def _answer(worker: Worker, hold_id: str, done: Any) -> dict[str, Any] | None:
    """The hold's view once ``done(view)``, or as it is when the wait runs out."""
    deadline = time.monotonic() + worker.settings.hold_answer_wait_s
    while True:
        view = hold_view(worker.holds.get(hold_id))
        if (view is not None and done(view)) or time.monotonic() >= deadline:
            return view
        await asyncio.sleep(POLL_S)
