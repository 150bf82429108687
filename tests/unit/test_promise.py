"""The delivery promise: every option the network can really meet for a whole cart, and when."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oms_streams.domain.calendar import (
    MS_PER_HOUR,
    MS_PER_MINUTE,
    add_working_minutes,
    is_open,
    is_working_date,
    local_date,
)
from oms_streams.domain.network import Capability, CourierProfile, DeliveryMethod, PromisePolicy
from oms_streams.domain.promise import promise_options
from oms_streams.domain.promise_timing import courier_ride_ms
from oms_streams.domain.promise_types import CartLine, DeliveryOption, Destination, PromiseResult
from oms_streams.domain.visibility import haversine_km
from tests.unit.promise_builders import (
    AMS,
    ASCENSION_DAY,
    BIKE_LIGHT,
    HELMET,
    LOCK,
    NY,
    PUMP,
    UTRECHT_HOME,
    WEEKDAYS,
    FixedTransit,
    Scenario,
    a_calendar,
    a_cart,
    a_dc,
    a_network,
    a_request,
    a_route,
    a_service,
    a_stock,
    a_store,
    asking_times,
    at,
    default_sites,
    home,
    local,
    scenarios,
    weekly,
)

STANDARD, GREEN, SHIP_FROM_STORE = (
    DeliveryMethod.STANDARD,
    DeliveryMethod.GREEN,
    DeliveryMethod.SHIP_FROM_STORE,
)
CLICK_AND_COLLECT, COURIER = DeliveryMethod.CLICK_AND_COLLECT, DeliveryMethod.COURIER

IN_DC_NORTH = a_stock(webshop={"DC-NORTH": {BIKE_LIGHT: 5}})


def promise(
    *,
    stock=IN_DC_NORTH,
    network=None,
    transit=None,
    booked=None,
    **request,
) -> PromiseResult:
    return promise_options(
        a_request(**request), stock, network or a_network(), transit or FixedTransit(), booked
    )


def option(result: PromiseResult, option_id: str) -> DeliveryOption:
    found = {o.option_id: o for o in result.options}
    assert option_id in found, f"{option_id} not offered: {result.unavailable}"
    return found[option_id]


def reason(result: PromiseResult, method: DeliveryMethod) -> str:
    reasons = {u.method: u.reason for u in result.unavailable}
    assert method in reasons, f"{method} was offered"
    return reasons[method]


def window(o: DeliveryOption, tz: str = AMS) -> tuple[str, str]:
    return local(o.window_start_ms, tz), local(o.window_end_ms, tz)


# --- standard home delivery ------------------------------------------------------------------------


def test_standard_delivery_is_picked_packed_handed_over_and_delivered_in_carrier_hours():
    result = promise(methods=[STANDARD])
    standard = option(result, "standard")
    (parcel,) = standard.shipments
    assert parcel.location_id == "DC-NORTH"
    assert parcel.lines == (CartLine(BIKE_LIGHT, 1),)
    assert local(parcel.ready_at_ms) == "2024-05-06 10:45"  # 30 min pick + 15 min pack
    assert local(parcel.handover_at_ms) == "2024-05-06 18:00"
    assert local(parcel.arrives_at_ms) == "2024-05-07 14:00"  # 20 h transit
    assert window(standard) == ("2024-05-07 08:00", "2024-05-07 21:00")
    assert (standard.parcels, standard.confidence, parcel.service_id) == (1, 0.95, "POSTNL-STANDARD")
    assert parcel.transit_source == "lane"


def test_transit_is_asked_for_the_services_lane_at_the_policys_quantile():
    transit = FixedTransit()
    promise(methods=[STANDARD], transit=transit)
    (lane,) = transit.asked
    assert (lane.service_id, lane.origin_region, lane.dest_region) == (
        "POSTNL-STANDARD",
        "NL-NORTH",
        "NL-MID",
    )
    assert lane.distance_km == pytest.approx(haversine_km(52.5168, 6.0830, *UTRECHT_HOME))


def test_co2e_is_distance_times_the_services_grams_per_parcel_km():
    standard = option(promise(methods=[STANDARD]), "standard")
    assert standard.co2e_g == pytest.approx(standard.shipments[0].distance_km * 120.0)


def test_cutoff_just_passed_moves_handover_to_next_pickup():
    in_time = option(promise(asked_at="2024-05-06 16:15", methods=[STANDARD]), "standard")
    too_late = option(promise(asked_at="2024-05-06 16:16", methods=[STANDARD]), "standard")
    # Packed at 17:00 exactly makes the 18:00 pickup with its 60 minute cut-off; a minute later does not.
    assert local(in_time.shipments[0].handover_at_ms) == "2024-05-06 18:00"
    assert local(too_late.shipments[0].handover_at_ms) == "2024-05-07 18:00"
    assert window(too_late)[0] == "2024-05-08 08:00"


def test_weekend_has_no_pickups_so_friday_evening_orders_leave_on_monday():
    late_friday = option(promise(asked_at="2024-05-10 17:00", methods=[STANDARD]), "standard")
    assert local(late_friday.shipments[0].handover_at_ms) == "2024-05-13 18:00"
    assert window(late_friday)[0] == "2024-05-14 08:00"


def test_weekend_has_no_deliveries_so_a_saturday_arrival_is_delivered_on_monday():
    friday = option(promise(asked_at="2024-05-10 10:00", methods=[STANDARD]), "standard")
    assert local(friday.shipments[0].arrives_at_ms) == "2024-05-11 14:00"
    assert window(friday) == ("2024-05-13 08:00", "2024-05-13 21:00")


def holiday_network():
    sites = [
        a_dc(calendar=a_calendar(hours=("06:00", "22:00"), closed=[ASCENSION_DAY])),
        *default_sites()[1:],
    ]
    carrier = a_service(
        delivery_calendar=a_calendar(hours=("08:00", "21:00"), days=WEEKDAYS, closed=[ASCENSION_DAY])
    )
    return a_network(sites=sites, services=[carrier])


def test_public_holiday_at_the_dc_skips_that_days_pickup():
    result = promise(asked_at="2024-05-08 17:00", network=holiday_network(), methods=[STANDARD])
    assert local(option(result, "standard").shipments[0].handover_at_ms) == "2024-05-10 18:00"


def test_public_holiday_at_the_carrier_moves_delivery_to_the_next_working_day():
    standard = option(
        promise(asked_at="2024-05-08 10:00", network=holiday_network(), methods=[STANDARD]), "standard"
    )
    assert local(standard.shipments[0].arrives_at_ms) == "2024-05-09 14:00"
    assert window(standard)[0] == "2024-05-10 08:00"


def test_a_promise_is_never_faster_than_the_fastest_transit_ever_seen():
    optimistic = FixedTransit(hours=10.0, fastest=30.0)
    standard = option(promise(methods=[STANDARD], transit=optimistic), "standard")
    parcel = standard.shipments[0]
    assert parcel.arrives_at_ms - parcel.handover_at_ms == 30 * MS_PER_HOUR


def test_the_service_with_the_earliest_delivery_is_chosen():
    evening = a_service("DHL-EVENING", pickups=weekly(WEEKDAYS, "21:00"), cutoff_minutes=30)
    network = a_network(services=[a_service(), evening])
    transit = FixedTransit(per_service={"DHL-EVENING": 8.0})
    standard = option(promise(network=network, transit=transit, methods=[STANDARD]), "standard")
    # Both land inside Tuesday's hours; DHL's 05:00 arrival is earlier than PostNL's 14:00.
    assert standard.shipments[0].service_id == "DHL-EVENING"


def test_a_service_only_collects_at_its_origins():
    north_only = a_network(services=[a_service(origins=["DC-NORTH"])])
    both = a_stock(webshop={"DC-NORTH": {BIKE_LIGHT: 5}, "DC-SOUTH": {BIKE_LIGHT: 5}})
    # DC-SOUTH is nearer the customer, but no carrier collects there.
    standard = option(promise(stock=both, network=north_only, methods=[STANDARD]), "standard")
    assert standard.shipments[0].location_id == "DC-NORTH"
    only_south = a_stock(webshop={"DC-SOUTH": {BIKE_LIGHT: 5}})
    result = promise(stock=only_south, network=north_only, methods=[STANDARD])
    assert reason(result, STANDARD) == "none of the cart is in stock at sites that ship"


def test_the_delivery_window_is_in_the_destinations_time_zone_when_given():
    far_away = Destination(lat=40.71, lon=-74.0, region="US-NY", timezone=NY)
    standard = option(promise(destination=far_away, methods=[STANDARD]), "standard")
    assert window(standard, NY)[0][-5:] == "08:00"
    assert window(standard, NY)[1][-5:] == "21:00"


def test_the_standard_capability_filter_ignores_sites_without_it():
    no_ships = [a_dc(capabilities=[Capability.ACCEPTS_RETURNS]), *default_sites()[1:]]
    result = promise(network=a_network(sites=no_ships), methods=[STANDARD])
    assert reason(result, STANDARD) == "none of the cart is in stock at sites that ship"


# --- split carts -----------------------------------------------------------------------------------


def test_a_cart_split_over_two_dcs_ships_in_two_parcels():
    stock = a_stock(webshop={"DC-NORTH": {BIKE_LIGHT: 5}, "DC-SOUTH": {PUMP: 5}})
    result = promise(stock=stock, cart=a_cart((BIKE_LIGHT, 1), (PUMP, 1)))
    standard = option(result, "standard")
    assert standard.parcels == 2
    assert {(s.location_id, s.lines) for s in standard.shipments} == {
        ("DC-NORTH", (CartLine(BIKE_LIGHT, 1),)),
        ("DC-SOUTH", (CartLine(PUMP, 1),)),
    }
    assert standard.co2e_g == pytest.approx(sum(s.distance_km * 120.0 for s in standard.shipments))
    assert standard.window_end_ms == max(
        option(promise(stock=stock, cart=a_cart((sku, 1)), methods=[STANDARD]), "standard").window_end_ms
        for sku in (BIKE_LIGHT, PUMP)
    )
    assert "no single site" in reason(result, GREEN)


def test_the_fewest_parcels_come_from_the_site_holding_most_of_the_cart():
    sites = [*default_sites(), a_dc("DC-EAST", lat=52.22, lon=6.89), a_dc("DC-WEST", lat=52.16, lon=4.49)]
    stock = a_stock(
        webshop={
            "DC-NORTH": {BIKE_LIGHT: 1, PUMP: 1},
            "DC-SOUTH": {HELMET: 1},
            "DC-EAST": {BIKE_LIGHT: 1},
            "DC-WEST": {PUMP: 1},
        }
    )
    cart = a_cart((BIKE_LIGHT, 1), (PUMP, 1), (HELMET, 1))
    standard = option(
        promise(stock=stock, cart=cart, network=a_network(sites=sites), methods=[STANDARD]), "standard"
    )
    assert standard.parcels == 2
    assert sorted(s.location_id for s in standard.shipments) == ["DC-NORTH", "DC-SOUTH"]


def test_a_tie_goes_to_the_site_nearest_the_customer():
    stock = a_stock(webshop={"DC-NORTH": {BIKE_LIGHT: 5}, "DC-SOUTH": {BIKE_LIGHT: 5}})
    standard = option(promise(stock=stock, methods=[STANDARD]), "standard")
    assert standard.shipments[0].location_id == "DC-SOUTH"  # 75 km, DC-NORTH is 81 km away


@given(
    stores=st.lists(st.tuples(st.floats(51.0, 53.5), st.floats(3.5, 7.0)), min_size=9, max_size=30),
    customer=st.tuples(st.floats(51.0, 53.5), st.floats(3.5, 7.0)),
)
def test_of_many_stores_holding_the_cart_the_nearest_ships_it(stores, customer):
    sites = [a_store(f"STORE-{n:03d}", lat=lat, lon=lon) for n, (lat, lon) in enumerate(stores)]
    stock = a_stock(webshop={site.location_id: {BIKE_LIGHT: 1} for site in sites})
    destination = home(lat=customer[0], lon=customer[1])
    result = promise(
        stock=stock, network=a_network(sites=sites), destination=destination, methods=[SHIP_FROM_STORE]
    )
    nearest = min(sites, key=lambda s: (haversine_km(s.lat, s.lon, *customer), s.location_id))
    assert option(result, "ship_from_store").shipments[0].location_id == nearest.location_id


def test_a_line_is_split_only_when_no_single_site_holds_it_whole():
    whole_somewhere = a_stock(webshop={"DC-SOUTH": {BIKE_LIGHT: 1}, "DC-NORTH": {BIKE_LIGHT: 2}})
    one = option(promise(stock=whole_somewhere, cart=a_cart((BIKE_LIGHT, 2)), methods=[STANDARD]), "standard")
    assert [(s.location_id, s.lines) for s in one.shipments] == [("DC-NORTH", (CartLine(BIKE_LIGHT, 2),))]

    nowhere_whole = a_stock(webshop={"DC-SOUTH": {BIKE_LIGHT: 2}, "DC-NORTH": {BIKE_LIGHT: 3}})
    split = option(promise(stock=nowhere_whole, cart=a_cart((BIKE_LIGHT, 5)), methods=[STANDARD]), "standard")
    assert sorted((s.location_id, s.lines) for s in split.shipments) == [
        ("DC-NORTH", (CartLine(BIKE_LIGHT, 3),)),
        ("DC-SOUTH", (CartLine(BIKE_LIGHT, 2),)),
    ]


def test_duplicate_cart_lines_are_one_line():
    standard = option(promise(cart=a_cart((BIKE_LIGHT, 2), (BIKE_LIGHT, 1)), methods=[STANDARD]), "standard")
    assert standard.shipments[0].lines == (CartLine(BIKE_LIGHT, 3),)


def test_more_parcels_than_the_policy_allows_is_unavailable():
    sites = [*default_sites(), a_dc("DC-EAST", lat=52.22, lon=6.89), a_dc("DC-WEST", lat=52.16, lon=4.49)]
    stock = a_stock(
        webshop={
            "DC-NORTH": {BIKE_LIGHT: 1},
            "DC-SOUTH": {PUMP: 1},
            "DC-EAST": {HELMET: 1},
            "DC-WEST": {LOCK: 1},
        }
    )
    cart = a_cart((BIKE_LIGHT, 1), (PUMP, 1), (HELMET, 1), (LOCK, 1))
    result = promise(stock=stock, cart=cart, network=a_network(sites=sites), methods=[STANDARD])
    assert reason(result, STANDARD) == "the cart would need more than 3 parcels from sites that ship"


# --- green and ship from store ----------------------------------------------------------------------


def test_green_delivery_emits_less_but_comes_on_its_own_fewer_days():
    result = promise()
    standard, green = option(result, "standard"), option(result, "green")
    assert green.co2e_g == pytest.approx(standard.co2e_g / 3)
    assert local(green.shipments[0].handover_at_ms) == "2024-05-07 18:00"  # Tuesday pickup
    assert window(green)[0] == "2024-05-08 08:00"  # Wednesday delivery
    assert green.window_end_ms > standard.window_end_ms


def test_green_needs_a_green_service():
    result = promise(network=a_network(services=[a_service()]), methods=[GREEN])
    assert reason(result, GREEN) == "no green carrier service"


def test_ship_from_store_uses_store_stock_in_the_webshop_channel():
    stock = a_stock(webshop={"STORE-UTRECHT-01": {BIKE_LIGHT: 1}})
    result = promise(stock=stock, methods=[STANDARD, SHIP_FROM_STORE])
    from_store = option(result, "ship_from_store")
    assert from_store.shipments[0].location_id == "STORE-UTRECHT-01"
    assert local(from_store.shipments[0].ready_at_ms) == "2024-05-06 10:45"
    assert reason(result, STANDARD) == "none of the cart is in stock at sites that ship"


def test_options_are_sorted_by_window_end_then_co2e():
    stock = a_stock(webshop={"DC-NORTH": {BIKE_LIGHT: 5}, "STORE-UTRECHT-01": {BIKE_LIGHT: 1}})
    result = promise(stock=stock, methods=[STANDARD, GREEN, SHIP_FROM_STORE, COURIER])
    assert [o.option_id for o in result.options] == [
        "courier:STORE-UTRECHT-01",
        "ship_from_store",
        "standard",
        "green",
    ]
    ends = [(o.window_end_ms, o.co2e_g) for o in result.options]
    assert ends == sorted(ends)


# --- click & collect -------------------------------------------------------------------------------

AT_THE_STORE = a_stock(
    click_and_collect={"STORE-UTRECHT-01": {BIKE_LIGHT: 2}}, webshop={"DC-NORTH": {BIKE_LIGHT: 9}}
)
ONLY_IN_THE_DC = a_stock(webshop={"DC-NORTH": {BIKE_LIGHT: 9}})
PICKUP_IN_UTRECHT = Destination(pickup_store_id="STORE-UTRECHT-01")


def collect(**kw) -> DeliveryOption:
    result = promise(destination=PICKUP_IN_UTRECHT, methods=[CLICK_AND_COLLECT], **kw)
    return option(result, "click_and_collect:STORE-UTRECHT-01")


PICK_TIME_ONLY = a_network(policy=PromisePolicy(store_ready_minutes=0))
"""Shelf click & collect ready after the store's pick time alone (30 minutes): no queue allowance."""


def test_click_and_collect_from_own_stock_is_ready_when_the_store_s_queue_allows():
    own = collect(stock=AT_THE_STORE)  # asked at 10:00: ready within the policy's 120 working minutes
    assert window(own) == ("2024-05-06 12:00", "2024-05-06 18:00")
    quick = collect(stock=AT_THE_STORE, network=a_network(policy=PromisePolicy(store_ready_minutes=45)))
    assert window(quick)[0] == "2024-05-06 10:45"
    # Never before the pick itself is done (30 minutes at this store).
    assert window(collect(stock=AT_THE_STORE, network=PICK_TIME_ONLY))[0] == "2024-05-06 10:30"
    assert (own.parcels, own.co2e_g, own.pickup_store_id) == (1, 0.0, "STORE-UTRECHT-01")
    assert [s.location_id for s in own.shipments] == ["STORE-UTRECHT-01"]


def test_click_and_collect_via_the_next_route_when_the_store_is_short():
    via_route = collect(stock=ONLY_IN_THE_DC)
    (transfer,) = via_route.shipments
    assert (transfer.location_id, transfer.route_id) == ("DC-NORTH", "ROUTE-NORTH-MID")
    assert local(transfer.handover_at_ms) == "2024-05-07 05:00"  # Tuesday's departure
    assert local(transfer.arrives_at_ms) == "2024-05-07 06:30"  # 90 minutes' drive
    # Received in 60 minutes of store time from its 09:00 opening.
    assert window(via_route) == ("2024-05-07 10:00", "2024-05-07 18:00")
    assert via_route.co2e_g == pytest.approx(900.0 * transfer.distance_km * 0.01)
    assert transfer.distance_km == pytest.approx(haversine_km(52.5168, 6.0830, 52.0907, 5.1214))


def test_route_only_on_some_weekdays():
    # Tuesday's truck has left: the next one is Thursday's.
    thursday = collect(stock=ONLY_IN_THE_DC, asked_at="2024-05-07 10:00")
    assert local(thursday.shipments[0].handover_at_ms) == "2024-05-09 05:00"
    assert window(thursday)[0] == "2024-05-09 10:00"


def test_a_route_without_its_dc_in_stock_is_not_used():
    other = a_route(
        "ROUTE-SOUTH-MID",
        origin_id="DC-SOUTH",
        departures=weekly(WEEKDAYS, "12:00"),
        stops=(("STORE-UTRECHT-01", 60),),
    )
    network = a_network(routes=[a_route(), other])
    via = collect(stock=ONLY_IN_THE_DC, network=network)
    assert via.shipments[0].route_id == "ROUTE-NORTH-MID"


def test_click_and_collect_with_some_lines_in_store_waits_for_the_truck_for_the_rest():
    stock = a_stock(
        click_and_collect={"STORE-UTRECHT-01": {BIKE_LIGHT: 1, PUMP: 1}}, webshop={"DC-NORTH": {PUMP: 3}}
    )
    mixed = collect(stock=stock, cart=a_cart((BIKE_LIGHT, 1), (PUMP, 2)))
    assert [(s.location_id, s.lines) for s in mixed.shipments] == [
        ("STORE-UTRECHT-01", (CartLine(BIKE_LIGHT, 1),)),
        ("DC-NORTH", (CartLine(PUMP, 2),)),
    ]
    assert mixed.parcels == 1
    assert window(mixed)[0] == "2024-05-07 10:00"


def test_store_closed_click_and_collect_ready_next_opening():
    evening = collect(stock=AT_THE_STORE, asked_at="2024-05-06 20:00")
    assert window(evening) == ("2024-05-07 11:00", "2024-05-07 18:00")  # 120 working minutes from 09:00
    assert window(collect(stock=AT_THE_STORE, asked_at="2024-05-06 20:00", network=PICK_TIME_ONLY)) == (
        "2024-05-07 09:30",
        "2024-05-07 18:00",
    )


def test_click_and_collect_ready_at_closing_time_is_collectable_next_morning():
    closing = collect(stock=AT_THE_STORE, asked_at="2024-05-06 17:30", network=PICK_TIME_ONLY)
    assert window(closing) == ("2024-05-07 09:00", "2024-05-07 18:00")
    # The queue's working minutes go on the next morning: 30 today, 90 from the 09:00 opening.
    late = collect(stock=AT_THE_STORE, asked_at="2024-05-06 17:30")
    assert window(late) == ("2024-05-07 10:30", "2024-05-07 18:00")


def test_click_and_collect_offers_each_nearby_store_nearest_first():
    stock = a_stock(
        click_and_collect={"STORE-UTRECHT-01": {BIKE_LIGHT: 1}, "STORE-AMSTERDAM-02": {BIKE_LIGHT: 1}}
    )
    near_amsterdam = Destination(lat=52.2, lon=5.0, region="NL-MID")  # 16 km from Utrecht, 19 from Amsterdam
    result = promise(stock=stock, destination=near_amsterdam, methods=[CLICK_AND_COLLECT])
    assert {o.option_id for o in result.options} == {
        "click_and_collect:STORE-UTRECHT-01",
        "click_and_collect:STORE-AMSTERDAM-02",
    }
    narrow = a_network(policy=PromisePolicy(click_and_collect_max_stores=1))
    only = promise(stock=stock, destination=near_amsterdam, network=narrow, methods=[CLICK_AND_COLLECT])
    assert [o.option_id for o in only.options] == ["click_and_collect:STORE-UTRECHT-01"]


def test_click_and_collect_reasons():
    assert reason(collect_result(stock=a_stock()), CLICK_AND_COLLECT) == (
        "STORE-UTRECHT-01 is short of SKU-BIKE-LIGHT and no DC on a route to it holds them"
    )
    unknown = promise(destination=Destination(pickup_store_id="STORE-NOWHERE"), methods=[CLICK_AND_COLLECT])
    assert reason(unknown, CLICK_AND_COLLECT) == "unknown pickup store STORE-NOWHERE"
    dc = promise(destination=Destination(pickup_store_id="DC-NORTH"), methods=[CLICK_AND_COLLECT])
    assert reason(dc, CLICK_AND_COLLECT) == "DC-NORTH does not offer click & collect"
    rotterdam = promise(destination=home(lat=51.92, lon=4.48), methods=[CLICK_AND_COLLECT])
    assert reason(rotterdam, CLICK_AND_COLLECT) == "no click & collect store within 25 km"
    no_routes = collect_result(stock=ONLY_IN_THE_DC, network=a_network(routes=[]))
    assert (
        reason(no_routes, CLICK_AND_COLLECT)
        == "STORE-UTRECHT-01 is short of SKU-BIKE-LIGHT and no route serves it"
    )


def collect_result(**kw) -> PromiseResult:
    return promise(destination=PICKUP_IN_UTRECHT, methods=[CLICK_AND_COLLECT], **kw)


# --- same-day courier ------------------------------------------------------------------------------

IN_THE_STORE = a_stock(webshop={"STORE-UTRECHT-01": {BIKE_LIGHT: 1}})


def courier(**kw) -> PromiseResult:
    return promise(stock=kw.pop("stock", IN_THE_STORE), methods=[COURIER], **kw)


def test_courier_delivers_today_in_the_first_slot_after_pick_pack_and_ride():
    bike = option(courier(), "courier:STORE-UTRECHT-01")
    # Ready 10:45, a 5 minute ride: the 11:00-13:00 slot (slots start at the 09:00 opening).
    assert window(bike) == ("2024-05-06 11:00", "2024-05-06 13:00")
    (ride,) = bike.shipments
    assert ride.handover_at_ms == bike.window_start_ms - courier_ride_ms(
        CourierProfile(8.0), ride.distance_km
    )
    assert (bike.parcels, bike.co2e_g) == (1, 0.0)


def test_courier_skips_a_full_slot():
    full = {("STORE-UTRECHT-01", at("2024-05-06 11:00")): 4}
    almost = {("STORE-UTRECHT-01", at("2024-05-06 11:00")): 3}
    assert window(option(courier(booked=full), "courier:STORE-UTRECHT-01"))[0] == "2024-05-06 13:00"
    assert window(option(courier(booked=almost), "courier:STORE-UTRECHT-01"))[0] == "2024-05-06 11:00"


def test_courier_only_same_day():
    assert (
        window(option(courier(asked_at="2024-05-06 13:00"), "courier:STORE-UTRECHT-01"))[0]
        == "2024-05-06 15:00"
    )
    # Ready 16:15: the 17:00 slot would run past closing, and tomorrow is not same-day.
    assert reason(courier(asked_at="2024-05-06 15:30"), COURIER) == (
        "too late today for a courier slot after picking, packing and the ride"
    )


def test_courier_says_when_the_slots_left_are_booked_and_when_the_store_is_closed():
    booked = {("STORE-UTRECHT-01", at(f"2024-05-06 {hour}:00")): 4 for hour in (11, 13, 15)}
    assert reason(courier(booked=booked), COURIER) == "every courier slot left today is booked"
    assert reason(courier(asked_at="2024-05-06 19:00"), COURIER) == (
        "the courier stores in range are closed for the rest of today"
    )


def test_courier_only_within_radius():
    rotterdam = courier(destination=home(lat=51.92, lon=4.48))
    assert reason(rotterdam, COURIER) == "the destination is outside every courier store's radius"
    assert (
        reason(courier(destination=PICKUP_IN_UTRECHT), COURIER)
        == "courier delivery needs destination coordinates"
    )


def test_courier_needs_the_whole_cart_in_one_store():
    result = courier(cart=a_cart((BIKE_LIGHT, 1), (PUMP, 1)))
    assert reason(result, COURIER) == "no courier store in range holds the whole cart"


def test_courier_comes_from_the_store_with_the_earliest_slot():
    second = a_store("STORE-UTRECHT-02", lat=52.0850, lon=5.1000)
    network = a_network(sites=[*default_sites(), second])
    stock = a_stock(webshop={"STORE-UTRECHT-01": {BIKE_LIGHT: 1}, "STORE-UTRECHT-02": {BIKE_LIGHT: 1}})
    full = {("STORE-UTRECHT-01", at("2024-05-06 11:00")): 4}
    result = courier(stock=stock, network=network, booked=full)
    assert [o.option_id for o in result.options] == ["courier:STORE-UTRECHT-02"]


# --- what cannot be offered ------------------------------------------------------------------------


def test_no_stock_anywhere_says_so_per_method():
    result = promise(stock=a_stock(), destination=home(), methods=list(DeliveryMethod))
    assert result.options == ()
    assert reason(result, STANDARD) == "none of the cart is in stock at sites that ship"
    assert reason(result, SHIP_FROM_STORE) == "none of the cart is in stock at ship-from-store stores"
    assert reason(result, COURIER) == "no courier store in range holds the whole cart"


def test_not_enough_units_says_how_many():
    result = promise(cart=a_cart((BIKE_LIGHT, 7)), methods=[STANDARD])
    assert reason(result, STANDARD) == "not enough SKU-BIKE-LIGHT at sites that ship (5 of 7)"


def test_home_delivery_needs_coordinates():
    result = promise(destination=PICKUP_IN_UTRECHT, methods=[STANDARD, GREEN])
    assert reason(result, STANDARD) == reason(result, GREEN) == "home delivery needs destination coordinates"


def test_an_empty_cart_has_no_options():
    result = promise(cart=(CartLine(BIKE_LIGHT, 0),), methods=[STANDARD])
    assert (result.options, reason(result, STANDARD)) == ((), "the cart is empty")


def test_only_the_requested_methods_are_considered():
    result = promise(methods=[GREEN])
    assert [o.option_id for o in result.options] == ["green"]
    assert result.unavailable == ()


def test_nothing_beyond_the_horizon_is_offered():
    closed = [date(2024, 5, 6) + timedelta(days=n) for n in range(25)]
    shut = [a_dc(calendar=a_calendar(hours=("06:00", "22:00"), closed=closed)), *default_sites()[1:]]
    result = promise(network=a_network(sites=shut), methods=[STANDARD])
    assert reason(result, STANDARD) == "cannot be met within the 21-day horizon"
    longer = a_network(sites=shut, policy=PromisePolicy(horizon_days=35))
    assert option(promise(network=longer, methods=[STANDARD]), "standard")


# --- time zones and daylight saving ------------------------------------------------------------


def test_time_zones_each_site_hands_over_on_its_own_clock():
    newark = a_dc(
        "DC-NEWARK",
        lat=40.74,
        lon=-74.17,
        region="US-NJ",
        calendar=a_calendar(tz=NY, hours=("06:00", "22:00")),
    )
    network = a_network(sites=[*default_sites(), newark])
    asked = at("2024-05-06 10:00", NY)  # 16:00 in Amsterdam
    in_amsterdam = option(promise(network=network, asked_at=asked, methods=[STANDARD]), "standard")
    in_new_york = option(
        promise(
            network=network,
            asked_at=asked,
            stock=a_stock(webshop={"DC-NEWARK": {BIKE_LIGHT: 1}}),
            methods=[STANDARD],
        ),
        "standard",
    )
    assert local(in_amsterdam.shipments[0].handover_at_ms, AMS) == "2024-05-06 18:00"
    assert local(in_new_york.shipments[0].handover_at_ms, NY) == "2024-05-06 18:00"
    assert (
        in_new_york.shipments[0].handover_at_ms - in_amsterdam.shipments[0].handover_at_ms == 6 * MS_PER_HOUR
    )


def test_a_dst_change_week_keeps_wall_clock_pickups_and_windows():
    # Amsterdam leaves summer time in the night of Sunday 27 October 2024.
    standard = option(promise(asked_at="2024-10-25 17:30", methods=[STANDARD]), "standard")
    assert local(standard.shipments[0].handover_at_ms) == "2024-10-28 18:00"
    assert local(standard.shipments[0].handover_at_ms, "UTC") == "2024-10-28 17:00"
    assert window(standard) == ("2024-10-29 08:00", "2024-10-29 21:00")
    # ... and New York a week later: a Friday-evening order leaves on Monday at 18:00 EST.
    newark = a_dc("DC-NEWARK", lat=40.74, lon=-74.17, calendar=a_calendar(tz=NY, hours=("06:00", "22:00")))
    us = option(
        promise(
            network=a_network(sites=[newark]),
            stock=a_stock(webshop={"DC-NEWARK": {BIKE_LIGHT: 1}}),
            asked_at=at("2024-11-01 17:30", NY),
            methods=[STANDARD],
        ),
        "standard",
    )
    assert local(us.shipments[0].handover_at_ms, "UTC") == "2024-11-04 23:00"


# --- properties --------------------------------------------------------------------------------------


def by_id(result: PromiseResult) -> dict[str, DeliveryOption]:
    return {o.option_id: o for o in result.options}


@settings(max_examples=150)
@given(scenario=scenarios(), asked=asking_times(), later_minutes=st.integers(0, 4 * 24 * 60))
def test_asking_later_never_gives_an_earlier_window(scenario: Scenario, asked: int, later_minutes: int):
    first = promise_options(
        scenario.request(asked), scenario.stock, scenario.network, scenario.transit, scenario.booked
    )
    later = promise_options(
        scenario.request(asked + later_minutes * MS_PER_MINUTE),
        scenario.stock,
        scenario.network,
        scenario.transit,
        scenario.booked,
    )
    before, after = by_id(first), by_id(later)
    for option_id in before.keys() & after.keys():
        assert after[option_id].window_end_ms >= before[option_id].window_end_ms, option_id


@settings(max_examples=150)
@given(scenario=scenarios(), asked=asking_times())
def test_never_earlier_than_the_physical_minimum(scenario: Scenario, asked: int):
    result = promise_options(
        scenario.request(asked), scenario.stock, scenario.network, scenario.transit, scenario.booked
    )
    sites = scenario.network.sites
    services = {s.service_id: s for s in scenario.network.services}
    fastest_ms = scenario.transit.fastest * MS_PER_HOUR
    for o in result.options:
        assert o.window_start_ms <= o.window_end_ms
        assert o.confidence == scenario.network.policy.quantile
        for shipment in o.shipments:
            site = sites[shipment.location_id]
            if shipment.service_id is not None:
                service = services[shipment.service_id]
                ready = add_working_minutes(site.calendar, asked, site.pick_minutes + site.pack_minutes)
                assert shipment.ready_at_ms == ready
                assert shipment.handover_at_ms - service.cutoff_minutes * MS_PER_MINUTE >= ready
                assert shipment.arrives_at_ms >= shipment.handover_at_ms + fastest_ms
                assert o.window_end_ms >= shipment.arrives_at_ms >= ready + fastest_ms
            elif shipment.route_id is not None:
                assert shipment.handover_at_ms >= shipment.ready_at_ms
                assert o.window_start_ms >= shipment.arrives_at_ms
            else:
                pick = (
                    max(site.pick_minutes, scenario.network.policy.store_ready_minutes)
                    if o.method is CLICK_AND_COLLECT
                    else site.pick_minutes + site.pack_minutes
                )
                assert shipment.ready_at_ms == add_working_minutes(site.calendar, asked, pick)
                assert o.window_start_ms >= shipment.ready_at_ms
        assert o.window_end_ms <= asked + scenario.network.policy.horizon_days * 24 * MS_PER_HOUR


@settings(max_examples=150)
@given(scenario=scenarios(), asked=asking_times())
def test_never_on_a_day_the_location_or_carrier_does_not_work(scenario: Scenario, asked: int):
    result = promise_options(
        scenario.request(asked), scenario.stock, scenario.network, scenario.transit, scenario.booked
    )
    sites = scenario.network.sites
    services = {s.service_id: s for s in scenario.network.services}
    routes = {r.route_id: r for r in scenario.network.routes}
    for o in result.options:
        if o.method in (STANDARD, GREEN, SHIP_FROM_STORE):
            for shipment in o.shipments:
                service = services[shipment.service_id]
                site = sites[shipment.location_id]
                tz = site.calendar.timezone
                handover_day = local_date(tz, shipment.handover_at_ms)
                minute = int(local(shipment.handover_at_ms, tz)[-5:-3]) * 60 + int(
                    local(shipment.handover_at_ms, tz)[-2:]
                )
                assert (handover_day.weekday(), minute) in service.pickups
                assert is_working_date(site.calendar, handover_day)
            last = max(o.shipments, key=lambda s: s.arrives_at_ms)
            delivery = services[last.service_id].delivery_calendar
            if scenario.destination.timezone:
                delivery = replace(delivery, timezone=scenario.destination.timezone)
            day = local_date(delivery.timezone, o.window_start_ms)
            assert is_working_date(delivery, day)
            assert local_date(delivery.timezone, o.window_end_ms) == day
        elif o.method is CLICK_AND_COLLECT:
            store = sites[o.pickup_store_id]
            assert is_open(store.calendar, o.window_start_ms)
            assert local_date(AMS, o.window_end_ms) == local_date(AMS, o.window_start_ms)
            for shipment in o.shipments:
                if shipment.route_id is not None:
                    route = routes[shipment.route_id]
                    dc = sites[route.origin_id]
                    departure_day = local_date(dc.calendar.timezone, shipment.handover_at_ms)
                    assert is_working_date(dc.calendar, departure_day)
        else:
            store = sites[o.shipments[0].location_id]
            assert is_open(store.calendar, o.window_start_ms)
            assert is_open(store.calendar, o.window_end_ms - 1)
            assert local_date(AMS, o.window_start_ms) == local_date(AMS, asked)
            assert o.window_start_ms >= o.shipments[0].ready_at_ms
            assert scenario.booked.get((store.location_id, o.window_start_ms), 0) < 4
