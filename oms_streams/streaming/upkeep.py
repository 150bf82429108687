"""A worker's background work beside its streams: rebalance reloads, timers and the lag watch."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

import faust

from oms_streams import clock
from oms_streams.config import Settings
from oms_streams.metrics import Metrics
from oms_streams.streaming import faust_fixes
from oms_streams.streaming.admin import first_offset_on
from oms_streams.streaming.ledger_engine import LedgerEngine
from oms_streams.streaming.ledger_runtime import LedgerRuntime
from oms_streams.streaming.orders_runtime import OrdersRuntime
from oms_streams.streaming.returns_runtime import ReturnsRuntime
from oms_streams.streaming.sourcing_runtime import SourcingRuntime
from oms_streams.streaming.stall_watch import StallWatch
from oms_streams.streaming.topics import (
    ALLOCATIONS,
    CANCELLATION_OUTCOMES,
    CANCELLATIONS,
    FULFILMENT_EVENTS,
    ORDERS_PLACED,
    ORDERS_SOURCED,
    PROMISE_REQUESTS,
    RESERVATION_REPLIES,
    RETURNS_PROCESSED,
    RETURNS_RECEIVED,
    RETURNS_REQUESTED,
)

log = logging.getLogger(__name__)


def order_upkeep(
    app: faust.App,
    settings: Settings,
    orders: OrdersRuntime,
    sourcing: SourcingRuntime,
    returns: ReturnsRuntime,
) -> None:
    """Rebalances of the order agents, the milestone timer, the saga's reply deadlines, backorders
    sourced again when stock arrives, and the removal of finished rows."""

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, /, *args: Any, **kwargs: Any) -> None:
        # The milestone timer must not write rows of orders this worker may no longer own.
        orders.forget_ownership()
        sourcing.forget_ownership()
        returns.forget_ownership()

    @app.on_rebalance_complete.connect
    async def after_rebalance(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        reload_requested.set()  # the ledger's partitions move with its own group (ledger_engine)

    reload_requested = asyncio.Event()

    @app.task  # type: ignore[untyped-decorator]
    async def reload_orders_when_requested() -> None:
        # Outside the rebalance signal, so faust resumes consuming while the rows are read.
        while True:
            await reload_requested.wait()
            reload_requested.clear()
            try:
                log.info("tracking %d open orders after the rebalance", await orders.reload())
                log.info("re-sent %d reservation commands after the rebalance", await sourcing.reload())
                log.info("%d returns waiting for their retention after the rebalance", await returns.reload())
            except Exception:
                log.exception("reloading orders failed; retrying at the next rebalance")

    @app.timer(interval=clock.upkeep_interval_s(settings.risk_check_interval_s))  # type: ignore[untyped-decorator]
    async def check_overdue_milestones() -> None:
        await orders.check_due()

    # A few checks per reply timeout, so an answer is chased at most a third of it late.
    @app.timer(interval=min(5.0, settings.sourcing_reply_timeout_s / 3))  # type: ignore[untyped-decorator]
    async def chase_unanswered_commands() -> None:
        # An exception in a faust timer would stop the worker: log it, the next check tries again.
        try:
            await sourcing.check_replies()
        except Exception:
            log.exception("chasing unanswered reservation commands failed; trying again at the next check")

    @app.timer(interval=clock.upkeep_interval_s(settings.backorder_check_interval_s))  # type: ignore[untyped-decorator]
    async def source_backorders_again() -> None:
        # The backorders the availability view shows usable stock for, and those past their horizon.
        try:
            await sourcing.check_backorders()
        except Exception:
            log.exception("looking at backorders failed; trying again at the next check")

    @app.timer(interval=clock.upkeep_interval_s(settings.retention_sweep_interval_s))  # type: ignore[untyped-decorator]
    async def remove_finished_rows() -> None:
        # Each runtime removes its own rows, under its own lock, in their own partitions.
        try:
            for runtime in (orders, sourcing, returns):
                await runtime.sweep()
        except Exception:
            log.exception("removing finished rows failed; trying again at the next sweep")


def ledger_upkeep(
    app: faust.App, settings: Settings, runtime: LedgerRuntime, resync_requested: asyncio.Event
) -> None:
    """Resyncs of availability, protection as the days pass, the dedupe id sweep, hold expiry."""

    @app.task  # type: ignore[untyped-decorator]
    async def resync_when_requested() -> None:
        # Config changes and rebalances ask for a resync; bursts of them coalesce into one.
        while True:
            await resync_requested.wait()
            await asyncio.sleep(0.05)
            resync_requested.clear()
            try:
                published = await runtime.resync()
                runtime.ready = True
                log.info("resync published %d availability records", published)
            except Exception:
                log.exception("resync failed; will retry on the next request")

    @app.timer(interval=clock.upkeep_interval_s(settings.protection_refresh_s))  # type: ignore[untyped-decorator]
    async def refresh_protection() -> None:
        # Protection is demand until the next truck: it changes as the days pass, not only on events.
        runtime.expire_views()
        resync_requested.set()

    @app.timer(interval=settings.dedupe_sweep_interval_s)  # type: ignore[untyped-decorator]
    async def forget_expired_event_ids() -> None:
        # An exception in a faust timer would stop the worker: log it, the next sweep tries again.
        try:
            forgotten = await runtime.forget_expired_ids(clock.now_ms())
            log.info("forgot %d stock movement ids older than the dedupe window", forgotten)
        except Exception:
            log.exception("forgetting expired stock movement ids failed; trying again at the next sweep")

    @app.timer(interval=clock.upkeep_interval_s(settings.hold_expiry_check_s))  # type: ignore[untyped-decorator]
    async def release_expired_holds() -> None:
        # The owning ledger releases its cart holds at expiry, by its own clock; after a restart or a
        # rebalance its table of live holds says which are due. A failure is retried at the next check.
        try:
            expired = await runtime.expire_holds(clock.now_ms())
            if expired:
                log.info("released %d expired cart holds", expired)
        except Exception:
            log.exception("releasing expired cart holds failed; trying again at the next check")


SETTLE_UNCOMMITTED_S = 1.0
"""How soon a partition the group never committed gets its first commit (``faust_fixes``)."""


def faust_upkeep(app: faust.App, settings: Settings, metrics: Metrics) -> None:
    """Dropped records read again (faust_fixes), and the garbage collector kept off long-lived state."""

    broker_first_offset = first_offset_on(settings)

    @app.timer(interval=SETTLE_UNCOMMITTED_S)  # type: ignore[untyped-decorator]
    async def settle_uncommitted() -> None:
        # Also during a rebalance: no seek, and a new deployment's partitions meet one after another.
        try:
            await faust_fixes.settle_uncommitted(app.consumer, broker_first_offset)
        except Exception:
            log.exception("finding where never committed partitions start failed; trying again")

    @app.timer(interval=faust_fixes.HEAL_AFTER_S)  # type: ignore[untyped-decorator]
    async def heal_dropped_records() -> None:
        # A record a rebalance dropped would otherwise wait for the next rebalance (see faust_fixes).
        # Not while partitions move; and an exception in a faust timer would stop the worker.
        if app.rebalancing:
            return
        try:
            for tp in await faust_fixes.heal_dropped_records(app.consumer, broker_first_offset):
                metrics.partitions_reread.labels(tp.topic).inc()
        except Exception:
            log.exception(
                "re-reading dropped records failed; trying again in %.0f s", faust_fixes.HEAL_AFTER_S
            )

    @app.timer(interval=settings.gc_freeze_interval_s)  # type: ignore[untyped-decorator]
    async def freeze_long_lived_objects() -> None:
        _freeze_survivors()

    @app.on_partitions_revoked.connect
    async def freeze_before_tables_move(sender: Any, /, *args: Any, **kwargs: Any) -> None:
        # Next in a rebalance, each of faust's table stores runs a full gc.collect() (faust's
        # stores/rocksdb.py, revoke_partitions): with the survivors frozen first it scans only
        # what is young. Unfrozen, a loaded ledger's cache made those collections 16 % of the main
        # thread while the bench's pipeline phase ran through the worker's first rebalance.
        _freeze_survivors()

    @app.timer(interval=settings.gc_count_interval_s)  # type: ignore[untyped-decorator]
    async def count_frozen_objects() -> None:
        # oms_gc_frozen_objects shows the frozen set, which tracks the ledger. Counting walks every
        # frozen object: 70 ms for the millions of a loaded ledger, a pause of the stream; so not at
        # every freeze.
        metrics.gc_frozen_objects.set(gc.get_freeze_count())


def _freeze_survivors() -> None:
    """Positions, views and journals live for hours and hold no cycles: moving what survived so far
    out of the collector keeps its full collections from pausing the stream for 100s of ms. The
    young generations are collected first (milliseconds), so little cyclic garbage is frozen."""
    gc.collect(1)
    gc.freeze()


_FAUST_INPUTS = (
    ORDERS_PLACED,
    FULFILMENT_EVENTS,
    PROMISE_REQUESTS,
    RESERVATION_REPLIES,
    RETURNS_REQUESTED,
    RETURNS_RECEIVED,
    RETURNS_PROCESSED,
    CANCELLATIONS,
    CANCELLATION_OUTCOMES,
    ALLOCATIONS,
    ORDERS_SOURCED,
)
"""The input topics of the faust agents, whose lag is measured (the ledger reports its own)."""


def watch_lag(app: faust.App, settings: Settings, metrics: Metrics, ledger: LedgerEngine) -> StallWatch:
    """Consumer lag per input topic, and the partitions whose lag stands still (``/health``)."""
    stall_watch = StallWatch(settings.stall_after_s)
    inputs = {settings.topic(spec.name) for spec in _FAUST_INPUTS}
    reread: set[tuple[str, int]] = set()
    """(partition, committed offset) read again already: once per standing episode."""

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]
    async def measure_lag() -> None:
        lag: dict[str, int] = {}
        offsets: dict[str, tuple[int, int]] = {}
        faust_tps: dict[str, Any] = {}
        consumer: Any = app.consumer
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            position = consumer._committed_offset.get(tp)  # faust has no public accessor for it
            if highwater is not None and tp.topic in inputs:
                lag[tp.topic] = lag.get(tp.topic, 0) + max(0, highwater - (position or 0))
                offsets[f"{tp.topic}:{tp.partition}"] = (position or 0, highwater)
                faust_tps[f"{tp.topic}:{tp.partition}"] = tp
        for (topic, partition), (position, highwater) in ledger.lag().items():
            lag[topic] = lag.get(topic, 0) + max(0, highwater - position)
            offsets[f"{topic}:{partition}"] = (position, highwater)
        for topic, value in lag.items():
            metrics.consumer_lag.labels(topic).set(value)
        # While partitions move or tables recover, streams are paused on purpose: start counting after.
        tables_manager: Any = app.tables  # the TableManager type does not declare its recovery
        settling = app.rebalancing or tables_manager.recovery.in_recovery
        now = time.monotonic()
        stalled = stall_watch.observe({} if settling else offsets, now)
        metrics.stalled_partitions.set(len(stalled))
        if not settling:
            # A dropped record is read again long before its partition would count as stalled.
            reread_after = min(settings.stall_after_s / 2, faust_fixes.REREAD_AFTER_S)
            await reread_standing(stall_watch.standing(now, reread_after), faust_tps)

    async def reread_standing(standing: dict[str, int], tps: dict[str, Any]) -> None:
        # faust_fixes fix 4: once per standing episode (partition, offset), before it counts as stalled.
        due = [tps[name] for name, offset in standing.items() if name in tps and (name, offset) not in reread]
        reread.intersection_update(standing.items())
        for tp in await faust_fixes.reread_standing(app.consumer, due):
            metrics.partitions_reread.labels(tp.topic).inc()
            reread.add((f"{tp.topic}:{tp.partition}", standing[f"{tp.topic}:{tp.partition}"]))

    return stall_watch
