"""Courier capacity at placement, without a broker: the slots' owner books, moves or refuses.

One sourcing runtime plays both parts (the order's owner and the owner of the store's slots); the
harness carries the records it sends on ``courier-slots`` back to it, as the broker would.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import oms_streams.streaming.sourcing_runtime as sourcing_runtime
from oms_streams.adapters.timestamps import epoch_ms
from oms_streams.domain.promise_courier import book_slot
from oms_streams.domain.transit import TransitModel
from oms_streams.streaming.promise_service import CourierBookings
from oms_streams.streaming.sourcing_runtime import SourcingRuntime
from tests.integration.test_courier_slots import STORE, courier_option
from tests.streaming.test_cancellation_runtime import TOPICS as CANCELLATION_TOPICS
from tests.streaming.test_orders_runtime import UTRECHT_HOME, FakeEvent
from tests.streaming.test_sourcing_runtime import Harness as SagaHarness

TOPICS = replace(CANCELLATION_TOPICS, courier_slots="courier-slots", courier_bookings="bookings")
EVENING = datetime(2026, 12, 8, 19, 0, tzinfo=UTC)  # 20:00 in Utrecht: the day's last slot but one
LAST = EVENING + timedelta(hours=2)  # 22:00-24:00 in Utrecht


class Harness(SagaHarness):
    def __init__(self) -> None:
        super().__init__()
        self.slots: dict[str, bytes] = {}
        self.saga = SourcingRuntime(
            self.sourcing_table,
            self.network,
            self.view,
            TransitModel(),
            TOPICS,
            self._produce,
            self.metrics,
            slots=self.slots,
        )
        self.carried = 0

    def courier_placement(self, order_id: str, slot: datetime) -> FakeEvent:
        option = courier_option(slot)
        body = {
            "event_id": f"{order_id}-placed",
            "occurred_at": datetime.now(UTC).isoformat(),
            "source": "webshop",
            "order_id": order_id,
            "cart": option["shipments"][0]["lines"],
            "destination": UTRECHT_HOME,
            "option": option,
        }
        return FakeEvent("placed", order_id.encode(), json.dumps(body).encode())

    def carry(self) -> None:
        """Deliver the slot records sent since the last carry (requests, then their answers)."""
        while True:
            records = [(k, v) for t, k, v in self.sent if t == "courier-slots"][self.carried :]
            if not records:
                return
            self.carried += len(records)
            self.run(*(FakeEvent("courier-slots", key, value) for key, value in records))

    def outcome(self, order_id: str) -> dict[str, Any]:
        [answer] = [o for o in self.on("sourced") if o["order_id"] == order_id]
        return answer

    def bookings(self) -> CourierBookings:
        bookings = CourierBookings()
        bookings.on_records(
            [SimpleRecord(k, v) for t, k, v in self.sent if t == "bookings"]  # in order, tombstones too
        )
        return bookings


class SimpleRecord:
    def __init__(self, key: bytes, value: bytes | None) -> None:
        self.key, self.value = key, value


@pytest.fixture
def h() -> Harness:
    harness = Harness()
    harness.stock("SKU-TENT", STORE_UTRECHT_01=20)
    return harness


def book(h: Harness, *order_ids: str, slot: datetime = LAST) -> None:
    """Placements in one batch (they race), then the broker carries requests and answers."""
    h.run(*(h.courier_placement(order_id, slot) for order_id in order_ids))
    h.carry()
    for command in h.commands("reserve"):
        if command["order_id"] in order_ids:
            h.run(h.answer(command, "reserved", 10))


def test_a_courier_placement_books_its_slot_before_its_stock_is_sourced(h: Harness) -> None:
    h.run(h.courier_placement("O-1", LAST))
    assert h.commands("reserve") == []  # nothing reserved until the slot is booked
    [request] = [json.loads(v) for t, k, v in h.sent if t == "courier-slots"]
    assert request["kind"] == "book" and request["store_id"] == STORE

    h.carry()
    [reserve] = h.commands("reserve")
    h.run(h.answer(reserve, "reserved", 10))
    outcome = h.outcome("O-1")
    assert outcome["outcome"] == "allocated"
    assert outcome["courier_slot"] == {
        "store_id": STORE,
        "requested_start": LAST.isoformat(),
        "slot_start": LAST.isoformat(),
        "slot_end": (LAST + timedelta(hours=2)).isoformat(),
        "moved": False,
    }
    assert h.bookings().counts == {(STORE, epoch_ms(LAST)): 1}


def test_two_placements_racing_for_the_last_place_of_a_slot_one_gets_it_the_other_the_next_slot(
    h: Harness,
) -> None:
    book(h, "O-1", "O-2", "O-3", slot=EVENING)  # three of four places taken
    book(h, "O-A", "O-B", slot=EVENING)  # both saw one place left

    a, b = h.outcome("O-A"), h.outcome("O-B")
    assert a["courier_slot"]["moved"] is False and a["courier_slot"]["slot_start"] == EVENING.isoformat()
    assert b["courier_slot"]["moved"] is True and b["courier_slot"]["slot_start"] == LAST.isoformat()
    assert b["outcome"] == "allocated"
    row = h.saga.lookup("O-B")
    assert row is not None and row.window_start_ms == epoch_ms(LAST)  # its allocation's window
    assert h.bookings().counts == {(STORE, epoch_ms(EVENING)): 4, (STORE, epoch_ms(LAST)): 1}
    assert h.metrics.courier_slots.labels("moved")._value.get() == 1


def test_racing_for_the_last_place_of_the_day_one_is_refused_with_the_reason_and_holds_nothing(
    h: Harness,
) -> None:
    book(h, "O-1", "O-2", "O-3")
    h.sent.clear()
    h.carried = 0
    book(h, "O-A", "O-B")

    assert h.outcome("O-A")["outcome"] == "allocated"
    refused = h.outcome("O-B")
    assert (refused["outcome"], refused["round"], refused["courier_slot"]) == ("rejected", 0, None)
    assert refused["reason"].startswith("courier slot full: the chosen slot and every later one that day")
    assert [c["order_id"] for c in h.commands("reserve")] == ["O-A"]  # O-B asked for no stock
    assert h.metrics.courier_slots.labels("refused")._value.get() == 1


def test_a_repeated_request_is_answered_as_the_first_time_and_books_once(h: Harness) -> None:
    book(h, "O-1")
    [request] = [(k, v) for t, k, v in h.sent if t == "courier-slots" and b'"book"' in v]
    h.run(FakeEvent("courier-slots", *request))  # read again after a crash
    assert json.loads(h.slots[STORE])["slots"] == {str(epoch_ms(LAST)): ["O-1"]}
    answers = [json.loads(v) for t, k, v in h.sent if t == "courier-slots" and k == b"O-1"]
    assert {a["event_id"] for a in answers} == {f"O-1:slot:booked:{epoch_ms(LAST)}"}


def test_a_cancelled_courier_order_gives_its_slot_back(h: Harness, monkeypatch: Any) -> None:
    monkeypatch.setattr(sourcing_runtime, "now_ms", lambda: epoch_ms(datetime.now(UTC)))
    book(h, "O-1")
    body = {
        "event_id": "cancel-1",
        "occurred_at": datetime.now(UTC).isoformat(),
        "source": "customer-service",
        "order_id": "O-1",
        "reason": "changed my mind",
    }
    h.run(FakeEvent("cancellations", b"O-1", json.dumps(body).encode()))
    for command in h.commands("release"):
        h.run(h.answer(command, "released"))
    h.carry()

    assert json.loads(h.slots[STORE])["slots"] == {}
    assert h.bookings().counts == {(STORE, epoch_ms(LAST)): 0}  # the tombstone freed it
    book(h, "O-2", "O-3", "O-4", "O-5")
    assert all(h.outcome(o)["courier_slot"]["moved"] is False for o in ("O-2", "O-3", "O-4", "O-5"))


def test_book_slot_keeps_a_booked_order_where_it_is() -> None:
    booked = {1000: ["O-1"], 2000: []}
    assert book_slot(booked, "O-1", 1000, (1000, 2000), 1).status == "booked"
    assert book_slot(booked, "O-2", 1000, (1000, 2000), 1).slot_ms == 2000
    assert book_slot({1000: ["O-1"], 2000: ["O-3"]}, "O-2", 1000, (1000, 2000), 1).status == "refused"


def test_a_slot_request_or_answer_lost_is_asked_again_after_the_reply_timeout(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [int(datetime.now(UTC).timestamp() * 1000)]
    monkeypatch.setattr(sourcing_runtime, "now_ms", lambda: now[0])
    h.run(h.courier_placement("O-1", LAST))
    [lost] = [(k, v) for t, k, v in h.sent if t == "courier-slots"]
    h.sent.clear()  # the request never reached the slots' owner

    now[0] += 29_000
    asyncio.run(h.saga.check_replies())
    assert [t for t, _, _ in h.sent if t == "courier-slots"] == []  # not yet overdue

    now[0] += 2_000
    asyncio.run(h.saga.check_replies())
    [again] = [(k, v) for t, k, v in h.sent if t == "courier-slots"]
    assert again[0] == lost[0] and json.loads(again[1])["event_id"] == json.loads(lost[1])["event_id"]
    assert h.metrics.sourcing_resends.labels("courier_slot", "timeout")._value.get() == 1

    h.carry()  # answered this time: booked, and the order's stock is sourced
    [reserve] = h.commands("reserve")
    h.run(h.answer(reserve, "reserved", 10))
    assert h.outcome("O-1")["outcome"] == "allocated"
    now[0] += 60_000
    h.sent.clear()
    asyncio.run(h.saga.check_replies())
    assert [t for t, _, _ in h.sent if t == "courier-slots"] == []  # answered: never asked again
