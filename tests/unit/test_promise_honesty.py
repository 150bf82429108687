"""A promise says what it does not know: no home delivery outside every carrier's service area, an
unknown SKU named as unknown, and no confidence claimed for a transit the model never learned."""

from __future__ import annotations

from dataclasses import replace

import pytest

from oms_streams.domain.network import DeliveryMethod
from oms_streams.domain.promise import promise_options
from oms_streams.domain.promise_types import Destination, PromiseResult
from oms_streams.domain.transit import Lane, TransitModel
from tests.unit.promise_builders import (
    BIKE_LIGHT,
    a_cart,
    a_green_service,
    a_network,
    a_request,
    a_service,
    a_stock,
    home,
)

IN_DC_NORTH = a_stock(webshop={"DC-NORTH": {BIKE_LIGHT: 5}})

STANDARD, GREEN = DeliveryMethod.STANDARD, DeliveryMethod.GREEN
NL_ONLY = a_network(
    services=[
        replace(a_service(), regions=frozenset({"NL"}), max_km=400.0),
        replace(a_green_service(), regions=frozenset({"NL"}), max_km=400.0),
    ]
)


def promise(destination: Destination, network=NL_ONLY, transit=None, **request) -> PromiseResult:
    return promise_options(
        a_request(destination=destination, **request), IN_DC_NORTH, network, transit or TransitModel(), None
    )


def reasons(result: PromiseResult) -> dict[DeliveryMethod, str]:
    return {u.method: u.reason for u in result.unavailable}


@pytest.mark.parametrize(
    "destination",
    [
        Destination(lat=5.1300, lon=52.0800, postal_code="3511 AB", region="NL-UT"),  # lat/lon swapped
        Destination(lat=40.7128, lon=-74.0060, postal_code="10001", region="US-NY"),
        Destination(lat=-33.8688, lon=151.2093, postal_code="2000", region="AU-NSW"),
    ],
    ids=["swapped", "new-york", "sydney"],
)
def test_no_home_delivery_outside_every_carriers_service_area(destination: Destination) -> None:
    result = promise(destination, methods=[STANDARD, GREEN])

    assert result.options == ()
    assert "outside every standard carrier's service area" in reasons(result)[STANDARD]
    assert "outside every green carrier's service area" in reasons(result)[GREEN]


def test_a_destination_inside_the_area_is_served() -> None:
    result = promise(home(region="NL-UT"), methods=[STANDARD])

    assert [o.option_id for o in result.options] == ["standard"]


def test_an_unknown_sku_is_named_as_unknown_for_every_method() -> None:
    result = promise(home(), cart=a_cart(("SKU-NO-SUCH-THING", 1)), methods=list(DeliveryMethod))

    assert result.options == ()
    assert set(reasons(result).values()) == {"unknown SKU SKU-NO-SUCH-THING"}
    assert len(result.unavailable) == len(DeliveryMethod)


def test_no_confidence_is_claimed_without_learned_transit() -> None:
    result = promise(home(region="NL-UT"), transit=TransitModel(), methods=[STANDARD])

    [standard] = result.options
    assert standard.shipments[0].transit_source == "prior"
    assert standard.confidence is None


def test_confidence_is_claimed_once_the_distance_band_has_history() -> None:
    transit = TransitModel()
    # Other lanes of the same service and distance band as DC-NORTH -> the customer.
    for _ in range(30):
        transit.observe(Lane("POSTNL-STANDARD", "NL-ELSEWHERE", "NL-UT", 60.0), 20.0)
    result = promise(home(region="NL-UT"), transit=transit, methods=[STANDARD])

    [standard] = result.options
    assert standard.shipments[0].transit_source in ("lane", "band")
    assert standard.confidence == 0.95


def test_history_over_other_distances_only_is_no_evidence() -> None:
    transit = TransitModel()
    for _ in range(100):
        transit.observe(Lane("POSTNL-STANDARD", "NL-ELSEWHERE", "NL-UT", 2_000.0), 20.0)
    result = promise(home(region="NL-UT"), transit=transit, methods=[STANDARD])

    [standard] = result.options
    assert standard.shipments[0].transit_source == "service"
    assert standard.confidence is None
