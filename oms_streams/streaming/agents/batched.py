"""The shape every stateful agent shares: wait for what it reads, then hand batches to its runtime."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust

from oms_streams.config import Settings
from oms_streams.metrics import Metrics
from oms_streams.streaming.admin import first_offset_on, group_offsets_on
from oms_streams.streaming.agents.in_order import InOrder
from oms_streams.streaming.follower import TopicFollower
from oms_streams.streaming.rerouting import Rerouter


def register_batched(
    app: faust.App,
    name: str,
    source: Any,
    apply_batch: Callable[[list[Any]], Awaitable[None]],
    waits_for: Sequence[TopicFollower],
    settings: Settings,
    metrics: Metrics,
    rerouter: Rerouter | None = None,
) -> Any:
    """An agent ``name`` that applies ``source``'s events in batches once every follower in
    ``waits_for`` has caught up (its decisions read the network, the availability view, ...),
    each partition's in offset order (``in_order``); records outside their key's partition go
    through ``rerouter`` first."""
    in_order = InOrder(
        app,
        first_offset_on(settings),
        group_offsets_on(settings),
        lambda topic: metrics.partitions_reread.labels(topic).inc(),
    )

    # concurrency=1: the runtime's rows are state, and faust can skip offsets with concurrent agents.
    @app.agent(source, concurrency=1, name=name)
    async def batched(stream: Any) -> None:
        for follower in waits_for:
            await follower.caught_up(timeout_s=60.0)
        async for events in stream.take_events(settings.batch_max, within=settings.batch_within_s):
            admitted = await in_order.admit(events)
            to_apply = admitted if rerouter is None else await rerouter.sort(admitted)
            if to_apply:
                await apply_batch(to_apply)

    return batched
