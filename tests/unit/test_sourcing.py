"""Sourcing: fewest shipments first, then cost; click & collect via routes; every decision explained."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oms_streams.domain import sourcing_home_delivery
from oms_streams.domain.network import Capability, DeliveryMethod
from oms_streams.domain.promise import promise_options
from oms_streams.domain.promise_types import CartLine, Destination, PromiseRequest
from oms_streams.domain.sourcing import (
    Outcome,
    SourcingDecision,
    SourcingPolicy,
    SourcingRequest,
    SourcingWeights,
    StockSnapshot,
    source_order,
)
from oms_streams.domain.split_search import SplitCandidate, SplitProblem
from oms_streams.domain.visibility import haversine_km
from tests.unit.promise_builders import (
    BIKE_COURIER,
    BIKE_LIGHT,
    HELMET,
    LOCK,
    PUMP,
    UTRECHT_HOME,
    FixedTransit,
    a_dc,
    a_network,
    a_route,
    a_service,
    a_stock,
    a_store,
    at,
    default_sites,
    home,
    local,
    weekly,
)
from tests.unit.sourcing_builders import (
    World,
    a_problem,
    a_snapshot,
    a_world,
    an_order,
    pickup_at,
    split_problems,
)

STANDARD, GREEN, SHIP_FROM_STORE = (
    DeliveryMethod.STANDARD,
    DeliveryMethod.GREEN,
    DeliveryMethod.SHIP_FROM_STORE,
)
CLICK_AND_COLLECT, COURIER = DeliveryMethod.CLICK_AND_COLLECT, DeliveryMethod.COURIER


def decide(request: SourcingRequest, stock: StockSnapshot, world: World | None = None) -> SourcingDecision:
    world = world or a_world()
    return source_order(request, stock, world.network, world.transit, world.policy)


def where(decision: SourcingDecision) -> list[tuple[str, tuple[CartLine, ...]]]:
    return [(s.location_id, s.lines) for s in decision.shipments]


def four_dcs():
    """The default network plus DC-EAST (Enschede) and DC-WEST (Leiden)."""
    return a_network(
        sites=[*default_sites(), a_dc("DC-EAST", lat=52.22, lon=6.89), a_dc("DC-WEST", lat=52.16, lon=4.49)]
    )


def km_from_home(lat: float, lon: float) -> float:
    return haversine_km(lat, lon, *UTRECHT_HOME)


# --- the split problem: exact against brute force ------------------------------------------------


@settings(max_examples=400)
@given(problem=split_problems())
def test_the_exact_search_finds_what_trying_every_set_finds(problem: SplitProblem):
    brute = problem.exhaustive()
    result = problem.exact()
    assert result is not None
    assert (result.plan.units, result.plan.splits) == (brute.units, brute.splits)
    assert result.plan.cost == pytest.approx(brute.cost, abs=1e-9, rel=1e-9)
    assert result.proven and result.gap == 0.0
    assert result.splits_lower_bound == result.plan.splits


@settings(max_examples=300)
@given(problem=split_problems())
def test_the_bounded_searchs_lower_bounds_never_exceed_the_optimum(problem: SplitProblem):
    optimum = problem.exhaustive()
    bounded = problem.bounded(beam=2, exact_nodes=0)
    assert bounded.search == "bounded"
    assert not bounded.plan.is_better_than(optimum)
    if bounded.plan.units == optimum.units:
        assert bounded.splits_lower_bound <= optimum.splits
        if bounded.splits_lower_bound == optimum.splits:
            assert bounded.cost_lower_bound <= optimum.cost + 1e-9
    assert 0.0 <= bounded.gap <= 1.0
    if bounded.proven:
        assert bounded.plan.splits == optimum.splits
        assert bounded.plan.cost == pytest.approx(optimum.cost, abs=1e-9)


def random_big_problem(seed: int, *, lines: int = 10, candidates: int = 100) -> SplitProblem:
    """A 10-line cart over 100 locations: a few large sites hold most lines, many small ones a few."""
    rng = random.Random(seed)
    quantities = [rng.randint(1, 3) for _ in range(lines)]
    held: dict[str, list[int]] = {}
    costs: dict[str, float] = {}
    for n in range(candidates):
        big = n < 8
        share = 0.8 if big else 0.25
        units = [rng.randint(1, 6) if rng.random() < share else 0 for _ in range(lines)]
        if any(units):
            location_id = f"{'DC' if big else 'STORE'}-{n:03d}"
            held[location_id] = units
            costs[location_id] = round(rng.uniform(20, 600), 1)
    return a_problem(quantities, held, parcel_costs=costs)


@pytest.mark.parametrize("seed", range(6))
def test_ten_lines_over_a_hundred_locations_match_trying_every_set_of_one_or_two(seed: int):
    problem = random_big_problem(seed)
    result = problem.exact(50_000)
    assert result is not None
    if result.plan.splits > 2 or result.plan.units < problem.target:
        pytest.skip("the optimum needs 3 shipments: every triple is too many to try here")
    brute = problem.exhaustive(max_splits=2)
    assert (result.plan.splits, result.plan.location_ids) == (brute.splits, brute.location_ids)
    assert result.plan.cost == pytest.approx(brute.cost, abs=1e-9)


def test_ten_lines_over_a_hundred_stores_needing_three_shipments_match_trying_every_triple():
    # No large site: every store holds about 3 of the 10 lines, so the optimum takes three.
    rng = random.Random(4)
    quantities = [rng.randint(1, 3) for _ in range(10)]
    held: dict[str, list[int]] = {}
    costs: dict[str, float] = {}
    for n in range(100):
        units = [rng.randint(1, 4) if rng.random() < 0.3 else 0 for _ in range(10)]
        if any(units):
            held[f"STORE-{n:03d}"] = units
            costs[f"STORE-{n:03d}"] = round(rng.uniform(5, 300), 1)
    problem = a_problem(quantities, held, parcel_costs=costs)
    result = problem.exact(50_000)
    assert result is not None and result.plan.splits == 3
    brute = problem.exhaustive(max_splits=3)  # ~160,000 sets
    assert (result.plan.units, result.plan.location_ids) == (brute.units, brute.location_ids)
    assert result.plan.cost == pytest.approx(brute.cost, abs=1e-9)


def test_some_big_instances_do_need_two_shipments():
    # Guards the test above against only ever checking single-site answers.
    splits = [random_big_problem(seed).exact(50_000) for seed in range(6)]
    assert {r.plan.splits for r in splits if r is not None} >= {2}


def test_the_node_budget_hands_over_to_the_bounded_search():
    problem = random_big_problem(3)
    result = problem.solve(SourcingPolicy(node_budget=2))
    assert result.search == "bounded"
    assert any("node budget" in note for note in result.notes)
    exact = problem.exact(50_000)
    assert exact is not None
    assert result.splits_lower_bound <= exact.plan.splits
    assert result.cost_lower_bound <= exact.plan.cost + 1e-9


def test_the_bounded_search_proves_easy_large_problems_optimal():
    problem = random_big_problem(5)
    bounded = problem.solve(SourcingPolicy(exact_max_candidates=10))
    exact = problem.exact(50_000)
    assert exact is not None
    assert (bounded.search, bounded.proven, bounded.gap) == ("bounded", True, 0.0)
    assert bounded.plan == exact.plan
    assert any("proven optimal within" in note for note in bounded.notes)


def test_a_bounded_search_that_runs_out_of_exact_nodes_uses_its_beam():
    problem = random_big_problem(5)
    bounded = problem.bounded(exact_nodes=1)
    assert bounded.search == "bounded"
    assert any("beam" in note for note in bounded.notes)
    exact = problem.exact(50_000)
    assert exact is not None
    assert not bounded.plan.is_better_than(exact.plan)
    assert bounded.splits_lower_bound <= exact.plan.splits
    assert bounded.cost_lower_bound <= exact.plan.cost + 1e-9


def test_too_many_lines_or_candidates_use_the_bounded_search():
    problem = random_big_problem(4)
    assert problem.solve(SourcingPolicy(exact_max_candidates=10)).search == "bounded"
    assert problem.solve(SourcingPolicy(exact_max_lines=5)).search == "bounded"
    assert problem.solve(SourcingPolicy()).search == "exact"


def test_a_whole_line_goes_to_the_member_with_the_lowest_unit_cost():
    problem = a_problem(
        [2, 1],
        {"DC-A": [2, 1], "DC-B": [2, 0]},
        unit_costs={"DC-A": [5.0, 0.0], "DC-B": [1.0, 0.0]},
    )
    plan = problem.evaluate({"DC-A", "DC-B"})
    assert plan.allocations == (("DC-A", ((1, 1),)), ("DC-B", ((0, 2),)))
    assert plan.cost == pytest.approx(10.0 + 10.0 + 2 * 1.0)


def test_a_line_is_split_only_when_no_member_holds_it_whole():
    problem = a_problem([3], {"DC-A": [2], "DC-B": [1], "DC-C": [3]})
    assert problem.evaluate({"DC-A", "DC-B", "DC-C"}).allocations == (("DC-C", ((0, 3),)),)
    assert problem.evaluate({"DC-A", "DC-B"}).allocations == (("DC-A", ((0, 2),)), ("DC-B", ((0, 1),)))


def test_what_no_one_holds_is_left_out_of_every_plan():
    problem = a_problem([5, 1], {"DC-A": [2, 1], "DC-B": [1, 0]})
    assert problem.caps == (3, 1)
    plan = problem.exact()
    assert plan is not None
    assert (plan.plan.units, plan.plan.location_ids) == (4, ("DC-A", "DC-B"))


def test_a_set_whose_member_gets_nothing_is_the_smaller_set():
    problem = a_problem([1], {"DC-A": [1], "DC-B": [1]}, parcel_costs={"DC-A": 1.0, "DC-B": 2.0})
    assert problem.evaluate({"DC-A", "DC-B"}) == problem.evaluate({"DC-A"})


# --- home delivery ---------------------------------------------------------------------------------


def test_one_dc_holding_the_cart_ships_it_in_one_parcel_on_the_promises_clock():
    decision = decide(an_order((BIKE_LIGHT, 2)), a_snapshot({"DC-NORTH": {BIKE_LIGHT: 5}}))
    assert decision.outcome is Outcome.ALLOCATED
    (parcel,) = decision.shipments
    assert (parcel.location_id, parcel.lines) == ("DC-NORTH", (CartLine(BIKE_LIGHT, 2),))
    assert parcel.service_id == "POSTNL-STANDARD" and parcel.route_id is None
    assert local(parcel.ready_at_ms) == "2024-05-06 10:45"
    assert local(parcel.handover_at_ms) == "2024-05-06 18:00"
    assert local(parcel.arrives_at_ms) == "2024-05-07 14:00"
    assert parcel.distance_km == pytest.approx(km_from_home(52.5168, 6.0830))
    assert parcel.co2e_g == pytest.approx(parcel.distance_km * 120.0)
    assert not parcel.late
    assert (decision.backorder, decision.reason) == ((), "")


def test_the_plan_keeps_the_promise_engines_timing():
    stock = {"DC-NORTH": {BIKE_LIGHT: 5}}
    decision = decide(an_order((BIKE_LIGHT, 1)), a_snapshot(stock))
    promised = promise_options(
        PromiseRequest(
            "REQ", (CartLine(BIKE_LIGHT, 1),), home(), at("2024-05-06 10:00"), frozenset({STANDARD})
        ),
        a_stock(webshop=stock),
        a_network(),
        a_world().transit,
    )
    (shipment,) = promised.options[0].shipments
    (parcel,) = decision.shipments
    assert (parcel.ready_at_ms, parcel.handover_at_ms, parcel.arrives_at_ms) == (
        shipment.ready_at_ms,
        shipment.handover_at_ms,
        shipment.arrives_at_ms,
    )


def test_parcel_cost_is_distance_plus_priced_co2e():
    decision = decide(an_order((BIKE_LIGHT, 1)), a_snapshot({"DC-SOUTH": {BIKE_LIGHT: 5}}))
    (parcel,) = decision.shipments
    weights = SourcingWeights()
    assert parcel.cost == pytest.approx(
        weights.km * parcel.distance_km + weights.co2e_kg * parcel.co2e_g / 1000
    )
    assert decision.trace.cost == pytest.approx(parcel.cost)


def test_the_cost_carries_the_co2e_of_the_service_the_parcel_really_takes():
    evening = a_service(
        "DHL-EVENING", pickups=weekly(range(5), "21:00"), cutoff_minutes=30, co2e_g_per_parcel_km=150.0
    )
    world = a_world(
        network=a_network(services=[a_service(), evening]),
        transit=FixedTransit(per_service={"DHL-EVENING": 8.0}),
    )
    (parcel,) = decide(an_order((BIKE_LIGHT, 1)), a_snapshot({"DC-SOUTH": {BIKE_LIGHT: 5}}), world).shipments
    # DHL delivers earlier the same day, so it is chosen although PostNL emits less.
    assert parcel.service_id == "DHL-EVENING"
    assert parcel.co2e_g == pytest.approx(parcel.distance_km * 150.0)
    assert parcel.cost == pytest.approx(parcel.distance_km + 2.0 * parcel.co2e_g / 1000)


def test_the_nearer_of_two_dcs_holding_the_cart_ships_it():
    stock = a_snapshot({"DC-NORTH": {BIKE_LIGHT: 5}, "DC-SOUTH": {BIKE_LIGHT: 5}})
    # DC-SOUTH is 75 km from the customer, DC-NORTH 81 km.
    assert where(decide(an_order((BIKE_LIGHT, 1)), stock)) == [("DC-SOUTH", (CartLine(BIKE_LIGHT, 1),))]


def test_one_parcel_from_further_away_beats_two_parcels_from_nearby():
    stock = a_snapshot(
        {"DC-SOUTH": {BIKE_LIGHT: 5}, "DC-WEST": {PUMP: 5}, "DC-EAST": {BIKE_LIGHT: 5, PUMP: 5}}
    )
    decision = decide(an_order((BIKE_LIGHT, 1), (PUMP, 1)), stock, a_world(network=four_dcs()))
    assert where(decision) == [("DC-EAST", (CartLine(BIKE_LIGHT, 1), CartLine(PUMP, 1)))]
    assert decision.trace.splits == decision.trace.splits_lower_bound == 1


def test_with_equal_splits_the_cheapest_pair_wins():
    stock = a_snapshot(
        {
            "DC-NORTH": {BIKE_LIGHT: 1, PUMP: 1},
            "DC-SOUTH": {HELMET: 1},
            "DC-EAST": {HELMET: 1},
            "DC-WEST": {BIKE_LIGHT: 1, PUMP: 1},
        }
    )
    decision = decide(an_order((BIKE_LIGHT, 1), (PUMP, 1), (HELMET, 1)), stock, a_world(network=four_dcs()))
    # Leiden (41 km) + Eindhoven (75 km) is the cheapest of the four possible pairs.
    assert sorted(s.location_id for s in decision.shipments) == ["DC-SOUTH", "DC-WEST"]
    assert decision.trace.search == "exact"
    assert decision.trace.gap == 0.0
    assert decision.trace.winning.startswith("2 shipments: ")


def test_a_line_is_split_over_dcs_only_when_none_holds_it_whole():
    whole = decide(
        an_order((BIKE_LIGHT, 3)), a_snapshot({"DC-NORTH": {BIKE_LIGHT: 3}, "DC-SOUTH": {BIKE_LIGHT: 2}})
    )
    assert where(whole) == [("DC-NORTH", (CartLine(BIKE_LIGHT, 3),))]
    split = decide(
        an_order((BIKE_LIGHT, 4)), a_snapshot({"DC-NORTH": {BIKE_LIGHT: 3}, "DC-SOUTH": {BIKE_LIGHT: 2}})
    )
    assert sorted(where(split)) == [
        ("DC-NORTH", (CartLine(BIKE_LIGHT, 3),)),
        ("DC-SOUTH", (CartLine(BIKE_LIGHT, 1),)),
    ]


def test_duplicate_lines_are_one_line():
    decision = decide(an_order((BIKE_LIGHT, 1), (BIKE_LIGHT, 2)), a_snapshot({"DC-NORTH": {BIKE_LIGHT: 5}}))
    assert where(decision) == [("DC-NORTH", (CartLine(BIKE_LIGHT, 3),))]


def test_protected_store_stock_is_expensive_to_ship_away():
    stock = {"STORE-UTRECHT-01": {BIKE_LIGHT: 2}, "STORE-AMSTERDAM-02": {BIKE_LIGHT: 2}}
    order = an_order((BIKE_LIGHT, 1), method=SHIP_FROM_STORE)
    assert decide(order, a_snapshot(stock)).shipments[0].location_id == "STORE-UTRECHT-01"
    # Utrecht keeps 6 of its 8 lights for walk-in customers: shipping one away now costs 45.
    protected = a_snapshot(stock, protected={"STORE-UTRECHT-01": {BIKE_LIGHT: 6}})
    decision = decide(order, protected)
    assert decision.shipments[0].location_id == "STORE-AMSTERDAM-02"
    utrecht = next(c for c in decision.trace.candidates if c.location_id == "STORE-UTRECHT-01")
    assert utrecht.filtered is None


def test_a_busy_location_costs_its_workload():
    stock = {"DC-NORTH": {BIKE_LIGHT: 5}, "DC-SOUTH": {BIKE_LIGHT: 5}}
    busy_south = a_snapshot(stock, workload={"DC-SOUTH": 100})
    decision = decide(an_order((BIKE_LIGHT, 1)), busy_south)
    # Half the capacity open costs 15: more than the 6 km DC-NORTH is further away.
    assert decision.shipments[0].location_id == "DC-NORTH"


def test_excluded_locations_and_pairs_are_filtered_with_a_reason():
    stock = a_snapshot(
        {"DC-NORTH": {BIKE_LIGHT: 5}, "DC-SOUTH": {BIKE_LIGHT: 5, PUMP: 5}, "DC-EAST": {PUMP: 5}}
    )
    order = an_order(
        (BIKE_LIGHT, 1),
        (PUMP, 1),
        excluded=[("DC-SOUTH", BIKE_LIGHT), ("DC-EAST", PUMP)],
        excluded_locations=["DC-WEST"],
    )
    decision = decide(order, stock, a_world(network=four_dcs()))
    assert sorted(where(decision)) == [
        ("DC-NORTH", (CartLine(BIKE_LIGHT, 1),)),
        ("DC-SOUTH", (CartLine(PUMP, 1),)),
    ]
    filtered = {c.location_id: c.filtered for c in decision.trace.candidates}
    assert filtered["DC-EAST"] == "excluded for the cart SKUs it holds"
    assert dict(decision.trace.filtered_counts) == {"excluded for the cart SKUs it holds": 1}


def test_an_excluded_location_is_never_used():
    stock = a_snapshot({"DC-NORTH": {BIKE_LIGHT: 5}, "DC-SOUTH": {BIKE_LIGHT: 5}})
    decision = decide(an_order((BIKE_LIGHT, 1), excluded_locations=["DC-SOUTH"]), stock)
    assert decision.shipments[0].location_id == "DC-NORTH"
    assert ("excluded", 1) in decision.trace.filtered_counts


def slow_south_network():
    """DC-SOUTH picks for 10 working hours: it misses Monday's 18:00 pickup."""
    sites = [
        a_dc("DC-NORTH"),
        a_dc("DC-SOUTH", lat=51.4416, lon=5.4697, region="NL-SOUTH", pick_minutes=600),
        *default_sites()[2:],
    ]
    return a_network(sites=sites)


def test_a_location_that_cannot_deliver_by_the_promised_time_is_filtered():
    stock = a_snapshot({"DC-NORTH": {BIKE_LIGHT: 5}, "DC-SOUTH": {BIKE_LIGHT: 5}})
    order = an_order((BIKE_LIGHT, 1), promised_by="2024-05-07 21:00")
    decision = decide(order, stock, a_world(network=slow_south_network()))
    assert decision.shipments[0].location_id == "DC-NORTH"
    assert not decision.shipments[0].late
    south = next(c for c in decision.trace.candidates if c.location_id == "DC-SOUTH")
    assert south.filtered == "cannot deliver by 2024-05-07 19:00 UTC"


def test_when_no_plan_is_on_time_the_order_still_gets_stock_and_the_late_parcel_is_marked():
    stock = a_snapshot({"DC-SOUTH": {BIKE_LIGHT: 5}})
    order = an_order((BIKE_LIGHT, 1), promised_by="2024-05-07 21:00")
    decision = decide(order, stock, a_world(network=slow_south_network()))
    assert decision.outcome is Outcome.ALLOCATED
    (parcel,) = decision.shipments
    assert parcel.location_id == "DC-SOUTH" and parcel.late
    assert local(parcel.handover_at_ms) == "2024-05-07 18:00"
    assert any("no plan covers the cart by" in note for note in decision.trace.notes)


def test_a_cart_needing_more_shipments_than_allowed_gets_the_most_units_and_a_backorder():
    stock = a_snapshot(
        {"DC-NORTH": {BIKE_LIGHT: 1}, "DC-SOUTH": {PUMP: 1}, "DC-EAST": {HELMET: 2}, "DC-WEST": {LOCK: 1}}
    )
    order = an_order((BIKE_LIGHT, 1), (PUMP, 1), (HELMET, 2), (LOCK, 1))
    decision = decide(order, stock, a_world(network=four_dcs()))
    assert decision.outcome is Outcome.PARTIAL
    # Three shipments at most: the two helmets are the most units, then the cheapest two of the rest.
    assert sorted(s.location_id for s in decision.shipments) == ["DC-EAST", "DC-SOUTH", "DC-WEST"]
    assert decision.backorder == (CartLine(BIKE_LIGHT, 1),)
    assert decision.reason == f"{BIKE_LIGHT} would need more than 3 shipments from sites that ship"


def test_a_line_short_everywhere_is_allocated_as_far_as_it_goes():
    stock = a_snapshot({"DC-NORTH": {BIKE_LIGHT: 2, PUMP: 1}})
    decision = decide(an_order((BIKE_LIGHT, 3), (PUMP, 1)), stock)
    assert decision.outcome is Outcome.PARTIAL
    assert where(decision) == [("DC-NORTH", (CartLine(BIKE_LIGHT, 2), CartLine(PUMP, 1)))]
    assert decision.backorder == (CartLine(BIKE_LIGHT, 1),)
    assert decision.reason == f"only 2 of 3 {BIKE_LIGHT} in stock at sites that ship"


def test_nothing_in_stock_is_rejected_naming_what_is_missing():
    decision = decide(an_order((BIKE_LIGHT, 1), (PUMP, 2)), a_snapshot({"STORE-UTRECHT-01": {PUMP: 5}}))
    assert decision.outcome is Outcome.REJECTED
    assert decision.shipments == ()
    assert decision.backorder == (CartLine(BIKE_LIGHT, 1), CartLine(PUMP, 2))
    assert decision.reason == (
        f"{BIKE_LIGHT} is not in stock at sites that ship; {PUMP} is not in stock at sites that ship"
    )


def test_home_delivery_needs_coordinates():
    order = an_order((BIKE_LIGHT, 1), destination=Destination(postal_code="3511 AB"))
    decision = decide(order, a_snapshot({"DC-NORTH": {BIKE_LIGHT: 5}}))
    assert (decision.outcome, decision.reason) == (
        Outcome.REJECTED,
        "home delivery needs destination coordinates",
    )


def test_an_empty_order_is_rejected():
    decision = decide(an_order((BIKE_LIGHT, 0)), a_snapshot({"DC-NORTH": {BIKE_LIGHT: 5}}))
    assert (decision.outcome, decision.reason) == (Outcome.REJECTED, "the order has no lines")


def test_ship_from_store_sources_from_stores_that_ship_only():
    stock = a_snapshot({"DC-SOUTH": {BIKE_LIGHT: 5}, "STORE-AMSTERDAM-02": {BIKE_LIGHT: 5}})
    decision = decide(an_order((BIKE_LIGHT, 1), method=SHIP_FROM_STORE), stock)
    assert where(decision) == [("STORE-AMSTERDAM-02", (CartLine(BIKE_LIGHT, 1),))]
    assert decision.shipments[0].service_id == "POSTNL-STANDARD"
    assert decision.trace.candidates_total == 1


def test_green_is_one_parcel_from_a_single_site_on_a_green_service():
    stock = a_snapshot({"DC-NORTH": {BIKE_LIGHT: 5, PUMP: 5}, "DC-SOUTH": {BIKE_LIGHT: 5}})
    decision = decide(an_order((BIKE_LIGHT, 1), (PUMP, 1), method=GREEN), stock)
    assert where(decision) == [("DC-NORTH", (CartLine(BIKE_LIGHT, 1), CartLine(PUMP, 1)))]
    assert decision.shipments[0].service_id == "POSTNL-GREEN"
    assert local(decision.shipments[0].handover_at_ms) == "2024-05-07 18:00"
    assert decision.trace.search == "single_site"


def test_green_without_a_site_holding_the_whole_cart_allocates_the_best_single_site():
    stock = a_snapshot({"DC-NORTH": {BIKE_LIGHT: 5}, "DC-SOUTH": {PUMP: 5, HELMET: 5}})
    decision = decide(an_order((BIKE_LIGHT, 1), (PUMP, 1), (HELMET, 1), method=GREEN), stock)
    assert decision.outcome is Outcome.PARTIAL
    assert where(decision) == [("DC-SOUTH", (CartLine(PUMP, 1), CartLine(HELMET, 1)))]
    assert decision.backorder == (CartLine(BIKE_LIGHT, 1),)
    assert "green delivery is one parcel" in decision.reason


def many_stores_network(n: int = 40, *, slow: int = 0):
    """``n`` ship-from-store stores in a line west of Utrecht, 1 km apart; the nearest ``slow`` ones
    pick for 12 working hours."""
    stores = [
        a_store(
            f"STORE-{k:03d}",
            lat=52.08,
            lon=5.13 - 0.0147 * k,
            pick_minutes=720 if k < slow else 30,
            courier=None,
            capabilities=[Capability.SHIP_FROM_STORE],
        )
        for k in range(n)
    ]
    return a_network(sites=[*default_sites()[:2], *stores])


def test_the_trace_lists_candidates_by_cost_then_filtered_ones_at_most_twenty_five():
    network = many_stores_network(40)
    units = {f"STORE-{k:03d}": {BIKE_LIGHT: 1} for k in range(40)}
    decision = decide(
        an_order((BIKE_LIGHT, 1), method=SHIP_FROM_STORE, excluded_locations=["STORE-039"]),
        a_snapshot(units),
        a_world(network=network),
    )
    trace = decision.trace
    assert trace.candidates_total == 40
    assert len(trace.candidates) == 25
    costs = [c.cost for c in trace.candidates if c.filtered is None]
    assert costs == sorted(costs)
    assert trace.candidates[0].location_id == "STORE-000" == decision.shipments[0].location_id
    assert trace.candidates[0].held == ((BIKE_LIGHT, 1),)
    assert dict(trace.filtered_counts) == {"excluded": 1}
    assert trace.winning == "1 shipment: STORE-000 (1 line), cost " + f"{decision.shipments[0].cost:.1f}"


def test_lazy_timing_chooses_what_timing_every_candidate_first_chooses(monkeypatch: pytest.MonkeyPatch):
    network = many_stores_network(40, slow=5)
    units = {f"STORE-{k:03d}": {BIKE_LIGHT: 1, PUMP: 1 if k % 3 else 0} for k in range(40)}
    order = an_order((BIKE_LIGHT, 2), (PUMP, 1), method=SHIP_FROM_STORE, promised_by="2024-05-07 21:00")
    world = a_world(network=network)
    lazy = decide(order, a_snapshot(units), world)
    assert any("timed lazily" in note for note in lazy.trace.notes)
    monkeypatch.setattr(sourcing_home_delivery, "EAGER_TIMING_MAX", 1000)
    eager = decide(order, a_snapshot(units), world)
    assert eager.shipments == lazy.shipments
    assert [s.location_id for s in lazy.shipments] == ["STORE-005", "STORE-006"]
    assert dict(eager.trace.filtered_counts)["cannot deliver by 2024-05-07 19:00 UTC"] == 5


def test_decisions_are_deterministic_with_ties_broken_by_location_id():
    sites = [a_dc("DC-B"), a_dc("DC-A"), *default_sites()[2:]]
    stock = a_snapshot({"DC-A": {BIKE_LIGHT: 5}, "DC-B": {BIKE_LIGHT: 5}})
    world = a_world(network=a_network(sites=sites))
    first = decide(an_order((BIKE_LIGHT, 1)), stock, world)
    assert first.shipments[0].location_id == "DC-A"
    assert decide(an_order((BIKE_LIGHT, 1)), stock, world) == first


def test_a_bounded_decision_reports_honest_bounds():
    stock = a_snapshot(
        {
            "DC-NORTH": {BIKE_LIGHT: 1, PUMP: 1},
            "DC-SOUTH": {HELMET: 1},
            "DC-EAST": {HELMET: 1, LOCK: 1},
            "DC-WEST": {BIKE_LIGHT: 1, PUMP: 1, LOCK: 1},
        }
    )
    order = an_order((BIKE_LIGHT, 1), (PUMP, 1), (HELMET, 1), (LOCK, 1))
    exact = decide(order, stock, a_world(network=four_dcs()))
    bounded = decide(order, stock, a_world(network=four_dcs(), policy=SourcingPolicy(exact_max_candidates=2)))
    assert (exact.trace.search, bounded.trace.search) == ("exact", "bounded")
    assert bounded.trace.splits_lower_bound <= exact.trace.splits
    assert bounded.trace.cost_lower_bound <= exact.trace.cost + 1e-9
    assert bounded.trace.gap == pytest.approx(
        (bounded.trace.cost - bounded.trace.cost_lower_bound) / bounded.trace.cost
    )


STOCKED = ("DC-NORTH", "DC-SOUTH", "STORE-UTRECHT-01", "STORE-AMSTERDAM-02")


@settings(max_examples=150)
@given(
    held=st.fixed_dictionaries(
        {
            loc: st.fixed_dictionaries({sku: st.integers(0, 3) for sku in (BIKE_LIGHT, PUMP, HELMET)})
            for loc in STOCKED
        }
    ),
    cart=st.lists(
        st.tuples(st.sampled_from((BIKE_LIGHT, PUMP, HELMET, LOCK)), st.integers(1, 3)),
        min_size=1,
        max_size=5,
    ),
    method=st.sampled_from((STANDARD, GREEN, SHIP_FROM_STORE, CLICK_AND_COLLECT)),
    max_splits=st.integers(1, 3),
)
def test_a_decision_never_takes_more_than_is_there_nor_more_than_was_ordered(held, cart, method, max_splits):
    destination = pickup_at() if method is CLICK_AND_COLLECT else home()
    order = an_order(*cart, method=method, destination=destination)
    decision = decide(order, a_snapshot(held), a_world(policy=SourcingPolicy(max_splits=max_splits)))
    ordered: dict[str, int] = {}
    for sku, quantity in cart:
        ordered[sku] = ordered.get(sku, 0) + quantity
    allocated: dict[str, int] = {}
    for shipment in decision.shipments:
        for line in shipment.lines:
            assert 0 < line.quantity <= held[shipment.location_id].get(line.sku, 0)
            allocated[line.sku] = allocated.get(line.sku, 0) + line.quantity
    for line in decision.backorder:
        allocated[line.sku] = allocated.get(line.sku, 0) + line.quantity
    assert allocated == ordered
    if method in (STANDARD, SHIP_FROM_STORE):
        assert len(decision.shipments) <= max_splits
    assert (decision.outcome is Outcome.ALLOCATED) == (not decision.backorder)
    assert (decision.outcome is Outcome.REJECTED) == (not decision.shipments)
    assert decision.trace.splits_lower_bound <= max(1, decision.trace.splits)


# --- click & collect -------------------------------------------------------------------------------


def test_click_and_collect_serves_the_pickup_stores_own_stock_first():
    stock = a_snapshot({"STORE-UTRECHT-01": {BIKE_LIGHT: 2}, "DC-NORTH": {BIKE_LIGHT: 5}})
    decision = decide(an_order((BIKE_LIGHT, 2), method=CLICK_AND_COLLECT, destination=pickup_at()), stock)
    (own,) = decision.shipments
    assert (own.location_id, own.service_id, own.route_id) == ("STORE-UTRECHT-01", None, None)
    assert local(own.ready_at_ms) == "2024-05-06 10:30"  # the store's 30 pick minutes
    assert (own.distance_km, own.co2e_g, own.late) == (0.0, 0.0, False)
    assert decision.trace.search == "click_and_collect"


def test_missing_lines_ride_the_next_route_truck_from_a_dc_that_holds_them():
    stock = a_snapshot({"STORE-UTRECHT-01": {BIKE_LIGHT: 2, PUMP: 1}, "DC-NORTH": {PUMP: 5}})
    order = an_order((BIKE_LIGHT, 1), (PUMP, 2), method=CLICK_AND_COLLECT, destination=pickup_at())
    decision = decide(order, stock)
    assert decision.outcome is Outcome.ALLOCATED
    _, transfer = decision.shipments
    assert where(decision) == [
        ("STORE-UTRECHT-01", (CartLine(BIKE_LIGHT, 1),)),
        ("DC-NORTH", (CartLine(PUMP, 2),)),  # the store's single pump stays: one pick, one place
    ]
    assert transfer.route_id == "ROUTE-NORTH-MID" and transfer.service_id is None
    assert local(transfer.handover_at_ms) == "2024-05-07 05:00"  # Tuesday's truck
    assert local(transfer.arrives_at_ms) == "2024-05-07 06:30"
    km = haversine_km(52.5168, 6.0830, 52.0907, 5.1214)
    assert transfer.distance_km == pytest.approx(km)
    assert transfer.co2e_g == pytest.approx(900.0 * km * 0.01)
    # The truck drives anyway: the transfer costs the order's share, far below a parcel's km.
    assert transfer.cost == pytest.approx(km * 0.01 + 2.0 * transfer.co2e_g / 1000)


def two_routes_network(*, south_departs: str = "14:00"):
    south = a_route(
        "ROUTE-SOUTH-MID",
        origin_id="DC-SOUTH",
        departures=weekly(range(6), south_departs),
        stops=(("STORE-UTRECHT-01", 70),),
    )
    return a_network(routes=[a_route(), south])


def test_the_fewest_dcs_then_the_earliest_ready_for_pickup_win():
    world = a_world(network=two_routes_network())
    order = an_order((BIKE_LIGHT, 1), (PUMP, 1), method=CLICK_AND_COLLECT, destination=pickup_at())
    # DC-SOUTH's truck leaves Monday 14:00 and is unloaded by 16:10; DC-NORTH's only on Tuesday.
    both_everywhere = a_snapshot({"DC-NORTH": {BIKE_LIGHT: 5, PUMP: 5}, "DC-SOUTH": {BIKE_LIGHT: 5, PUMP: 5}})
    decision = decide(order, both_everywhere, world)
    assert [(s.location_id, s.route_id) for s in decision.shipments] == [("DC-SOUTH", "ROUTE-SOUTH-MID")]
    one_dc = a_snapshot({"DC-NORTH": {BIKE_LIGHT: 5, PUMP: 5}, "DC-SOUTH": {BIKE_LIGHT: 5}})
    assert [s.location_id for s in decide(order, one_dc, world).shipments] == ["DC-NORTH"]


def test_the_click_and_collect_trace_lists_the_store_and_the_route_dcs():
    stock = a_snapshot({"STORE-UTRECHT-01": {BIKE_LIGHT: 1}, "DC-NORTH": {PUMP: 5}, "DC-SOUTH": {HELMET: 2}})
    order = an_order((BIKE_LIGHT, 1), (PUMP, 1), method=CLICK_AND_COLLECT, destination=pickup_at())
    trace = decide(order, stock, a_world(network=two_routes_network())).trace
    assert [(c.location_id, c.filtered) for c in trace.candidates] == [
        ("STORE-UTRECHT-01", None),
        ("DC-NORTH", None),
        ("DC-SOUTH", "holds none of the missing lines whole"),
    ]
    assert (trace.search, trace.splits, trace.gap) == ("click_and_collect", 2, 0.0)
    assert trace.winning.startswith("2 shipments: STORE-UTRECHT-01 (1 line), DC-NORTH (1 line)")


def test_lines_neither_the_store_nor_a_route_dc_holds_are_backordered():
    stock = a_snapshot({"STORE-UTRECHT-01": {BIKE_LIGHT: 1, HELMET: 1}, "DC-SOUTH": {PUMP: 5}})
    order = an_order(
        (BIKE_LIGHT, 1), (PUMP, 1), (HELMET, 3), method=CLICK_AND_COLLECT, destination=pickup_at()
    )
    decision = decide(order, stock)
    assert decision.outcome is Outcome.PARTIAL
    # The store's one helmet waits for the customer; two more and the pump cannot come.
    assert where(decision) == [("STORE-UTRECHT-01", (CartLine(BIKE_LIGHT, 1), CartLine(HELMET, 1)))]
    assert decision.backorder == (CartLine(PUMP, 1), CartLine(HELMET, 2))
    assert decision.reason == (
        f"STORE-UTRECHT-01 is short of {PUMP} and no DC on a route to it holds it whole; "
        f"STORE-UTRECHT-01 is short of {HELMET} and no DC on a route to it holds it whole"
    )


def test_a_store_rejection_sends_the_line_on_the_route_never_back_to_general_sourcing():
    stock = a_snapshot(
        {"STORE-UTRECHT-01": {BIKE_LIGHT: 3}, "DC-NORTH": {BIKE_LIGHT: 5}, "DC-SOUTH": {BIKE_LIGHT: 5}}
    )
    order = an_order(
        (BIKE_LIGHT, 1),
        method=CLICK_AND_COLLECT,
        destination=pickup_at(),
        excluded=[("STORE-UTRECHT-01", BIKE_LIGHT)],
    )
    decision = decide(order, stock)
    assert [(s.location_id, s.route_id) for s in decision.shipments] == [("DC-NORTH", "ROUTE-NORTH-MID")]


def test_a_pickup_late_against_the_promise_is_marked():
    stock = a_snapshot({"DC-NORTH": {BIKE_LIGHT: 5}})
    order = an_order(
        (BIKE_LIGHT, 1), method=CLICK_AND_COLLECT, destination=pickup_at(), promised_by="2024-05-06 18:00"
    )
    (transfer,) = decide(order, stock).shipments
    assert transfer.late


@pytest.mark.parametrize(
    ("destination", "reason"),
    [
        (Destination(), "click & collect needs a pickup store"),
        (pickup_at("STORE-NOWHERE"), "unknown pickup store STORE-NOWHERE"),
        (pickup_at("DC-NORTH"), "DC-NORTH does not offer click & collect"),
    ],
)
def test_click_and_collect_without_a_valid_pickup_store_is_rejected(destination, reason):
    decision = decide(
        an_order((BIKE_LIGHT, 1), method=CLICK_AND_COLLECT, destination=destination), a_snapshot()
    )
    assert (decision.outcome, decision.reason) == (Outcome.REJECTED, reason)


# --- courier ---------------------------------------------------------------------------------------


def test_a_courier_order_takes_whole_lines_from_its_store_only():
    stock = a_snapshot({"STORE-UTRECHT-01": {BIKE_LIGHT: 2, PUMP: 1}, "DC-SOUTH": {PUMP: 9}})
    order = an_order((BIKE_LIGHT, 2), (PUMP, 2), method=COURIER, courier_store_id="STORE-UTRECHT-01")
    decision = decide(order, stock)
    assert decision.outcome is Outcome.PARTIAL
    (ride,) = decision.shipments
    assert ride.lines == (CartLine(BIKE_LIGHT, 2),)
    assert local(ride.ready_at_ms) == "2024-05-06 10:45"
    km = haversine_km(52.0907, 5.1214, *UTRECHT_HOME)
    assert ride.arrives_at_ms - ride.ready_at_ms == pytest.approx(
        km / BIKE_COURIER.ride_kmh * 3_600_000, abs=1
    )
    assert decision.backorder == (CartLine(PUMP, 2),)
    assert decision.reason == f"STORE-UTRECHT-01 is short of {PUMP} (1 of 2)"
    assert decision.trace.search == "courier"


def test_a_courier_order_needs_a_courier_store():
    decision = decide(
        an_order((BIKE_LIGHT, 1), method=COURIER), a_snapshot({"STORE-UTRECHT-01": {BIKE_LIGHT: 2}})
    )
    assert (decision.outcome, decision.reason) == (
        Outcome.REJECTED,
        "a courier order needs its courier store",
    )


def test_closed_today_is_a_late_courier_order_not_a_lost_one():
    stock = a_snapshot({"STORE-UTRECHT-01": {BIKE_LIGHT: 2}})
    order = an_order(
        (BIKE_LIGHT, 1),
        method=COURIER,
        courier_store_id="STORE-UTRECHT-01",
        now="2024-05-06 17:50",
        promised_by="2024-05-06 18:00",
    )
    (ride,) = decide(order, stock).shipments
    assert ride.late
    assert local(ride.ready_at_ms) == "2024-05-07 09:35"


def test_split_candidates_must_be_consistent():
    with pytest.raises(ValueError):
        SplitProblem((1,), [SplitCandidate("DC-A", 1.0, (1,)), SplitCandidate("DC-A", 2.0, (1,))], 3)
    with pytest.raises(ValueError):
        SplitProblem((1, 1), [SplitCandidate("DC-A", 1.0, (1,))], 3)
