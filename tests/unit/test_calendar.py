"""Working time over opening hours, closed dates, weekly schedules and time zones."""

from __future__ import annotations

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from oms_streams.domain.calendar import (
    MS_PER_MINUTE,
    add_working_minutes,
    day_window,
    is_open,
    is_working_date,
    local_date,
    next_open,
    next_weekly,
    previous_weekly,
    subtract_working_minutes,
)
from oms_streams.domain.network import ALWAYS_OPEN, Calendar
from tests.unit.promise_builders import (
    AMS,
    ASCENSION_DAY,
    MON,
    NY,
    SUN,
    THU,
    TUE,
    WEEKDAYS,
    a_calendar,
    at,
    local,
    weekly,
)

STORE = a_calendar(extra={SUN: ("12:00", "17:00")})
"""Mon-Sat 09:00-18:00, Sun 12:00-17:00, Amsterdam."""
OFFICE = a_calendar(days=WEEKDAYS, closed=[ASCENSION_DAY])
"""Mon-Fri 09:00-18:00, closed on Ascension Day (Thursday 2024-05-09)."""
NEVER = Calendar(timezone=AMS, weekly=((),) * 7)


# --- opening -------------------------------------------------------------------------------------


def test_open_from_opening_until_just_before_closing():
    assert is_open(STORE, at("2024-05-06 09:00"))
    assert is_open(STORE, at("2024-05-06 17:59"))
    assert not is_open(STORE, at("2024-05-06 18:00"))
    assert not is_open(STORE, at("2024-05-06 08:59"))


def test_next_open_is_now_when_open_and_the_next_opening_when_closed():
    assert next_open(STORE, at("2024-05-06 10:00")) == at("2024-05-06 10:00")
    assert local(next_open(STORE, at("2024-05-06 18:00"))) == "2024-05-07 09:00"
    assert local(next_open(STORE, at("2024-05-11 19:00"))) == "2024-05-12 12:00"  # Sunday hours


def test_next_open_skips_a_public_holiday():
    assert local(next_open(OFFICE, at("2024-05-08 18:30"))) == "2024-05-10 09:00"


def test_a_calendar_that_never_opens_has_no_next_opening():
    assert next_open(NEVER, at("2024-05-06 10:00")) is None
    assert add_working_minutes(NEVER, at("2024-05-06 10:00"), 30) is None
    assert day_window(NEVER, at("2024-05-06 10:00")) is None


def test_is_working_date_needs_opening_hours_and_no_closure():
    assert is_working_date(OFFICE, date(2024, 5, 8))
    assert not is_working_date(OFFICE, ASCENSION_DAY)
    assert not is_working_date(OFFICE, date(2024, 5, 11))  # Saturday


# --- working minutes -----------------------------------------------------------------------------


def test_working_minutes_inside_one_day():
    assert local(add_working_minutes(STORE, at("2024-05-06 10:00"), 45)) == "2024-05-06 10:45"


def test_working_minutes_continue_at_the_next_opening():
    assert local(add_working_minutes(STORE, at("2024-05-06 17:30"), 45)) == "2024-05-07 09:15"


def test_work_finishing_exactly_at_closing_finishes_at_closing():
    assert local(add_working_minutes(STORE, at("2024-05-06 17:15"), 45)) == "2024-05-06 18:00"


def test_zero_minutes_from_a_closed_moment_is_the_next_opening():
    assert local(add_working_minutes(STORE, at("2024-05-06 22:00"), 0)) == "2024-05-07 09:00"


def test_working_minutes_skip_the_weekend_and_a_holiday():
    assert local(add_working_minutes(OFFICE, at("2024-05-10 17:00"), 120)) == "2024-05-13 10:00"
    assert local(add_working_minutes(OFFICE, at("2024-05-08 17:30"), 60)) == "2024-05-10 09:30"


def test_subtracting_working_minutes_goes_back_over_closed_time():
    assert local(subtract_working_minutes(OFFICE, at("2024-05-13 10:00"), 120)) == "2024-05-10 17:00"
    assert local(subtract_working_minutes(OFFICE, at("2024-05-10 09:30"), 60)) == "2024-05-08 17:30"


def test_subtracting_from_a_closed_moment_counts_back_from_the_closing():
    assert local(subtract_working_minutes(STORE, at("2024-05-06 20:00"), 30)) == "2024-05-06 17:30"
    assert local(subtract_working_minutes(STORE, at("2024-05-06 20:00"), 0)) == "2024-05-06 18:00"
    assert local(subtract_working_minutes(STORE, at("2024-05-07 09:00"), 0)) == "2024-05-07 09:00"


instants = st.integers(at("2024-03-01 00:00"), at("2024-12-01 00:00"))
work = st.integers(0, 3 * 24 * 60)


@given(t=instants, minutes=st.integers(1, 3 * 24 * 60))
def test_subtract_is_the_latest_start_that_still_finishes_in_time(t, minutes):
    start = subtract_working_minutes(OFFICE, t, minutes)
    assert start is not None
    assert add_working_minutes(OFFICE, start, minutes) <= t
    # One millisecond later would be too late.
    assert add_working_minutes(OFFICE, start + 1, minutes) > t


@given(t=instants, later=st.integers(0, 10 * 24 * 60), minutes=work)
def test_working_minutes_never_go_backwards(t, later, minutes):
    assert add_working_minutes(STORE, t, minutes) <= add_working_minutes(
        STORE, t + later * MS_PER_MINUTE, minutes
    )
    assert add_working_minutes(STORE, t, minutes) >= t + minutes * MS_PER_MINUTE


@given(t=instants)
def test_next_open_is_open(t):
    opens = next_open(STORE, t)
    assert opens >= t
    assert is_open(STORE, opens)


# --- weekly schedules ------------------------------------------------------------------------------

PICKUPS = weekly(WEEKDAYS, "18:00")


def test_next_weekly_at_exactly_the_time_is_that_time():
    assert next_weekly(PICKUPS, AMS, at("2024-05-06 18:00")) == at("2024-05-06 18:00")


def test_next_weekly_after_the_time_is_the_next_day():
    assert local(next_weekly(PICKUPS, AMS, at("2024-05-06 18:01"))) == "2024-05-07 18:00"


def test_next_weekly_skips_the_weekend_and_dates_closed_in_the_calendar():
    assert local(next_weekly(PICKUPS, AMS, at("2024-05-03 19:00"))) == "2024-05-06 18:00"
    assert local(next_weekly(PICKUPS, AMS, at("2024-05-08 19:00"), OFFICE)) == "2024-05-10 18:00"


def test_route_only_on_some_weekdays():
    departures = weekly((TUE, THU), "05:00")
    assert local(next_weekly(departures, AMS, at("2024-05-14 05:01"))) == "2024-05-16 05:00"
    assert local(previous_weekly(departures, AMS, at("2024-05-16 04:59"))) == "2024-05-14 05:00"


def test_previous_weekly_is_the_latest_at_or_before():
    assert previous_weekly(PICKUPS, AMS, at("2024-05-07 18:00")) == at("2024-05-07 18:00")
    assert local(previous_weekly(PICKUPS, AMS, at("2024-05-13 17:59"))) == "2024-05-10 18:00"
    assert local(previous_weekly(PICKUPS, AMS, at("2024-05-10 17:00"), OFFICE)) == "2024-05-08 18:00"


def test_an_empty_schedule_has_no_next_time():
    assert next_weekly((), AMS, at("2024-05-06 10:00")) is None
    assert previous_weekly((), AMS, at("2024-05-06 10:00")) is None


@given(t=instants)
def test_next_and_previous_weekly_bracket_the_moment(t):
    after, before = next_weekly(PICKUPS, AMS, t, OFFICE), previous_weekly(PICKUPS, AMS, t, OFFICE)
    assert before <= t <= after
    for instant in (after, before):
        assert local(instant)[-5:] == "18:00"
        assert is_working_date(OFFICE, local_date(AMS, instant))


# --- delivery windows ------------------------------------------------------------------------------

CARRIER = a_calendar(hours=("08:00", "21:00"), days=WEEKDAYS, closed=[ASCENSION_DAY])


def test_an_arrival_before_or_during_the_day_is_delivered_that_day():
    window = day_window(CARRIER, at("2024-05-07 06:00"))
    assert (local(window[0]), local(window[1])) == ("2024-05-07 08:00", "2024-05-07 21:00")
    assert day_window(CARRIER, at("2024-05-07 14:00")) == window
    assert day_window(CARRIER, at("2024-05-07 21:00")) == window


def test_an_arrival_after_the_day_is_delivered_the_next_working_day():
    window = day_window(CARRIER, at("2024-05-07 21:01"))
    assert local(window[0]) == "2024-05-08 08:00"


def test_no_deliveries_at_the_weekend_or_on_a_holiday():
    assert local(day_window(CARRIER, at("2024-05-11 10:00"))[0]) == "2024-05-13 08:00"
    assert local(day_window(CARRIER, at("2024-05-09 10:00"))[0]) == "2024-05-10 08:00"


# --- time zones and daylight saving -----------------------------------------------------------------


def test_local_dates_differ_between_new_york_and_amsterdam():
    instant = at("2024-05-06 02:00", "UTC")
    assert local_date(AMS, instant) == date(2024, 5, 6)
    assert local_date(NY, instant) == date(2024, 5, 5)


def test_weekly_times_follow_each_sites_own_clock():
    amsterdam = next_weekly(PICKUPS, AMS, at("2024-05-06 10:00", "UTC"))
    new_york = next_weekly(PICKUPS, NY, at("2024-05-06 10:00", "UTC"))
    assert local(amsterdam, "UTC") == "2024-05-06 16:00"
    assert local(new_york, "UTC") == "2024-05-06 22:00"


def test_opening_hours_keep_their_wall_clock_across_the_autumn_change():
    # Amsterdam goes from UTC+2 to UTC+1 in the night of Sunday 2024-10-27.
    friday = day_window(STORE, at("2024-10-25 10:00"))
    monday = day_window(STORE, at("2024-10-28 10:00"))
    assert (local(friday[0], "UTC"), local(monday[0], "UTC")) == ("2024-10-25 07:00", "2024-10-28 08:00")
    assert local(next_weekly(PICKUPS, AMS, at("2024-10-25 19:00"))) == "2024-10-28 18:00"


def test_a_round_the_clock_day_is_25_hours_long_when_the_clocks_go_back():
    always = Calendar(timezone=AMS)
    assert local(add_working_minutes(always, at("2024-10-26 12:00"), 24 * 60)) == "2024-10-27 11:00"
    assert local(add_working_minutes(always, at("2024-03-30 12:00"), 24 * 60)) == "2024-03-31 13:00"


def test_an_opening_time_that_does_not_exist_on_the_spring_change_does_not_crash():
    # 02:00-03:00 does not exist in Amsterdam on 2024-03-31: a time in the gap moves forward by the
    # gap (02:30 opens at 03:30), and an interval entirely inside it is empty that day.
    night = Calendar(timezone=AMS, weekly=(((150, 240),),) * 7)
    gone = Calendar(timezone=AMS, weekly=(((120, 180),),) * 7)
    assert local(next_open(night, at("2024-03-31 00:00"))) == "2024-03-31 03:30"
    assert local(next_open(gone, at("2024-03-31 00:00"))) == "2024-04-01 02:00"
    assert add_working_minutes(night, at("2024-03-31 00:00"), 30) == at("2024-03-31 04:00")


def test_an_ambiguous_time_on_the_autumn_change_is_read_as_the_first_one():
    pickups = ((SUN, 150),)  # 02:30 happens twice on 2024-10-27 in Amsterdam
    assert local(next_weekly(pickups, AMS, at("2024-10-26 12:00")), "UTC") == "2024-10-27 00:30"


@given(t=st.integers(at("2024-10-20 00:00"), at("2024-11-10 00:00")), minutes=work)
def test_new_york_working_minutes_around_its_dst_change_are_consistent(t, minutes):
    office = a_calendar(tz=NY, days=WEEKDAYS)
    done = add_working_minutes(office, t, minutes)
    assert subtract_working_minutes(office, done, minutes) >= t
    # Work always finishes inside New York office hours on a weekday, whichever offset is in force.
    finished = local(done, NY)
    assert "09:00" <= finished[-5:] <= "18:00"
    assert local_date(NY, done).weekday() in WEEKDAYS


def test_monday_first_weekly_entries():
    monday_only = a_calendar(days=(MON,))
    assert local(next_open(monday_only, at("2024-05-07 10:00"))) == "2024-05-13 09:00"
    assert local(next_open(ALWAYS_OPEN, at("2024-05-11 03:00"))) == "2024-05-11 03:00"
