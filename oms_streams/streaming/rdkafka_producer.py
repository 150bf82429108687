"""The worker's Kafka producer: faust's, with every record handed to librdkafka (confluent-kafka).

faust's aiokafka producer builds batches and produce requests in Python on the worker's event loop:
paced at 250 orders/s that was about a fifth of the worker's Python time (``bench/README.md``).
librdkafka does the same work in its own C threads, so the loop only hands records over. Everything
else about faust's producer (topic creation, metadata) stays aiokafka's.

At least once is kept: faust flushes the producer before it commits offsets, and ``flush`` returns
once every record handed over before it is acknowledged by the broker. Delivery reports are served
on the event loop (``poll(0)``: after each send, in ``flush``, and by a slow timer), never from
another thread: a thread taking the GIL for callbacks delays the loop by a switch interval each time.

A record that is not delivered (after librdkafka's retries, within ``message.timeout.ms``) is fatal:
the input that caused it must be processed again, and so must everything after it. The producer
refuses every later send and flush (so no offset is committed past it) and calls ``on_fatal``, which
in the worker ends the process with ``EXIT_NOT_DELIVERED`` for its supervisor to restart it; the
restarted worker rebuilds its tables from their changelogs (``local_state``) and reads again from
the last committed offsets. A clean stop, every record acknowledged, calls ``on_clean_stop``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import confluent_kafka
from faust.exceptions import ProducerSendError
from faust.transport.drivers.aiokafka import Producer as AIOKafkaProducer
from faust.types import TP
from faust.types.tuples import RecordMetadata

log = logging.getLogger(__name__)

LINGER_MS = 5
"""How long librdkafka waits to fill a batch (faust's ``producer_linger`` was the same 5 ms)."""
IDLE_POLL_S = 0.05
"""How often delivery reports are served while nothing is sent (each send serves them too)."""
EXIT_NOT_DELIVERED = 75
"""The worker's exit status when a record was not delivered (EX_TEMPFAIL: restart me)."""


def exit_for_restart(reason: str) -> None:
    """The worker's ``on_fatal``: stop at once, committing nothing more. A graceful faust stop would
    try to commit and flush first; what it left unacknowledged is read again after the restart."""
    log.critical(
        "a record was not delivered (%s): stopping for a restart; nothing after it is committed", reason
    )
    logging.shutdown()
    sys.stderr.flush()
    os._exit(EXIT_NOT_DELIVERED)


def install(
    app: Any,
    client_config: dict[str, Any],
    *,
    on_fatal: Callable[[str], None] = exit_for_restart,
    on_clean_stop: Callable[[], None] = lambda: None,
) -> None:
    """Make ``app`` create its producer as an ``RdKafkaProducer`` (before anything uses it)."""
    config = {
        **client_config,
        "client.id": f"{app.conf.broker_client_id}-producer",
        "linger.ms": LINGER_MS,
        "enable.idempotence": True,  # acks=all, and no reordering or duplicates on retries
        "partitioner": "murmur2_random",  # the Java client's: keyed records land where faust expects
        # A full count writes a changelog record per position: room for that many before ``send`` waits.
        "queue.buffering.max.messages": 1_000_000,
        # The worker creates its topics with their partition counts at start. A topic deleted while
        # it runs must fail its records, not come back with the broker's default partition count.
        "allow.auto.create.topics": False,
    }
    # faust's transport builds its producer with ``self.Producer(self, **kwargs)``.
    app.transport.Producer = partial(
        RdKafkaProducer, rdkafka_config=config, on_fatal=on_fatal, on_clean_stop=on_clean_stop
    )


class RdKafkaProducer(AIOKafkaProducer):
    def __init__(
        self,
        transport: Any,
        *,
        rdkafka_config: dict[str, Any],
        on_fatal: Callable[[str], None] = exit_for_restart,
        on_clean_stop: Callable[[], None] = lambda: None,
        **kwargs: Any,
    ) -> None:
        super().__init__(transport, **kwargs)
        self._rdkafka_config = rdkafka_config
        self._on_fatal = on_fatal
        self._on_clean_stop = on_clean_stop
        self.failure: str | None = None
        """Why the first record that was not delivered failed; from then on nothing is sent."""
        self._rdkafka: confluent_kafka.Producer | None = None
        self._sent = 0
        self._in_flight: deque[tuple[int, asyncio.Future[RecordMetadata] | Delivery]] = deque()
        """(send number, delivery) in send order, from the oldest not known to be acknowledged."""

    async def on_start(self) -> None:
        await super().on_start()
        self._rdkafka = confluent_kafka.Producer(self._rdkafka_config, error_cb=_log_client_error)
        self.add_future(self._serve_reports())

    async def on_stop(self) -> None:
        if self._rdkafka is not None:
            unsent = self.buffer.size  # faust's buffered sends not handed over: lost with the process
            done = await self._acknowledged(through=self._sent, timeout_s=30.0)
            if done and not unsent and self.failure is None:
                self._on_clean_stop()
        await super().on_stop()

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> asyncio.Future[RecordMetadata]:
        if transactional_id:
            raise ProducerSendError("transactions are not used by oms-streams")
        producer = self._rdkafka
        if producer is None:
            raise ProducerSendError("the producer has not started")
        if self.failure is not None:
            raise ProducerSendError(f"an earlier record was not delivered: {self.failure}")
        delivered: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        options: dict[str, Any] = {"on_delivery": partial(self._report, delivered)}
        if partition is not None:
            options["partition"] = partition
        if timestamp:
            options["timestamp"] = int(timestamp * 1000)
        if headers:
            options["headers"] = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        while True:
            try:
                producer.produce(topic, value, key, **options)
                break
            except BufferError:  # librdkafka's queue is full: let the broker catch up
                producer.poll(0)
                await asyncio.sleep(0.01)
            except confluent_kafka.KafkaException as error:  # e.g. larger than message.max.bytes
                raise ProducerSendError(f"could not send to {topic}: {error}") from error
        self._sent += 1
        self._in_flight.append((self._sent, delivered))
        producer.poll(0)
        self._forget_acknowledged()
        return delivered

    async def send_many(self, records: Sequence[tuple[str, bytes | None, bytes | None, int | None]]) -> None:
        """(topic, key, value, partition or None) each, without a future per record: one
        ``Delivery`` tracks the group, and ``flush`` waits for it like for any record sent before."""
        producer = self._rdkafka
        if producer is None:
            raise ProducerSendError("the producer has not started")
        if self.failure is not None:
            raise ProducerSendError(f"an earlier record was not delivered: {self.failure}")
        if not records:
            return
        delivery = Delivery(len(records), self._failed)
        report = delivery.report
        for i, (topic, key, value, partition) in enumerate(records):
            while True:
                try:
                    if partition is None:
                        producer.produce(topic, value, key, on_delivery=report)
                    else:
                        producer.produce(topic, value, key, partition, on_delivery=report)
                    break
                except BufferError:  # librdkafka's queue is full: let the broker catch up
                    producer.poll(0)
                    await asyncio.sleep(0.01)
                except confluent_kafka.KafkaException as error:
                    delivery.remaining -= len(records) - i  # never sent: nothing to wait for
                    self._track(delivery)
                    raise ProducerSendError(f"could not send to {topic}: {error}") from error
        self._track(delivery)

    def _track(self, delivery: Delivery) -> None:
        assert self._rdkafka is not None
        self._sent += 1
        self._in_flight.append((self._sent, delivery))
        self._rdkafka.poll(0)
        self._forget_acknowledged()

    def _failed(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
            self._on_fatal(reason)

    async def flush(self) -> None:
        """Returns once every record sent before is acknowledged; raises if any was not delivered,
        so faust does not commit the offsets that caused it."""
        await super().flush()  # faust's buffered sends are handed over first
        await self.acknowledged(self._sent)

    def mark(self) -> int:
        """The send number of the last record handed over: ``acknowledged(mark)`` waits for it and
        every record before it, not for those sent later."""
        return self._sent

    async def acknowledged(self, through: int) -> None:
        """Returns once every record up to send number ``through`` is acknowledged; raises if a record
        was not delivered (the producer has then called ``on_fatal``)."""
        if self._rdkafka is not None:
            await self._acknowledged(through=through, timeout_s=None)
        if self.failure is not None:
            raise ProducerSendError(f"a record was not delivered: {self.failure}")

    def _forget_acknowledged(self) -> None:
        in_flight = self._in_flight
        while in_flight and in_flight[0][1].done():
            in_flight.popleft()

    async def _acknowledged(self, through: int, timeout_s: float | None) -> bool:
        """Until every record up to send number ``through`` is acknowledged or a record has failed;
        records sent meanwhile are not waited for. False if some were not acknowledged in time."""
        assert self._rdkafka is not None
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while self.failure is None:
            self._rdkafka.poll(0)
            self._forget_acknowledged()
            if not self._in_flight or self._in_flight[0][0] > through:
                return True
            if deadline is not None and loop.time() > deadline:
                log.error("records were not acknowledged within %.0f s", timeout_s)
                return False
            await asyncio.sleep(0.001)
        return False

    async def _serve_reports(self) -> None:
        while True:
            if self._rdkafka is not None:
                self._rdkafka.poll(0)
            await asyncio.sleep(IDLE_POLL_S)

    def _report(self, delivered: asyncio.Future[RecordMetadata], error: Any, message: Any) -> None:
        if delivered.done():
            return
        if error is None:
            topic, partition = message.topic(), message.partition()
            delivered.set_result(RecordMetadata(topic, partition, TP(topic, partition), message.offset()))
            return
        reason = f"{message.topic()}: {error}"
        delivered.set_exception(ProducerSendError(f"not delivered: {reason}"))
        delivered.exception()  # retrieved: the failure is reported once, by on_fatal
        self._failed(reason)


class Delivery:
    """A group of records sent together (``send_many``): done once every one is acknowledged. A
    record not delivered is fatal to the producer (``on_failure``), so the group never completes."""

    __slots__ = ("on_failure", "remaining")

    def __init__(self, records: int, on_failure: Callable[[str], None]) -> None:
        self.remaining = records
        self.on_failure = on_failure

    def done(self) -> bool:
        return self.remaining <= 0

    def report(self, error: Any, message: Any) -> None:
        if error is None:
            self.remaining -= 1
        else:
            self.on_failure(f"{message.topic()}: {error}")


def _log_client_error(error: Any) -> None:
    log.warning("Kafka producer: %s", error)
