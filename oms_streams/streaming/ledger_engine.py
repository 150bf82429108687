"""The ledger's stream: fetched batches from librdkafka straight into the ledger runtime.

faust's per-event stream (a queue, an event object and an acknowledgement per record on the event
loop) was most of the ledger's cost: about 1,900 movements/s per worker. So the stock topics are
read here with a confluent-kafka consumer of their own group (``<app id>-ledger``) under the faust
worker, as its issue allows: ``consume`` returns up to ``OMS_BATCH_MAX`` records fetched and decoded
by librdkafka's C threads, the runtime applies them as one batch, and the loop is, per batch:

    consume  ->  reroute  ->  apply (state + outputs)  ->  consume the next ...
                                     `-> (committer) every record so far acknowledged  ->  commit

so an input offset is committed only once everything it caused (and everything sent before it) is on
the broker, and a record not delivered stops the worker before any later commit
(``rdkafka_producer``). The wait for the broker's acknowledgements overlaps the next batch instead of
stalling the loop: a chunk's round trip (10-30 ms here) no longer adds to every batch's latency. The
range assignor keeps the stock topics co-partitioned (partition p of each goes to one worker).
Rebalance callbacks run inside ``consume``, between batches: a partition given up first waits until
everything sent is acknowledged and its offsets are committed, then closes its store with a
checkpoint; a partition taken is restored from its changelogs before its first record is applied
(``ledger_store``), and faust's rebalance quirks (records dropped while partitions move, heal
timers) do not arise here.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from mode import Service

from oms_streams.metrics import Metrics
from oms_streams.streaming.ledger_runtime import LedgerRuntime
from oms_streams.streaming.ledger_store import LedgerStore
from oms_streams.streaming.rerouting import Rerouter

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Record:
    """A consumed record as the runtime, the rerouter and the dead-letter writer read it (faust's
    ``event.message`` shape; ``timestamp`` in seconds)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float
    headers: list[tuple[str, bytes]] | None

    @property
    def message(self) -> Record:
        return self

    @classmethod
    def of(cls, m: Any) -> Record:
        return cls(
            m.topic(), m.partition(), m.offset(), m.key(), m.value(), m.timestamp()[1] / 1000, m.headers()
        )


class LedgerEngine(Service):
    def __init__(
        self,
        *,
        client_config: dict[str, Any],
        group_id: str,
        topics: Sequence[str],
        runtime: LedgerRuntime,
        store: LedgerStore,
        rerouter: Rerouter,
        flush: Callable[[], Awaitable[None]],
        mark: Callable[[], int],
        acknowledged: Callable[[int], Awaitable[None]],
        waits_for: Callable[[], Awaitable[Any]],
        on_assigned: Callable[[], None],
        metrics: Metrics,
        batch_max: int,
        batch_wait_s: float,
        instance_id: str | None = None,
        session_timeout_s: float = 45.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.topics = list(topics)
        self.runtime, self.store, self.rerouter = runtime, store, rerouter
        self._flush, self._waits_for, self._on_assigned = flush, waits_for, on_assigned
        self._mark, self._acknowledged = mark, acknowledged
        self.metrics = metrics
        self.batch_max, self.batch_wait_s = batch_max, batch_wait_s
        self.config = {
            **client_config,
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # Range keeps partition p of every stock topic on one worker (co-partitioning).
            "partition.assignment.strategy": "range",
            "session.timeout.ms": int(session_timeout_s * 1000),
            "fetch.wait.max.ms": 10,  # a quiet partition's records are not held for a long poll
            **({"group.instance.id": f"{instance_id}-ledger"} if instance_id else {}),
        }
        self._consumer: Consumer | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="ledger-consumer")
        self._moves: list[tuple[list[int], dict[tuple[str, int], int] | None]] = []
        """Rebalance callbacks' news (they run in the consumer thread), applied on the loop."""
        self._idle = asyncio.Event()
        self._idle.set()
        self.committed: dict[tuple[str, int], int] = {}
        """The next offset to read per input partition, as committed."""
        self._unacked: deque[tuple[int, dict[tuple[str, int], int]]] = deque()
        """(producer send mark, input ends) of each applied chunk not yet committed, oldest first."""
        self._more = asyncio.Event()
        self._ready: dict[tuple[str, int], int] = {}
        """Input ends whose every record is acknowledged, to commit in the consumer thread."""
        self._ready_lock = threading.Lock()
        self._highs: dict[tuple[str, int], int] = {}
        """High watermark per owned input partition, as last fetched (read by ``lag``)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shared_at = time.monotonic()

    @property
    def label(self) -> str:
        return "LedgerEngine"

    async def on_start(self) -> None:
        consumer = Consumer(self.config, error_cb=lambda e: log.warning("ledger consumer: %s", e))
        consumer.subscribe(
            self.topics, on_assign=self._taken, on_revoke=self._given_up, on_lost=self._given_up
        )
        self._consumer = consumer
        self._loop = asyncio.get_running_loop()
        self.add_future(self._run())
        self.add_future(self._commit_acknowledged())

    def _taken(self, _: Any, tps: list[TopicPartition]) -> None:
        self._moves.append((sorted({tp.partition for tp in tps}), None))

    def _given_up(self, consumer: Any, tps: list[TopicPartition]) -> None:
        # In the consumer thread, before the new owner starts: once every write is acknowledged and
        # the chunks' offsets committed (synchronously, while the partitions are still ours), the
        # changelogs end where our writes do and the new owner reads on from our last record.
        # (The loop never calls the consumer itself, so it is free to serve the acknowledgements.)
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._all_acknowledged(), self._loop).result()
        partitions = sorted({tp.partition for tp in tps})
        self._commit(consumer, partitions)
        self._moves.append((partitions, self.store.ends_of(partitions)))

    async def on_stop(self) -> None:
        # Let the batch in hand finish: it commits its offsets (or, cut short, leaves them for the
        # next owner); then close the stores with checkpoints while still their owner, then leave.
        try:
            await asyncio.wait_for(self._idle.wait(), 30.0)
        except TimeoutError:
            log.warning("the ledger's last batch did not finish within 30 s")
        consumer = self._consumer
        if consumer is not None:
            loop = asyncio.get_running_loop()
            await self._apply_moves()
            async with self.runtime.lock:
                await self._flush()
                await self._all_acknowledged()  # the last chunks' offsets are ready to commit
                self._consumer = None
                owned = self.store.owned()
                await loop.run_in_executor(self._thread, self._commit, consumer, owned)
                self.store.give_up(owned, await loop.run_in_executor(self._thread, self.store.ends_of, owned))
                await loop.run_in_executor(self._thread, consumer.close)
        self._thread.shutdown(wait=False)

    async def _run(self) -> None:
        await self._waits_for()  # master data first, or every location would look unknown
        loop = asyncio.get_running_loop()
        while (consumer := self._consumer) is not None and not self.should_stop:
            messages = await loop.run_in_executor(self._thread, self._fetch, consumer)
            self._idle.clear()
            try:
                await self._apply_moves()
                for chunk in _chunks(messages):
                    if self.should_stop:  # stopping: the rest is left for the next owner
                        break
                    await self._apply(consumer, chunk)
            finally:
                self._idle.set()

    def _fetch(self, consumer: Consumer) -> list[Any]:
        """In the consumer thread: what is fetched already, up to ``batch_max`` records, or else
        the first record to arrive within ``batch_wait_s`` and what came with it. A busy stream gets
        large batches (what arrived while the last one was applied), a quiet one no added wait."""
        self._commit(consumer)
        self._highs = {
            tp: consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)[1]
            for tp in list(self.committed)
        }
        messages: list[Any] = consumer.consume(self.batch_max, 0)
        if messages:
            return messages
        first = consumer.poll(self.batch_wait_s)
        if first is None:
            return []
        return [first, *(consumer.consume(self.batch_max - 1, 0) if self.batch_max > 1 else ())]

    async def _apply(self, consumer: Consumer, messages: list[Any]) -> None:
        records, ends = [], {}
        for m in messages:
            error = m.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("ledger consumer: %s", error)
                continue
            if not self.store.owns(m.partition()):
                continue  # given up in this very call: its new owner reads it
            records.append(Record.of(m))
            ends[(m.topic(), m.partition())] = m.offset() + 1
        started = time.monotonic()
        to_apply = await self.rerouter.sort(records)
        if to_apply:
            await self.runtime.apply_batch(to_apply)
        # The chunk's offsets wait for the acknowledgement of every record sent so far (committer).
        self._unacked.append((self._mark(), ends))
        self._more.set()
        self.metrics.ledger_batch_seconds.labels("apply").observe(time.monotonic() - started)
        while len(self._unacked) > MAX_UNACKED_CHUNKS:  # a slow broker slows the intake
            await asyncio.sleep(0.001)
        await self._let_others_run()

    async def _let_others_run(self) -> None:
        """Chunks are applied back to back without waiting for the broker, so the event loop would
        serve nothing else in a burst (/health, /metrics, promises, the faust agents): after each
        ``SHARE_AFTER_S`` of applying, the loop is the others' for ``SHARE_S``."""
        now = time.monotonic()
        if now - self._shared_at >= SHARE_AFTER_S:
            await asyncio.sleep(SHARE_S)
            self._shared_at = time.monotonic()

    async def _commit_acknowledged(self) -> None:
        """Hands applied chunks' input ends over for commit, oldest first, once the producer has
        acknowledged every record sent up to the newest of them. A record not delivered ends the
        process first. The commit itself happens in the consumer thread (``_commit``): calling the
        consumer from the loop while a rebalance callback waits for the loop would deadlock."""
        while True:
            await self._more.wait()
            self._more.clear()
            while self._unacked:
                through, started = self._unacked[-1][0], time.monotonic()
                await self._acknowledged(through)
                # Where a chunk's time goes: apply is our CPU, ack the broker's round trip (tuned
                # with linger and batch sizes, not with more workers).
                self.metrics.ledger_batch_seconds.labels("ack").observe(time.monotonic() - started)
                ends: dict[tuple[str, int], int] = {}
                while self._unacked and self._unacked[0][0] <= through:
                    ends.update(self._unacked.popleft()[1])
                with self._ready_lock:
                    self._ready.update(ends)

    async def _all_acknowledged(self) -> None:
        """Until every applied chunk's records are acknowledged (its ends ready to commit)."""
        while self._unacked:
            self._more.set()
            await asyncio.sleep(0.001)

    def _commit(self, consumer: Any, giving_up: list[int] | None = None) -> None:
        """In the consumer thread: commit what is ready. Not waited for in the stream: a commit that
        is lost only means records read again, which are recognised as duplicates. Waited for when
        partitions are ``giving_up``: their next owner starts from there (partitions already lost
        refuse it; their next owner then reads the last chunks again, as duplicates)."""
        with self._ready_lock:
            ready, self._ready = self._ready, {}
        self.committed.update(ready)
        if giving_up is None:
            if ready:
                consumer.commit(
                    offsets=[TopicPartition(t, p, o) for (t, p), o in ready.items()], asynchronous=True
                )
            return
        offsets = [
            TopicPartition(t, p, o)
            for (t, p), o in self.committed.items()
            if p in giving_up or (t, p) in ready
        ]
        if not offsets:
            return
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as error:
            log.warning("ledger: offsets of partitions %s not committed (%s)", giving_up, error)

    async def _apply_moves(self) -> None:
        if not self._moves:
            return
        moves, self._moves = self._moves, []
        loop = asyncio.get_running_loop()
        async with self.runtime.lock:
            for partitions, ends in moves:
                started = time.monotonic()
                if ends is not None:
                    self.store.give_up(partitions, ends)
                    self.committed = {
                        tp: o for tp, o in list(self.committed.items()) if tp[1] not in partitions
                    }
                    log.info("ledger gave up partitions %s", partitions)
                else:
                    read = await loop.run_in_executor(self._thread, self.store.take, partitions)
                    log.info(
                        "ledger took partitions %s (%d changelog records restored in %.1f s)",
                        partitions,
                        read,
                        time.monotonic() - started,
                    )
            self.runtime.forget_ownership()
        self._on_assigned()

    def lag(self) -> dict[tuple[str, int], tuple[int, int]]:
        """(committed offset, high watermark as last fetched) per owned input partition."""
        highs = self._highs
        committed = list(self.committed.items())  # one C call: the consumer thread may add to it
        return {tp: (offset, highs[tp]) for tp, offset in committed if highs.get(tp, -1) >= 0}


SHARE_AFTER_S, SHARE_S = 0.05, 0.005
"""At most about a tenth of the loop's time given away in a burst; before pipelining, the wait for
every chunk's acknowledgements (5-30 ms) was where the rest of the worker ran."""
MAX_UNACKED_CHUNKS = 4
"""Applied chunks whose records may await the broker's acknowledgement at once."""
CHUNK_BYTES = 1024 * 1024
"""A fetched batch is applied, flushed and committed in chunks of about this many bytes of input: a
burst of counts (200 positions a record) would otherwise hold a million rows, their changelog
records and their availability records in memory at once."""


def _chunks(messages: list[Any]) -> Iterator[list[Any]]:
    start, size = 0, 0
    for i, message in enumerate(messages):
        size += len(message.value() or b"")
        if size >= CHUNK_BYTES:
            yield messages[start : i + 1]
            start, size = i + 1, 0
    if start < len(messages):
        yield messages[start:]
