"""``domain.lead_time``: the Kaplan-Meier product-limit over delivered and in-transit parcels, the
hazard pooling between levels, the prior mixture and the bounded in-transit ring, pinned with values
worked out by hand (so an off-by-one day or a swapped weight cannot pass)."""

from __future__ import annotations

from datetime import date

import pytest

from oms_streams.domain.lead_time import (
    MAX_LEAD_DAYS,
    LeadLevel,
    LeadTimes,
    hazard_quantile,
    hazards,
    mixed_hazards,
    prior_hazards,
)

TODAY = date(2024, 5, 20).toordinal()
LANE, BAND = ("lane", "SP", "RJ"), ("band", 3)


def a_level(*delivered_days: int) -> LeadLevel:
    level = LeadLevel()
    for d in delivered_days:
        level.add_delivered(d, 1.0)
    return level


def test_a_parcel_in_transit_is_at_risk_until_the_day_before_today_and_never_an_event() -> None:
    level = a_level(2, 4)
    level.add_in_transit(TODAY - 3, 1.0)  # ordered 3 days ago: not delivered on days 0, 1, 2

    h = hazards(level, TODAY, 1.0, None, 10.0)

    # day 2: 3 at risk, 1 delivered; day 4: the one left at risk is delivered
    assert h[:6] == [0.0, 0.0, pytest.approx(1 / 3), 0.0, 1.0, 0.0]
    assert hazard_quantile(h, 0.5) == 4  # without the censored parcel the median would be day 2
    assert hazard_quantile(hazards(a_level(2, 4), TODAY, 1.0, None, 10.0), 0.5) == 2


def test_a_parcel_ordered_today_says_nothing_yet() -> None:
    level = a_level(2)
    level.add_in_transit(TODAY, 1.0)

    assert hazards(level, TODAY, 1.0, None, 10.0)[2] == 1.0


def test_a_level_pools_its_daily_hazard_with_its_parents_by_k_pseudo_parcels() -> None:
    parent = [0.5] * (MAX_LEAD_DAYS + 1)
    level = LeadLevel()
    level.add_delivered(0, 10.0)

    h = hazards(level, TODAY, 1.0, parent, 10.0)

    assert h[0] == pytest.approx((10 + 10 * 0.5) / (10 + 10))  # 10 at risk, 10 delivered
    assert h[1] == pytest.approx(0.5)  # nobody left at risk: the parent's hazard


def test_counts_are_scaled_before_pooling() -> None:
    parent = [0.0] * (MAX_LEAD_DAYS + 1)
    level = LeadLevel()
    level.add_delivered(0, 40.0)

    # 40 stored, worth 10 effective parcels: half own (hazard 1), half the parent's (0)
    assert hazards(level, TODAY, 0.25, parent, 10.0)[0] == pytest.approx(0.5)


def test_the_median_of_ten_lead_days_is_the_fifth_smallest() -> None:
    h = hazards(a_level(*range(1, 11)), TODAY, 1.0, None, 10.0)

    assert hazard_quantile(h, 0.5) == 5
    assert hazard_quantile(h, 0.51) == 6
    assert hazard_quantile(h, 1.0) == 10
    assert hazard_quantile([0.0] * (MAX_LEAD_DAYS + 1), 0.5) == MAX_LEAD_DAYS  # never reached


def test_the_prior_hazards_are_those_of_its_samples_then_certain() -> None:
    h = prior_hazards((3, 3, 5))

    assert h[:7] == [0.0, 0.0, 0.0, pytest.approx(2 / 3), 0.0, 1.0, 1.0]
    assert prior_hazards((-2, 500))[0] == 0.5 and prior_hazards((-2, 500))[MAX_LEAD_DAYS] == 1.0


def test_a_mixture_weighs_each_distribution_by_its_share() -> None:
    everything_on_day_0 = [1.0] * 4
    everything_on_day_1 = [0.0, 1.0, 1.0, 1.0]

    h = mixed_hazards(everything_on_day_0, 1.0, everything_on_day_1, 3.0)

    # P(day 0) = 1/4, P(day 1) = 3/4: survival 3/4 after day 0, 0 after day 1
    assert h[:2] == [pytest.approx(0.25), 1.0]


def test_the_in_transit_ring_forgets_an_order_day_once_its_slot_is_reused() -> None:
    level = LeadLevel()
    level.add_in_transit(TODAY, 2.0)
    level.add_in_transit(TODAY + MAX_LEAD_DAYS, 1.0)  # same slot, 180 days later: the old day is lost

    assert level.in_transit == 1.0
    level.add_in_transit(TODAY, 5.0)  # older than the slot's day: as good as lost, ignored
    level.remove_in_transit(TODAY, 1.0)  # no longer held: nothing to remove
    assert level.in_transit == 1.0
    level.remove_in_transit(TODAY + MAX_LEAD_DAYS, 3.0)  # never more than the slot holds
    assert level.in_transit == 0.0
    assert level.slots == 3 * MAX_LEAD_DAYS + 1


def a_model(lane_days: list[int], band_only_days: list[int]) -> LeadTimes:
    model = LeadTimes(half_life_days=None, pooling=10.0)
    for d in lane_days:
        model.add_delivered([LANE, BAND], date(2024, 5, 1), d, in_transit=False)
    for d in band_only_days:
        model.add_delivered([("lane", "MG", "RJ"), BAND], date(2024, 5, 1), d, in_transit=False)
    return model


@pytest.mark.parametrize(
    ("min_samples", "source", "samples"), [(3, "lane", 3), (4, "band", 8), (9, "prior", 1)]
)
def test_the_source_is_the_most_specific_level_with_min_samples(
    min_samples: int, source: str, samples: int
) -> None:
    model = a_model([2, 2, 2], [5, 5, 5, 5, 5])

    found = model.estimate([LANE, BAND], ["lane", "band"], date(2024, 6, 1), 0.5, min_samples, (9,))

    assert found is not None and (found.source, found.samples) == (source, samples)


def test_the_prior_is_mixed_into_the_root_only_until_some_level_has_min_samples() -> None:
    model = a_model([2], [])
    keys, names = [LANE, BAND], ["lane", "band"]

    # one parcel on day 2 against the prior's 10 pseudo-parcels on day 20
    with_prior = model.estimate(keys, names, date(2024, 6, 1), 0.5, 30, (20,))
    learned = model.estimate(keys, names, date(2024, 6, 1), 0.5, 1, (20,))

    assert with_prior is not None and (with_prior.days, with_prior.source) == (20, "prior")
    assert learned is not None and (learned.days, learned.source) == (2, "lane")


def test_nothing_learned_on_any_level_is_no_estimate() -> None:
    assert LeadTimes().estimate([LANE, BAND], ["lane", "band"], date(2024, 6, 1), 0.5, 1, (3,)) is None
