"""Returns: disposition by rules that are data, and need-based routing of shipped returns, explained.

The routing network is Dutch: a customer in Utrecht (``UTRECHT_HOME``) is ~1 km from
STORE-UTRECHT-01, ~20 km from STORE-AMERSFOORT-03, ~35 km from STORE-AMSTERDAM-02, ~140 km from
STORE-MAASTRICHT-04, ~75 km from DC-SOUTH and ~80 km from DC-NORTH. Every site accepts returns
unless a test says otherwise; the reference moment is Monday 2024-05-06 10:00 in Amsterdam.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oms_streams.domain.calendar import MS_PER_DAY, MS_PER_HOUR, next_open
from oms_streams.domain.network import Calendar, Capability, Site
from oms_streams.domain.returns import (
    DEFAULT_RULES,
    EXCLUDED_CLOSED,
    EXCLUDED_FULL,
    EXCLUDED_NOT_ACCEPTING,
    EXCLUDED_TOO_FAR,
    Disposition,
    DispositionRule,
    Grade,
    ReturnedItem,
    ReturnLine,
    ReturnNetwork,
    RoutedLine,
    RoutingPolicy,
    decide_disposition,
    km_avoided,
    store_return_km_avoided,
)
from oms_streams.domain.visibility import haversine_km
from tests.unit.promise_builders import MON_SAT, SUN, UTRECHT_HOME, a_calendar, at

NOW = "2024-05-06 10:00"
"""Monday morning."""
BIKE_LIGHT, PUMP, HELMET = "SKU-BIKE-LIGHT", "SKU-PUMP", "SKU-HELMET"
FOOD_BAR = "SKU-FOOD-ENERGY-BAR"

PLACES = {
    "DC-NORTH": (52.5168, 6.0830, False),
    "DC-SOUTH": (51.4416, 5.4697, False),
    "STORE-UTRECHT-01": (52.0907, 5.1214, True),
    "STORE-AMERSFOORT-03": (52.1561, 5.3878, True),
    "STORE-AMSTERDAM-02": (52.3731, 4.8922, True),
    "STORE-MAASTRICHT-04": (50.8514, 5.6910, True),
}
"""location id -> (lat, lon, is a store)."""


# --- builders -------------------------------------------------------------------------------------


def a_site(
    location_id: str = "STORE-UTRECHT-01",
    *,
    lat: float | None = None,
    lon: float | None = None,
    is_store: bool | None = None,
    accepts_returns: bool = True,
    returns_per_day: int | None = None,
    calendar: Calendar | None = None,
) -> Site:
    """A site of ``PLACES`` (its coordinates and kind) unless told otherwise; open Mon-Sat 09-18."""
    place_lat, place_lon, place_is_store = PLACES.get(location_id, (52.0, 5.0, True))
    return Site(
        location_id=location_id,
        lat=place_lat if lat is None else lat,
        lon=place_lon if lon is None else lon,
        calendar=calendar or a_calendar(),
        capabilities=frozenset({Capability.ACCEPTS_RETURNS} if accepts_returns else ()),
        is_store=place_is_store if is_store is None else is_store,
        returns_per_day=returns_per_day,
    )


def a_return_network(
    *sites: Site, policy: RoutingPolicy | None = None, **policy_fields: object
) -> ReturnNetwork:
    """``sites`` default to the Utrecht and Amersfoort stores and DC-NORTH."""
    chosen = sites or (a_site("STORE-UTRECHT-01"), a_site("STORE-AMERSFOORT-03"), a_site("DC-NORTH"))
    base = policy or RoutingPolicy()
    return ReturnNetwork({s.location_id: s for s in chosen}, replace(base, **policy_fields))  # type: ignore[arg-type]


def needs(by_location: Mapping[str, Mapping[str, int]] | None = None) -> dict[str, dict[str, int]]:
    """``{location id: {sku: units short}}`` (as tests think of it) as SKU -> location -> units."""
    view: dict[str, dict[str, int]] = {}
    for location_id, units in (by_location or {}).items():
        for sku, short in units.items():
            view.setdefault(sku, {})[location_id] = short
    return view


def route(
    network: ReturnNetwork,
    *lines: tuple[str, int],
    need: Mapping[str, Mapping[str, int]] | None = None,
    load: Mapping[str, int] | None = None,
    now: int | str = NOW,
    customer: tuple[float, float] = UTRECHT_HOME,
) -> tuple[RoutedLine, ...]:
    """Route ``(sku, quantity)`` lines L1, L2, ... of one return; ``need`` per location."""
    by_sku = needs(need)
    return network.route(
        tuple(ReturnLine(f"L{n}", sku, quantity) for n, (sku, quantity) in enumerate(lines, 1)),
        customer[0],
        customer[1],
        lambda sku: by_sku.get(sku, {}),
        dict(load or {}),
        at(now) if isinstance(now, str) else now,
    )


def route_one(
    network: ReturnNetwork, sku: str = BIKE_LIGHT, quantity: int = 1, **kwargs: object
) -> RoutedLine:
    (line,) = route(network, (sku, quantity), **kwargs)  # type: ignore[arg-type]
    return line


def dates_from(first: str, days: int) -> list[date]:
    start = date.fromisoformat(first)
    return [start + timedelta(days=n) for n in range(days)]


# --- disposition ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grade", "disposition"),
    [
        (Grade.AS_NEW, Disposition.RESTOCK),
        (Grade.RESELLABLE, Disposition.RESTOCK),
        (Grade.DAMAGED, Disposition.UNSELLABLE),
        (Grade.DEFECTIVE, Disposition.RETURN_TO_VENDOR),
    ],
)
def test_default_disposition_per_grade(grade: Grade, disposition: Disposition) -> None:
    decision = decide_disposition(ReturnedItem(BIKE_LIGHT, grade), [])

    assert decision.disposition is disposition
    assert decision.rule == f"default for {grade.value}"


def test_default_rules_cover_every_grade_once() -> None:
    assert sorted(rule.grade for rule in DEFAULT_RULES) == sorted(Grade)


def test_custom_rule_beats_default_food_is_unsellable_even_as_new() -> None:
    rules = [
        DispositionRule(Grade.AS_NEW, Disposition.UNSELLABLE, sku_prefix="SKU-FOOD", name="food hygiene")
    ]

    food = decide_disposition(ReturnedItem(FOOD_BAR, Grade.AS_NEW), rules)
    bike = decide_disposition(ReturnedItem(BIKE_LIGHT, Grade.AS_NEW), rules)

    assert food.disposition is Disposition.UNSELLABLE
    assert food.rule == "food hygiene"
    assert bike.disposition is Disposition.RESTOCK
    assert bike.rule == "default for as_new"


def test_rule_without_name_is_described_by_its_fields() -> None:
    rule = DispositionRule(
        Grade.AS_NEW,
        Disposition.UNSELLABLE,
        sku_prefix="SKU-FOOD",
        channel="marketplace",
        location_type="store",
        max_days_since_sale=14,
    )
    item = ReturnedItem(
        FOOD_BAR, Grade.AS_NEW, channel="marketplace", location_type="store", days_since_sale=3
    )

    assert decide_disposition(item, [rule]).rule == (
        "as_new SKU-FOOD* via marketplace at store within 14 days -> unsellable"
    )


def test_channel_rule_matches_only_that_channel() -> None:
    rules = [DispositionRule(Grade.DAMAGED, Disposition.RETURN_TO_VENDOR, channel="marketplace")]

    def decide(channel: str | None) -> Disposition:
        return decide_disposition(ReturnedItem(PUMP, Grade.DAMAGED, channel=channel), rules).disposition

    assert decide("marketplace") is Disposition.RETURN_TO_VENDOR
    assert decide("webshop") is Disposition.UNSELLABLE
    assert decide(None) is Disposition.UNSELLABLE


def test_location_type_rule_matches_only_where_it_is_received() -> None:
    rules = [DispositionRule(Grade.RESELLABLE, Disposition.UNSELLABLE, location_type="dc")]

    def decide(location_type: str | None) -> Disposition:
        item = ReturnedItem(HELMET, Grade.RESELLABLE, location_type=location_type)
        return decide_disposition(item, rules).disposition

    assert decide("dc") is Disposition.UNSELLABLE
    assert decide("store") is Disposition.RESTOCK
    assert decide(None) is Disposition.RESTOCK


def test_max_days_since_sale_applies_only_while_known_and_within_the_window() -> None:
    rules = [DispositionRule(Grade.DEFECTIVE, Disposition.UNSELLABLE, max_days_since_sale=30)]

    def decide(days: int | None) -> Disposition:
        item = ReturnedItem(HELMET, Grade.DEFECTIVE, days_since_sale=days)
        return decide_disposition(item, rules).disposition

    assert decide(0) is Disposition.UNSELLABLE
    assert decide(30) is Disposition.UNSELLABLE
    assert decide(31) is Disposition.RETURN_TO_VENDOR
    assert decide(None) is Disposition.RETURN_TO_VENDOR


def test_first_matching_rule_wins() -> None:
    rules = [
        DispositionRule(
            Grade.AS_NEW, Disposition.RETURN_TO_VENDOR, sku_prefix="SKU-BIKE", name="bike recall"
        ),
        DispositionRule(Grade.AS_NEW, Disposition.UNSELLABLE, name="everything as new"),
    ]

    assert decide_disposition(ReturnedItem(BIKE_LIGHT, Grade.AS_NEW), rules).rule == "bike recall"
    assert decide_disposition(ReturnedItem(PUMP, Grade.AS_NEW), rules).rule == "everything as new"


def test_rule_for_another_grade_never_matches() -> None:
    rules = [DispositionRule(Grade.DAMAGED, Disposition.RESTOCK, name="damaged packaging is fine")]

    assert decide_disposition(ReturnedItem(PUMP, Grade.DEFECTIVE), rules).rule == "default for defective"


# --- routing: need against distance ---------------------------------------------------------------


def test_routing_prefers_the_needy_location_over_a_nearer_one() -> None:
    line = route_one(a_return_network(), need={"STORE-AMERSFOORT-03": {BIKE_LIGHT: 2}})

    assert line.location_id == "STORE-AMERSFOORT-03"
    assert line.need_covered == 1
    assert line.km == pytest.approx(19.5, abs=0.1)
    assert line.reason == "needs 2 (stock below target), 20 km"
    assert not line.fallback


def test_need_covered_is_capped_by_the_quantity_and_by_the_need() -> None:
    network = a_return_network()

    assert route_one(network, quantity=3, need={"STORE-AMERSFOORT-03": {BIKE_LIGHT: 2}}).need_covered == 2
    assert route_one(network, quantity=2, need={"STORE-AMERSFOORT-03": {BIKE_LIGHT: 5}}).need_covered == 2


def test_without_need_the_nearest_accepting_location_wins() -> None:
    line = route_one(a_return_network())

    assert line.location_id == "STORE-UTRECHT-01"
    assert line.need_covered == 0
    assert line.reason == "nearest that accepts returns, 1 km (no location needs it)"


def test_a_needier_but_much_farther_location_loses_when_km_dominates() -> None:
    network = a_return_network(a_site("STORE-UTRECHT-01"), a_site("STORE-MAASTRICHT-04"))

    line = route_one(network, need={"STORE-MAASTRICHT-04": {BIKE_LIGHT: 1}})

    assert line.location_id == "STORE-UTRECHT-01"
    assert line.reason == (
        "nearest that accepts returns, 1 km (STORE-MAASTRICHT-04 needs it but scores worse at 142 km)"
    )
    # The same need wins once a unit of need is worth more than the detour.
    heavier = a_return_network(a_site("STORE-UTRECHT-01"), a_site("STORE-MAASTRICHT-04"), need_weight=200.0)
    assert (
        route_one(heavier, need={"STORE-MAASTRICHT-04": {BIKE_LIGHT: 1}}).location_id == "STORE-MAASTRICHT-04"
    )


def test_more_need_covered_beats_less() -> None:
    network = a_return_network(a_site("STORE-UTRECHT-01"), a_site("STORE-AMERSFOORT-03"))

    line = route_one(
        network,
        quantity=3,
        need={"STORE-UTRECHT-01": {BIKE_LIGHT: 1}, "STORE-AMERSFOORT-03": {BIKE_LIGHT: 3}},
    )

    assert line.location_id == "STORE-AMERSFOORT-03"
    assert line.need_covered == 3


def test_falls_back_when_the_needy_location_does_not_accept_returns() -> None:
    network = a_return_network(
        a_site("STORE-UTRECHT-01"), a_site("STORE-AMERSFOORT-03", accepts_returns=False), a_site("DC-NORTH")
    )

    line = route_one(network, need={"STORE-AMERSFOORT-03": {BIKE_LIGHT: 2}})

    assert line.location_id == "STORE-UTRECHT-01"
    assert line.excluded == {EXCLUDED_NOT_ACCEPTING: 1}
    assert "STORE-AMERSFOORT-03" not in {c.location_id for c in line.candidates}


def test_falls_back_when_the_needy_location_is_full() -> None:
    network = a_return_network(
        a_site("STORE-UTRECHT-01"), a_site("STORE-AMERSFOORT-03", returns_per_day=5), a_site("DC-NORTH")
    )

    line = route_one(network, need={"STORE-AMERSFOORT-03": {BIKE_LIGHT: 2}}, load={"STORE-AMERSFOORT-03": 5})

    assert line.location_id == "STORE-UTRECHT-01"
    assert line.excluded == {EXCLUDED_FULL: 1}


def test_a_line_that_would_overflow_the_capacity_is_full_even_if_a_smaller_one_fits() -> None:
    network = a_return_network(a_site("STORE-UTRECHT-01"), a_site("STORE-AMERSFOORT-03", returns_per_day=5))
    need = {"STORE-AMERSFOORT-03": {BIKE_LIGHT: 3}}

    assert route_one(network, quantity=2, need=need, load={"STORE-AMERSFOORT-03": 3}).location_id == (
        "STORE-AMERSFOORT-03"
    )
    assert route_one(network, quantity=3, need=need, load={"STORE-AMERSFOORT-03": 3}).location_id == (
        "STORE-UTRECHT-01"
    )


def test_the_second_line_of_a_return_sees_the_first_lines_load() -> None:
    network = a_return_network(
        a_site("STORE-UTRECHT-01"), a_site("STORE-AMERSFOORT-03", returns_per_day=3), a_site("DC-NORTH")
    )

    first, second = route(
        network,
        (BIKE_LIGHT, 2),
        (PUMP, 2),
        need={"STORE-AMERSFOORT-03": {BIKE_LIGHT: 2, PUMP: 2}},
    )

    assert first.location_id == "STORE-AMERSFOORT-03"
    assert second.location_id == "STORE-UTRECHT-01"
    assert second.excluded == {EXCLUDED_FULL: 1}


def test_the_load_penalty_spreads_returns_between_equal_locations() -> None:
    network = a_return_network(
        a_site("STORE-EAST", lat=52.08, lon=5.15, returns_per_day=10),
        a_site("STORE-WEST", lat=52.08, lon=5.11, returns_per_day=10),
    )

    line = route_one(network, load={"STORE-WEST": 6})

    assert line.location_id == "STORE-EAST"
    west = next(c for c in line.candidates if c.location_id == "STORE-WEST")
    assert west.load == 6
    assert west.capacity == 10
    assert west.score == pytest.approx(west.km + 50.0 * 6 / 10)


# --- routing: never where it cannot be received ---------------------------------------------------


def test_never_routes_to_a_location_closed_every_day() -> None:
    network = a_return_network(
        a_site("STORE-UTRECHT-01", calendar=a_calendar(days=())),
        a_site("STORE-AMERSFOORT-03"),
    )

    line = route_one(network)

    assert line.location_id == "STORE-AMERSFOORT-03"
    assert line.excluded == {EXCLUDED_CLOSED: 1}


def test_never_routes_to_a_location_whose_closed_dates_span_the_whole_horizon() -> None:
    closed = a_calendar(closed=dates_from("2024-05-06", 8))
    network = a_return_network(
        a_site("STORE-UTRECHT-01", calendar=closed), a_site("STORE-AMERSFOORT-03"), horizon_days=7
    )

    assert route_one(network).location_id == "STORE-AMERSFOORT-03"
    assert route_one(network).excluded == {EXCLUDED_CLOSED: 1}


def test_a_location_closed_for_part_of_the_horizon_can_still_receive() -> None:
    closed_this_week = a_calendar(closed=dates_from("2024-05-06", 5))
    network = a_return_network(
        a_site("STORE-UTRECHT-01", calendar=closed_this_week), a_site("STORE-AMERSFOORT-03"), horizon_days=7
    )

    assert route_one(network).location_id == "STORE-UTRECHT-01"


def test_closed_until_after_the_horizon_counts_as_closed() -> None:
    # Saturday 18:30: Utrecht has closed for the day and does not open on Sunday.
    network = a_return_network(
        a_site("STORE-UTRECHT-01", calendar=a_calendar(days=MON_SAT)),
        a_site("STORE-AMERSFOORT-03", calendar=a_calendar(days=(*MON_SAT, SUN))),
        horizon_days=1,
    )

    assert route_one(network, now="2024-05-11 17:59").location_id == "STORE-UTRECHT-01"
    assert route_one(network, now="2024-05-11 18:30").location_id == "STORE-AMERSFOORT-03"
    # The same network follows the clock both ways (its opening cache never goes stale).
    assert route_one(network, now="2024-05-11 17:00").location_id == "STORE-UTRECHT-01"
    assert route_one(network, now="2024-05-12 23:00").location_id == "STORE-UTRECHT-01"


def test_never_routes_beyond_max_km() -> None:
    network = a_return_network(a_site("STORE-UTRECHT-01"), a_site("STORE-MAASTRICHT-04"), max_km=100.0)

    line = route_one(network, need={"STORE-MAASTRICHT-04": {BIKE_LIGHT: 50}}, quantity=3)

    assert line.location_id == "STORE-UTRECHT-01"
    assert line.excluded == {EXCLUDED_TOO_FAR: 1}


def test_excluded_counts_every_reason_once_per_location() -> None:
    network = a_return_network(
        a_site("STORE-UTRECHT-01", returns_per_day=0),
        a_site("STORE-AMERSFOORT-03", calendar=a_calendar(days=())),
        a_site("STORE-AMSTERDAM-02", accepts_returns=False),
        a_site("STORE-MAASTRICHT-04"),
        a_site("DC-SOUTH"),
        a_site("DC-NORTH", accepts_returns=False),
        max_km=100.0,
    )

    line = route_one(network)

    assert line.location_id == "DC-SOUTH"
    assert line.excluded == {
        EXCLUDED_NOT_ACCEPTING: 2,
        EXCLUDED_TOO_FAR: 1,
        EXCLUDED_CLOSED: 1,
        EXCLUDED_FULL: 1,
    }
    assert [c.location_id for c in line.candidates] == ["DC-SOUTH"]


# --- routing: one parcel, the central fallback, the explanation -----------------------------------


def test_the_parcel_bonus_consolidates_a_return_into_one_parcel() -> None:
    need = {"STORE-AMERSFOORT-03": {BIKE_LIGHT: 1}}

    together = route(a_return_network(), (BIKE_LIGHT, 1), (PUMP, 1), need=need)
    apart = route(a_return_network(parcel_weight=0.0), (BIKE_LIGHT, 1), (PUMP, 1), need=need)

    assert [line.location_id for line in together] == ["STORE-AMERSFOORT-03", "STORE-AMERSFOORT-03"]
    assert (
        together[1].reason
        == "best on distance and load, 20 km (no location needs it), joins line L1's parcel"
    )
    assert [line.location_id for line in apart] == ["STORE-AMERSFOORT-03", "STORE-UTRECHT-01"]


def test_falls_back_to_the_central_returns_dc_when_no_location_qualifies() -> None:
    network = a_return_network(
        a_site("STORE-UTRECHT-01", returns_per_day=2),
        a_site("DC-NORTH", returns_per_day=1),
        a_site("DC-SOUTH"),
        central_location="DC-NORTH",
        max_km=50.0,
    )

    line = route_one(network, load={"STORE-UTRECHT-01": 2, "DC-NORTH": 40})

    assert line.location_id == "DC-NORTH"
    assert line.fallback
    assert line.reason == "fallback: central returns DC DC-NORTH (no other location can receive it)"
    assert line.km == pytest.approx(81.0, abs=0.1)
    assert line.candidates == ()
    assert line.excluded == {EXCLUDED_TOO_FAR: 2, EXCLUDED_FULL: 1}


def test_the_central_returns_dc_defaults_to_the_nearest_non_store_site_that_accepts_returns() -> None:
    network = a_return_network(
        a_site("STORE-UTRECHT-01"),
        a_site("DC-NORTH"),
        a_site("DC-SOUTH"),
        a_site("DC-CENTRAL", lat=52.1, lon=5.2, is_store=False, accepts_returns=False),
    )

    line = route_one(network)

    assert network.central_for(*UTRECHT_HOME) == ("DC-SOUTH", line.central_km)
    assert line.central_location == "DC-SOUTH"
    assert line.central_km == pytest.approx(74.7, abs=0.1)
    assert km_avoided(line.central_km, line.km) == pytest.approx(74.7 - 1.3, abs=0.1)


def test_nowhere_when_the_central_returns_dc_is_closed_too() -> None:
    network = a_return_network(
        a_site("STORE-UTRECHT-01", accepts_returns=False),
        a_site("DC-NORTH", calendar=a_calendar(days=())),
    )

    line = route_one(network)

    assert line.location_id is None
    assert line.km is None
    assert not line.fallback
    assert (
        line.reason
        == "nowhere can receive it: no location qualifies and central DC-NORTH is closed for the next 7 days"
    )


def test_nowhere_when_there_is_no_central_returns_dc() -> None:
    network = a_return_network(a_site("STORE-UTRECHT-01", returns_per_day=0))

    line = route_one(network)

    assert line.location_id is None
    assert line.central_location is None
    assert line.reason == "nowhere can receive it: no location qualifies and there is no central returns DC"


def test_a_central_location_that_does_not_accept_returns_is_no_fallback() -> None:
    network = a_return_network(
        a_site("STORE-UTRECHT-01", returns_per_day=0),
        a_site("DC-NORTH", accepts_returns=False),
        central_location="DC-NORTH",
    )

    line = route_one(network)

    assert line.location_id is None
    assert line.central_location == "DC-NORTH"
    assert (
        line.reason
        == "nowhere can receive it: no location qualifies and central DC-NORTH does not accept returns"
    )


def test_the_explanation_lists_the_best_candidates_best_first() -> None:
    network = a_return_network(*(a_site(location_id) for location_id in PLACES), trace_top=4)

    line = route_one(network, need={"STORE-MAASTRICHT-04": {BIKE_LIGHT: 1}})

    assert [c.location_id for c in line.candidates] == [
        "STORE-UTRECHT-01",
        "STORE-AMERSFOORT-03",
        "STORE-AMSTERDAM-02",
        "STORE-MAASTRICHT-04",
    ]
    assert [c.score for c in line.candidates] == sorted(c.score for c in line.candidates)
    maastricht = line.candidates[3]
    assert maastricht.need == 1
    assert maastricht.score == pytest.approx(maastricht.km - 100.0)


def test_ties_break_on_location_id_whatever_the_site_order() -> None:
    twins = [a_site("STORE-B", lat=52.09, lon=5.12), a_site("STORE-A", lat=52.09, lon=5.12)]

    forward = route_one(a_return_network(*twins))
    backward = route_one(a_return_network(*reversed(twins)))

    assert forward.location_id == backward.location_id == "STORE-A"
    assert forward == backward


def test_a_line_without_quantity_is_refused() -> None:
    with pytest.raises(ValueError, match="quantity must be >= 1"):
        route_one(a_return_network(), quantity=0)


# --- km avoided -----------------------------------------------------------------------------------


def test_km_avoided_is_never_negative_and_zero_without_a_baseline() -> None:
    assert km_avoided(80.0, 20.0) == 60.0
    assert km_avoided(20.0, 80.0) == 0.0
    assert km_avoided(None, 20.0) == 0.0
    assert km_avoided(80.0, None) == 0.0


def test_a_store_return_avoids_the_trip_to_the_central_returns_dc() -> None:
    network = a_return_network(a_site("STORE-UTRECHT-01"), a_site("DC-NORTH"), central_location="DC-NORTH")
    utrecht, north = network.sites["STORE-UTRECHT-01"], network.sites["DC-NORTH"]

    assert store_return_km_avoided(network, "STORE-UTRECHT-01") == pytest.approx(
        haversine_km(utrecht.lat, utrecht.lon, north.lat, north.lon)
    )
    assert store_return_km_avoided(network, "DC-NORTH") == 0.0
    assert store_return_km_avoided(network, "STORE-NOWHERE") == 0.0


# --- property: wherever it goes, it can be received there ------------------------------------------

SKUS = (BIKE_LIGHT, PUMP, HELMET)
PROPERTY_NOW = at("2024-05-06 10:00")


@st.composite
def calendars(draw: st.DrawFn) -> Calendar:
    days = draw(st.sets(st.integers(0, 6)))
    start = draw(st.integers(0, 20))
    closed = draw(st.sets(st.integers(-1, 12), max_size=10))
    return a_calendar(
        hours=(f"{start:02d}:00", f"{draw(st.integers(start + 1, 24)):02d}:00".replace("24:00", "23:59")),
        days=days,
        closed=[date(2024, 5, 6) + timedelta(days=n) for n in closed],
    )


@st.composite
def return_scenarios(
    draw: st.DrawFn,
) -> tuple[
    ReturnNetwork, list[tuple[str, int]], dict[str, dict[str, int]], dict[str, int], int, tuple[float, float]
]:
    n_sites = draw(st.integers(1, 8))
    sites = [
        a_site(
            f"SITE-{n:02d}",
            lat=draw(st.floats(50.8, 53.4)),
            lon=draw(st.floats(3.5, 7.1)),
            is_store=draw(st.booleans()),
            accepts_returns=draw(st.booleans()),
            returns_per_day=draw(st.none() | st.integers(0, 6)),
            calendar=draw(calendars()),
        )
        for n in range(n_sites)
    ]
    central = draw(st.none() | st.sampled_from([s.location_id for s in sites]))
    policy = RoutingPolicy(
        max_km=draw(st.floats(5.0, 300.0)),
        horizon_days=draw(st.integers(1, 7)),
        central_location=central,
        parcel_weight=draw(st.sampled_from((0.0, 40.0))),
    )
    network = ReturnNetwork({s.location_id: s for s in sites}, policy)
    lines = draw(st.lists(st.tuples(st.sampled_from(SKUS), st.integers(1, 3)), min_size=1, max_size=4))
    need = {
        location_id: draw(st.dictionaries(st.sampled_from(SKUS), st.integers(-2, 4)))
        for location_id in draw(st.sets(st.sampled_from([s.location_id for s in sites])))
    }
    load = {s.location_id: draw(st.integers(0, 6)) for s in sites if draw(st.booleans())}
    now = PROPERTY_NOW + draw(st.integers(0, 10 * 24)) * MS_PER_HOUR
    customer = (draw(st.floats(50.8, 53.4)), draw(st.floats(3.5, 7.1)))
    return network, lines, need, load, now, customer


def opens_within(site: Site, now: int, days: int) -> bool:
    opening = next_open(site.calendar, now)
    return opening is not None and opening < now + days * MS_PER_DAY


def oracle_score(
    site: Site,
    line: RoutedLine,
    customer: tuple[float, float],
    need: Mapping[str, Mapping[str, int]],
    running: Mapping[str, int],
    parcel: set[str],
    parcel_weight: float,
) -> float:
    """The module docstring's score, written out independently."""
    short = max(0, need.get(site.location_id, {}).get(line.sku, 0))
    load_share = running.get(site.location_id, 0) / site.returns_per_day if site.returns_per_day else 0.0
    return (
        haversine_km(*customer, site.lat, site.lon)
        - 100.0 * min(line.quantity, short)
        + 50.0 * load_share
        - (parcel_weight if site.location_id in parcel else 0.0)
    )


Scenario = tuple[
    ReturnNetwork, list[tuple[str, int]], dict[str, dict[str, int]], dict[str, int], int, tuple[float, float]
]
"""(network, lines, need per SKU, load, now, customer) as ``return_scenarios`` draws them."""


@settings(max_examples=300)
@given(return_scenarios())
def test_property_the_chosen_location_can_always_receive_the_item(
    scenario: Scenario,
) -> None:
    network, lines, need, load, now, customer = scenario
    policy = network.policy
    running = dict(load)
    parcel: set[str] = set()

    routed = route(network, *lines, need=need, load=load, now=now, customer=customer)

    for line in routed:
        qualifying = {
            s.location_id
            for s in network.sites.values()
            if Capability.ACCEPTS_RETURNS in s.capabilities
            and haversine_km(*customer, s.lat, s.lon) <= policy.max_km
            and opens_within(s, now, policy.horizon_days)
            and (
                s.returns_per_day is None
                or running.get(s.location_id, 0) + line.quantity <= s.returns_per_day
            )
        }
        if line.location_id is None:
            assert not qualifying
        else:
            site = network.sites[line.location_id]
            assert Capability.ACCEPTS_RETURNS in site.capabilities
            assert opens_within(site, now, policy.horizon_days)
            assert line.km == pytest.approx(haversine_km(*customer, site.lat, site.lon))
            if line.fallback:
                assert not qualifying
                assert line.location_id == line.central_location
            else:
                assert line.location_id in qualifying
                assert line.km is not None and line.km <= policy.max_km
                capacity = site.returns_per_day
                assert capacity is None or running.get(line.location_id, 0) + line.quantity <= capacity
                assert line.candidates[0].location_id == line.location_id
                # The best score by brute force over the qualifying sites, ties on id.
                best = min(
                    (
                        oracle_score(
                            network.sites[q], line, customer, need, running, parcel, policy.parcel_weight
                        ),
                        q,
                    )
                    for q in qualifying
                )
                assert best[1] == line.location_id
                assert line.candidates[0].score == pytest.approx(best[0])
            running[line.location_id] = running.get(line.location_id, 0) + line.quantity
            parcel.add(line.location_id)
        assert sum(line.excluded.values()) + (len(qualifying) if not line.fallback else 0) == len(
            network.sites
        )


@settings(max_examples=100)
@given(return_scenarios())
def test_property_routing_is_deterministic_and_never_mutates_the_load(
    scenario: Scenario,
) -> None:
    network, lines, need, load, now, customer = scenario
    before = dict(load)
    fresh = ReturnNetwork(dict(reversed(list(network.sites.items()))), network.policy)

    first = route(network, *lines, need=need, load=load, now=now, customer=customer)

    assert route(fresh, *lines, need=need, load=load, now=now, customer=customer) == first
    assert load == before
