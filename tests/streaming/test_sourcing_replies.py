"""The saga never waits forever: unanswered commands are sent again on a timer and after a rebalance,
an attempt whose reserve is never answered is given up (its holds released, the order planned again),
and a late answer to it gives its units back. A clock the test moves stands in for time."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from oms_streams.api.http import sourcing_view
from oms_streams.api.models import SourcingView
from oms_streams.domain.transit import TransitModel
from oms_streams.streaming import sourcing_runtime
from oms_streams.streaming.sourcing_runtime import MAX_ATTEMPTS, SourcingRuntime
from tests.streaming.test_orders_runtime import FakeEvent
from tests.streaming.test_sourcing_runtime import TOPICS, Harness

TIMEOUT_S = 30  # the default reply timeout; 3 sends before an attempt is given up


class Clock:
    def __init__(self) -> None:
        self.ms = int(datetime.now(UTC).timestamp() * 1000)

    def __call__(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(sourcing_runtime, "now_ms", clock)
    return clock


def check(h: Harness) -> int:
    """The reply timer, then what it sent to the answers topic read back, as the worker does."""
    acted = asyncio.run(h.saga.check_replies())
    timeouts = [(k, v) for t, k, v in h.sent if t == TOPICS.replies]
    h.sent[:] = [sent for sent in h.sent if sent[0] != TOPICS.replies]
    for key, value in timeouts:
        h.run(FakeEvent(TOPICS.replies, key, value))
    return acted


def row(h: Harness, order_id: str) -> Any:
    return h.saga.lookup(order_id)


def counter(h: Harness, name: str, *labels: str) -> float:
    metric = getattr(h.metrics, name)
    return float((metric.labels(*labels) if labels else metric)._value.get())


def test_an_unanswered_reserve_is_sent_again_with_the_same_ids_and_its_answer_allocates(clock: Clock):
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=5)
    h.place("ORDER-1", {"SKU-TENT": 1})
    [command] = h.commands("reserve")
    h.take_sent()

    clock.advance(TIMEOUT_S - 1)
    assert check(h) == 0 and h.sent == []
    clock.advance(1)
    assert check(h) == 1

    [again] = h.commands("reserve")
    assert again == {**command, "occurred_at": again["occurred_at"]}
    assert counter(h, "sourcing_resends", "reserve", "timeout") == 1
    [waiting] = row(h, "ORDER-1").outstanding
    assert (waiting["sends"], waiting["sent_ms"] - waiting["since_ms"]) == (2, TIMEOUT_S * 1000)

    h.run(h.answer(command, "reserved", 4))

    [outcome] = h.on("sourced")
    assert outcome["outcome"] == "allocated" and outcome["attempts"] == 1
    assert row(h, "ORDER-1").outstanding == []
    h.take_sent()
    # The answer to the second copy is a repeat: nothing released, the same round at most again.
    h.run(h.answer(again, "reserved", 4))
    assert h.commands() == [] and [o["event_id"] for o in h.on("sourced")] == [outcome["event_id"]]


def test_the_order_view_shows_what_waits_for_an_answer_since_when_and_how_often_it_was_sent(clock: Clock):
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=5)
    h.place("ORDER-1", {"SKU-TENT": 1})
    clock.advance(TIMEOUT_S)
    check(h)

    view = sourcing_view(SimpleNamespace(sourcing=h.saga), "ORDER-1")

    assert view is not None
    SourcingView.model_validate(view)
    [waiting] = view["outstanding"]
    assert waiting["kind"] == "reserve" and waiting["sku"] == "SKU-TENT" and waiting["sends"] == 2
    since, last_sent = (datetime.fromisoformat(waiting[k]) for k in ("since", "last_sent"))
    assert last_sent - since == timedelta(seconds=TIMEOUT_S)


def test_an_attempt_never_answered_is_given_up_its_holds_released_and_the_order_planned_again(clock: Clock):
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=5)
    h.stock("SKU-STOVE", DC_NORTH=5)
    h.place("ORDER-1", {"SKU-TENT": 1, "SKU-STOVE": 1})
    first = {c["sku"]: c for c in h.commands("reserve")}
    h.run(h.answer(first["SKU-STOVE"], "reserved", 4))  # the tent's ledger never answers
    h.take_sent()

    for _ in range(3):  # the first send and two more, each waited for in full
        clock.advance(TIMEOUT_S)
        check(h)

    releases = {c["sku"]: c for c in h.commands("release")}
    assert {c["reservation_id"] for c in releases.values()} == {"ORDER-1/1"}
    # The stove's hold, and whatever the unanswered tent reserve may hold, named so that the ledger
    # refuses that reserve if it comes in after the release.
    assert [line["location_id"] for line in releases["SKU-TENT"]["lines"]] == ["DC-NORTH"]
    assert set(releases) == {"SKU-TENT", "SKU-STOVE"}
    assert {c["reservation_id"] for c in h.commands("reserve")[-2:]} == {"ORDER-1/2"}
    assert counter(h, "sourcing_attempt_timeouts") == 1
    assert counter(h, "sourcing_resends", "reserve", "timeout") == 2
    waiting = {(e["kind"], e["reservation_id"]) for e in row(h, "ORDER-1").outstanding}
    assert waiting == {("release", "ORDER-1/1"), ("reserve", "ORDER-1/2")}

    # The second attempt is answered: allocated; the releases' answers settle what was waiting.
    second = [c for c in h.commands("reserve") if c["reservation_id"] == "ORDER-1/2"]
    h.run(
        *(h.answer(c, "reserved", 4) for c in second), *(h.answer(c, "released") for c in releases.values())
    )
    [outcome] = h.on("sourced")
    assert outcome["outcome"] == "allocated" and outcome["attempts"] == 2
    assert row(h, "ORDER-1").outstanding == []
    h.take_sent()

    # A late answer of the given-up attempt: what it holds goes back.
    h.run(h.answer(first["SKU-TENT"], "reserved", 3))

    [stray] = h.commands("release")
    assert (stray["reservation_id"], stray["sku"]) == ("ORDER-1/1", "SKU-TENT")
    assert [e["kind"] for e in row(h, "ORDER-1").outstanding] == ["release"]  # until it is answered


def test_an_order_whose_ledger_never_answers_is_rejected_after_the_last_attempt_with_the_reason(
    clock: Clock,
):
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=5)
    h.place("ORDER-1", {"SKU-TENT": 1})
    for _ in range(3 * MAX_ATTEMPTS):
        clock.advance(TIMEOUT_S)
        check(h)

    [outcome] = h.on("sourced")
    assert outcome["outcome"] == "rejected" and outcome["attempts"] == MAX_ATTEMPTS
    assert (
        outcome["reason"] == f"no answer from the ledger of SKU-TENT: gave up after {MAX_ATTEMPTS} attempts"
    )
    # Every attempt's release still waits for its answer: no hold is left without an owner.
    waiting = row(h, "ORDER-1").outstanding
    assert {e["kind"] for e in waiting} == {"release"} and len(waiting) == MAX_ATTEMPTS


def test_the_timer_decides_nothing_itself_and_a_rejection_lost_in_a_crash_is_published_again(
    clock: Clock,
):
    # The timer's give-up travels as a record on the answers topic; the owner decides on reading it.
    # Stored and then lost with the process before its outcome left, the decision is read again.
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=5)
    h.place("ORDER-1", {"SKU-TENT": 1})
    last: tuple[bytes, bytes] | None = None
    while not h.on("sourced"):
        clock.advance(TIMEOUT_S)
        asyncio.run(h.saga.check_replies())
        timeouts = [(k, v) for t, k, v in h.sent if t == TOPICS.replies]
        assert all(json.loads(v)["replies"][0]["kind"] == "timeout" for _, v in timeouts)
        h.sent[:] = [sent for sent in h.sent if sent[0] != TOPICS.replies]
        assert row(h, "ORDER-1").status == "reserving"  # nothing decided by the timer
        for key, value in timeouts:
            last = (key, value)
            h.run(FakeEvent(TOPICS.replies, key, value))
    assert last is not None and [o["outcome"] for o in h.on("sourced")] == ["rejected"]
    h.take_sent()  # the outcome lost with the process; the row stored
    restarted = SourcingRuntime(
        h.sourcing_table, h.network, h.view, TransitModel(), TOPICS, h._produce, h.metrics
    )

    asyncio.run(restarted.apply_batch([FakeEvent(TOPICS.replies, *last)]))

    [again] = h.on("sourced")
    assert (again["outcome"], again["attempts"]) == ("rejected", MAX_ATTEMPTS)


def test_a_release_and_fulfils_wait_for_their_answers_and_are_sent_again(clock: Clock):
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=5)
    h.place("ORDER-1", {"SKU-TENT": 2})
    [command] = h.commands("reserve")
    h.run(h.answer(command, "reserved", 3))
    h.take_sent()
    handed_over = datetime.now(UTC) - timedelta(minutes=10)  # the WMS reports it late
    shipped = {
        "event_id": "handover",
        "occurred_at": handed_over.isoformat(),
        "source": "wms",
        "order_id": "ORDER-1",
        "kind": "handed_to_carrier",
        "location_id": "DC-NORTH",
    }
    h.run(FakeEvent("fulfilment", b"ORDER-1", json.dumps(shipped).encode()))
    [fulfil] = h.commands("fulfil")
    h.take_sent()
    # The ledger takes the units off at the handover's time: a count since then left them out.
    assert datetime.fromisoformat(fulfil["occurred_at"]) == handed_over.replace(
        microsecond=handed_over.microsecond // 1000 * 1000
    )

    clock.advance(TIMEOUT_S)
    check(h)
    assert h.commands("fulfil") == [fulfil]  # the same command, at the same time
    assert counter(h, "sourcing_resends", "fulfil", "timeout") == 1

    h.run(h.answer(fulfil, "fulfilled"))
    assert row(h, "ORDER-1").outstanding == []
    assert len(h.saga.watch) == 0


def test_after_a_rebalance_every_unanswered_command_is_sent_again_not_only_reserves(clock: Clock):
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=5, DC_SOUTH=5)
    h.stock("SKU-STOVE", DC_NORTH=5)
    h.place("ORDER-1", {"SKU-TENT": 1, "SKU-STOVE": 1})
    first = {c["sku"]: c for c in h.commands("reserve")}
    # The stove is held, the tent refused: the stove's hold is released and attempt 2 asks again;
    # then the worker dies before any answer.
    h.run(h.answer(first["SKU-STOVE"], "reserved", 4), h.answer(first["SKU-TENT"], "refused", 0))
    h.take_sent()
    fresh = SourcingRuntime(
        h.sourcing_table, h.network, h.view, TransitModel(), TOPICS, h._produce, h.metrics
    )

    resent = asyncio.run(fresh.reload())

    assert sorted((c["kind"], c["reservation_id"], c["sku"]) for c in h.commands()) == [
        ("release", "ORDER-1/1", "SKU-STOVE"),
        ("reserve", "ORDER-1/2", "SKU-STOVE"),
        ("reserve", "ORDER-1/2", "SKU-TENT"),
    ]
    assert resent == 3
    assert counter(h, "sourcing_resends", "release", "reload") == 1
    assert counter(h, "sourcing_resends", "reserve", "reload") == 2
    assert len(fresh.watch) == 1  # and its timer looks at the order again in one timeout


def test_a_row_written_before_commands_were_recorded_has_its_pending_reserves_sent_again(clock: Clock):
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=5)
    h.place("ORDER-1", {"SKU-TENT": 1})
    [command] = h.commands("reserve")
    h.take_sent()
    old = json.loads(h.sourcing_table["ORDER-1"])
    del old["outstanding"]
    h.sourcing_table["ORDER-1"] = json.dumps(old).encode()
    fresh = SourcingRuntime(
        h.sourcing_table, h.network, h.view, TransitModel(), TOPICS, h._produce, h.metrics
    )

    assert asyncio.run(fresh.reload()) == 1

    assert h.commands() == [{**command, "occurred_at": h.commands()[0]["occurred_at"]}]
    [waiting] = fresh.lookup("ORDER-1").outstanding
    assert (waiting["kind"], waiting["sends"]) == ("reserve", 1)  # a reload's send is not counted


def test_re_sends_after_rebalances_restart_the_timeout_but_do_not_give_the_attempt_up(clock: Clock):
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=5)
    h.place("ORDER-1", {"SKU-TENT": 1})
    saga = h.saga
    for _ in range(3):  # a burst of rebalances, each a few seconds after the last
        clock.advance(5)
        saga = SourcingRuntime(
            h.sourcing_table, h.network, h.view, TransitModel(), TOPICS, h._produce, h.metrics
        )
        asyncio.run(saga.reload())
    h.take_sent()

    clock.advance(TIMEOUT_S - 1)
    assert asyncio.run(saga.check_replies()) == 0  # the timeout runs from the last send
    clock.advance(1)
    asyncio.run(saga.check_replies())

    assert [c["reservation_id"] for c in h.commands()] == ["ORDER-1/1"]  # sent again, not given up
    assert counter(h, "sourcing_attempt_timeouts") == 0
