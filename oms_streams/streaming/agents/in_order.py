"""Each partition's records reach an agent's runtime in offset order, none left out.

In a rebalance faust can leave records of a partition out of a stream (fetched while its flow was
suspended, or tagged with an older generation) and go on with the ones after them. The faust fixes
make sure such records are read again (``faust_fixes`` 3 and 4: nothing is committed past them), but
only later, after records that came after them. Most runtimes do not mind (idempotent, keyed by
event id); some do: an order's versions are ordered by arrival (``sourcing_edits``), so an edit
handed on before the placement it edits became the order's first version, and the placement, read
again later, an edit (seen by the chaos run: an edit never answered, the order sourced as placed).

So an agent hands on a partition's records only in offset order, from the offset its generation
started at (the group's committed one, asked of the broker when faust has not read it yet, as
before its seek after a rebalance; the first the broker holds where the group never committed): a
record past the next expected offset is held back, with the rest of its partition in the batch,
and the partition is read again from the expected offset, unless the broker holds nothing in
between (a transaction marker, retention); a record below it was handed on already in this
generation and is not handed on twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from oms_streams.streaming import faust_fixes
from oms_streams.streaming.faust_fixes import FirstOffset

log = logging.getLogger(__name__)

GroupOffsets = Callable[[list[tuple[str, int]]], Awaitable[dict[Any, int]]]
"""[(topic, partition)] -> {(topic, partition): the group's committed offset}, for those it has."""

RESEEK_AFTER_S = 5.0
"""How long a partition read again waits for its expected record before it is read again once more
(a batch fetched before the seek may still be on its way; a re-read lost in its turn is not)."""


class InOrder:
    def __init__(
        self,
        app: Any,
        first_offset: FirstOffset,
        group_offsets: GroupOffsets,
        on_reread: Callable[[str], None],
    ) -> None:
        self.app = app
        self.first_offset = first_offset
        self.group_offsets = group_offsets
        self.on_reread = on_reread
        self._generation: int | None = None
        self._expected: dict[Any, int] = {}
        """Partition -> the offset of the next record to hand on, in this generation."""
        self._sought: dict[Any, float] = {}
        """Partition read again from its expected offset -> when (monotonic)."""

    async def admit(self, events: Sequence[Any]) -> list[Any]:
        """The events to hand on, in order; the others come again (or came before)."""
        generation = self.app.consumer_generation_id
        if generation != self._generation:  # a new generation reads from the committed offsets
            self._generation = generation
            self._expected.clear()
            self._sought.clear()
        await self._start_new_partitions(events)
        admitted = []
        held: set[Any] = set()
        for event in events:
            message = event.message
            tp = message.tp
            if tp in held:
                faust_fixes.hold_back(message)  # comes again: no commit may pass it meanwhile
                continue
            expected = self._expected.get(tp)
            if expected is not None and message.offset < expected:
                continue  # handed on in this generation already (a re-read of its partition)
            if (
                expected is not None
                and message.offset > expected
                and not await self._nothing_between(tp, expected, message.offset)
            ):
                held.add(tp)  # with the rest of its partition in this batch: it comes again
                faust_fixes.hold_back(message)
                continue
            self._expected[tp] = message.offset + 1
            self._sought.pop(tp, None)
            admitted.append(event)
        return admitted

    async def _start_new_partitions(self, events: Sequence[Any]) -> None:
        """The expected offset of each partition met for the first time in this generation: the
        group's committed offset, or the first the broker holds if the group never committed there.
        (faust forgets its committed offsets at a revoke and reads them again at its seek; records
        can come before.)"""
        new = {event.message.tp for event in events} - self._expected.keys()
        unknown = []
        for tp in new:
            committed = faust_fixes.committed_offset(self.app.consumer, tp)
            if committed is None:
                unknown.append(tp)
            else:
                self._expected[tp] = committed
        if not unknown:
            return
        try:
            group = await self.group_offsets([(tp.topic, tp.partition) for tp in unknown])
            never = [tp for tp in unknown if (tp.topic, tp.partition) not in group]
            starts = await self.app.consumer.earliest_offsets(*never) if never else {}
        except Exception as error:  # unknown: the first record met is taken as the start
            log.warning("where %s start is not known (%r)", sorted(unknown), error)
            return
        for tp in unknown:
            start = group.get((tp.topic, tp.partition), starts.get(tp))
            if start is not None:
                self._expected[tp] = int(start)

    async def _nothing_between(self, tp: Any, expected: int, offset: int) -> bool:
        """Whether the broker holds no record from ``expected`` up to ``offset``; if it does, the
        partition is read again from ``expected`` (once per ``RESEEK_AFTER_S``)."""
        since = self._sought.get(tp)
        if since is not None and time.monotonic() - since < RESEEK_AFTER_S:
            return False  # read again already: what it reads is on its way
        try:
            first = await self.first_offset(tp.topic, tp.partition, expected)
        except Exception as error:  # unknown: read it again, which is always safe
            log.warning("%s: what the broker holds from offset %d is not known (%r)", tp, expected, error)
            first = expected
        if first is None or first >= offset:
            return True
        log.warning(
            "%s: offset %d came before offset %d was handed on; reading the partition again from it",
            tp,
            offset,
            expected,
        )
        try:
            await self.app.consumer.seek(tp, expected)
        except Exception as error:  # e.g. revoked by a rebalance under way: its new owner reads it
            log.warning("%s: not read again (%r)", tp, error)
        self._sought[tp] = time.monotonic()
        self.on_reread(tp.topic)
        return False
