"""Transit times learned per lane, with fallback to the distance band and the carrier's prior."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oms_streams.domain.transit import (
    BUCKET_HOURS,
    HoursHistogram,
    Lane,
    TransitModel,
    distance_band,
    sample_quantile,
)

PRIOR = (24.0, 48.0, 72.0)
UTRECHT_TO_AMSTERDAM = Lane("POSTNL-STANDARD", "NL-UT", "NL-NH", 35.0)
UTRECHT_TO_HAARLEM = Lane("POSTNL-STANDARD", "NL-UT", "NL-NH-WEST", 45.0)
"""Another lane of the same service in the same distance band (<= 50 km)."""
UTRECHT_TO_GRONINGEN = Lane("POSTNL-STANDARD", "NL-UT", "NL-GR", 180.0)

hours_lists = st.lists(st.floats(min_value=0.0, max_value=1000.0, allow_nan=False), min_size=1, max_size=200)
within_thirty_days = st.lists(
    st.floats(min_value=0.0, max_value=719.0, allow_nan=False), min_size=1, max_size=200
)
quantiles = st.floats(min_value=0.0, max_value=1.0)


def a_model(*observations: tuple[Lane, float]) -> TransitModel:
    model = TransitModel()
    for lane, hours in observations:
        model.observe(lane, hours)
    return model


def observed(lane: Lane, hours: list[float]) -> TransitModel:
    return a_model(*((lane, h) for h in hours))


def test_lane_with_enough_history_is_promised_from_its_own_histogram() -> None:
    model = observed(UTRECHT_TO_AMSTERDAM, [20.5] * 30)

    estimate = model.estimate(UTRECHT_TO_AMSTERDAM, 0.95, min_samples=30, prior_hours=PRIOR)

    assert (estimate.source, estimate.samples) == ("lane", 30)
    assert estimate.hours == 20.5  # the bucket's upper edge (21) capped at the exact maximum


def test_lane_one_sample_short_falls_back_to_its_distance_band() -> None:
    model = observed(UTRECHT_TO_AMSTERDAM, [20.0] * 29)
    for _ in range(40):
        model.observe(UTRECHT_TO_HAARLEM, 30.0)

    estimate = model.estimate(UTRECHT_TO_AMSTERDAM, 0.95, min_samples=30, prior_hours=PRIOR)

    assert (estimate.source, estimate.samples) == ("band", 69)
    assert estimate.hours == 30.0
    assert estimate.fastest_hours == 20.0


def test_thin_lane_and_thin_band_fall_back_to_the_prior() -> None:
    model = observed(UTRECHT_TO_AMSTERDAM, [20.0] * 10)

    estimate = model.estimate(UTRECHT_TO_AMSTERDAM, 0.95, min_samples=30, prior_hours=PRIOR)

    assert (estimate.source, estimate.samples) == ("prior", 3)
    assert estimate.hours == 72.0
    assert estimate.fastest_hours == 24.0


def test_prior_quantile_is_the_exact_sample_quantile() -> None:
    model = TransitModel()

    median = model.estimate(UTRECHT_TO_AMSTERDAM, 0.5, min_samples=1, prior_hours=(72.0, 24.0, 48.0))

    assert median.hours == 48.0


def test_a_band_from_another_distance_is_not_used() -> None:
    model = observed(UTRECHT_TO_GRONINGEN, [40.0] * 50)

    estimate = model.estimate(UTRECHT_TO_AMSTERDAM, 0.95, min_samples=30, prior_hours=PRIOR)

    assert estimate.source == "prior"


def test_a_band_of_another_service_is_not_used() -> None:
    dhl = Lane("DHL-PARCEL", "NL-UT", "NL-NH", 35.0)
    model = observed(dhl, [10.0] * 50)

    estimate = model.estimate(UTRECHT_TO_AMSTERDAM, 0.95, min_samples=30, prior_hours=PRIOR)

    assert estimate.source == "prior"


def test_no_history_and_no_prior_is_an_error() -> None:
    with pytest.raises(ValueError, match="no prior"):
        TransitModel().estimate(UTRECHT_TO_AMSTERDAM, 0.95, min_samples=1, prior_hours=())


def test_zero_min_samples_still_needs_one_observation() -> None:
    estimate = TransitModel().estimate(UTRECHT_TO_AMSTERDAM, 0.95, min_samples=0, prior_hours=PRIOR)

    assert estimate.source == "prior"


@pytest.mark.parametrize(
    ("km", "band"),
    [(0.0, 0), (50.0, 0), (50.5, 1), (150.0, 1), (400.0, 2), (800.0, 3), (1500.0, 4), (1501, 5)],
)
def test_distance_band_edges_are_inclusive(km: float, band: int) -> None:
    assert distance_band(km) == band


@given(within_thirty_days, quantiles)
def test_quantile_is_conservative_but_within_one_bucket(hours: list[float], q: float) -> None:
    model = observed(UTRECHT_TO_AMSTERDAM, hours)
    empirical = sample_quantile(hours, q)

    estimate = model.estimate(UTRECHT_TO_AMSTERDAM, q, min_samples=1, prior_hours=PRIOR)

    assert empirical <= estimate.hours <= max(hours)
    assert estimate.hours <= empirical + BUCKET_HOURS


@given(hours_lists)
def test_fastest_is_the_exact_minimum_observed(hours: list[float]) -> None:
    model = observed(UTRECHT_TO_AMSTERDAM, hours)

    estimate = model.estimate(UTRECHT_TO_AMSTERDAM, 0.95, min_samples=1, prior_hours=PRIOR)

    assert estimate.fastest_hours == min(hours)


@given(hours_lists, quantiles, quantiles)
def test_a_higher_quantile_never_promises_faster(hours: list[float], q1: float, q2: float) -> None:
    model = observed(UTRECHT_TO_AMSTERDAM, hours)
    low, high = sorted((q1, q2))

    def at(q: float) -> float:
        return model.estimate(UTRECHT_TO_AMSTERDAM, q, min_samples=1, prior_hours=PRIOR).hours

    assert at(low) <= at(high)


def test_transit_beyond_thirty_days_is_kept_in_the_open_bucket_with_the_exact_maximum() -> None:
    model = observed(UTRECHT_TO_AMSTERDAM, [24.0, 900.0, 2000.0])

    estimate = model.estimate(UTRECHT_TO_AMSTERDAM, 1.0, min_samples=1, prior_hours=PRIOR)

    assert estimate.hours == 2000.0


def test_a_new_observation_is_seen_by_the_next_estimate() -> None:
    model = observed(UTRECHT_TO_AMSTERDAM, [20.0] * 10)
    before = model.estimate(UTRECHT_TO_AMSTERDAM, 1.0, min_samples=1, prior_hours=PRIOR)

    model.observe(UTRECHT_TO_AMSTERDAM, 50.0)
    after = model.estimate(UTRECHT_TO_AMSTERDAM, 1.0, min_samples=1, prior_hours=PRIOR)

    assert (before.hours, after.hours) == (20.0, 50.0)


def test_memory_of_a_lane_does_not_grow_with_observations() -> None:
    model = observed(UTRECHT_TO_AMSTERDAM, [30.0] * 10)
    histogram = model.lane_histogram(UTRECHT_TO_AMSTERDAM)
    assert histogram is not None
    slots_after_ten = histogram.slots

    for i in range(10_000):
        model.observe(UTRECHT_TO_AMSTERDAM, float(i % 2000))

    assert model.lane_histogram(UTRECHT_TO_AMSTERDAM) is histogram
    assert histogram.slots == slots_after_ten
    assert histogram.count == 10_010
    assert model.lane_count == 1


@pytest.mark.parametrize("hours", [-0.5, float("nan"), float("inf")])
def test_impossible_transit_is_refused(hours: float) -> None:
    with pytest.raises(ValueError, match="transit"):
        TransitModel().observe(UTRECHT_TO_AMSTERDAM, hours)


def test_quantile_outside_zero_to_one_is_refused() -> None:
    histogram = HoursHistogram()
    histogram.add(10.0)

    with pytest.raises(ValueError, match="quantile"):
        histogram.quantile(1.5)
