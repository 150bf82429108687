"""Wire times to epoch milliseconds and back: exact, in every zone, before and after 1970."""

from __future__ import annotations

from datetime import timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from oms_streams.adapters.timestamps import EPOCH, MILLISECOND, epoch_ms, utc_from_epoch_ms

moments = st.integers(-(6 * 10**16), 6 * 10**16).map(lambda us: EPOCH + timedelta(microseconds=us))
zones = st.integers(-899, 899).map(lambda minutes: timezone(timedelta(minutes=minutes)))


@given(moment=moments, zone=zones)
def test_epoch_ms_is_the_floor_of_the_milliseconds_since_1970_in_any_zone(moment, zone):
    local = moment.astimezone(zone)

    assert epoch_ms(local) == (moment - EPOCH) // MILLISECOND


@given(ms=st.integers(-(6 * 10**13), 6 * 10**13))
def test_a_whole_millisecond_comes_back_unchanged(ms):
    assert epoch_ms(utc_from_epoch_ms(ms)) == ms
