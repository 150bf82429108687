"""Booking a courier slot at placement, as the owner of the store's slots decides it (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise

from oms_streams.domain.calendar import MS_PER_MINUTE
from oms_streams.domain.network import Calendar
from oms_streams.domain.promise_courier import book_slot, day_slots

HOUR = 60 * MS_PER_MINUTE
AMSTERDAM = Calendar(timezone="Europe/Amsterdam")  # open around the clock
NOON = int(datetime(2026, 12, 8, 11, 0, tzinfo=UTC).timestamp() * 1000)  # 12:00 in Amsterdam


def test_the_day_s_slots_start_at_the_slot_holding_the_moment_and_end_with_the_local_day() -> None:
    slots = day_slots(AMSTERDAM, 120, NOON + 30 * MS_PER_MINUTE)
    assert slots[0] == NOON and slots[-1] == NOON + 10 * HOUR  # 22:00-24:00 is the last
    assert all(b - a == 2 * HOUR for a, b in pairwise(slots))


def test_the_chosen_slot_is_booked_while_it_has_room() -> None:
    booking = book_slot({NOON: ["O-1"]}, "O-2", NOON, [NOON, NOON + 2 * HOUR], 2)
    assert (booking.status, booking.slot_ms) == ("booked", NOON)


def test_a_full_slot_gives_the_next_slot_of_the_day_with_room() -> None:
    booked = {NOON: ["O-1", "O-2"], NOON + 2 * HOUR: ["O-3", "O-4"]}
    booking = book_slot(booked, "O-5", NOON, [NOON, NOON + 2 * HOUR, NOON + 4 * HOUR], 2)
    assert (booking.status, booking.slot_ms) == ("moved", NOON + 4 * HOUR)


def test_no_earlier_slot_is_offered_and_a_full_day_is_refused_with_the_reason() -> None:
    booked = {NOON: ["O-1"]}
    booking = book_slot(booked, "O-2", NOON, [NOON - 2 * HOUR, NOON], 1)
    assert booking.status == "refused" and booking.slot_ms is None
    assert booking.reason == (
        "courier slot full: the chosen slot and every later one that day are booked (1 deliveries per slot)"
    )


def test_an_order_that_holds_a_slot_keeps_it_however_often_it_asks() -> None:
    booked = {NOON: ["O-1"], NOON + 2 * HOUR: ["O-2"]}
    assert book_slot(booked, "O-2", NOON, [NOON, NOON + 2 * HOUR], 1).status == "moved"
    assert book_slot(booked, "O-1", NOON, [NOON], 1).slot_ms == NOON
