"""Preorder options: a cart stock on hand cannot serve, promised from announced inbound with its ETA."""

from __future__ import annotations

from oms_streams.domain.network import DeliveryMethod
from oms_streams.domain.promise import promise_options
from oms_streams.domain.promise_preorder import eta_of
from oms_streams.domain.promise_types import PromiseResult
from tests.unit.promise_builders import (
    BIKE_LIGHT,
    PUMP,
    FixedTransit,
    a_cart,
    a_network,
    a_request,
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
