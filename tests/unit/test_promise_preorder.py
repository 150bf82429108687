"""Preorder options: a cart stock on hand cannot serve, promised from announced inbound with its ETA."""

from __future__ import annotations

from oms_streams.domain.network import DeliveryMethod
from oms_streams.domain.promise import promise_options
from oms_streams.domain.promise_plan import Plan
from oms_streams.domain.promise_preorder import eta_of, preorder_options
from oms_streams.domain.promise_types import Destination, PromiseResult
from oms_streams.domain.transit import SOURCE_PRIOR
from tests.unit.promise_builders import (
    BIKE_LIGHT,
    PUMP,
    FixedTransit,
    a_cart,
    a_green_service,
    a_network,
    a_request,
    a_service,
    a_stock,
    at,
    local,
)

STANDARD = DeliveryMethod.STANDARD
EMPTY = a_stock()
ETA_MON = at("2024-05-13 09:00")  # a week after the asking moment (Monday 2024-05-06 10:00)
ETA_WED = at("2024-05-15 09:00")


def promise(stock=EMPTY, inbound=None, **request) -> PromiseResult:  # type: ignore[no-untyped-def]
    return promise_options(
        a_request(methods=[STANDARD], **request), stock, a_network(), FixedTransit(), None, inbound
    )


def test_no_stock_on_hand_but_inbound_with_an_eta_gives_a_preorder_timed_from_the_eta() -> None:
    result = promise(inbound={BIKE_LIGHT: {"DC-NORTH": ((ETA_MON, 3),)}})
    [option] = result.options
    assert (option.option_id, option.preorder, option.method) == ("preorder:DC-NORTH", True, STANDARD)
    [parcel] = option.shipments
    assert parcel.location_id == "DC-NORTH"
    # As a standard parcel asked for at the ETA: 30 min pick + 15 min pack, 18:00 pickup, 20 h transit.
    assert local(parcel.ready_at_ms) == "2024-05-13 09:45"
    assert local(parcel.handover_at_ms) == "2024-05-13 18:00"
    assert local(option.window_end_ms) == "2024-05-14 21:00"
    assert [u.method for u in result.unavailable] == [STANDARD]  # nothing from stock on hand


def test_the_cart_waits_for_the_lot_its_last_unit_comes_from_at_the_site_expecting_it_first() -> None:
    inbound = {
        BIKE_LIGHT: {"DC-NORTH": ((ETA_MON, 1), (ETA_WED, 5)), "DC-SOUTH": ((ETA_MON, 2),)},
        PUMP: {"DC-NORTH": ((ETA_MON, 1),), "DC-SOUTH": ((ETA_MON, 1),)},
    }
    result = promise(inbound=inbound, cart=a_cart((BIKE_LIGHT, 2), (PUMP, 1)))
    [option] = result.options
    assert option.option_id == "preorder:DC-SOUTH"  # DC-NORTH has the second light on Wednesday
    assert local(option.shipments[0].ready_at_ms) == "2024-05-13 09:45"


def test_stock_on_hand_is_promised_as_always_and_no_preorder_is_offered() -> None:
    stock = a_stock(webshop={"DC-NORTH": {BIKE_LIGHT: 5}})
    result = promise(stock=stock, inbound={BIKE_LIGHT: {"DC-NORTH": ((ETA_MON, 3),)}})
    assert [(o.option_id, o.preorder) for o in result.options] == [("standard", False)]


def test_inbound_that_does_not_cover_the_cart_offers_nothing() -> None:
    result = promise(inbound={BIKE_LIGHT: {"DC-NORTH": ((ETA_MON, 1),)}}, cart=a_cart((BIKE_LIGHT, 2)))
    assert result.options == ()
    assert eta_of(((ETA_MON, 1), (ETA_WED, 1)), 2) == ETA_WED and eta_of(((ETA_MON, 1),), 2) is None


# --- what mutation testing found unpinned (mutmut 2.4.5 on domain/promise_preorder.py) -----------------


def promise_on(network, transit=None, cart=None, inbound=None) -> PromiseResult:  # type: ignore[no-untyped-def]
    request = a_request(methods=[STANDARD], **({"cart": cart} if cart else {}))
    return promise_options(request, EMPTY, network, transit or FixedTransit(), None, inbound)


def test_a_preorder_is_one_parcel_with_the_window_of_a_standard_parcel_and_the_learned_confidence() -> None:
    [option] = promise(inbound={BIKE_LIGHT: {"DC-NORTH": ((ETA_MON, 3),)}}).options
    assert option.parcels == 1
    assert (local(option.window_start_ms), local(option.window_end_ms)) == (
        "2024-05-14 08:00",
        "2024-05-14 21:00",
    )
    assert option.confidence == a_network().policy.quantile  # transit learned on the lane
    unlearned = promise_on(
        a_network(), FixedTransit(source=SOURCE_PRIOR), inbound={BIKE_LIGHT: {"DC-NORTH": ((ETA_MON, 3),)}}
    )
    assert [o.confidence for o in unlearned.options] == [None]  # a prior is no measured confidence


def test_inbound_at_a_site_that_does_not_ship_offers_no_preorder() -> None:
    result = promise(inbound={BIKE_LIGHT: {"STORE-UTRECHT-01": ((ETA_MON, 3),)}})
    assert result.options == ()


def test_only_a_site_expecting_every_sku_of_the_cart_is_offered() -> None:
    inbound = {
        BIKE_LIGHT: {"DC-NORTH": ((ETA_MON, 2),)},
        PUMP: {"DC-NORTH": ((ETA_WED, 1),), "DC-SOUTH": ((ETA_MON, 1),)},
    }
    result = promise(inbound=inbound, cart=a_cart((BIKE_LIGHT, 1), (PUMP, 1)))
    assert [o.option_id for o in result.options] == ["preorder:DC-NORTH"]


def test_a_site_no_carrier_collects_at_is_passed_over_for_the_next_one() -> None:
    # DC-NORTH comes first (by id) but only DC-SOUTH is collected from by the carrier.
    network = a_network(services=[a_service(origins=["DC-SOUTH"])])
    both = {BIKE_LIGHT: {"DC-NORTH": ((ETA_MON, 3),), "DC-SOUTH": ((ETA_WED, 3),)}}
    assert [o.option_id for o in promise_on(network, inbound=both).options] == ["preorder:DC-SOUTH"]
    north_only = {BIKE_LIGHT: {"DC-NORTH": ((ETA_MON, 3),)}}
    assert promise_on(network, inbound=north_only).options == ()


def test_why_no_preorder_can_be_offered() -> None:
    # ``preorder_options`` answers a reason when it offers nothing (``promise_options`` then keeps
    # the standard method's own reason).
    def why(network=None, destination=None, inbound=None):  # type: ignore[no-untyped-def]
        request = a_request(methods=[STANDARD], **({"destination": destination} if destination else {}))
        plan = Plan(request, EMPTY, network or a_network(), FixedTransit(), {})
        return preorder_options(
            plan, {BIKE_LIGHT: {"DC-NORTH": ((ETA_MON, 3),)}} if inbound is None else inbound
        )

    assert (
        why(destination=Destination(postal_code="3511 AB")) == "home delivery needs destination coordinates"
    )
    assert why(network=a_network(services=[a_green_service()])) == "no standard carrier service"
    assert why(inbound={}) == "no site that ships expects the whole cart as announced inbound"
    south_only = a_network(services=[a_service(origins=["DC-SOUTH"])])
    assert why(network=south_only) == "no standard carrier service collects at DC-NORTH"
