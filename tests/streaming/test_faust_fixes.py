"""faust's commit bookkeeping with our fix: never past a record that was not processed, and a
partition whose head a rebalance dropped is read again from its committed offset."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import pytest
from intervaltree import IntervalTree

from oms_streams.streaming import faust_fixes


class FakeConsumer:
    """What faust's ``Consumer._new_offset`` and our healer read and write."""

    def __init__(self, committed: int | None, acked: list[int]) -> None:
        self.tp = ("oms.inventory.movements.v1", 1)
        self._acked: dict[Any, list[int]] = defaultdict(list, {self.tp: list(acked)})
        self._acked_index: dict[Any, set[int]] = defaultdict(set, {self.tp: set(acked)})
        self._gap: dict[Any, IntervalTree] = defaultdict(IntervalTree)
        self._read_offset: dict[Any, int | None] = defaultdict(lambda: None)
        self._committed_offset: dict[Any, int | None] = {self.tp: committed}
        self.seeks: list[tuple[Any, int]] = []
        self.assigned = {self.tp}
        self.on_broker: list[int] = sorted({*acked, *([committed] if committed is not None else [])})
        """Offsets the broker holds a record at (the committed one too, unless a test says not)."""
        self.asked: list[tuple[str, int, int]] = []

    async def first_offset(self, topic: str, partition: int, offset: int) -> int | None:
        self.asked.append((topic, partition, offset))
        return next((o for o in self.on_broker if o >= offset), None)

    def heal(self, now: float) -> list[Any]:
        return asyncio.run(faust_fixes.heal_dropped_records(self, self.first_offset, now=now))

    def settle(self) -> list[Any]:
        return asyncio.run(faust_fixes.settle_uncommitted(self, self.first_offset))

    def assignment(self) -> set[Any]:
        return self.assigned

    async def seek(self, tp: Any, offset: int) -> None:
        if tp not in self.assigned:  # as aiokafka's IllegalStateError
            raise RuntimeError(f"No current assignment for partition {tp}")
        self.seeks.append((tp, offset))

    def new_offset(self) -> int | None:
        return faust_fixes._new_offset(self, self.tp)


def test_the_acked_run_is_committed_from_the_committed_offset():
    consumer = FakeConsumer(committed=4136, acked=[4136, 4137, 4138, 4140])

    assert consumer.new_offset() == 4139  # up to the first gap, as faust does
    assert consumer._acked[consumer.tp] == [4140]


def test_one_record_missing_at_the_head_is_never_committed_past():
    # committed is the next offset to read: 4136 was never processed. faust's own check
    # (min(acked) - committed > 1) let this through and the record was lost.
    consumer = FakeConsumer(committed=4136, acked=[4137, 4138, 4139])

    assert consumer.new_offset() is None
    assert consumer._acked[consumer.tp] == [4137, 4138, 4139]  # kept for when 4136 comes


def test_offsets_the_fetcher_did_not_see_are_not_committed_past_on_that_alone():
    # faust marks 10 and 11 as holding no record when its fetcher jumps from 9 to 12, which a batch
    # fetched before a seek back to 10 and delivered after it does: they may hold records never
    # processed (fix 6). Only the broker's answer (heal_dropped_records) lets a commit pass them.
    consumer = FakeConsumer(committed=10, acked=[12, 13])
    consumer._gap[consumer.tp].addi(10, 12)

    assert consumer.new_offset() is None
    assert consumer.tp not in consumer._gap  # faust's read gaps are not kept either


def test_acks_made_before_an_assignment_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    # A revoke forgets the acked offsets, then the suspended streams skip and ack what was queued:
    # those acks, of records nothing processed, must not let the next generation commit past them.
    consumer = FakeConsumer(committed=None, acked=[28, 29, 30])
    consumer.oms_head_gaps = {consumer.tp: 1.0}  # type: ignore[attr-defined]
    consumer._read_offset[consumer.tp] = 31  # handed on between the revoke and the assignment
    assigned: list[Any] = []

    async def faust_assigned(self: Any, tps: Any, generation_id: int = 0) -> None:
        self._committed_offset[self.tp] = 28  # faust seeks to the committed offsets from here on
        assigned.append((tps, generation_id, list(self._acked[self.tp])))

    monkeypatch.setitem(faust_fixes._applied, "on_partitions_assigned", faust_assigned)
    asyncio.run(faust_fixes._assigned_without_older_acks(consumer, {consumer.tp}, 9))

    assert assigned == [({consumer.tp}, 9, [])]
    assert consumer._read_offset[consumer.tp] is None  # 28-31 are not dropped when they come again
    assert consumer.new_offset() is None  # 28 is read again and acked before anything is committed
    assert not hasattr(consumer, "oms_reread")


def test_a_partition_never_committed_is_committed_from_the_brokers_first_offset():
    # A new group: faust knows no committed offset, so a commit check against it is none at all.
    # Records 3 and 4 dropped in a rebalance, 5 and 6 processed: committing 7 would lose 3 and 4.
    consumer = FakeConsumer(committed=None, acked=[5, 6])
    consumer.on_broker = [3, 4, 5, 6]
    assert consumer.new_offset() is None

    assert consumer.heal(now=1e12) == [] and consumer.seeks == []  # not the healer's: no seek
    consumer.settle()  # at once, rebalance or not: where does the log start?
    assert consumer.asked == [("oms.inventory.movements.v1", 1, 0)]
    assert consumer._committed_offset[consumer.tp] == 3 and consumer.seeks == []
    assert consumer.new_offset() is None  # 3 and 4 are read again (the head gap, as ever)
    consumer.heal(now=consumer.oms_head_gaps[consumer.tp] + faust_fixes.HEAL_AFTER_S)  # type: ignore[attr-defined]
    assert consumer.seeks == [(consumer.tp, 3)]


def test_a_partition_never_committed_whose_first_records_were_processed_commits_them():
    consumer = FakeConsumer(committed=None, acked=[0, 1, 2])
    assert consumer.new_offset() is None
    consumer.settle()

    assert consumer.new_offset() == 3


def test_a_head_left_unacked_is_read_again_from_the_committed_offset_after_a_while():
    consumer = FakeConsumer(committed=4136, acked=[4137])
    assert consumer.new_offset() is None
    since = consumer.oms_head_gaps[consumer.tp]  # type: ignore[attr-defined]

    early = consumer.heal(now=since + 1)
    assert early == [] and consumer.seeks == []  # a batch may still be on its way

    healed = consumer.heal(now=since + faust_fixes.HEAL_AFTER_S)
    assert healed == [consumer.tp] and consumer.seeks == [(consumer.tp, 4136)]


def test_the_head_acked_in_time_clears_the_alarm():
    consumer = FakeConsumer(committed=4136, acked=[4137])
    assert consumer.new_offset() is None
    consumer._acked[consumer.tp].append(4136)  # the batch holding it was acked after all

    assert consumer.new_offset() == 4138
    assert consumer.heal(now=1e12) == []


def test_a_head_still_missing_after_the_re_read_holds_no_record_and_is_committed_past():
    # E.g. a transaction marker at the committed offset: reading again cannot deliver it.
    consumer = FakeConsumer(committed=4136, acked=[4137])
    consumer.on_broker = [4137]
    assert consumer.new_offset() is None
    since = consumer.oms_head_gaps[consumer.tp]  # type: ignore[attr-defined]
    consumer.heal(now=since + faust_fixes.HEAL_AFTER_S)
    assert consumer.seeks == [(consumer.tp, 4136)] and consumer.asked == []

    assert consumer.new_offset() is None  # the re-read brought 4137 again, not 4136
    again = consumer.oms_head_gaps[consumer.tp]  # type: ignore[attr-defined]
    healed = consumer.heal(now=again + faust_fixes.HEAL_AFTER_S)

    assert consumer.asked == [("oms.inventory.movements.v1", 1, 4136)]  # the broker says: no record
    assert healed == [] and len(consumer.seeks) == 1  # no second seek
    assert consumer.new_offset() == 4138


def test_a_record_still_unprocessed_after_the_re_read_is_never_committed_past():
    # A slow batch (or a second drop): the broker holds 4136, so it is read again, not skipped.
    consumer = FakeConsumer(committed=4136, acked=[4137])
    assert consumer.new_offset() is None
    for _ in range(3):
        since = consumer.oms_head_gaps[consumer.tp]  # type: ignore[attr-defined]
        consumer.heal(now=since + faust_fixes.HEAL_AFTER_S)
        assert consumer.new_offset() is None
    assert consumer.seeks == [(consumer.tp, 4136)] * 3 and len(consumer.asked) == 2


def test_only_the_offsets_the_broker_holds_nothing_at_are_committed_past():
    consumer = FakeConsumer(committed=10, acked=[14])
    consumer.on_broker = [12, 14]  # 10 and 11 hold nothing; 12 is a record never processed
    assert consumer.new_offset() is None
    consumer.heal(now=consumer.oms_head_gaps[consumer.tp] + faust_fixes.HEAL_AFTER_S)  # type: ignore[attr-defined]
    assert consumer.new_offset() is None
    consumer.heal(now=consumer.oms_head_gaps[consumer.tp] + faust_fixes.HEAL_AFTER_S)  # type: ignore[attr-defined]

    assert consumer.new_offset() == 12  # past 10 and 11, not past 12
    consumer._committed_offset[consumer.tp] = 12  # as faust records the commit
    assert consumer.new_offset() is None and consumer.tp in consumer.oms_head_gaps  # type: ignore[attr-defined]


def test_a_partition_revoked_since_is_left_to_its_new_owner():
    consumer = FakeConsumer(committed=4136, acked=[4137])
    assert consumer.new_offset() is None
    consumer._committed_offset.pop(consumer.tp)  # faust forgets a revoked partition

    assert consumer.heal(now=1e12) == []
    assert consumer.seeks == []


def test_a_partition_no_longer_assigned_is_not_read_again():
    # Seen in a two-worker start: faust still held the partition's committed offset, the Kafka
    # consumer no longer held the partition, and the seek's error stopped the worker.
    consumer = FakeConsumer(committed=4136, acked=[4137])
    assert consumer.new_offset() is None
    consumer.assigned = set()

    assert consumer.heal(now=1e12) == []
    assert consumer.seeks == [] and consumer.oms_head_gaps == {}  # type: ignore[attr-defined]


def test_a_seek_that_fails_is_logged_not_raised():
    consumer = FakeConsumer(committed=4136, acked=[4137])
    assert consumer.new_offset() is None

    async def revoked_meanwhile(tp: Any, offset: int) -> None:
        raise RuntimeError(f"No current assignment for partition {tp}")

    consumer.seek = revoked_meanwhile  # type: ignore[method-assign]
    assert consumer.heal(now=1e12) == []
    assert consumer.new_offset() is None  # still not committed past, and tried again after a while


def test_the_fixes_refuse_to_start_on_a_faust_version_they_were_not_written_for(monkeypatch):
    monkeypatch.setattr(faust_fixes.faust, "__version__", "0.16.0")

    with pytest.raises(RuntimeError, match=r"faust-streaming 0\.16\.0 is not the version"):
        faust_fixes.apply(fetch_max_wait_ms=20)


class StandingConsumer(FakeConsumer):
    """A consumer after a takeover that left a partition out of the fetched ones (fix 4)."""

    def __init__(self, fetched: bool) -> None:
        super().__init__(committed=26, acked=[])
        self.active = {self.tp} if fetched else set()
        self._read_offset = {self.tp: 25}

    def _get_active_partitions(self) -> set[Any]:
        return self.active

    def resume_partitions(self, tps: set[Any]) -> None:
        self.active |= tps


@pytest.mark.parametrize("fetched", [True, False])
def test_a_standing_partition_is_fetched_again_and_read_from_its_committed_offset(fetched: bool) -> None:
    consumer = StandingConsumer(fetched)
    other = ("oms.orders.placed.v1", 2)  # no longer assigned: its new owner reads it
    assert asyncio.run(faust_fixes.reread_standing(consumer, [consumer.tp, other])) == [consumer.tp]
    assert consumer.active == {consumer.tp}
    assert consumer.seeks == [(consumer.tp, 26)]


class Message:
    def __init__(self, offset: int, generation_id: int) -> None:
        self.offset, self.generation_id, self.acked = offset, generation_id, False


class AckingConsumer:
    """What fix 5 reads and writes of faust's ``Consumer`` on the way to its own ``ack``."""

    def __init__(self, generation_id: int) -> None:
        self.app = type("App", (), {"consumer_generation_id": generation_id})()
        self._unacked_messages: set[Message] = set()
        self.faust_acked: list[int] = []


@pytest.fixture
def faust_ack(monkeypatch: pytest.MonkeyPatch) -> None:
    def ack(consumer: AckingConsumer, message: Message) -> bool:  # faust's, as far as it matters
        message.acked = True
        consumer._unacked_messages.discard(message)
        consumer.faust_acked.append(message.offset)
        return True

    monkeypatch.setitem(faust_fixes._applied, "ack", ack)


@pytest.mark.usefixtures("faust_ack")
def test_a_record_of_the_current_generation_is_acked_as_faust_does() -> None:
    consumer, message = AckingConsumer(generation_id=7), Message(41, generation_id=7)
    consumer._unacked_messages.add(message)

    assert faust_fixes._ack_current_generation(consumer, message) is True
    assert consumer.faust_acked == [41]


@pytest.mark.usefixtures("faust_ack")
def test_a_record_fetched_before_the_last_rebalance_is_never_acked_so_never_committed_past() -> None:
    # A stream skips a record of an older generation; faust acked it, and the group could commit
    # past a placement that source_orders never processed.
    consumer, message = AckingConsumer(generation_id=8), Message(41, generation_id=7)
    consumer._unacked_messages.add(message)

    assert faust_fixes._ack_current_generation(consumer, message) is False
    assert consumer.faust_acked == []  # not among the offsets a commit may pass
    assert message.acked and not consumer._unacked_messages  # and a revoke does not wait for it


@pytest.mark.usefixtures("faust_ack")
def test_a_record_an_agent_held_back_is_done_with_but_never_committed_past() -> None:
    # Fix 8: the agent keeps its partition in order and reads it again from an earlier offset;
    # faust acks the held-back record with its batch. Its copy read again counts instead.
    consumer = AckingConsumer(generation_id=7)
    held, again = Message(41, generation_id=7), Message(41, generation_id=7)
    consumer._unacked_messages.update({held, again})
    faust_fixes.hold_back(held)

    assert faust_fixes._ack_current_generation(consumer, held) is False
    assert consumer.faust_acked == [] and held.acked and held not in consumer._unacked_messages
    assert faust_fixes._ack_current_generation(consumer, again) is True
    assert consumer.faust_acked == [41]


class SeekingConsumer(FakeConsumer):
    """A fetched batch handed on record by record, with seeks in between (fix 7)."""

    def __init__(self, batch: list[tuple[Any, int]]) -> None:
        super().__init__(committed=10, acked=[])
        self.other = ("oms.orders.placed.v1", 0)
        self.assigned = {self.tp, self.other}
        self.batch = batch

    async def faust_wait_next_records(self, timeout: float) -> Any:
        return self.batch, self.assigned

    async def faust_getmany(self, timeout: float) -> Any:
        await faust_fixes._fetch_noting_seeks(self, timeout)
        for tp, offset in self.batch:
            yield tp, Message(offset, generation_id=0)

    def _is_changelog_tp(self, tp: Any) -> bool:
        return "changelog" in tp[0]

    async def faust_seek(self, tp: Any, offset: int) -> None:
        self.seeks.append((tp, offset))

    async def faust_perform_seek(self) -> None:
        self.seeks.extend((tp, 10) for tp in sorted(self.assigned))


@pytest.fixture
def faust_seeks(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("getmany", "seek", "perform_seek"):
        monkeypatch.setitem(faust_fixes._applied, name, getattr(SeekingConsumer, f"faust_{name}"))
    monkeypatch.setitem(faust_fixes._applied, "_wait_next_records", SeekingConsumer.faust_wait_next_records)


@pytest.mark.usefixtures("faust_seeks")
@pytest.mark.parametrize("seek", ["one", "all"])
def test_records_fetched_before_a_seek_are_not_handed_on_after_it(seek: str) -> None:
    consumer = SeekingConsumer([])
    tp, other = consumer.tp, consumer.other
    consumer.batch = [(tp, 14), (other, 3), (tp, 15), (other, 4)]

    async def hand_on() -> list[tuple[Any, int]]:
        handed = []
        async for tp_, message in faust_fixes._getmany_after_seeks(consumer, 1.0):
            handed.append((tp_, message.offset))
            if message.offset == 14:  # fix 4 (one) or faust's recovery (all) seeks back while 15 is queued
                if seek == "one":
                    await faust_fixes._counted_seek(consumer, tp, 10)
                else:
                    await faust_fixes._counted_perform_seek(consumer)
        return handed

    handed = asyncio.run(hand_on())

    # 15 would have moved the read mark past 10-13, which the seek reads again: it is not handed on
    # (nor lost: it comes again after them). The other partition goes on unless it was sought too.
    assert handed == ([(tp, 14), (other, 3), (other, 4)] if seek == "one" else [(tp, 14)])
    assert consumer.oms_stale_skipped == (1 if seek == "one" else 3)  # type: ignore[attr-defined]
    assert (tp, 10) in consumer.seeks
    # The next batch, fetched after the seek, is handed on whole.
    consumer.batch = [(tp, 10), (tp, 11)]
    assert asyncio.run(hand_on()) == [(tp, 10), (tp, 11)]


@pytest.mark.usefixtures("faust_seeks")
def test_a_record_of_a_stream_below_the_read_mark_is_handed_on_not_dropped() -> None:
    # A seek faust did not make (or a batch it handed on before one) left the read mark past
    # records never processed: faust's drain would drop them and the partition would stand.
    changelog = ("oms-ledger-changelog", 0)
    consumer = SeekingConsumer([])
    consumer.batch = [(consumer.tp, 10), (changelog, 5)]
    consumer._read_offset.update({consumer.tp: 14, changelog: 9})

    async def hand_on() -> list[tuple[Any, int]]:
        return [(tp, m.offset) async for tp, m in faust_fixes._getmany_after_seeks(consumer, 1.0)]

    assert asyncio.run(hand_on()) == [(consumer.tp, 10), (changelog, 5)]
    assert consumer._read_offset[consumer.tp] is None  # so faust's drain hands 10 on
    assert consumer._read_offset[changelog] == 9  # a changelog's recovery keeps faust's own rule


@pytest.mark.usefixtures("faust_seeks")
def test_faust_s_seek_of_the_streams_leaves_a_changelog_s_batch_to_its_standby_table() -> None:
    # perform_seek seeks the stream partitions only: a changelog's records, fetched for a standby
    # table, are not read again, so none of them may be held back.
    changelog = ("oms-ledger-changelog", 0)
    consumer = SeekingConsumer([(("oms.inventory.movements.v1", 1), 14), (changelog, 5), (changelog, 6)])
    consumer.assigned = {consumer.tp, changelog}

    async def hand_on() -> list[tuple[Any, int]]:
        handed = []
        async for tp, message in faust_fixes._getmany_after_seeks(consumer, 1.0):
            handed.append((tp, message.offset))
            if message.offset == 14:
                await faust_fixes._counted_perform_seek(consumer)
        return handed

    assert asyncio.run(hand_on()) == [(consumer.tp, 14), (changelog, 5), (changelog, 6)]
