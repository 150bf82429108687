"""``handle_returns``: announced and received returns in; routing decisions, stock movements and
processed returns out."""

from __future__ import annotations

from typing import Any

import faust

from oms_streams.config import Settings
from oms_streams.streaming.follower import TopicFollower
from oms_streams.streaming.returns_runtime import ReturnsRuntime


def register(
    app: faust.App,
    source: Any,
    runtime: ReturnsRuntime,
    followers: tuple[TopicFollower, ...],
    settings: Settings,
) -> Any:
    # concurrency=1: the return rows are state, and faust can skip offsets with concurrent agents.
    @app.agent(source, concurrency=1, name="handle_returns")
    async def handle_returns(stream: Any) -> None:
        # Routing reads the network, the availability view (need) and today's load: catch up first.
        for follower in followers:
            await follower.caught_up(timeout_s=60.0)
        async for events in stream.take_events(settings.batch_max, within=settings.batch_within_s):
            await runtime.apply_batch(events)

    return handle_returns
