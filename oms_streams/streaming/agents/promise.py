"""``answer_promise_requests``: promise requests in, every delivery option out (the event twin of
``POST /promise``)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from oms_streams.adapters.dlq import dead_letter_for
from oms_streams.adapters.promise import decode_promise_request
from oms_streams.adapters.stock import Failure
from oms_streams.config import Settings
from oms_streams.metrics import reason_class
from oms_streams.streaming.promise_service import PromiseService

Produce = Callable[[str, bytes, bytes], Awaitable[None]]


def register(
    app: faust.App,
    source: Any,
    service: PromiseService,
    settings: Settings,
    produce: Produce,
    responses_topic: str,
    dlq_topic: str,
) -> Any:
    # Stateless, but concurrency=1 all the same: faust can skip offsets with concurrent agents.
    @app.agent(source, concurrency=1, name="answer_promise_requests")
    async def answer_promise_requests(stream: Any) -> None:
        async for events in stream.take_events(settings.batch_max, within=settings.batch_within_s):
            for event in events:
                message = event.message
                request = decode_promise_request(message.key, message.value)
                if isinstance(request, Failure):
                    service.metrics.promise_requests.labels("topic", "rejected").inc()
                    service.metrics.dead_letters.labels(message.topic, reason_class(request.reason)).inc()
                    letter = dead_letter_for(request.reason, message, time.time_ns() // 1_000_000)
                    await produce(dlq_topic, message.topic.encode(), letter)
                    continue
                answer = service.answer(request, "topic")
                await produce(responses_topic, request.request_id.encode(), answer)

    return answer_promise_requests
