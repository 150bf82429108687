"""``POST /orders/{order_id}/cancellations``, and what ``GET /orders/{order_id}`` shows of cancellations.

The HTTP call does not decide anything itself: it sends the same event as the webshop would on
``oms.orders.cancellations.v1``, so one decision path (the order's owner, in order with the order's
other events) serves both. The worker that owns the order's partition takes the call (another
worker forwards it there with its body; faust's ``table_route`` forwards no body), checks that the
order exists, sends the event, and waits a few seconds for the answer in the order's sourcing row:
200 with it (409 when nothing could be cancelled), or 202 when it is not decided yet (a sourcing
round under way; the answer follows on the outcomes topic and in ``GET /orders/{order_id}``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import orjson
from aiohttp import web
from faust.web import Request, Response, View

from oms_streams import clock
from oms_streams.adapters.cancellations import cancellation_event
from oms_streams.adapters.sourcing import SourcingRow
from oms_streams.adapters.stock import Failure
from oms_streams.streaming.app import Worker
from oms_streams.streaming.topics import CANCELLATIONS

FORWARDED = "X-Oms-Forwarded"
"""Set on a forwarded call: forwarded once only, so two workers that disagree about the owner while
partitions move cannot pass a call back and forth."""
ANSWER_WAIT_S = 5.0
"""How long the call waits for the decision before answering 202."""
POLL_S = 0.02


def _json(body: Any, status: int) -> Response:
    return cast(
        Response, web.Response(body=orjson.dumps(body), status=status, content_type="application/json")
    )


def register_cancellation_view(worker: Worker) -> None:
    app = worker.app
    requests = worker.metrics.cancellation_requests

    @app.page("/orders/{order_id}/cancellations")
    class CancellationPage(View):
        async def post(self, request: Request, order_id: str) -> Response:
            body = await request.read()
            owner = _owner(worker, order_id)
            if owner is None or (owner is not True and FORWARDED in request.headers):
                requests.labels("unavailable").inc()
                return _json({"error": "no worker owns this order's partition right now: try again"}, 503)
            if owner is not True:
                requests.labels("forwarded").inc()
                return await _forward(worker, request, owner, body)
            return await _cancel_here(worker, order_id, body)


async def _cancel_here(worker: Worker, order_id: str, body: bytes) -> Response:
    requests = worker.metrics.cancellation_requests
    event = cancellation_event(order_id, body, clock.now_ms())
    if isinstance(event, Failure):
        requests.labels("bad_request").inc()
        return _json({"error": event.reason}, 400)
    if worker.sourcing.lookup(order_id) is None:
        requests.labels("unknown_order").inc()
        return _json({"error": f"no order {order_id!r} (not placed, or not sourced yet)"}, 404)
    topic = worker.settings.topic(CANCELLATIONS.name)
    producer = worker.app.producer
    await producer.send(topic, order_id.encode(), event.model_dump_json().encode(), None, None, None)
    await producer.flush()  # accepted means durable: the decision follows even if this worker dies
    requests.labels("accepted").inc()
    answer = await _answer(worker, order_id, event.event_id)
    if answer is None:
        pending = {
            "request_id": event.event_id,
            "status": "pending",
            "detail": "not decided yet (a sourcing round is under way): the answer follows on "
            "oms.orders.cancellation-outcomes.v1 and in GET /orders/{order_id}",
        }
        return _json(pending, 202)
    if answer["outcome"] == "refused":
        return _json({"error": answer["reason"], **answer}, 409)
    return _json(answer, 200)


async def _answer(worker: Worker, order_id: str, request_id: str) -> dict[str, Any] | None:
    deadline = time.monotonic() + ANSWER_WAIT_S
    while time.monotonic() < deadline:
        row = worker.sourcing.lookup(order_id)
        for answer in row.cancellations if row is not None else ():
            if answer["request_id"] == request_id:
                return answer
        await asyncio.sleep(POLL_S)
    return None


def _owner(worker: Worker, order_id: str) -> Any:
    """True when this worker owns the order, else the owner's URL; None while nobody does."""
    app = worker.app
    try:
        url = app.router.key_store(worker.orders.table.name, order_id)
    except KeyError:
        return None
    here = app.conf.canonical_url
    return True if (url.host, url.port) == (here.host, here.port) else url


async def _forward(worker: Worker, request: Request, owner: Any, body: bytes) -> Response:
    url = request.url.with_host(owner.host).with_port(int(owner.port))
    headers = {"Content-Type": "application/json", FORWARDED: "1"}
    async with worker.app.http_client.post(url, data=body, headers=headers) as response:
        answer = web.Response(
            body=await response.read(), status=response.status, content_type="application/json"
        )
    return cast(Response, answer)


# --- GET /orders/{order_id} -------------------------------------------------------------------------


def cancellation_view(row: SourcingRow) -> dict[str, Any]:
    """The order's lines with their state, the cancellation answers, whether it is cancelled."""
    ordered = row.ordered or row.lines
    return {
        "cancelled": bool(ordered) and all(sku in row.cancelled for sku, _ in ordered),
        "lines": [_line(row, sku, units) for sku, units in ordered],
        "cancellations": [
            *(
                {k: v for k, v in a.items() if k not in ("event_id", "source", "schema_version")}
                for a in row.cancellations
            ),
            *(
                {"request_id": p["request_id"], "outcome": "pending", "requested_at": p["at"]}
                for p in row.parked
            ),
        ],
    }


def _line(row: SourcingRow, sku: str, units: int) -> dict[str, Any]:
    def units_of(state: str) -> int:
        return sum(u for a in row.allocations if a.state == state for s, u in a.lines if s == sku)

    shipped, allocated = units_of("fulfilled"), units_of("live")
    cancelled = max(0, units - shipped) if sku in row.cancelled else 0
    if cancelled:
        state = "cancelled"
    elif shipped >= units:
        state = "shipped"
    elif allocated:
        state = "allocated"
    else:
        state = "sourcing" if row.status == "reserving" else "backordered"
    return {
        "sku": sku,
        "quantity": units,
        "state": state,
        "allocated": allocated,
        "shipped": shipped,
        "cancelled": cancelled,
    }
