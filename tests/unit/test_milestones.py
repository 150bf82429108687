"""Milestones derived backwards from a promise: the latest each step may happen for it to hold."""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings

from oms_streams.domain.calendar import MS_PER_MINUTE, add_working_minutes, next_open
from oms_streams.domain.network import DeliveryMethod, PromiseNetwork
from oms_streams.domain.orders import Milestone, MilestoneKind, derive_milestones
from oms_streams.domain.promise import promise_options
from oms_streams.domain.promise_timing import courier_ride_ms
from oms_streams.domain.promise_types import DeliveryOption, Destination
from tests.unit.promise_builders import (
    BIKE_LIGHT,
    PUMP,
    SAT,
    WEEKDAYS,
    FixedTransit,
    Scenario,
    a_calendar,
    a_cart,
    a_dc,
    a_network,
    a_request,
    a_service,
    a_stock,
    asking_times,
    at,
    default_sites,
    local,
    scenarios,
    weekly,
)

PICK_START, HANDOVER, DELIVERED = (
    MilestoneKind.PICK_START,
    MilestoneKind.CARRIER_HANDOVER,
    MilestoneKind.DELIVERED,
)
ROUTE_DEPARTURE, READY, COURIER_DEPARTURE = (
    MilestoneKind.ROUTE_DEPARTURE,
    MilestoneKind.READY_FOR_PICKUP,
    MilestoneKind.COURIER_DEPARTURE,
)


def promised(
    option_id: str, *, network: PromiseNetwork | None = None, stock=None, **request
) -> DeliveryOption:
    network = network or a_network()
    result = promise_options(
        a_request(**request), stock or a_stock(webshop={"DC-NORTH": {BIKE_LIGHT: 5}}), network, FixedTransit()
    )
    return next(o for o in result.options if o.option_id == option_id)


def readable(milestones: tuple[Milestone, ...]) -> list[tuple[str, str, str]]:
    return [(m.kind.value, m.location_id, local(m.due_ms)) for m in milestones]


def test_standard_milestones_count_back_from_the_promised_window():
    standard = promised("standard", methods=[DeliveryMethod.STANDARD])
    # Promised Tuesday by 21:00 with 20 h transit: the last pickup that makes it is Monday 18:00,
    # packed by the 17:00 cut-off, so picking starts by 16:15.
    assert readable(derive_milestones(standard, a_network())) == [
        ("pick_start", "DC-NORTH", "2024-05-06 16:15"),
        ("carrier_handover", "DC-NORTH", "2024-05-06 18:00"),
        ("delivered", "DC-NORTH", "2024-05-07 21:00"),
    ]


def saturday_network(*, dc_closed=()) -> PromiseNetwork:
    with_saturday = a_service(pickups=(*weekly(WEEKDAYS, "18:00"), (SAT, 12 * 60)))
    dc = a_dc(calendar=a_calendar(hours=("06:00", "22:00"), closed=dc_closed))
    return a_network(sites=[dc, *default_sites()[1:]], services=[with_saturday])


def test_slack_before_the_weekend_lets_the_pick_wait_for_saturdays_pickup():
    network = saturday_network()
    friday = promised(
        "standard", network=network, asked_at="2024-05-10 10:00", methods=[DeliveryMethod.STANDARD]
    )
    # Handed over Friday 18:00 it arrives Saturday, but the carrier only delivers on Monday: the
    # Saturday 12:00 pickup keeps the same promise.
    assert local(friday.shipments[0].handover_at_ms) == "2024-05-10 18:00"
    assert readable(derive_milestones(friday, network))[:2] == [
        ("pick_start", "DC-NORTH", "2024-05-11 10:15"),
        ("carrier_handover", "DC-NORTH", "2024-05-11 12:00"),
    ]


def test_a_closed_day_at_the_site_is_never_a_handover_milestone():
    network = saturday_network(dc_closed=[date(2024, 5, 11)])
    friday = promised(
        "standard", network=network, asked_at="2024-05-10 10:00", methods=[DeliveryMethod.STANDARD]
    )
    due = {m.kind: local(m.due_ms) for m in derive_milestones(friday, network)}
    assert due[HANDOVER] == "2024-05-10 18:00"
    assert due[PICK_START] == "2024-05-10 16:15"


def test_click_and_collect_from_own_stock_must_be_picked_in_time_to_be_ready():
    stock = a_stock(click_and_collect={"STORE-UTRECHT-01": {BIKE_LIGHT: 1}})
    own = promised(
        "click_and_collect:STORE-UTRECHT-01",
        stock=stock,
        destination=Destination(pickup_store_id="STORE-UTRECHT-01"),
        methods=[DeliveryMethod.CLICK_AND_COLLECT],
    )
    # Asked at 10:00, promised ready at 12:00 (the store's queue): the 30-minute pick may start
    # until 11:30, so the order is not at risk the moment it is placed.
    assert readable(derive_milestones(own, a_network())) == [
        ("pick_start", "STORE-UTRECHT-01", "2024-05-06 11:30"),
        ("ready_for_pickup", "STORE-UTRECHT-01", "2024-05-06 12:00"),
    ]


def test_click_and_collect_via_a_route_must_make_the_planned_truck():
    via_route = promised(
        "click_and_collect:STORE-UTRECHT-01",
        destination=Destination(pickup_store_id="STORE-UTRECHT-01"),
        methods=[DeliveryMethod.CLICK_AND_COLLECT],
    )
    # The truck leaves at 05:00 before the DC opens at 06:00: picking must start the evening before.
    assert readable(derive_milestones(via_route, a_network())) == [
        ("pick_start", "DC-NORTH", "2024-05-06 21:15"),
        ("route_departure", "DC-NORTH", "2024-05-07 05:00"),
        ("ready_for_pickup", "STORE-UTRECHT-01", "2024-05-07 10:00"),
    ]


def test_courier_must_leave_a_ride_before_the_slot():
    stock = a_stock(webshop={"STORE-UTRECHT-01": {BIKE_LIGHT: 1}})
    bike = promised("courier:STORE-UTRECHT-01", stock=stock, methods=[DeliveryMethod.COURIER])
    network = a_network()
    milestones = derive_milestones(bike, network)
    assert [m.kind for m in milestones] == [PICK_START, COURIER_DEPARTURE, DELIVERED]
    store = network.sites["STORE-UTRECHT-01"]
    departure = at("2024-05-06 11:00") - courier_ride_ms(store.courier, bike.shipments[0].distance_km)
    assert milestones[1].due_ms == departure
    assert milestones[0].due_ms == departure - 45 * MS_PER_MINUTE
    assert local(milestones[2].due_ms) == "2024-05-06 13:00"


def test_a_split_cart_has_milestones_per_shipment_sorted_by_due_time():
    stock = a_stock(webshop={"DC-NORTH": {BIKE_LIGHT: 5}, "DC-SOUTH": {PUMP: 5}})
    split = promised(
        "standard", stock=stock, cart=a_cart((BIKE_LIGHT, 1), (PUMP, 1)), methods=[DeliveryMethod.STANDARD]
    )
    milestones = derive_milestones(split, a_network())
    assert sorted({m.shipment for m in milestones}) == [0, 1]
    assert [m.due_ms for m in milestones] == sorted(m.due_ms for m in milestones)
    for index, shipment in enumerate(split.shipments):
        assert {m.location_id for m in milestones if m.shipment == index} == {shipment.location_id}


def test_without_the_site_in_the_network_the_forward_plan_is_used():
    standard = promised("standard", methods=[DeliveryMethod.STANDARD])
    milestones = derive_milestones(standard, PromiseNetwork())
    due = {m.kind: m.due_ms for m in milestones}
    assert due[HANDOVER] == standard.shipments[0].handover_at_ms
    assert due[PICK_START] == standard.shipments[0].ready_at_ms
    assert due[DELIVERED] == standard.window_end_ms


@settings(max_examples=150)
@given(scenario=scenarios(), asked=asking_times())
def test_milestones_are_never_earlier_than_the_forward_plan_and_always_in_order(
    scenario: Scenario, asked: int
):
    network = scenario.network
    result = promise_options(
        scenario.request(asked), scenario.stock, network, scenario.transit, scenario.booked
    )
    services = {s.service_id: s for s in network.services}
    for option in result.options:
        milestones = derive_milestones(option, network)
        assert [m.due_ms for m in milestones] == sorted(m.due_ms for m in milestones)
        for index, shipment in enumerate(option.shipments):
            site = network.sites[shipment.location_id]
            due = {m.kind: m.due_ms for m in milestones if m.shipment == index}
            assert due[PICK_START] >= next_open(site.calendar, asked)
            if shipment.service_id is not None:
                service = services[shipment.service_id]
                transit = shipment.arrives_at_ms - shipment.handover_at_ms
                assert set(due) == {PICK_START, HANDOVER, DELIVERED}
                assert due[HANDOVER] >= shipment.handover_at_ms
                assert due[DELIVERED] >= shipment.arrives_at_ms
                assert due[PICK_START] <= due[HANDOVER] <= due[DELIVERED]
                # ... and never later than the promise allows.
                packed = add_working_minutes(
                    site.calendar, due[PICK_START], site.pick_minutes + site.pack_minutes
                )
                assert packed <= due[HANDOVER] - service.cutoff_minutes * MS_PER_MINUTE
                assert due[HANDOVER] + transit <= option.window_end_ms
            elif shipment.route_id is not None:
                assert set(due) == {PICK_START, ROUTE_DEPARTURE, READY}
                assert due[ROUTE_DEPARTURE] == shipment.handover_at_ms
                assert due[READY] >= shipment.arrives_at_ms
                assert due[PICK_START] <= due[ROUTE_DEPARTURE] <= due[READY]
                packed = add_working_minutes(
                    site.calendar, due[PICK_START], site.pick_minutes + site.pack_minutes
                )
                assert packed <= due[ROUTE_DEPARTURE]
            elif option.method is DeliveryMethod.COURIER:
                assert set(due) == {PICK_START, COURIER_DEPARTURE, DELIVERED}
                assert due[COURIER_DEPARTURE] >= shipment.handover_at_ms
                assert due[PICK_START] <= due[COURIER_DEPARTURE] <= due[DELIVERED] == option.window_end_ms
            else:
                assert set(due) == {PICK_START, READY}
                assert due[READY] == option.window_start_ms >= shipment.ready_at_ms
                assert due[PICK_START] <= due[READY]
                picked = add_working_minutes(site.calendar, due[PICK_START], site.pick_minutes)
                assert picked <= due[READY]
