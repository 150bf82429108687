"""Returns checked against their order: no more units back than the order shipped, less what other
returns brought back; an unknown order is not checked (the return policy decides alone)."""

from __future__ import annotations

from collections.abc import Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from oms_streams.domain.network import DeliveryMethod
from oms_streams.domain.orders import PromiseRecord
from oms_streams.domain.promise_types import CartLine, DeliveryOption, Shipment
from oms_streams.domain.returnable import (
    Allowed,
    Refusal,
    ReturnableOrder,
    ReturnClaim,
    allow_return,
    ordered_units,
    shipped_units,
)
from oms_streams.domain.risk import FulfilmentEvent, FulfilmentKind, OrderTracking

K = FulfilmentKind
TENT, LIGHT = "SKU-TENT", "SKU-BIKE-LIGHT"
HOUR = 3_600_000


def an_order(
    *, shipped: Mapping[str, int], ordered: Mapping[str, int] | None = None, **returned: Mapping[str, int]
) -> ReturnableOrder:
    """``returned``: return id (``RET_0`` for ``RET-0``) -> SKU -> units it brought back."""
    by_return = {return_id.replace("_", "-"): units for return_id, units in returned.items()}
    return ReturnableOrder("ORDER-1", ordered if ordered is not None else shipped, shipped, by_return)


def claims(*items: tuple[str, int], key: str = "") -> list[ReturnClaim]:
    return [ReturnClaim(key or f"{sku}#{i}", sku, units) for i, (sku, units) in enumerate(items)]


# --- what can come back ------------------------------------------------------------------------------


def test_units_beyond_what_the_order_delivered_are_refused_with_the_reason() -> None:
    [tent] = allow_return(an_order(shipped={TENT: 2}), "RET-1", claims((TENT, 3)))

    assert (tent.accepted, tent.refused, tent.refusal) == (2, 1, Refusal.MORE_THAN_DELIVERED)
    assert tent.reason == "1 more than delivered: order ORDER-1 shipped 2 SKU-TENT, 0 came back before"


def test_units_up_to_what_the_order_delivered_come_back_whole() -> None:
    assert allow_return(an_order(shipped={TENT: 2}), "RET-1", claims((TENT, 2))) == (
        Allowed(f"{TENT}#0", TENT, 2),
    )


def test_what_other_returns_of_the_order_brought_back_is_taken_off() -> None:
    order = an_order(shipped={TENT: 3}, RET_0={TENT: 2})

    [tent] = allow_return(order, "RET-1", claims((TENT, 2)))

    assert (tent.accepted, tent.refused) == (1, 1)
    assert tent.reason.endswith("shipped 3 SKU-TENT, 2 came back before")


def test_a_returns_own_earlier_receipts_count_once_from_its_own_record() -> None:
    # The tracker already counts RET-1's first receipt; the returns worker passes it as ``own`` too.
    order = an_order(shipped={TENT: 3}, RET_1={TENT: 2})

    [tent] = allow_return(order, "RET-1", claims((TENT, 2)), own={TENT: 2})

    assert (tent.accepted, tent.refused) == (1, 1)  # 3 - 2, not 3 - 4


def test_earlier_items_of_the_same_receipt_take_the_room_first() -> None:
    first, second = allow_return(an_order(shipped={TENT: 1}), "RET-1", claims((TENT, 1), (TENT, 1)))

    assert (first.accepted, first.refused) == (1, 0)
    assert (second.accepted, second.refused, second.refusal) == (0, 1, Refusal.MORE_THAN_DELIVERED)


def test_a_sku_the_order_does_not_have_is_refused_as_not_in_the_order() -> None:
    [light] = allow_return(an_order(shipped={TENT: 1}), "RET-1", claims((LIGHT, 1)))

    assert (light.accepted, light.refusal) == (0, Refusal.NOT_IN_ORDER)
    assert light.reason == "SKU-BIKE-LIGHT is not a line of order ORDER-1"


def test_a_sku_ordered_but_not_shipped_yet_is_refused_as_not_shipped() -> None:
    order = an_order(shipped={}, ordered={TENT: 2})

    [tent] = allow_return(order, "RET-1", claims((TENT, 1)))

    assert (tent.accepted, tent.refusal) == (0, Refusal.NOT_SHIPPED)
    assert tent.reason == "order ORDER-1 has not shipped SKU-TENT yet (2 ordered)"


def test_a_return_without_a_known_order_follows_the_return_policy_alone() -> None:
    assert allow_return(None, "RET-1", claims((TENT, 5))) == (Allowed(f"{TENT}#0", TENT, 5),)


@settings(max_examples=200, deadline=None)
@given(
    shipped=st.integers(0, 5),
    others=st.integers(0, 5),
    own=st.integers(0, 5),
    asked=st.lists(st.integers(1, 4), min_size=1, max_size=4),
)
def test_never_more_back_than_shipped_and_every_unit_is_answered(
    shipped: int, others: int, own: int, asked: list[int]
) -> None:
    order = an_order(shipped={TENT: shipped}, RET_0={TENT: others})

    allowed = allow_return(
        order, "RET-1", [ReturnClaim(f"i{i}", TENT, q) for i, q in enumerate(asked)], {TENT: own}
    )

    assert sum(a.accepted for a in allowed) == min(sum(asked), max(0, shipped - others - own))
    assert all(a.accepted + a.refused == q for a, q in zip(allowed, asked, strict=True))
    assert all(
        (a.refusal is None) == (a.refused == 0) and (a.reason != "") == (a.refused > 0) for a in allowed
    )


# --- what the order shipped ---------------------------------------------------------------------------


def a_shipment(location_id: str, **lines: int) -> Shipment:
    return Shipment(
        location_id=location_id,
        lines=tuple(CartLine(f"SKU-{sku.replace('_', '-')}", q) for sku, q in lines.items()),
        ready_at_ms=HOUR,
        handover_at_ms=2 * HOUR,
        arrives_at_ms=24 * HOUR,
    )


def tracking(
    *shipments: Shipment,
    events: tuple[tuple[FulfilmentKind, str | None, int], ...] = (),
    method: DeliveryMethod = DeliveryMethod.STANDARD,
    pickup_store_id: str | None = None,
    cancelled_at_ms: int | None = None,
) -> OrderTracking:
    """``events``: (kind, location id, hour it occurred)."""
    option = DeliveryOption(
        option_id=method.value,
        method=method,
        window_start_ms=20 * HOUR,
        window_end_ms=30 * HOUR,
        confidence=0.95,
        parcels=len(shipments),
        co2e_g=0.0,
        shipments=shipments,
        pickup_store_id=pickup_store_id,
    )
    record = PromiseRecord("ORDER-1", 1, 0, option, ())
    fulfilment = tuple(
        FulfilmentEvent(f"e{i}", kind, hour * HOUR, location)
        for i, (kind, location, hour) in enumerate(events)
    )
    return OrderTracking(record, fulfilment, closed_at_ms=cancelled_at_ms)


def test_a_shipment_counts_once_it_left_for_the_customer_not_while_it_is_picked() -> None:
    order = tracking(a_shipment("DC-NORTH", TENT=2), a_shipment("DC-SOUTH", BIKE_LIGHT=1))
    picked = tracking(*order.record.option.shipments, events=((K.PICKED, "DC-NORTH", 1),))
    handed = tracking(*order.record.option.shipments, events=((K.HANDED_TO_CARRIER, "DC-NORTH", 2),))

    assert ordered_units(order) == {TENT: 2, LIGHT: 1}
    assert shipped_units(order) == shipped_units(picked) == {}
    assert shipped_units(handed) == {TENT: 2}  # DC-SOUTH's parcel has not left


def test_click_and_collect_counts_from_ready_for_pickup_at_the_pickup_store() -> None:
    # A till may register the return before the "collected" of the same visit arrives.
    order = tracking(
        a_shipment("DC-NORTH", TENT=1),
        events=((K.READY_FOR_PICKUP, "STORE-UTRECHT-01", 20),),
        method=DeliveryMethod.CLICK_AND_COLLECT,
        pickup_store_id="STORE-UTRECHT-01",
    )

    assert shipped_units(order) == {TENT: 1}


def test_a_departure_from_a_location_the_promise_does_not_name_counts_every_unit() -> None:
    # Re-sourced after a rejection: the units cannot be told apart, so none is refused for it.
    order = tracking(
        a_shipment("STORE-UTRECHT-01", TENT=1, BIKE_LIGHT=2),
        events=((K.HANDED_TO_CARRIER, "STORE-AMSTERDAM-02", 3),),
    )

    assert shipped_units(order) == {TENT: 1, LIGHT: 2}


def test_a_sku_cancelled_before_its_shipment_left_did_not_ship() -> None:
    shipment = a_shipment("DC-NORTH", TENT=1, BIKE_LIGHT=1)
    left_after = tracking(shipment, events=((K.HANDED_TO_CARRIER, None, 5),), cancelled_at_ms=3 * HOUR)
    left_before = tracking(shipment, events=((K.HANDED_TO_CARRIER, None, 2),), cancelled_at_ms=3 * HOUR)

    assert shipped_units(left_after, cancelled=[LIGHT]) == {TENT: 1}
    assert shipped_units(left_before, cancelled=[LIGHT]) == {TENT: 1, LIGHT: 1}
