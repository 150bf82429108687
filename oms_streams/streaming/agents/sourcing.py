"""``source_orders``: placements, reservation replies and fulfilment events in; reservations,
allocations and sourcing outcomes out."""

from __future__ import annotations

from typing import Any

import faust

from oms_streams.config import Settings
from oms_streams.streaming.follower import TopicFollower
from oms_streams.streaming.sourcing_runtime import SourcingRuntime


def register(
    app: faust.App,
    source: Any,
    runtime: SourcingRuntime,
    followers: tuple[TopicFollower, ...],
    settings: Settings,
) -> Any:
    # concurrency=1: the saga rows are state, and faust can skip offsets with concurrent agents.
    @app.agent(source, concurrency=1, name="source_orders")
    async def source_orders(stream: Any) -> None:
        # Plans read the network and the availability view: both must be there before the first order.
        for follower in followers:
            await follower.caught_up(timeout_s=60.0)
        async for events in stream.take_events(settings.batch_max, within=settings.batch_within_s):
            await runtime.apply_batch(events)

    return source_orders
