"""``track_orders``: placements and fulfilment events in, order rows and at-risk events out."""

from __future__ import annotations

from typing import Any

import faust

from oms_streams.config import Settings
from oms_streams.streaming.follower import TopicFollower
from oms_streams.streaming.orders_runtime import OrdersRuntime


def register(
    app: faust.App, source: Any, runtime: OrdersRuntime, config_follower: TopicFollower, settings: Settings
) -> Any:
    # concurrency=1: the order rows are state, and faust can skip offsets with concurrent agents.
    @app.agent(source, concurrency=1, name="track_orders")
    async def track_orders(stream: Any) -> None:
        # Milestones are derived from the network's calendars: read it before the first placement.
        await config_follower.caught_up(timeout_s=60.0)
        async for events in stream.take_events(settings.batch_max, within=settings.batch_within_s):
            await runtime.apply_batch(events)

    return track_orders
