"""``create_app(settings)``: the faust worker with its topics, tables, agents and followers."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass
from typing import Any

import faust

from oms_streams.adapters.dlq import dead_letter_for
from oms_streams.adapters.reservations import decode_reservations
from oms_streams.adapters.stock import decode_count, decode_movement, decode_supplier_stock
from oms_streams.config import Settings
from oms_streams.domain.transit import TransitModel
from oms_streams.metrics import Metrics
from oms_streams.streaming import faust_fixes, local_state, rdkafka_producer
from oms_streams.streaming.admin import ensure_changelogs, first_record_offset
from oms_streams.streaming.agents import promise
from oms_streams.streaming.agents.batched import register_batched
from oms_streams.streaming.follower import TopicFollower
from oms_streams.streaming.ledger_engine import LedgerEngine
from oms_streams.streaming.ledger_runtime import AvailabilityView, LedgerRuntime
from oms_streams.streaming.ledger_store import LedgerStore
from oms_streams.streaming.network import NetworkState
from oms_streams.streaming.orders_runtime import OrdersRuntime, OrderTopics
from oms_streams.streaming.promise_service import CourierBookings, PromiseService, TransitLearner
from oms_streams.streaming.rerouting import Rerouter
from oms_streams.streaming.returns_runtime import ReturnsLoad, ReturnsRuntime, ReturnTopics
from oms_streams.streaming.sourcing_runtime import SourcingRuntime, SourcingTopics
from oms_streams.streaming.stall_watch import StallWatch
from oms_streams.streaming.tables import define_tables
from oms_streams.streaming.topics import (
    ALLOCATIONS,
    AVAILABILITY,
    CANCELLATION_OUTCOMES,
    CANCELLATIONS,
    CARRIER_SERVICES,
    COUNTS,
    COURIER_BOOKINGS,
    DLQ,
    FULFILMENT_EVENTS,
    LOCATIONS,
    MOVEMENTS,
    ORDERS_AT_RISK,
    ORDERS_PLACED,
    ORDERS_REROUTED,
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


def _credentials(settings: Settings) -> Any:
    if settings.kafka_security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value()
            if settings.kafka_sasl_password
            else None,
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=settings.ssl_context(),
        )
    context = settings.ssl_context()
    return faust.SSLCredentials(context) if context is not None else None


def create_app(settings: Settings, metrics: Metrics | None = None) -> Worker:
    for family in (
        (MOVEMENTS, COUNTS, SUPPLIER_STOCK, RESERVATIONS, STOCK_REROUTED),
        (ORDERS_PLACED, FULFILMENT_EVENTS, RESERVATION_REPLIES, RETURNS_PROCESSED, ORDERS_REROUTED),
        (ORDERS_PLACED, CANCELLATIONS, CANCELLATION_OUTCOMES),
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
    metrics = metrics or Metrics()
    faust_fixes.apply(fetch_max_wait_ms=settings.fetch_max_wait_ms)
    if settings.table_store == "rocksdb" and local_state.trust_or_rebuild(settings.data_dir):
        metrics.local_state_rebuilt.set(1)
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{hostport}" for hostport in settings.kafka_bootstrap.split(",")],
        broker_credentials=_credentials(settings),
        store="rocksdb://" if settings.table_store == "rocksdb" else "memory://",
        datadir=str(settings.data_dir),
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        topic_partitions=MOVEMENTS.partitions(settings),
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        table_standby_replicas=0,  # a resync iterates local tables: they must hold only active partitions
        stream_buffer_maxsize=settings.stream_buffer_max,
        broker_commit_every=10_000,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        consumer_group_instance_id=settings.instance_id,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        loghandlers=[],
    )
    rdkafka_producer.install(
        app,
        {**settings.confluent_config(), "message.timeout.ms": settings.delivery_timeout_ms},
        on_clean_stop=lambda: local_state.mark_clean_stop(settings.data_dir),
    )

    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    dlq_topic = app.topic(settings.topic(DLQ.name), internal=False, **raw)

    async def produce(topic: str, key: bytes, value: bytes | None) -> None:
        # Straight to the Kafka producer (librdkafka), without faust's per-record FutureMessage and
        # buffer. faust flushes the producer before it commits offsets, and a record that is not
        # delivered stops the worker before anything after it is committed (rdkafka_producer).
        await app.producer.send(topic, key, value, None, None, None)

    async def durable() -> None:
        # Every table write so far acknowledged: a runtime's outputs wait for it (outbox).
        await app.producer.flush()

    async def send(
        topic: str, key: bytes, value: bytes | None, partition: int, timestamp: float | None, headers: Any
    ) -> None:
        await app.producer.send(topic, key, value, partition, timestamp, headers)

    def rerouter(rerouted: str, forwards: tuple[Any, ...], skips: tuple[Any, ...] = ()) -> Rerouter:
        def names(specs: tuple[Any, ...]) -> list[str]:
            return [settings.topic(spec.name) for spec in specs]

        return Rerouter(
            settings.topic(rerouted), names(forwards), names(skips), settings.partitions, send, metrics
        )

    def dead_letter_config(reason: str, record: Any) -> None:
        # From the config follower's synchronous callback, outside any agent: faust's buffered send.
        letter = dead_letter_for(reason, record, int(time.time() * 1000))
        dlq_topic.send_soon(key=record.topic.encode(), value=letter)

    resync_requested = asyncio.Event()
    config_topics = {
        "location": settings.topic(LOCATIONS.name),
        "rules": settings.topic(VISIBILITY_RULES.name),
        "carrier_service": settings.topic(CARRIER_SERVICES.name),
        "route": settings.topic(ROUTES.name),
        "promise_policy": settings.topic(PROMISE_POLICY.name),
        "return_policy": settings.topic(RETURN_POLICY.name),
    }
    network = NetworkState(config_topics, metrics, dead_letter_config, on_change=resync_requested.set)
    # Every fetch costs a worker and the broker CPU. The availability feed is busy: its fetches wait
    # for a batch (or 50 ms). The other followed topics change rarely or only feed learning: an idle
    # fetch of each may wait longer. Together: about 190 -> 45 fetches/s per worker at 250 orders/s.
    slow = settings.slow_follow_ms
    config_follower = TopicFollower(
        settings, list(config_topics.values()), network.on_records, max_wait_ms=slow
    )
    view = AvailabilityView()
    view_follower = TopicFollower(
        settings,
        [settings.topic(AVAILABILITY.name)],
        view.on_records,
        min_bytes=settings.view_fetch_min_bytes,
    )
    transit = TransitLearner(TransitModel(), metrics)
    bookings = CourierBookings()
    returns_load = ReturnsLoad(network)
    returns_load_follower = TopicFollower(
        settings, [settings.topic(RETURNS_ROUTED.name)], returns_load.on_records, max_wait_ms=slow
    )
    for follower in (
        config_follower,
        view_follower,
        TopicFollower(
            settings, [settings.topic(TRANSIT_OBSERVATIONS.name)], transit.on_records, max_wait_ms=slow
        ),
        TopicFollower(
            settings, [settings.topic(COURIER_BOOKINGS.name)], bookings.on_records, max_wait_ms=slow
        ),
        returns_load_follower,
    ):
        app.add_dependency(follower)

    ledger_store = LedgerStore(
        settings.app_id,
        settings.partitions,
        settings.data_dir / local_state.LEDGER if settings.table_store == "rocksdb" else None,
        settings.confluent_config(),
    )

    async def send_many(records: list[tuple[str, bytes | None, bytes | None, int | None]]) -> None:
        # The ledger's changelog writes and outputs: one delivery tracked per batch, not per record.
        producer = app.producer
        assert isinstance(producer, rdkafka_producer.RdKafkaProducer)
        await producer.send_many(records)

    runtime = LedgerRuntime(
        store=ledger_store,
        send_many=send_many,
        network=network,
        config_follower=config_follower,
        view=view,
        view_follower=view_follower,
        decoders={
            settings.topic(MOVEMENTS.name): decode_movement,
            settings.topic(COUNTS.name): decode_count,
            settings.topic(SUPPLIER_STOCK.name): decode_supplier_stock,
            settings.topic(RESERVATIONS.name): decode_reservations,
        },
        availability_topic=settings.topic(AVAILABILITY.name),
        replies_topic=settings.topic(RESERVATION_REPLIES.name),
        dlq_topic=settings.topic(DLQ.name),
        produce=produce,
        metrics=metrics,
        protection_quantile=settings.protection_quantile,
        protection_default_days=settings.protection_default_days,
        partitions=settings.partitions,
        dedupe_window_days=settings.dedupe_window_days,
        cache_positions=settings.ledger_cache_positions,
    )
    ensure_changelogs(settings, list(ledger_store.topics.values()))

    async def ledger_may_start() -> None:
        # Master data first, or every event of a location would look like one of an unknown location.
        await app.producer.maybe_start()
        await config_follower.caught_up(timeout_s=60.0)

    ledger = LedgerEngine(
        client_config=settings.confluent_config(),
        group_id=f"{settings.app_id}-ledger",
        topics=[*runtime.decoders, settings.topic(STOCK_REROUTED.name)],
        runtime=runtime,
        store=ledger_store,
        rerouter=rerouter(STOCK_REROUTED.name, (MOVEMENTS, COUNTS, SUPPLIER_STOCK)),
        flush=durable,
        waits_for=ledger_may_start,
        on_assigned=resync_requested.set,
        metrics=metrics,
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

    tables = define_tables(app, settings)
    promises = PromiseService(network, view, transit.model, bookings, metrics)
    promise.register(
        app,
        app.topic(settings.topic(PROMISE_REQUESTS.name), **raw),
        promises,
        settings,
        produce,
        responses_topic=settings.topic(PROMISE_RESPONSES.name),
        dlq_topic=settings.topic(DLQ.name),
    )
    order_runtime = OrdersRuntime(
        tables.orders,
        network,
        OrderTopics(
            placed=settings.topic(ORDERS_PLACED.name),
            fulfilment=settings.topic(FULFILMENT_EVENTS.name),
            at_risk=settings.topic(ORDERS_AT_RISK.name),
            transit_observations=settings.topic(TRANSIT_OBSERVATIONS.name),
            courier_bookings=settings.topic(COURIER_BOOKINGS.name),
            returns_processed=settings.topic(RETURNS_PROCESSED.name),
            dlq=settings.topic(DLQ.name),
            cancellations=settings.topic(CANCELLATIONS.name),
            cancellation_outcomes=settings.topic(CANCELLATION_OUTCOMES.name),
        ),
        produce,
        metrics,
        partitions=settings.partitions,
        durable=durable,
    )
    stall_watch = StallWatch(settings.stall_after_s)
    order_source = app.topic(
        *(
            settings.topic(s.name)
            for s in (
                ORDERS_PLACED,
                FULFILMENT_EVENTS,
                RETURNS_PROCESSED,
                CANCELLATION_OUTCOMES,
                ORDERS_REROUTED,
            )
        ),
        **raw,
    )
    # Milestones are derived from the network's calendars: read it before the first placement.
    # This agent forwards misrouted placements and fulfilment events; source_orders skips them.
    register_batched(
        app,
        "track_orders",
        order_source,
        order_runtime.apply_batch,
        (config_follower,),
        settings,
        rerouter(ORDERS_REROUTED.name, (ORDERS_PLACED, FULFILMENT_EVENTS)),
    )
    sourcing_runtime = SourcingRuntime(
        tables.sourcing,
        network,
        view,
        transit.model,
        SourcingTopics(
            placed=settings.topic(ORDERS_PLACED.name),
            fulfilment=settings.topic(FULFILMENT_EVENTS.name),
            replies=settings.topic(RESERVATION_REPLIES.name),
            reservations=settings.topic(RESERVATIONS.name),
            allocations=settings.topic(ALLOCATIONS.name),
            sourced=settings.topic(ORDERS_SOURCED.name),
            dlq=settings.topic(DLQ.name),
            cancellations=settings.topic(CANCELLATIONS.name),
            cancellation_outcomes=settings.topic(CANCELLATION_OUTCOMES.name),
        ),
        produce,
        metrics,
        partitions=settings.partitions,
        durable=durable,
    )
    sourcing_source = app.topic(
        *(
            settings.topic(s.name)
            for s in (ORDERS_PLACED, FULFILMENT_EVENTS, RESERVATION_REPLIES, CANCELLATIONS, ORDERS_REROUTED)
        ),
        **raw,
    )
    # Plans read the network and the availability view: both must be there before the first order.
    register_batched(
        app,
        "source_orders",
        sourcing_source,
        sourcing_runtime.apply_batch,
        (config_follower, view_follower),
        settings,
        rerouter(ORDERS_REROUTED.name, (CANCELLATIONS,), skips=(ORDERS_PLACED, FULFILMENT_EVENTS)),
    )
    returns_runtime = ReturnsRuntime(
        tables.returns,
        network,
        view,
        returns_load,
        ReturnTopics(
            requested=settings.topic(RETURNS_REQUESTED.name),
            received=settings.topic(RETURNS_RECEIVED.name),
            routed=settings.topic(RETURNS_ROUTED.name),
            processed=settings.topic(RETURNS_PROCESSED.name),
            movements=settings.topic(MOVEMENTS.name),
            dlq=settings.topic(DLQ.name),
        ),
        produce,
        metrics,
        partitions=settings.partitions,
        durable=durable,
    )
    returns_source = app.topic(
        *(settings.topic(s.name) for s in (RETURNS_REQUESTED, RETURNS_RECEIVED, RETURNS_REROUTED)), **raw
    )
    # Routing reads the network, the availability view (need) and today's load per location.
    register_batched(
        app,
        "handle_returns",
        returns_source,
        returns_runtime.apply_batch,
        (config_follower, view_follower, returns_load_follower),
        settings,
        rerouter(RETURNS_REROUTED.name, (RETURNS_REQUESTED, RETURNS_RECEIVED)),
    )

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, /, *args: Any, **kwargs: Any) -> None:
        # The milestone timer must not write rows of orders this worker may no longer own.
        order_runtime.forget_ownership()
        sourcing_runtime.forget_ownership()

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
                log.info("tracking %d open orders after the rebalance", await order_runtime.reload())
                log.info(
                    "re-sent %d reservation commands after the rebalance", await sourcing_runtime.reload()
                )
            except Exception:
                log.exception("reloading orders failed; retrying at the next rebalance")

    @app.timer(interval=settings.risk_check_interval_s)  # type: ignore[untyped-decorator]
    async def check_overdue_milestones() -> None:
        await order_runtime.check_due()

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

    @app.timer(interval=settings.protection_refresh_s)  # type: ignore[untyped-decorator]
    async def refresh_protection() -> None:
        # Protection is demand until the next truck: it changes as the days pass, not only on events.
        runtime.expire_views()
        resync_requested.set()

    @app.timer(interval=settings.dedupe_sweep_interval_s)  # type: ignore[untyped-decorator]
    async def forget_expired_event_ids() -> None:
        # An exception in a faust timer would stop the worker: log it, the next sweep tries again.
        try:
            forgotten = await runtime.forget_expired_ids(int(time.time() * 1000))
            log.info("forgot %d stock movement ids older than the dedupe window", forgotten)
        except Exception:
            log.exception("forgetting expired stock movement ids failed; trying again at the next sweep")

    async def broker_first_offset(topic: str, partition: int, offset: int) -> int | None:
        return await asyncio.get_running_loop().run_in_executor(
            None, first_record_offset, settings.confluent_config(), topic, partition, offset
        )

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
        # Positions, views and journals live for hours and hold no cycles: moving what survived so
        # far out of the collector keeps its full collections from pausing the stream for 100s of ms.
        # The young generations are collected first (milliseconds), so little cyclic garbage is
        # frozen with them.
        gc.collect(1)
        gc.freeze()

    @app.timer(interval=settings.gc_count_interval_s)  # type: ignore[untyped-decorator]
    async def count_frozen_objects() -> None:
        # oms_gc_frozen_objects shows the frozen set, which tracks the ledger. Counting walks every
        # frozen object: 70 ms for the millions of a loaded ledger, a pause of the stream; so not at
        # every freeze.
        metrics.gc_frozen_objects.set(gc.get_freeze_count())

    inputs = {
        settings.topic(ORDERS_PLACED.name),
        settings.topic(FULFILMENT_EVENTS.name),
        settings.topic(PROMISE_REQUESTS.name),
        settings.topic(RESERVATION_REPLIES.name),
        settings.topic(RETURNS_REQUESTED.name),
        settings.topic(RETURNS_RECEIVED.name),
        settings.topic(RETURNS_PROCESSED.name),
        settings.topic(CANCELLATIONS.name),
        settings.topic(CANCELLATION_OUTCOMES.name),
    }

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]
    async def measure_lag() -> None:
        lag: dict[str, int] = {}
        offsets: dict[str, tuple[int, int]] = {}
        consumer: Any = app.consumer
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            position = consumer._committed_offset.get(tp)  # faust has no public accessor for it
            if highwater is not None and tp.topic in inputs:
                lag[tp.topic] = lag.get(tp.topic, 0) + max(0, highwater - (position or 0))
                offsets[f"{tp.topic}:{tp.partition}"] = (position or 0, highwater)
        for (topic, partition), (position, highwater) in ledger.lag().items():
            lag[topic] = lag.get(topic, 0) + max(0, highwater - position)
            offsets[f"{topic}:{partition}"] = (position, highwater)
        for topic, value in lag.items():
            metrics.consumer_lag.labels(topic).set(value)
        # While partitions move or tables recover, streams are paused on purpose: start counting after.
        tables_manager: Any = app.tables  # the TableManager type does not declare its recovery
        settling = app.rebalancing or tables_manager.recovery.in_recovery
        stalled = stall_watch.observe({} if settling else offsets, time.monotonic())
        metrics.stalled_partitions.set(len(stalled))

    return Worker(
        app=app,
        runtime=runtime,
        ledger=ledger,
        promises=promises,
        orders=order_runtime,
        sourcing=sourcing_runtime,
        returns=returns_runtime,
        stall_watch=stall_watch,
        settings=settings,
        metrics=metrics,
    )
