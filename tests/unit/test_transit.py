"""Transit times learned per lane, pooled with the distance band, the service and the carrier's prior."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oms_streams.domain.transit import (
    HoursHistogram,
    Lane,
    TransitModel,
    TransitSettings,
    bucket_of,
    bucket_upper_edge,
    distance_band,
    quantile_rank,
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


def test_thin_history_is_pooled_with_the_prior_and_claims_no_evidence() -> None:
    model = observed(UTRECHT_TO_AMSTERDAM, [20.0] * 10)

    estimate = model.estimate(UTRECHT_TO_AMSTERDAM, 0.95, min_samples=30, prior_hours=PRIOR)

    # lane 1/2, band 1/4, service 1/8 (all 20 h), prior 1/8 (24, 48, 72 h): 95 % is reached at 48 h.
    assert (estimate.source, estimate.samples) == ("prior", 3)
    assert not estimate.has_evidence
    assert estimate.hours == 49.0  # the upper edge of the 48 h bucket
    assert estimate.fastest_hours == 20.0


def test_prior_quantile_is_the_exact_sample_quantile() -> None:
    model = TransitModel()

    median = model.estimate(UTRECHT_TO_AMSTERDAM, 0.5, min_samples=1, prior_hours=(72.0, 24.0, 48.0))

    assert median.hours == 48.0


def test_a_band_from_another_distance_is_not_used_but_the_service_is() -> None:
    model = observed(UTRECHT_TO_GRONINGEN, [40.0] * 50)

    estimate = model.estimate(UTRECHT_TO_AMSTERDAM, 0.95, min_samples=30, prior_hours=PRIOR)

    assert (estimate.source, estimate.samples) == ("service", 50)
    assert estimate.hours == 40.0


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
    [
        (0.0, 0),
        (50.0, 0),
        (50.5, 1),
        (150.0, 1),
        (400.0, 2),
        (800.0, 3),
        (1500.0, 4),
        (1501, 5),
        (3000.0, 5),
        (3001, 6),
    ],
)
def test_distance_band_edges_are_inclusive(km: float, band: int) -> None:
    assert distance_band(km) == band


@given(within_thirty_days, quantiles)
def test_quantile_is_conservative_but_within_one_bucket(hours: list[float], q: float) -> None:
    model = observed(UTRECHT_TO_AMSTERDAM, hours)
    empirical = sample_quantile(hours, q)

    estimate = model.estimate(UTRECHT_TO_AMSTERDAM, q, min_samples=1, prior_hours=PRIOR)

    assert empirical <= estimate.hours <= max(hours)
    assert estimate.hours <= bucket_upper_edge(bucket_of(empirical))


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


def test_transit_beyond_180_days_is_kept_in_the_open_bucket_with_the_exact_maximum() -> None:
    model = observed(UTRECHT_TO_AMSTERDAM, [24.0, 900.0, 5000.0])

    estimate = model.estimate(UTRECHT_TO_AMSTERDAM, 1.0, min_samples=1, prior_hours=PRIOR)

    assert estimate.hours == 5000.0


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


# --- pinned ranks and fallback boundaries ----------------------------------------------------------


@pytest.mark.parametrize(
    ("quantile", "count", "rank"),
    [(0.5, 10, 5), (0.51, 10, 6), (0.7, 10, 7), (0.95, 10, 10), (0.9, 10, 9), (0.0, 10, 1), (1.0, 10, 10)],
)
def test_quantile_rank_is_ceil_of_q_times_n(quantile: float, count: int, rank: int) -> None:
    assert quantile_rank(quantile, count) == rank


def test_the_median_of_ten_samples_is_the_fifth_smallest() -> None:
    samples = [float(h) for h in range(10, 110, 10)]

    assert sample_quantile(samples, 0.5) == 50.0
    histogram = HoursHistogram()
    for hours in samples:
        histogram.add(hours)
    assert histogram.quantile(0.5) == 51.0  # the upper edge of the 50 h bucket


@pytest.mark.parametrize(("lane_samples", "source"), [(29, "band"), (30, "lane")])
def test_lane_source_boundary_is_min_samples(lane_samples: int, source: str) -> None:
    model = observed(UTRECHT_TO_AMSTERDAM, [20.0] * lane_samples)
    for _ in range(30):
        model.observe(UTRECHT_TO_HAARLEM, 20.0)

    assert model.estimate(UTRECHT_TO_AMSTERDAM, 0.95, 30, PRIOR).source == source


@pytest.mark.parametrize(("band_samples", "source"), [(29, "service"), (30, "band")])
def test_band_source_boundary_is_min_samples(band_samples: int, source: str) -> None:
    model = observed(UTRECHT_TO_HAARLEM, [20.0] * band_samples)
    for _ in range(30):
        model.observe(UTRECHT_TO_GRONINGEN, 40.0)

    assert model.estimate(UTRECHT_TO_AMSTERDAM, 0.95, 30, PRIOR).source == source


@pytest.mark.parametrize(("service_samples", "source"), [(29, "prior"), (30, "service")])
def test_service_source_boundary_is_min_samples(service_samples: int, source: str) -> None:
    model = observed(UTRECHT_TO_GRONINGEN, [40.0] * service_samples)

    assert model.estimate(UTRECHT_TO_AMSTERDAM, 0.95, 30, PRIOR).source == source


# --- pooling, recency, the floor, calibration -----------------------------------------------------


def test_a_lane_with_no_history_is_promised_from_its_band_not_the_prior() -> None:
    model = observed(UTRECHT_TO_HAARLEM, [30.0] * 100)

    estimate = model.estimate(UTRECHT_TO_AMSTERDAM, 0.95, 30, PRIOR)

    assert model.lane_histogram(UTRECHT_TO_AMSTERDAM) is None
    assert (estimate.source, estimate.samples, estimate.hours) == ("band", 100, 30.0)
    assert estimate.has_evidence


def test_a_thin_lane_is_pulled_towards_its_band() -> None:
    model = observed(UTRECHT_TO_HAARLEM, [30.0] * 100)
    for _ in range(10):
        model.observe(UTRECHT_TO_AMSTERDAM, 10.0)

    median = model.estimate(UTRECHT_TO_AMSTERDAM, 0.5, 30, PRIOR).hours
    high = model.estimate(UTRECHT_TO_AMSTERDAM, 0.9, 30, PRIOR).hours

    # Half its own ten 10 h transits, half the band's: the median is its own (the upper edge of the
    # 10 h bucket, as the band holds faster and slower transits), the 90 % the band's.
    assert (median, high) == (11.0, 30.0)


def test_recent_history_outweighs_old_history() -> None:
    day = 86_400_000
    model = TransitModel(TransitSettings(half_life_days=30.0))
    for i in range(100):
        model.observe(UTRECHT_TO_AMSTERDAM, 48.0, at_ms=i * day // 10)
    for i in range(50):
        model.observe(UTRECHT_TO_AMSTERDAM, 24.0, at_ms=(100 + i) * day)

    estimate = model.estimate(UTRECHT_TO_AMSTERDAM, 0.85, 30, PRIOR)

    # 100 old 48 h transits now weigh about 100 / 2**4.8 = 3.6 against about 30 for 50 recent 24 h ones.
    assert estimate.hours == 25.0  # the upper edge of the 24 h bucket
    assert estimate.source == "lane" and estimate.samples < 100


@given(hours_lists, quantiles)
def test_no_estimate_beats_the_fastest_transit_observed(hours: list[float], q: float) -> None:
    model = observed(UTRECHT_TO_HAARLEM, [1.0] * 50)  # a faster band must not pull the lane under its floor
    for h in hours:
        model.observe(UTRECHT_TO_AMSTERDAM, h)

    estimate = model.estimate(UTRECHT_TO_AMSTERDAM, q, min_samples=1, prior_hours=PRIOR)

    assert estimate.fastest_hours == min(hours)
    assert estimate.hours >= estimate.fastest_hours


def test_calibrated_level_meets_the_target_on_drifting_transit() -> None:
    """Transit slows down steadily (a fixed-level quantile of all history then falls short); the
    calibrated level keeps the realised on-time rate within a point of the target."""
    rng = random.Random(16)
    target = 0.9
    plain = TransitModel(TransitSettings(half_life_days=None))
    calibrated = TransitModel(TransitSettings(half_life_days=None, calibration_rate=0.01))
    hits = {"plain": 0, "calibrated": 0}
    scored = 0
    for i in range(12_000):
        hours = rng.lognormvariate(math.log(24.0 + i / 100.0), 0.3)  # the median drifts from 1 to 6 days
        if i >= 2_000:
            scored += 1
            for name, model in (("plain", plain), ("calibrated", calibrated)):
                promised = model.estimate(UTRECHT_TO_AMSTERDAM, target, 30, PRIOR).hours
                hits[name] += hours <= promised
        plain.observe(UTRECHT_TO_AMSTERDAM, hours)
        calibrated.observe(UTRECHT_TO_AMSTERDAM, hours)

    assert abs(hits["calibrated"] / scored - target) <= 0.01
    assert hits["plain"] / scored < target - 0.05
    assert calibrated.estimate(UTRECHT_TO_AMSTERDAM, target, 30, PRIOR).level > target


def test_memory_of_a_lane_does_not_grow_with_weighted_observations() -> None:
    model = TransitModel(TransitSettings(half_life_days=1.0))
    for i in range(5_000):
        model.observe(UTRECHT_TO_AMSTERDAM, float(i % 300), at_ms=i * 3_600_000 * 24)

    histogram = model.lane_histogram(UTRECHT_TO_AMSTERDAM)
    assert histogram is not None and histogram.count == 5_000
    assert histogram.slots == HoursHistogram().slots
    estimate = model.estimate(UTRECHT_TO_AMSTERDAM, 0.5, 1, PRIOR)
    assert math.isfinite(estimate.hours) and estimate.samples <= 2  # about 1.44 effective observations


# --- what mutation testing found unpinned -----------------------------------------------------------


@pytest.mark.parametrize(
    ("hours", "bucket", "upper_edge"),
    [
        (0.0, 0, 1.0),
        (167.99, 167, 168.0),  # the last one-hour bucket
        (168.0, 168, 174.0),  # the first six-hour bucket
        (173.99, 168, 174.0),
        (174.0, 169, 180.0),
        (180 * 24 - 0.01, 859, 180.0 * 24),  # the last closed bucket ends at 180 days
        (180 * 24, 860, math.inf),  # from 180 days on: the open bucket
    ],
)
def test_bucket_geometry_one_hour_for_a_week_six_hours_to_180_days_then_open(
    hours: float, bucket: int, upper_edge: float
) -> None:
    assert bucket_of(hours) == bucket
    assert bucket_upper_edge(bucket) == upper_edge


def test_a_histogram_holds_861_buckets_and_27_block_totals() -> None:
    assert HoursHistogram().slots == 861 + 27


def test_a_quantile_in_the_six_hour_buckets_is_its_upper_edge_capped_at_the_maximum() -> None:
    histogram = HoursHistogram()
    for hours in (200.0, 300.0):
        histogram.add(hours)

    assert histogram.quantile(0.5) == 204.0  # 200 h lies in [198, 204)
    assert histogram.quantile(1.0) == 300.0  # its bucket ends at 306 h: capped at the maximum seen


def test_rescaling_weights_keeps_every_quantile_and_scales_the_total() -> None:
    histogram = HoursHistogram()
    for hours, weight in ((10.0, 1.0), (20.0, 3.0), (500.0, 1.0)):
        histogram.add(hours, weight)
    before = [histogram.quantile(q) for q in (0.1, 0.5, 0.9)]

    histogram.rescale(0.25)

    assert histogram.weight == pytest.approx(1.25) and histogram.count == 3
    assert [histogram.quantile(q) for q in (0.1, 0.5, 0.9)] == before


def test_an_empty_histogram_and_an_impossible_duration_are_refused() -> None:
    with pytest.raises(ValueError, match="empty histogram"):
        HoursHistogram().quantile(0.5)
    with pytest.raises(ValueError, match="finite and >= 0"):
        HoursHistogram().add(-1.0)
    with pytest.raises(ValueError, match="no samples"):
        sample_quantile([], 0.5)


def test_a_model_that_learns_for_thousands_of_half_lives_still_answers_from_recent_history() -> None:
    # Weights grow as 2 ** (age in half-lives): without rescaling, 2,000 half-lives overflow a float.
    day = 86_400_000
    model = TransitModel(TransitSettings(half_life_days=1.0))
    for i in range(2_000):
        model.observe(UTRECHT_TO_AMSTERDAM, 48.0 if i < 1_990 else 24.0, at_ms=i * day)

    estimate = model.estimate(UTRECHT_TO_AMSTERDAM, 0.5, 1, PRIOR)

    assert estimate.hours == 25.0  # the last ten days' 24 h transits outweigh 1,990 older ones
    assert estimate.source == "lane" and 1 <= estimate.samples <= 2


def test_without_recency_every_delivery_weighs_one() -> None:
    day = 86_400_000
    model = TransitModel(TransitSettings(half_life_days=None))
    for i in range(10):
        model.observe(UTRECHT_TO_AMSTERDAM, 48.0 if i < 6 else 24.0, at_ms=i * 100 * day)

    estimate = model.estimate(UTRECHT_TO_AMSTERDAM, 0.5, 10, PRIOR)

    assert estimate.samples == 10 and estimate.hours == 48.0  # one of the six 48 h (capped at the maximum)


def test_each_level_keeps_n_over_n_plus_k_and_the_most_general_takes_what_is_left() -> None:
    # Lane: 10 x 10 h, so 10 / (10 + 10) = 0.5. Band (both lanes): 10 x 10 h and 30 x 100 h, 40 / 50 of
    # the rest = 0.4. Service (the same 40): 0.08, plus the 0.02 left, as no prior is pooled once the
    # lane has evidence. Mass at 10 h: 0.5 + 0.4 / 4 + 0.1 / 4 = 0.625.
    model = TransitModel(TransitSettings(half_life_days=None))
    for _ in range(10):
        model.observe(UTRECHT_TO_AMSTERDAM, 10.0)
    for _ in range(30):
        model.observe(UTRECHT_TO_HAARLEM, 100.0)

    assert model.estimate(UTRECHT_TO_AMSTERDAM, 0.62, 5, PRIOR).hours == 11.0
    assert model.estimate(UTRECHT_TO_AMSTERDAM, 0.63, 5, PRIOR).hours == 100.0
    unpooled = TransitModel(TransitSettings(half_life_days=None, pooling=0.0))
    for lane, hours in ((UTRECHT_TO_AMSTERDAM, 10.0), (UTRECHT_TO_HAARLEM, 100.0)):
        unpooled.observe(lane, hours)
    assert unpooled.estimate(UTRECHT_TO_AMSTERDAM, 0.99, 1, PRIOR).hours == 10.0  # the lane alone


def test_estimates_for_another_quantile_min_samples_or_prior_are_not_served_from_the_memo() -> None:
    model = observed(UTRECHT_TO_AMSTERDAM, [10.0] * 5 + [50.0] * 5)

    assert model.estimate(UTRECHT_TO_AMSTERDAM, 0.5, 1, PRIOR).hours == 11.0
    assert model.estimate(UTRECHT_TO_AMSTERDAM, 0.9, 1, PRIOR).hours == 50.0
    assert model.estimate(UTRECHT_TO_AMSTERDAM, 0.5, 1, PRIOR).source == "lane"
    with_prior = model.estimate(UTRECHT_TO_AMSTERDAM, 0.5, 11, PRIOR)  # too thin: the prior joins
    assert (with_prior.source, with_prior.hours) == ("prior", 49.0)
    assert model.estimate(UTRECHT_TO_AMSTERDAM, 0.5, 11, (300.0,)).hours == 50.0
