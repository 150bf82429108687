"""The worker's Kafka plumbing: the faust app with its broker credentials, and ``_Kafka``, what every
wiring step of ``app.create_app`` names its topics and sends its records through (straight to the
librdkafka producer, with marks to wait for their acknowledgement, and the rerouters).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from oms_streams.config import Settings
from oms_streams.metrics import Metrics
from oms_streams.streaming import rdkafka_producer
from oms_streams.streaming.rerouting import Rerouter
from oms_streams.streaming.topics import MOVEMENTS


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


def _faust_app(settings: Settings) -> faust.App:
    return faust.App(
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


_RAW: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}


@dataclass
class _Kafka:
    """What every step wires through: the faust app, the settings, the metrics, and how records leave."""

    app: faust.App
    settings: Settings
    metrics: Metrics

    def name(self, spec: Any) -> str:
        return self.settings.topic(spec.name)

    def topic(self, *specs: Any, **kwargs: Any) -> Any:
        return self.app.topic(*(self.name(spec) for spec in specs), **_RAW, **kwargs)

    async def produce(self, topic: str, key: bytes, value: bytes | None) -> None:
        # Straight to the Kafka producer (librdkafka), without faust's per-record FutureMessage and
        # buffer. faust flushes the producer before it commits offsets, and a record that is not
        # delivered stops the worker before anything after it is committed (rdkafka_producer).
        await self.app.producer.send(topic, key, value, None, None, None)

    async def durable(self) -> None:
        # Every table write so far acknowledged: a runtime's outputs wait for it (outbox).
        await self.app.producer.flush()

    @property
    def rdkafka(self) -> rdkafka_producer.RdKafkaProducer:
        producer = self.app.producer
        assert isinstance(producer, rdkafka_producer.RdKafkaProducer)
        return producer

    def mark(self) -> int:
        return self.rdkafka.mark()  # the send number of the last record handed over

    async def acknowledged(self, through: int) -> None:
        await self.rdkafka.acknowledged(through)

    async def send(
        self,
        topic: str,
        key: bytes,
        value: bytes | None,
        partition: int,
        timestamp: float | None,
        headers: Any,
    ) -> None:
        await self.app.producer.send(topic, key, value, partition, timestamp, headers)

    def rerouter(self, rerouted: Any, forwards: tuple[Any, ...], skips: tuple[Any, ...] = ()) -> Rerouter:
        return Rerouter(
            self.name(rerouted),
            [self.name(spec) for spec in forwards],
            [self.name(spec) for spec in skips],
            self.settings.partitions,
            self.send,
            self.metrics,
        )
