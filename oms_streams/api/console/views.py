"""The operator console's routes on the worker's web server (``/console/…``).

Every page reads what the worker already serves in public: the availability view and network it
follows (as ``GET /availability/{sku}`` does), ``GET /orders/{id}`` and ``GET /returns/{id}`` (the
same functions, behind the same ``table_route``, so the worker owning the order answers), the
``/metrics`` gauges, and two output topics followed like any consumer would read them
(``oms.orders.at-risk.v1``, ``oms.dlq.v1``). That follower starts with the first console request that
needs it, so a worker whose console nobody opens pays nothing for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
from collections.abc import Callable
from typing import Any, cast

import faust
from aiohttp import web
from faust.web import Request, Response, View

from oms_streams.api.console import markup, order_pages, pages
from oms_streams.api.console.feeds import ConsoleFeeds
from oms_streams.api.console.static import CONTENT_TYPES, read
from oms_streams.api.http import order_view
from oms_streams.streaming.app import Worker
from oms_streams.streaming.follower import TopicFollower
from oms_streams.streaming.topics import DLQ, ORDERS_AT_RISK

KEEPALIVE_S = 15.0
COALESCE_S = 0.2
"""A burst of events is sent as one re-render."""
SKUS_LISTED = 200


def _html(text: str, status: int = 200) -> Response:
    return cast(Response, web.Response(text=text, status=status, content_type="text/html"))


def _redirect(location: str) -> Response:
    return cast(Response, web.Response(status=303, headers={"Location": location}))


def sse_message(event: str, data: str) -> bytes:
    """One server-sent event; every line of ``data`` gets its own ``data:`` field."""
    lines = re.split(r"\r\n|\r|\n", data)
    return (f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n").encode()


class _Feeds:
    """The followed topics, started on first use."""

    def __init__(self, worker: Worker) -> None:
        settings = worker.settings
        self.app = worker.app
        self.state = ConsoleFeeds(settings.topic(ORDERS_AT_RISK.name), settings.topic(DLQ.name))
        self.follower = TopicFollower(
            settings,
            [self.state.at_risk_topic, self.state.dlq_topic],
            self.state.on_records,
            max_wait_ms=settings.slow_follow_ms,  # a fetch returns as soon as a record is there
        )
        self._started = False
        self._lock = asyncio.Lock()

    async def ready(self) -> ConsoleFeeds:
        if not self._started:
            async with self._lock:
                if not self._started:
                    await self.app.add_runtime_dependency(self.follower)
                    self._started = True
                    # The page shows what arrived by then; its live region fills in the rest.
                    with contextlib.suppress(TimeoutError):
                        await self.follower.caught_up(timeout_s=5.0)
        return self.state

    async def stream(self, request: Request, event: str, render: Callable[[], str]) -> Response:
        state = await self.ready()
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # a proxy in front must not buffer the stream
            }
        )
        await response.prepare(request)  # type: ignore[arg-type]
        changes = state.changes
        seen, sent = -1, ""
        try:
            while not changes.closed:
                version = changes.version
                fragment = render() if version != seen else sent
                seen = version
                if fragment != sent:  # unchanged regions are left alone (an opened <details> stays open)
                    sent = fragment
                    await response.write(sse_message(event, fragment))
                else:
                    await response.write(b": keep-alive\n\n")
                await changes.wait(seen, KEEPALIVE_S)
                await asyncio.sleep(COALESCE_S)
        except ConnectionResetError:
            pass  # the page was closed
        return cast(Response, response)


def register_console_views(worker: Worker) -> None:
    app: faust.App = worker.app
    feeds = _Feeds(worker)

    @app.on_before_shutdown.connect
    async def end_streams(sender: Any, /, *args: Any, **kwargs: Any) -> None:
        feeds.state.changes.close()  # open event streams end, or the web server would wait on them

    def at_risk_fragment() -> str:
        book = feeds.state.at_risk
        return pages.at_risk_fragment(book.newest_first(), list(book.cleared))

    def record(sku: str) -> dict[str, Any] | None:
        return worker.runtime.view.get(sku, keep=False) if sku else None

    @app.page("/console")
    class ConsoleOverview(View):
        async def get(self, request: Request) -> Response:
            state = await feeds.ready()
            network = worker.runtime.network
            health = {
                "status": "stalled" if worker.stall_watch.stalled else "ok",
                "ready": worker.runtime.ready,
                "locations": len(network.locations),
                "rules_version": network.rules.version,
                "availability_records": len(worker.runtime.view.records),
            }
            return _html(
                pages.overview_page(health, len(state.at_risk.open), len(state.dead_letters.letters))
            )

    @app.page("/console/static/{name}")
    class ConsoleStatic(View):
        async def get(self, request: Request, name: str) -> Response:
            content_type = CONTENT_TYPES.get(name)
            if content_type is None:
                return _html("not found", status=404)
            response = web.Response(
                body=read(name),
                content_type=content_type,
                headers={"Cache-Control": "public, max-age=3600"},
            )
            return cast(Response, response)

    @app.page("/console/availability")
    class ConsoleAvailability(View):
        async def get(self, request: Request) -> Response:
            sku = request.query.get("sku", "").strip()
            worker.runtime.export_gauges()  # as GET /metrics does before a scrape
            hidden = sorted(
                (s.labels["channel"], s.labels["location_type"], s.labels["rule"], s.value)
                for metric in worker.metrics.units_hidden.collect()
                for s in metric.samples
            )
            skus = sorted(itertools.islice(worker.runtime.view.records, SKUS_LISTED))
            page = pages.availability_page(sku, record(sku), worker.runtime.network.locations, hidden, skus)
            return _html(page, status=404 if sku and record(sku) is None else 200)

    @app.page("/console/network")
    class ConsoleNetwork(View):
        async def get(self, request: Request) -> Response:
            sku = request.query.get("sku", "").strip()
            locations = list(worker.runtime.network.locations.values())
            return _html(pages.network_page(sku, locations, record(sku)))

    @app.page("/console/orders")
    class ConsoleOrderLookup(View):
        async def get(self, request: Request) -> Response:
            order_id = request.query.get("order_id", "").strip()
            if order_id:
                return _redirect(f"/console/orders/{markup.path_part(order_id)}")
            return _html(order_pages.order_lookup_page())

    @app.page("/console/orders/{order_id}")
    class ConsoleOrder(View):
        @app.table_route(table=worker.orders.table, match_info="order_id")  # type: ignore[arg-type]
        async def get(self, request: Request, order_id: str) -> Response:
            # Like GET /orders/{id}: answered by the worker that owns the order (proxied to it).
            view = order_view(worker, order_id)
            if view is None:
                return _html(order_pages.order_lookup_page(order_id, f"No order {order_id!r}."), status=404)
            return _html(order_pages.order_page(view))

    @app.page("/console/returns")
    class ConsoleReturnLookup(View):
        async def get(self, request: Request) -> Response:
            return_id = request.query.get("return_id", "").strip()
            if return_id:
                return _redirect(f"/console/returns/{markup.path_part(return_id)}")
            return _html(pages.return_lookup_page())

    @app.page("/console/returns/{return_id}")
    class ConsoleReturn(View):
        @app.table_route(table=worker.returns.table, match_info="return_id")  # type: ignore[arg-type]
        async def get(self, request: Request, return_id: str) -> Response:
            row = worker.returns.lookup(return_id)
            if row is None:
                return _html(pages.return_lookup_page(return_id, f"No return {return_id!r}."), status=404)
            return _html(pages.return_page(row))

    @app.page("/console/at-risk")
    class ConsoleAtRisk(View):
        async def get(self, request: Request) -> Response:
            await feeds.ready()
            return _html(pages.at_risk_page(at_risk_fragment()))

    @app.page("/console/at-risk/stream")
    class ConsoleAtRiskStream(View):
        async def get(self, request: Request) -> Response:
            return await feeds.stream(request, "at-risk", at_risk_fragment)

    def dead_letters_fragment(request: Request) -> Callable[[], str]:
        topic, reason = request.query.get("topic", ""), request.query.get("reason", "")
        return lambda: pages.dead_letters_fragment(feeds.state.dead_letters.matching(topic, reason))

    @app.page("/console/dead-letters")
    class ConsoleDeadLetters(View):
        async def get(self, request: Request) -> Response:
            state = await feeds.ready()
            topics = sorted({str(letter.get("source_topic")) for letter in state.dead_letters.letters})
            topic, reason = request.query.get("topic", ""), request.query.get("reason", "")
            page = pages.dead_letters_page(dead_letters_fragment(request)(), topic, reason, topics)
            return _html(page)

    @app.page("/console/dead-letters/stream")
    class ConsoleDeadLettersStream(View):
        async def get(self, request: Request) -> Response:
            return await feeds.stream(request, "dead-letters", dead_letters_fragment(request))
