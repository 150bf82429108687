"""Fixes for the pinned faust-streaming 0.15.3, applied once at start-up; small, local and
version-guarded. Two for throughput and latency, measured with ``make bench`` (bench/README.md):

1. faust's ``ProducerBuffer`` hands queued ``send_soon`` messages (every table changelog write) to
   the Kafka producer one per event-loop turn, and the conductor stops taking in messages while more
   than 100 are queued; a batch that writes thousands of positions then crawls. The fix hands over
   everything queued per wake-up, and pauses intake only beyond 20,000 queued records.
2. faust hard-codes ``fetch_max_wait_ms=1500`` for its consumer: a partition that has just been
   drained waits up to 1.5 s for its next fetch, which is the p99 of event-to-availability latency
   at moderate load. The fix makes it a setting (``OMS_FETCH_MAX_WAIT_MS``).

And six for correctness. The first was found by ``oms audit`` after a two-worker start-up lost one
stock movement:

3. In a rebalance faust drops records it has already fetched (a ``getmany`` that sees the generation
   change stops half way; the stream skips records of the old generation) and only seeks back when
   the next fetch finds the flow stopped. When that seek does not come, the partition's next record
   is one past a record never processed, and faust's commit check, ``min(acked) - committed > 1``,
   lets exactly one missing record through (``committed`` is the next offset to read). The fix
   never commits past an offset that was not acked, and ``heal_dropped_records`` (a worker timer)
   seeks such a partition back to its committed offset, so the dropped records are read again;
   redelivery is safe because every runtime is idempotent. It commits past an offset only when the
   broker holds no record there (a transaction marker, say), however slow a batch is.
4. After a takeover faust sometimes leaves a partition unread: records it fetched before the
   restart's seek were skipped by a stream (flow stopped, or an old generation) without an ack, and
   the partition is fetched no more (its read mark stays below the committed offset; we saw it in
   about 1 of 8 restarts under load). ``reread_standing`` (called by the lag watch for a partition
   whose committed offset has stood still with records waiting for ``REREAD_AFTER_S``, or half of
   ``OMS_STALL_AFTER_S`` if that is shorter)
   puts it back among the fetched partitions if it fell out, and seeks it to its committed offset:
   its records are read again, which every runtime's idempotency makes safe. Only if that does not
   help does the partition count as stalled (``/health``) for a liveness restart.
5. A stream that takes a record fetched before the last rebalance (an older consumer generation)
   skips it, and faust acks it all the same: its offset can then be committed although nothing
   processed it. Two agents read ``oms.orders.placed.v1``; found by the chaos run
   (``bench/chaos.py``): 80 placements had their order row from ``track_orders`` while
   ``source_orders`` skipped them, and the group committed past them. The fix never acks a record
   of an older generation (processed or skipped): it is read again from the committed offset the
   rebalance seeks to, and the runtimes recognise what they had already applied.
6. faust's commit bookkeeping outlives a rebalance: a revoke forgets the acked offsets and then
   suspends the streams, which skip the records still queued and ack them, in the old generation
   but after the forgetting; if the partition comes back, the next generation commits past them
   although nothing processed them. And faust counts as holding no record every offset its fetcher
   did not see between two it did (``_add_gap``), which records fetched before a seek of ours and
   delivered after it produce. Found by the chaos run: reservation replies committed past while
   their saga waited for them. The fix forgets, at each assignment, every ack made before it (the
   generation reads from the committed offset; the runtimes are idempotent), and commits past an
   offset only when it was acked or the broker was asked and holds no record there. A partition
   the group never committed (a new deployment's first minutes) is committed from the first offset
   the broker holds, not from whatever offset happened to be acked first (``settle_uncommitted``,
   a timer that runs through rebalances: a heal waits for them to end, and under a burst of them
   such a partition was never committed and counted as stalled).
7. A seek loses to a batch fetched before it. faust iterates a fetched batch to its end, and each
   record it hands on moves the partition's read mark past itself; a record fetched before a seek
   back (faust's own after a rebalance, or fix 3's and 4's) and handed on after it moves the mark
   past the very records the seek asked for, which are then dropped when they come (``offset <
   read mark``). A takeover test saw it: fix 4's re-read undone within the second, the partition
   stood until fix 3. The fix counts the seeks of each partition and hands on no record of a batch
   fetched before the partition's last seek (nothing is lost: the seek reads it again). And each
   assignment starts every partition without a read mark, as aiokafka starts it at its committed
   offset: a mark left by a record handed on between the revoke and the assignment made faust drop
   the partition's records whenever its recovery ended without "Seek stream partitions to
   committed offsets".
8. A record an agent holds back to keep its partition in order (``agents.in_order``) is acked by
   faust's ``take_events`` like every record of the batch, so the group could commit past it
   before the re-read copy was handed on; a lost re-read then lost it (the chaos run: placements
   never tracked). Such a record is done with when acked but never counts as acked
   (``hold_back``): the commit waits for the copy read again, and fixes 3 and 4 read it again if
   that copy does not come.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import faust
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.producer import ProducerBuffer
from faust.types.tuples import ack_lock
from faust.utils.functional import consecutive_numbers

log = logging.getLogger(__name__)

SUPPORTED = "0.15.3"
_applied: dict[str, Any] = {}
HEAL_AFTER_S = 5.0
"""How long the head of a partition may stay unacked before it is read again (a batch in progress
is acked within a second or so; a dropped record never is)."""
REREAD_AFTER_S = 10.0
"""How long a partition may show records waiting and no progress before fix 4 reads it again (at
most half of ``OMS_STALL_AFTER_S``): what a dropped record delays its order by, plus up to one
lag-watch period. ``bench/takeovers.py`` counts how often takeovers need it."""


def apply(fetch_max_wait_ms: int) -> None:
    if faust.__version__ != SUPPORTED:
        # Another version may have fixed or moved these internals: a fix applied blindly could
        # break it, and one skipped silently would bring back a lost record.
        raise RuntimeError(
            f"faust-streaming {faust.__version__} is not the version streaming/faust_fixes.py was "
            f"written for ({SUPPORTED}): check each fix against its source, then update SUPPORTED"
        )
    _applied["fetch_max_wait_ms"] = fetch_max_wait_ms
    if _applied.get("done"):
        return
    _applied["done"] = True

    async def _send_pending(self: Any, fut: Any) -> None:
        await fut.message.channel.publish_message(fut, wait=False)
        queue = self.pending
        while not queue.empty():  # everything already queued, without a loop turn per message
            queued = queue.get_nowait()
            await queued.message.channel.publish_message(queued, wait=False)

    ProducerBuffer._send_pending = _send_pending  # type: ignore[method-assign]
    # One batch writes a changelog record per changed position: at faust's limit of 100 the intake
    # pauses (with a warning) after nearly every batch. The limit stays a bound on memory.
    ProducerBuffer.max_messages = 20_000

    original = AIOKafkaConsumerThread._create_worker_consumer

    def _create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = _applied["fetch_max_wait_ms"]  # read when the consumer starts
        return consumer

    AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer  # type: ignore[method-assign]

    Consumer._new_offset = _new_offset  # type: ignore[method-assign]
    _applied["ack"] = Consumer.ack
    Consumer.ack = _ack_current_generation  # type: ignore[method-assign]
    _applied["on_partitions_assigned"] = Consumer.on_partitions_assigned
    Consumer.on_partitions_assigned = _assigned_without_older_acks  # type: ignore[method-assign]
    for name, wrapper in (("seek", _counted_seek), ("perform_seek", _counted_perform_seek)):
        _applied[name] = getattr(Consumer, name)
        setattr(Consumer, name, wrapper)
    _applied["getmany"] = Consumer.getmany
    Consumer.getmany = _getmany_after_seeks  # type: ignore[method-assign]
    _applied["_wait_next_records"] = Consumer._wait_next_records
    Consumer._wait_next_records = _fetch_noting_seeks  # type: ignore[method-assign]


async def _assigned_without_older_acks(self: Any, assigned: Any, generation_id: int = 0) -> None:
    """faust's ``Consumer.on_partitions_assigned`` once the acks of earlier generations are
    forgotten (fix 6): the new generation reads every partition from its committed offset."""
    forget_older_acks(self)
    await _applied["on_partitions_assigned"](self, assigned, generation_id)


def forget_older_acks(consumer: Any) -> None:
    for books in (consumer._acked, consumer._acked_index, consumer._gap, consumer._read_offset):
        books.clear()  # the read marks too (fix 7): aiokafka reads from the committed offset again
    for name in ("oms_head_gaps", "oms_reread"):
        consumer.__dict__.pop(name, None)


def _seeks(consumer: Any) -> dict[Any, int]:
    seeks: dict[Any, int] = consumer.__dict__.setdefault("oms_seeks", {})
    return seeks


async def _counted_seek(self: Any, partition: Any, offset: int) -> None:
    """faust's ``Consumer.seek``, counted (fix 7): a batch fetched before it is not handed on."""
    seeks = _seeks(self)
    seeks[partition] = seeks.get(partition, 0) + 1
    await _applied["seek"](self, partition, offset)


async def _counted_perform_seek(self: Any) -> None:
    """faust's ``Consumer.perform_seek`` (the streams to their committed offsets), counted for the
    stream partitions only: a changelog's records keep coming to a standby table meanwhile."""
    seeks = _seeks(self)
    for tp in self.assignment():
        if not self._is_changelog_tp(tp):
            seeks[tp] = seeks.get(tp, 0) + 1
    await _applied["perform_seek"](self)


async def _fetch_noting_seeks(self: Any, timeout: float) -> Any:
    """faust's ``Consumer._wait_next_records`` (the fetch of a batch), noting the seeks made before
    its records came: only a later one makes them stale. (aiokafka drops what it fetched before a
    seek itself.)"""
    fetched = await _applied["_wait_next_records"](self, timeout)
    self.__dict__["oms_fetched_after"] = dict(_seeks(self))
    return fetched


async def _getmany_after_seeks(self: Any, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
    """faust's ``Consumer.getmany`` without the records of a partition sought since the batch was
    fetched (fix 7): they would move its read mark past the records the seek reads again. A record
    of a stream below its partition's read mark is handed on all the same, not dropped: it is one a
    seek reads again (its ack was forgotten, so the partition would stand without it)."""
    seeks = _seeks(self)
    async for tp, message in _applied["getmany"](self, timeout):
        before = self.__dict__["oms_fetched_after"]  # noted when this batch was fetched
        if seeks.get(tp, 0) != before.get(tp, 0):
            if before.get(tp) != -1:
                log.warning(
                    "%s: records fetched before a seek from offset %d on: read again", tp, message.offset
                )
                before[tp] = -1  # once a batch
            self.__dict__["oms_stale_skipped"] = self.__dict__.get("oms_stale_skipped", 0) + 1
            continue
        mark = self._read_offset.get(tp)
        if mark is not None and message.offset < mark and not self._is_changelog_tp(tp):
            log.warning(
                "%s: offset %d came again below the read mark %d: handed on", tp, message.offset, mark
            )
            self._read_offset[tp] = None  # faust's drain compares with it once we yield
        yield tp, message


_held_back: weakref.WeakSet[Any] = weakref.WeakSet()
"""Records an agent held back (fix 8), by identity: the copy read again is another message."""


def hold_back(message: Any) -> None:
    """An agent did not hand ``message`` on (fix 8): its ack must not let a commit pass it."""
    _held_back.add(message)


def _ack_current_generation(self: Any, message: Any) -> bool:
    """faust's ``Consumer.ack`` for a record of the current generation (fix 5) that no agent held
    back (fix 8). One of an older generation, or held back, is done with here (so a revoke does
    not wait for it) but never counts as acked."""
    if message.generation_id == self.app.consumer_generation_id and message not in _held_back:
        return bool(_applied["ack"](self, message))
    with ack_lock:
        if not message.acked:
            message.acked = True
            self._unacked_messages.discard(message)
    return False


def _new_offset(self: Any, tp: Any) -> int | None:
    """faust's ``Consumer._new_offset`` (the offset to commit for ``tp``) without its off-by-one and
    without its read gaps (fix 6): the lowest offset not yet committed must itself be acked."""
    self._gap.pop(tp, None)  # an offset the fetcher did not see may hold a record never processed
    acked = self._acked[tp]
    if not acked:
        return None
    acked.sort()
    committed = self._committed_offset[tp]
    gaps = self.__dict__.setdefault("oms_head_gaps", {})  # tp -> when its head was first seen missing
    if committed is None or acked[0] > committed:
        # None: the group never committed here, and the partition's first offset is not known yet
        # (heal_dropped_records asks the broker): a record before acked[0] may have been dropped.
        gaps.setdefault(tp, time.monotonic())
        return None
    gaps.pop(tp, None)
    batch = next(consecutive_numbers(acked))
    acked[: len(batch)] = []
    self._acked_index[tp].difference_update(batch)
    return int(batch[-1]) + 1


def committed_offset(consumer: Any, tp: Any) -> int | None:
    """The group's committed offset of ``tp`` (the next to read) as faust last read or wrote it;
    None when the group never committed there."""
    offset = consumer._committed_offset.get(tp)
    return None if offset is None else int(offset)


FirstOffset = Callable[[str, int, int], Awaitable[int | None]]
"""(topic, partition, offset) -> the offset of the first record the broker holds at or after it, or
None when it holds none there (``admin.first_record_offset``)."""


async def heal_dropped_records(
    consumer: Any, first_offset: FirstOffset, now: float | None = None
) -> list[Any]:
    """Read again, from its committed offset, every partition whose head has stayed unacked for
    ``HEAL_AFTER_S``, so the records a rebalance dropped are processed; returns those partitions.
    A partition the group never committed is left to ``settle_uncommitted``.

    If the head is still missing after such a re-read, the broker is asked what it holds there.
    Offsets it holds no record at (a transaction marker, compaction, retention) count as acked and
    are committed past. A record
    that is there is never committed past, however long it takes to process: it is read again."""
    gaps: dict[Any, float] = consumer.__dict__.setdefault("oms_head_gaps", {})
    reread: dict[Any, int] = consumer.__dict__.setdefault("oms_reread", {})  # tp -> offset re-read from
    now = time.monotonic() if now is None else now
    healed = []
    assigned = consumer.assignment()
    for tp, since in list(gaps.items()):
        if tp not in assigned:  # revoked since: the new owner reads from its committed offset
            gaps.pop(tp, None)
            continue
        committed = consumer._committed_offset.get(tp)
        if committed is None:  # never committed: settle_uncommitted gives it the log's start
            continue
        if now - since < HEAL_AFTER_S:
            continue
        gaps.pop(tp, None)
        acked = consumer._acked[tp]
        if reread.get(tp) == committed and acked:
            topic, partition = tp
            first = await first_offset(topic, partition, committed)
            if first is None or first > committed:
                end = acked[0] if first is None else min(first, acked[0])
                log.warning("%s: offsets %d-%d hold no record; committing past them", tp, committed, end - 1)
                absent = set(range(committed, end)) - consumer._acked_index[tp]
                acked.extend(absent)  # as if processed: there is nothing there to process
                consumer._acked_index[tp].update(absent)
                continue
            log.warning("%s: offset %d is on the broker and still not processed", tp, committed)
        log.warning("%s: offset %d was never processed; reading the partition again from it", tp, committed)
        try:
            await consumer.seek(tp, committed)
        except Exception as error:  # e.g. revoked by a rebalance under way: its new owner reads it
            log.warning("%s: not read again (%r)", tp, error)
            continue
        reread[tp] = committed
        healed.append(tp)
    return healed


async def settle_uncommitted(consumer: Any, first_offset: FirstOffset) -> list[Any]:
    """Give every assigned partition the group never committed, with acks waiting, the first offset
    the broker holds as its committed one (fix 6): commits then start from there, never from
    whichever offset happened to be acked first. No seek: safe while a rebalance is under way, when
    new partitions are most likely to be met (a new deployment's first minutes)."""
    gaps: dict[Any, float] = consumer.__dict__.setdefault("oms_head_gaps", {})
    assigned = consumer.assignment()
    settled = []
    for tp in list(gaps):
        if tp not in assigned or consumer._committed_offset.get(tp) is not None:
            continue
        first = await first_offset(tp[0], tp[1], 0)
        if first is not None and consumer._committed_offset.get(tp) is None:
            consumer._committed_offset[tp] = first
            gaps.pop(tp, None)  # the next commit compares with it
            settled.append(tp)
    return settled


async def reread_standing(consumer: Any, tps: list[Any]) -> list[Any]:
    """Fix 4: resume (if faust dropped it from its fetched partitions) and read again from its
    committed offset every partition of ``tps`` still assigned; returns those read again."""
    active = consumer._get_active_partitions()
    assigned = consumer.assignment()
    reread = []
    for tp in tps:
        committed = consumer._committed_offset.get(tp)
        if committed is None or tp not in assigned:
            continue
        fetched = tp in active
        log.warning(
            "%s: records waiting and no progress from offset %d (read mark %s, %s); reading it again",
            tp,
            committed,
            consumer._read_offset.get(tp),
            "fetched" if fetched else "not fetched: resumed",
        )
        if not fetched:
            consumer.resume_partitions({tp})
        try:
            await consumer.seek(tp, committed)
        except Exception as error:  # e.g. revoked by a rebalance under way: its new owner reads it
            log.warning("%s: not read again (%r)", tp, error)
            continue
        reread.append(tp)
    return reread
