"""Reservations on one SKU's ledger: all or nothing, never more than is usable, idempotent."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oms_streams.adapters.stock import position_to_row, row_to_position
from oms_streams.domain.inventory import (
    Count,
    StockPosition,
    apply_count,
    available_to_promise,
)
from oms_streams.domain.reservations import (
    Expiry,
    ReservationCommand,
    ReservationKind,
    ReservationStatus,
    apply_reservation,
)
from tests.unit.builders import T0, minutes


def atp(location_id: str, position: StockPosition) -> int:
    return available_to_promise(position)


def reserve(rid: str, *lines: tuple[str, int], at: int = T0) -> ReservationCommand:
    return ReservationCommand(ReservationKind.RESERVE, rid, tuple(lines), at)


def release(rid: str, *locations: str) -> ReservationCommand:
    return ReservationCommand(ReservationKind.RELEASE, rid, tuple((loc, 1) for loc in locations), T0)


def fulfil(rid: str, *locations: str, at: int = T0) -> ReservationCommand:
    return ReservationCommand(ReservationKind.FULFIL, rid, tuple((loc, 1) for loc in locations), at)


def stock(**on_hand: int) -> dict[str, StockPosition]:
    return {loc.replace("_", "-"): StockPosition(on_hand=units) for loc, units in on_hand.items()}


def applied(positions: dict[str, StockPosition], *commands: ReservationCommand) -> dict[str, StockPosition]:
    for command in commands:
        positions = {**positions, **apply_reservation(positions, command, atp).changed}
    return positions


def test_a_reservation_holds_units_at_every_location_it_names():
    result = apply_reservation(
        stock(DC_NORTH=5, DC_SOUTH=2), reserve("O-1/1", ("DC-NORTH", 3), ("DC-SOUTH", 2)), atp
    )

    assert result.status is ReservationStatus.RESERVED
    assert result.changed["DC-NORTH"].reserved == 3
    assert result.changed["DC-SOUTH"].reserved == 2
    assert result.changed["DC-NORTH"].holds == (("O-1/1", 3),)


def test_a_reservation_that_cannot_have_every_unit_takes_none():
    result = apply_reservation(
        stock(DC_NORTH=5, DC_SOUTH=1), reserve("O-1/1", ("DC-NORTH", 3), ("DC-SOUTH", 2)), atp
    )

    assert result.status is ReservationStatus.REFUSED
    assert result.reason == "DC-SOUTH has 1 of 2"
    assert all(p.reserved == 0 for p in result.changed.values())


def test_two_orders_never_take_the_same_unit():
    positions = applied(stock(STORE_UTRECHT_01=1), reserve("O-1/1", ("STORE-UTRECHT-01", 1)))

    second = apply_reservation(positions, reserve("O-2/1", ("STORE-UTRECHT-01", 1)), atp)

    assert second.status is ReservationStatus.REFUSED
    assert positions["STORE-UTRECHT-01"].reserved == 1


def test_a_repeated_reserve_answers_as_the_first_time_and_holds_nothing_more():
    positions = applied(stock(DC_NORTH=5), reserve("O-1/1", ("DC-NORTH", 3)))

    again = apply_reservation(positions, reserve("O-1/1", ("DC-NORTH", 3)), atp)

    assert again.status is ReservationStatus.RESERVED
    assert again.changed == {}
    assert again.lines == (("DC-NORTH", 3),)


def test_a_refused_reserve_stays_refused_when_repeated_even_after_stock_arrives():
    positions = applied(stock(DC_NORTH=1), reserve("O-1/1", ("DC-NORTH", 3)))
    positions["DC-NORTH"] = StockPosition(on_hand=10, settled=positions["DC-NORTH"].settled)

    again = apply_reservation(positions, reserve("O-1/1", ("DC-NORTH", 3)), atp)

    assert again.status is ReservationStatus.REFUSED


def test_release_gives_the_units_back_once():
    positions = applied(stock(DC_NORTH=5), reserve("O-1/1", ("DC-NORTH", 3)), release("O-1/1", "DC-NORTH"))

    assert positions["DC-NORTH"].reserved == 0
    assert positions["DC-NORTH"].holds == ()
    assert applied(positions, release("O-1/1", "DC-NORTH"))["DC-NORTH"].reserved == 0


def test_a_reserve_overtaken_by_its_release_is_refused_not_held():
    positions = applied(stock(DC_NORTH=5), release("O-1/1", "DC-NORTH"))

    late = apply_reservation(positions, reserve("O-1/1", ("DC-NORTH", 3)), atp)

    assert late.status is ReservationStatus.REFUSED
    assert positions["DC-NORTH"].reserved == 0


def test_fulfil_takes_the_units_out_of_on_hand_and_reserved_together():
    positions = applied(stock(DC_NORTH=5), reserve("O-1/1", ("DC-NORTH", 3)), fulfil("O-1/1", "DC-NORTH"))

    assert (positions["DC-NORTH"].on_hand, positions["DC-NORTH"].reserved) == (2, 0)
    assert applied(positions, fulfil("O-1/1", "DC-NORTH"))["DC-NORTH"].on_hand == 2


def test_a_count_as_of_before_the_shipment_left_does_not_bring_the_units_back():
    positions = applied(
        stock(DC_NORTH=5), reserve("O-1/1", ("DC-NORTH", 3)), fulfil("O-1/1", "DC-NORTH", at=T0 + minutes(10))
    )

    counted = apply_count(positions["DC-NORTH"], Count("C-1", on_hand=5, as_of_ms=T0 + minutes(5))).position

    assert counted.on_hand == 2


def test_a_fulfil_at_its_handover_time_is_not_taken_off_again_after_a_count_that_left_it_out():
    # The units left at T0+5; the store counted at T0+10 (2 left); the WMS reported the handover
    # late. Sent at the handover's time, the sale is recognised as already in the count.
    held = applied(stock(DC_NORTH=5), reserve("O-1/1", ("DC-NORTH", 3)))
    counted = {
        "DC-NORTH": apply_count(held["DC-NORTH"], Count("C-1", on_hand=2, as_of_ms=T0 + minutes(10))).position
    }

    at_handover = applied(counted, fulfil("O-1/1", "DC-NORTH", at=T0 + minutes(5)))["DC-NORTH"]
    at_arrival = applied(counted, fulfil("O-1/1", "DC-NORTH", at=T0 + minutes(15)))["DC-NORTH"]

    assert (at_handover.on_hand, at_handover.reserved) == (2, 0)
    assert at_arrival.on_hand == -1  # what the worker's clock did: the 3 units taken off twice


def test_fulfil_of_one_location_leaves_the_other_holds_of_the_reservation():
    positions = applied(
        stock(DC_NORTH=5, DC_SOUTH=5),
        reserve("O-1/1", ("DC-NORTH", 1), ("DC-SOUTH", 2)),
        fulfil("O-1/1", "DC-NORTH"),
    )

    assert positions["DC-NORTH"].reserved == 0
    assert positions["DC-SOUTH"].reserved == 2


def test_holds_survive_the_table_row():
    positions = applied(stock(DC_NORTH=5), reserve("O-1/1", ("DC-NORTH", 3)), release("O-2/1", "DC-NORTH"))

    assert row_to_position(position_to_row(positions["DC-NORTH"])) == positions["DC-NORTH"]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["reserve", "release", "fulfil"]),
            st.integers(1, 6),
            st.lists(
                st.tuples(st.sampled_from(["DC-NORTH", "STORE-UTRECHT-01"]), st.integers(1, 4)),
                min_size=1,
                max_size=2,
            ),
        ),
        max_size=40,
    )
)
def test_no_sequence_of_commands_ever_reserves_more_than_on_hand(commands):
    positions = stock(DC_NORTH=6, STORE_UTRECHT_01=3)
    for kind, order, lines in commands:
        command = ReservationCommand(ReservationKind(kind), f"O-{order}/1", tuple(lines), T0)
        positions = {**positions, **apply_reservation(positions, command, atp).changed}
        for position in positions.values():
            assert 0 <= position.reserved <= position.on_hand
            assert position.reserved == sum(units for _, units in position.holds)


def test_the_same_attempt_planned_again_elsewhere_gives_back_its_earlier_holds():
    # A new owner of the order re-planned the attempt (its first owner died before storing it).
    positions = applied(stock(DC_NORTH=5, DC_SOUTH=5), reserve("O-1/1", ("DC-NORTH", 2)))

    replanned = apply_reservation(positions, reserve("O-1/1", ("DC-SOUTH", 2)), atp)
    positions = {**positions, **replanned.changed}

    assert replanned.status is ReservationStatus.RESERVED and replanned.lines == (("DC-SOUTH", 2),)
    assert (positions["DC-NORTH"].reserved, positions["DC-SOUTH"].reserved) == (0, 2)
    assert positions["DC-NORTH"].holds == ()


def test_an_index_of_where_a_reservation_holds_gives_the_same_answers():
    positions = applied(stock(DC_NORTH=5, DC_SOUTH=5), reserve("O-1/1", ("DC-NORTH", 2)))

    indexed = apply_reservation(positions, reserve("O-1/1", ("DC-SOUTH", 2)), atp, held_at={"DC-NORTH"})
    repeat = apply_reservation(positions, reserve("O-1/1", ("DC-NORTH", 2)), atp, held_at={"DC-NORTH"})

    assert indexed.changed == apply_reservation(positions, reserve("O-1/1", ("DC-SOUTH", 2)), atp).changed
    assert repeat.status is ReservationStatus.RESERVED and repeat.changed == {}


# --- what mutation testing found unpinned (mutmut 2.4.5 on domain/reservations.py) ---------------------


def test_a_reserve_answer_has_no_reason_no_cart_hold_change_and_no_eta():
    result = apply_reservation(stock(DC_NORTH=5), reserve("O-1/1", ("DC-NORTH", 3)), atp)
    assert result.status is ReservationStatus.RESERVED
    assert (result.reason, result.expiries, result.taken_over, result.expected_at) == ("", {}, (), {})


def test_commands_and_answers_cannot_be_changed_once_made():
    command = reserve("O-1/1", ("DC-NORTH", 3))
    result = apply_reservation(stock(DC_NORTH=5), command, atp)
    for value in (command, result, Expiry({}, {})):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, dataclasses.fields(value)[0].name, None)


def test_a_repeat_after_part_was_given_back_is_refused_with_the_reason_and_the_rest_stays_held():
    positions = applied(stock(DC_NORTH=5, DC_SOUTH=2), reserve("O-1/1", ("DC-NORTH", 2), ("DC-SOUTH", 1)))
    positions = applied(positions, release("O-1/1", "DC-SOUTH"))
    again = apply_reservation(positions, reserve("O-1/1", ("DC-NORTH", 2), ("DC-SOUTH", 1)), atp)
    assert again.status is ReservationStatus.REFUSED and again.changed == {}
    assert again.reason == "reservation O-1/1 was already released or refused"
