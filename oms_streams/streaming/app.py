"""``create_app(settings)``: the faust worker with its topics, tables, agents and followers.

The faust app itself and the Kafka plumbing every wiring step uses are in ``worker_kafka``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import faust

from oms_streams import clock
from oms_streams.adapters.dlq import dead_letter_for
from oms_streams.adapters.reservations import decode_reservations
from oms_streams.adapters.stock import decode_count, decode_movement, decode_supplier_stock
from oms_streams.compiled import MODULES, compiled
from oms_streams.config import Settings
from oms_streams.domain.backorders import BackorderPolicy
from oms_streams.domain.placement import PlacementLimits
from oms_streams.domain.promise_token import PromiseKeys
from oms_streams.domain.retention import RetentionPolicy
from oms_streams.domain.saga import ReplyPolicy
from oms_streams.domain.transit import TransitModel
from oms_streams.metrics import Metrics
from oms_streams.streaming import faust_fixes, local_state, rdkafka_producer, upkeep
from oms_streams.streaming.admin import ensure_changelogs
from oms_streams.streaming.agents import promise
from oms_streams.streaming.agents.batched import register_batched
from oms_streams.streaming.follower import TopicFollower
from oms_streams.streaming.holds import HoldBook
from oms_streams.streaming.ledger_engine import LedgerEngine
from oms_streams.streaming.ledger_runtime import AvailabilityView, LedgerRuntime
from oms_streams.streaming.ledger_store import LedgerStore
from oms_streams.streaming.network import NetworkState
from oms_streams.streaming.orders_runtime import OrdersRuntime, OrderTopics
from oms_streams.streaming.placement_gate import promise_keys
from oms_streams.streaming.promise_service import CourierBookings, PromiseService, TransitLearner
from oms_streams.streaming.retention import RetentionIndex
from oms_streams.streaming.returnable import ReturnableOrders
from oms_streams.streaming.returns_runtime import ReturnsLoad, ReturnsRuntime, ReturnTopics
from oms_streams.streaming.sourcing_inputs import SourcingTopics
from oms_streams.streaming.sourcing_runtime import SourcingRuntime
from oms_streams.streaming.stall_watch import StallWatch
from oms_streams.streaming.tables import Tables, define_tables
from oms_streams.streaming.topics import (
    ALLOCATIONS,
    AVAILABILITY,
    CANCELLATION_OUTCOMES,
    CANCELLATIONS,
    CARRIER_SERVICES,
    COUNTS,
    COURIER_BOOKINGS,
    COURIER_SLOTS,
    DLQ,
    FULFILMENT_EVENTS,
    HOLDS,
    LOCATIONS,
    MOVEMENTS,
    ORDERS_AT_RISK,
    ORDERS_PLACED,
    ORDERS_REROUTED,
    ORDERS_RETURNABLE,
    ORDERS_SOURCED,
    PROMISE_POLICY,
    PROMISE_REQUESTS,
    PROMISE_RESPONSES,
    RESERVATION_REPLIES,
    RESERVATIONS,
    RETURN_POLICY,
    RETURNS_PROCESSED,
    RETURNS_RECEIVED,
    RETURNS_REQUESTED,
    RETURNS_REROUTED,
    RETURNS_ROUTED,
    ROUTES,
    STOCK_REROUTED,
    SUPPLIER_STOCK,
    TRANSIT_OBSERVATIONS,
    VISIBILITY_RULES,
)
from oms_streams.streaming.worker_kafka import _faust_app, _Kafka

log = logging.getLogger(__name__)


@dataclass
class Worker:
    app: faust.App
    runtime: LedgerRuntime
    ledger: LedgerEngine
    promises: PromiseService
    orders: OrdersRuntime
    sourcing: SourcingRuntime
    returns: ReturnsRuntime
    stall_watch: StallWatch
    settings: Settings
    metrics: Metrics
    holds: HoldBook
    """Every cart hold of the last hour, as ``oms.holds.v1`` says (any worker answers for any hold)."""


def create_app(settings: Settings, metrics: Metrics | None = None) -> Worker:
    """The worker, wired in steps: each step below owns one part and says what it reads first."""
    _check_co_partitioning(settings)
    metrics = metrics or Metrics()
    faust_fixes.apply(fetch_max_wait_ms=settings.fetch_max_wait_ms)
    if settings.table_store == "rocksdb" and local_state.trust_or_rebuild(settings.data_dir):
        metrics.local_state_rebuilt.set(1)
    app = _faust_app(settings)
    rdkafka_producer.install(
        app,
        {**settings.confluent_config(), "message.timeout.ms": settings.delivery_timeout_ms},
        on_clean_stop=lambda: local_state.mark_clean_stop(settings.data_dir),
    )
    kafka = _Kafka(app, settings, metrics)
    shared = _followers(kafka)
    runtime, ledger = _ledger(kafka, shared)
    tables = define_tables(app, settings)
    keys = promise_keys(settings)  # signed by every worker's POST /promise, verified by sourcing
    promises = _promises(kafka, shared, keys)
    sourcing_index = _index(kafka, tables.sourcing_index, tables.sourcing)
    sourcing = _sourcing(kafka, shared, tables, sourcing_index, keys)
    orders_index = _index(kafka, tables.orders_index, tables.orders)
    orders = _orders(kafka, shared, tables.orders, orders_index, sourcing)
    returns = _returns(kafka, shared, tables.returns, _index(kafka, tables.returns_index, tables.returns))
    upkeep.order_upkeep(app, settings, orders, sourcing, returns)
    upkeep.ledger_upkeep(app, settings, runtime, shared.resync_requested)
    upkeep.faust_upkeep(app, settings, metrics)
    stall_watch = upkeep.watch_lag(app, settings, metrics, ledger)
    log.info("hot path: %d of %d modules compiled with mypyc", len(compiled()), len(MODULES))
    return Worker(
        app=app,
        runtime=runtime,
        ledger=ledger,
        promises=promises,
        orders=orders,
        sourcing=sourcing,
        returns=returns,
        stall_watch=stall_watch,
        settings=settings,
        metrics=metrics,
        holds=shared.holds,
    )


def _check_co_partitioning(settings: Settings) -> None:
    for family in (
        (MOVEMENTS, COUNTS, SUPPLIER_STOCK, RESERVATIONS, STOCK_REROUTED),
        (ORDERS_PLACED, FULFILMENT_EVENTS, RESERVATION_REPLIES, RETURNS_PROCESSED, ORDERS_REROUTED),
        (ORDERS_PLACED, CANCELLATIONS, CANCELLATION_OUTCOMES, COURIER_SLOTS),
        (ORDERS_PLACED, ALLOCATIONS, ORDERS_SOURCED),
        (RETURNS_REQUESTED, RETURNS_RECEIVED, RETURNS_REROUTED),
    ):
        counts = {spec.partitions(settings) for spec in family}
        if counts != {settings.partitions}:
            # One key must land on the same partition number in every topic of its family and in
            # its table's changelog (tables have OMS_PARTITIONS partitions).
            names = ", ".join(spec.name for spec in family)
            raise ValueError(
                f"{names} must all have OMS_PARTITIONS={settings.partitions} partitions, got {sorted(counts)}"
            )


@dataclass
class _Shared:
    """What several runtimes read, each kept up to date by a follower of its topic."""

    network: NetworkState
    config_follower: TopicFollower
    view: AvailabilityView
    view_follower: TopicFollower
    transit: TransitLearner
    bookings: CourierBookings
    returns_load: ReturnsLoad
    returns_load_follower: TopicFollower
    returnable: ReturnableOrders
    """What each order can take back (returns are checked against it)."""
    returnable_follower: TopicFollower
    resync_requested: asyncio.Event
    """Set when availability must be recomputed: config changes, ledger rebalances, the calendar."""
    holds: HoldBook


def _followers(kafka: _Kafka) -> _Shared:
    settings, metrics = kafka.settings, kafka.metrics
    dlq_topic = kafka.topic(DLQ, internal=False)

    def dead_letter_config(reason: str, record: Any) -> None:
        # From the config follower's synchronous callback, outside any agent: faust's buffered send.
        letter = dead_letter_for(reason, record, int(time.time() * 1000))
        dlq_topic.send_soon(key=record.topic.encode(), value=letter)

    resync_requested = asyncio.Event()
    config_topics = {
        "location": kafka.name(LOCATIONS),
        "rules": kafka.name(VISIBILITY_RULES),
        "carrier_service": kafka.name(CARRIER_SERVICES),
        "route": kafka.name(ROUTES),
        "promise_policy": kafka.name(PROMISE_POLICY),
        "return_policy": kafka.name(RETURN_POLICY),
    }
    network = NetworkState(config_topics, metrics, dead_letter_config, on_change=resync_requested.set)
    # Every fetch costs a worker and the broker CPU. The availability feed is busy: its fetches wait
    # for a batch (or 50 ms). The other followed topics change rarely or only feed learning: an idle
    # fetch of each may wait longer. Together: about 190 -> 45 fetches/s per worker at 250 orders/s.
    slow = settings.slow_follow_ms
    view = AvailabilityView()
    transit = TransitLearner(TransitModel(), metrics)
    bookings = CourierBookings()
    returns_load = ReturnsLoad(network)
    returnable = ReturnableOrders()
    shared = _Shared(
        network=network,
        config_follower=TopicFollower(
            settings, list(config_topics.values()), network.on_records, max_wait_ms=slow
        ),
        view=view,
        view_follower=TopicFollower(
            settings, [kafka.name(AVAILABILITY)], view.on_records, min_bytes=settings.view_fetch_min_bytes
        ),
        transit=transit,
        bookings=bookings,
        returns_load=returns_load,
        returns_load_follower=TopicFollower(
            settings, [kafka.name(RETURNS_ROUTED)], returns_load.on_records, max_wait_ms=slow
        ),
        returnable=returnable,
        # Not slow: a till may register a return moments after the order's "collected".
        returnable_follower=TopicFollower(settings, [kafka.name(ORDERS_RETURNABLE)], returnable.on_records),
        resync_requested=resync_requested,
        holds=HoldBook(),
    )
    for follower in (
        shared.config_follower,
        shared.view_follower,
        TopicFollower(settings, [kafka.name(TRANSIT_OBSERVATIONS)], transit.on_records, max_wait_ms=slow),
        TopicFollower(settings, [kafka.name(COURIER_BOOKINGS)], bookings.on_records, max_wait_ms=slow),
        shared.returns_load_follower,
        shared.returnable_follower,
        # Not slow: POST /holds waits for the ledgers' answers on it.
        TopicFollower(settings, [kafka.name(HOLDS)], shared.holds.on_records),
    ):
        kafka.app.add_dependency(follower)
    return shared


def _ledger(kafka: _Kafka, shared: _Shared) -> tuple[LedgerRuntime, LedgerEngine]:
    """The stock ledger: its store, its runtime, and the engine that feeds it fetched batches."""
    app, settings = kafka.app, kafka.settings
    ledger_store = LedgerStore(
        settings.app_id,
        settings.partitions,
        settings.data_dir / local_state.LEDGER if settings.table_store == "rocksdb" else None,
        settings.confluent_config(),
    )

    async def send_many(records: list[tuple[str, bytes | None, bytes | None, int | None]]) -> None:
        # The ledger's changelog writes and outputs: one delivery tracked per batch, not per record.
        await kafka.rdkafka.send_many(records)

    runtime = LedgerRuntime(
        store=ledger_store,
        send_many=send_many,
        network=shared.network,
        config_follower=shared.config_follower,
        view=shared.view,
        view_follower=shared.view_follower,
        decoders={
            kafka.name(MOVEMENTS): decode_movement,
            kafka.name(COUNTS): decode_count,
            kafka.name(SUPPLIER_STOCK): decode_supplier_stock,
            kafka.name(RESERVATIONS): decode_reservations,
        },
        availability_topic=kafka.name(AVAILABILITY),
        replies_topic=kafka.name(RESERVATION_REPLIES),
        dlq_topic=kafka.name(DLQ),
        produce=kafka.produce,
        metrics=kafka.metrics,
        protection_quantile=settings.protection_quantile,
        protection_default_days=settings.protection_default_days,
        partitions=settings.partitions,
        dedupe_window_days=settings.dedupe_window_days * clock.speed(),  # redeliveries come in wall time
        cache_positions=settings.ledger_cache_positions,
        holds_topic=kafka.name(HOLDS),
    )
    ensure_changelogs(settings, list(ledger_store.topics.values()))

    async def ledger_may_start() -> None:
        # Master data first, or every event of a location would look like one of an unknown location.
        await app.producer.maybe_start()
        await shared.config_follower.caught_up(timeout_s=60.0)

    ledger = LedgerEngine(
        client_config=settings.confluent_config(),
        group_id=f"{settings.app_id}-ledger",
        topics=[*runtime.decoders, kafka.name(STOCK_REROUTED)],
        runtime=runtime,
        store=ledger_store,
        rerouter=kafka.rerouter(STOCK_REROUTED, (MOVEMENTS, COUNTS, SUPPLIER_STOCK)),
        flush=kafka.durable,
        mark=kafka.mark,
        acknowledged=kafka.acknowledged,
        waits_for=ledger_may_start,
        on_assigned=shared.resync_requested.set,
        metrics=kafka.metrics,
        batch_max=settings.batch_max,
        batch_wait_s=settings.batch_within_s,
        instance_id=settings.instance_id,
        session_timeout_s=settings.session_timeout_s,
    )
    app.add_dependency(ledger)

    @app.on_before_shutdown.connect
    async def stop_ledger(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # Before the producer stops: the ledger's last batch and its checkpoints need it.
        await ledger.stop()

    return runtime, ledger


def _promises(kafka: _Kafka, shared: _Shared, keys: PromiseKeys | None) -> PromiseService:
    promises = PromiseService(
        shared.network, shared.view, shared.transit.model, shared.bookings, kafka.metrics, keys
    )
    promise.register(
        kafka.app,
        kafka.topic(PROMISE_REQUESTS),
        promises,
        kafka.settings,
        kafka.produce,
        responses_topic=kafka.name(PROMISE_RESPONSES),
        dlq_topic=kafka.name(DLQ),
    )
    return promises


def _index(kafka: _Kafka, index: Any, table: Any) -> RetentionIndex:
    """Which rows of ``table`` are open, and when the finished ones leave (``streaming.retention``)."""
    s = kafka.settings
    policy = RetentionPolicy.of_days(
        s.retention_delivered_days,
        s.retention_cancelled_days,
        s.retention_rejected_days,
        s.retention_orphaned_days,
        s.retention_returns_days,
    )
    # Writes no event caused go to the partition named by a source topic of the table.
    topic = kafka.name(RETURNS_REQUESTED if table.name == "returns" else ORDERS_PLACED)
    return RetentionIndex(index, table, topic, table.name, policy, kafka.metrics)


def _orders(
    kafka: _Kafka, shared: _Shared, table: Any, retention: RetentionIndex, sourcing: SourcingRuntime
) -> OrdersRuntime:
    """``track_orders``: promises kept, milestones (moved with sourcing's allocations), orders at risk."""
    runtime = OrdersRuntime(
        table,
        shared.network,
        OrderTopics(
            placed=kafka.name(ORDERS_PLACED),
            fulfilment=kafka.name(FULFILMENT_EVENTS),
            at_risk=kafka.name(ORDERS_AT_RISK),
            transit_observations=kafka.name(TRANSIT_OBSERVATIONS),
            courier_bookings=kafka.name(COURIER_BOOKINGS),
            returns_processed=kafka.name(RETURNS_PROCESSED),
            dlq=kafka.name(DLQ),
            cancellations=kafka.name(CANCELLATIONS),
            cancellation_outcomes=kafka.name(CANCELLATION_OUTCOMES),
            returnable=kafka.name(ORDERS_RETURNABLE),
            allocations=kafka.name(ALLOCATIONS),
            sourced=kafka.name(ORDERS_SOURCED),
        ),
        kafka.produce,
        kafka.metrics,
        partitions=kafka.settings.partitions,
        durable=kafka.durable,
        retention=retention,
        sourcing=sourcing.lookup,
    )
    # Milestones are derived from the network's calendars: read it before the first placement.
    # This agent forwards misrouted placements and fulfilment events; source_orders skips them.
    register_batched(
        kafka.app,
        "track_orders",
        kafka.topic(
            ORDERS_PLACED,
            FULFILMENT_EVENTS,
            RETURNS_PROCESSED,
            CANCELLATION_OUTCOMES,
            ALLOCATIONS,
            ORDERS_SOURCED,
            ORDERS_REROUTED,
        ),
        runtime.apply_batch,
        (shared.config_follower,),
        kafka.settings,
        kafka.metrics,
        kafka.rerouter(ORDERS_REROUTED, (ORDERS_PLACED, FULFILMENT_EVENTS)),
    )
    return runtime


def _sourcing(
    kafka: _Kafka, shared: _Shared, tables: Tables, retention: RetentionIndex, keys: PromiseKeys | None
) -> SourcingRuntime:
    """``source_orders``: the sourcing saga (plans, reservations, allocations, cancellations)."""
    runtime = SourcingRuntime(
        tables.sourcing,
        shared.network,
        shared.view,
        shared.transit.model,
        SourcingTopics(
            placed=kafka.name(ORDERS_PLACED),
            fulfilment=kafka.name(FULFILMENT_EVENTS),
            replies=kafka.name(RESERVATION_REPLIES),
            reservations=kafka.name(RESERVATIONS),
            allocations=kafka.name(ALLOCATIONS),
            sourced=kafka.name(ORDERS_SOURCED),
            dlq=kafka.name(DLQ),
            cancellations=kafka.name(CANCELLATIONS),
            cancellation_outcomes=kafka.name(CANCELLATION_OUTCOMES),
            courier_slots=kafka.name(COURIER_SLOTS),
            courier_bookings=kafka.name(COURIER_BOOKINGS),
        ),
        kafka.produce,
        kafka.metrics,
        partitions=kafka.settings.partitions,
        durable=kafka.durable,
        replies=ReplyPolicy(
            timeout_ms=clock.wall_span_ms(kafka.settings.sourcing_reply_timeout_s),  # a technical timeout
            max_sends=kafka.settings.sourcing_max_sends,
        ),
        holds=shared.holds,
        limits=PlacementLimits(kafka.settings.max_order_lines, kafka.settings.max_line_quantity, keys),
        retention=retention,
        slots=tables.courier_slots,
        backorders=BackorderPolicy.of(
            kafka.settings.backorder_horizon_h,
            kafka.settings.backorder_retry_s,
            kafka.settings.backorder_check_interval_s,
        ),
        preorder_grace_ms=int(kafka.settings.preorder_grace_h * 3_600_000),
    )
    # Plans read the network and the availability view: both must be there before the first order.
    register_batched(
        kafka.app,
        "source_orders",
        kafka.topic(
            ORDERS_PLACED,
            FULFILMENT_EVENTS,
            RESERVATION_REPLIES,
            CANCELLATIONS,
            COURIER_SLOTS,
            ORDERS_REROUTED,
        ),
        runtime.apply_batch,
        (shared.config_follower, shared.view_follower),
        kafka.settings,
        kafka.metrics,
        kafka.rerouter(ORDERS_REROUTED, (CANCELLATIONS,), skips=(ORDERS_PLACED, FULFILMENT_EVENTS)),
    )
    return runtime


def _returns(kafka: _Kafka, shared: _Shared, table: Any, retention: RetentionIndex) -> ReturnsRuntime:
    """``handle_returns``: where each return goes, and its restock."""
    runtime = ReturnsRuntime(
        table,
        shared.network,
        shared.view,
        shared.returns_load,
        ReturnTopics(
            requested=kafka.name(RETURNS_REQUESTED),
            received=kafka.name(RETURNS_RECEIVED),
            routed=kafka.name(RETURNS_ROUTED),
            processed=kafka.name(RETURNS_PROCESSED),
            movements=kafka.name(MOVEMENTS),
            dlq=kafka.name(DLQ),
        ),
        kafka.produce,
        kafka.metrics,
        partitions=kafka.settings.partitions,
        durable=kafka.durable,
        orders=shared.returnable,
        retention=retention,
    )
    # Routing reads the network, the availability view (need) and today's load per location; both
    # routing and receipts read what each order can take back.
    register_batched(
        kafka.app,
        "handle_returns",
        kafka.topic(RETURNS_REQUESTED, RETURNS_RECEIVED, RETURNS_REROUTED),
        runtime.apply_batch,
        (
            shared.config_follower,
            shared.view_follower,
            shared.returns_load_follower,
            shared.returnable_follower,
        ),
        kafka.settings,
        kafka.metrics,
        kafka.rerouter(RETURNS_REROUTED, (RETURNS_REQUESTED, RETURNS_RECEIVED)),
    )
    return runtime
