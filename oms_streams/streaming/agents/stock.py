"""``apply_stock_events``: movements, counts and supplier stock in, ledger and availability out."""

from __future__ import annotations

from typing import Any

import faust

from oms_streams.config import Settings
from oms_streams.streaming.ledger_runtime import LedgerRuntime


def register(app: faust.App, source: Any, runtime: LedgerRuntime, settings: Settings) -> Any:
    # concurrency=1: the ledger is stateful, and faust can skip offsets with concurrent agents.
    @app.agent(source, concurrency=1, name="apply_stock_events")
    async def apply_stock_events(stream: Any) -> None:
        # Master data first, or every event of a location would look like one of an unknown location.
        await runtime.config_follower.caught_up(timeout_s=60.0)
        async for events in stream.take_events(settings.batch_max, within=settings.batch_within_s):
            await runtime.apply_batch(events)

    return apply_stock_events
