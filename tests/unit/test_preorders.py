"""Preorders on one SKU's ledger: inbound lots by ETA, holds on inbound, conversion on arrival."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from oms_streams.adapters.stock import position_to_row, row_to_position
from oms_streams.domain.inventory import (
    MAX_LOTS,
    Count,
    Movement,
    MovementKind,
    StockPosition,
    apply_count,
    apply_movement,
    available_to_promise,
    free_lots,
    preorderable,
)
from oms_streams.domain.reservations import (
    ReservationCommand,
    ReservationKind,
    ReservationStatus,
    apply_reservation,
)
from tests.unit.builders import T0, minutes

DAY = 24 * 60 * 60 * 1000


def announce(eid: str, units: int, eta: int | None, at: int = T0) -> Movement:
    return Movement(eid, MovementKind.INBOUND_ANNOUNCED, units, at, eta)


def receipt(eid: str, units: int, at: int = T0) -> Movement:
    return Movement(eid, MovementKind.RECEIPT, units, at)


def move(position: StockPosition, *movements: Movement) -> StockPosition:
    for movement in movements:
        position = apply_movement(position, movement).position
    return position


def command(kind: ReservationKind, rid: str, *lines: tuple[str, int]) -> ReservationCommand:
    return ReservationCommand(kind, rid, tuple(lines), T0)


def atp(_: str, position: StockPosition) -> int:
    return available_to_promise(position)


def test_announcements_with_an_eta_make_lots_earliest_first_and_bounded() -> None:
    p = move(
        StockPosition(), announce("a", 5, T0 + 3 * DAY), announce("b", 4, T0 + DAY), announce("c", 2, None)
    )
    assert p.inbound == 11
    assert p.lots == ((T0 + DAY, 4), (T0 + 3 * DAY, 5))
    assert preorderable(p) == 9  # inbound without an ETA is never promised
    for i in range(MAX_LOTS + 2):
        p = move(p, announce(f"more{i}", 1, T0 + (10 + i) * DAY))
    assert len(p.lots) == MAX_LOTS
    assert sum(u for _, u in p.lots) == 9 + MAX_LOTS + 2
    assert p.lots[-1][0] == T0 + (10 + MAX_LOTS + 1) * DAY  # merged at the later ETA: never early


def test_arrivals_consume_the_earliest_lots_first() -> None:
    p = move(StockPosition(), announce("a", 5, T0 + 3 * DAY), announce("b", 4, T0 + DAY), receipt("r", 6))
    assert p.on_hand == 6 and p.inbound == 3
    assert p.lots == ((T0 + 3 * DAY, 3),)


def test_a_preorder_holds_inbound_and_leaves_on_hand_alone() -> None:
    p = move(StockPosition(on_hand=2), announce("a", 5, T0 + DAY))
    result = apply_reservation({"DC": p}, command(ReservationKind.PREORDER, "o1/1", ("DC", 3)), atp)
    assert result.status is ReservationStatus.PREORDERED
    assert result.expected_at == {"DC": T0 + DAY}
    after = result.changed["DC"]
    assert after.preorders == (("o1/1", 3),) and after.reserved == 0
    assert available_to_promise(after) == 2 and preorderable(after) == 2
    again = apply_reservation({"DC": after}, command(ReservationKind.PREORDER, "o1/1", ("DC", 3)), atp)
    assert again.status is ReservationStatus.PREORDERED and again.changed == {}  # idempotent
    refused = apply_reservation({"DC": after}, command(ReservationKind.PREORDER, "o2/1", ("DC", 3)), atp)
    assert refused.status is ReservationStatus.REFUSED
    assert "has 2 of 3 inbound" in refused.reason


def test_the_eta_of_a_preorder_is_that_of_the_lot_its_last_unit_comes_from() -> None:
    p = move(StockPosition(), announce("a", 2, T0 + DAY), announce("b", 5, T0 + 4 * DAY))
    first = apply_reservation({"DC": p}, command(ReservationKind.PREORDER, "o1/1", ("DC", 1)), atp)
    second = apply_reservation(first.changed, command(ReservationKind.PREORDER, "o2/1", ("DC", 2)), atp)
    assert first.expected_at == {"DC": T0 + DAY}
    assert second.expected_at == {"DC": T0 + 4 * DAY}


def test_an_arrival_turns_the_oldest_preorders_into_holds_others_cannot_take() -> None:
    p = move(StockPosition(), announce("a", 5, T0 + DAY))
    p = apply_reservation({"DC": p}, command(ReservationKind.PREORDER, "o1/1", ("DC", 3)), atp).changed["DC"]
    p = apply_reservation({"DC": p}, command(ReservationKind.PREORDER, "o2/1", ("DC", 2)), atp).changed["DC"]
    p = move(p, receipt("r1", 4))
    assert p.on_hand == 4 and p.inbound == 1
    assert p.holds == (("o1/1", 3), ("o2/1", 1)) and p.reserved == 4
    assert p.preorders == (("o2/1", 1),)
    assert available_to_promise(p) == 0  # the arrived units are the preorders'
    refused = apply_reservation({"DC": p}, command(ReservationKind.RESERVE, "o3/1", ("DC", 1)), atp)
    assert refused.status is ReservationStatus.REFUSED
    p = move(p, receipt("r2", 3))
    assert p.holds == (("o1/1", 3), ("o2/1", 2)) and p.preorders == () and p.reserved == 5
    assert available_to_promise(p) == 2
    repeat = apply_reservation({"DC": p}, command(ReservationKind.PREORDER, "o2/1", ("DC", 2)), atp)
    assert repeat.status is ReservationStatus.RESERVED  # answered as the reserve it became


def test_releasing_a_preorder_gives_the_inbound_back_and_refuses_a_late_resend() -> None:
    p = move(StockPosition(), announce("a", 5, T0 + DAY))
    p = apply_reservation({"DC": p}, command(ReservationKind.PREORDER, "o1/1", ("DC", 3)), atp).changed["DC"]
    released = apply_reservation({"DC": p}, command(ReservationKind.RELEASE, "o1/1"), atp)
    assert released.status is ReservationStatus.RELEASED and released.lines == (("DC", 3),)
    p = released.changed["DC"]
    assert p.preorders == () and preorderable(p) == 5
    late = apply_reservation({"DC": p}, command(ReservationKind.PREORDER, "o1/1", ("DC", 3)), atp)
    assert late.status is ReservationStatus.REFUSED


def test_counts_keep_lots_and_preorders() -> None:
    p = move(StockPosition(on_hand=1), announce("a", 5, T0 + DAY))
    p = apply_reservation({"DC": p}, command(ReservationKind.PREORDER, "o1/1", ("DC", 3)), atp).changed["DC"]
    counted = apply_count(p, Count("c", 7, T0 + minutes(5))).position
    assert counted.on_hand == 7 and counted.lots == p.lots and counted.preorders == p.preorders


def test_rows_keep_lots_and_preorders() -> None:
    p = move(StockPosition(), announce("a", 5, T0 + DAY))
    p = apply_reservation({"DC": p}, command(ReservationKind.PREORDER, "o1/1", ("DC", 3)), atp).changed["DC"]
    assert row_to_position(position_to_row(p)) == p
    plain = move(StockPosition(), receipt("r", 2))
    assert len(position_to_row(plain)) == 13  # positions without lots write the rows they always did


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("announce"), st.integers(1, 9), st.integers(0, 6)),
            st.tuples(st.just("receipt"), st.integers(1, 9), st.just(0)),
            st.tuples(st.just("preorder"), st.integers(1, 9), st.integers(0, 4)),
            st.tuples(st.just("release"), st.just(0), st.integers(0, 4)),
        ),
        max_size=30,
    )
)
def test_preordered_never_exceeds_inbound_and_no_unit_is_lost(steps: list[tuple[str, int, int]]) -> None:
    p = StockPosition()
    for i, (kind, units, arg) in enumerate(steps):
        if kind == "announce":
            p = move(p, announce(f"a{i}", units, T0 + arg * DAY if arg else None))
        elif kind == "receipt":
            p = move(p, receipt(f"r{i}", units))
        else:
            k = ReservationKind.PREORDER if kind == "preorder" else ReservationKind.RELEASE
            p = apply_reservation({"DC": p}, command(k, f"o{arg}/1", ("DC", units)), atp).changed.get("DC", p)
        assert p.preordered <= sum(u for _, u in p.lots) <= p.inbound
        assert p.reserved == sum(u for _, u in p.holds) <= p.on_hand
        assert len(p.lots) <= MAX_LOTS


def test_a_cart_hold_cannot_preorder() -> None:
    p = move(StockPosition(), announce("a", 5, T0 + DAY))
    result = apply_reservation({"DC": p}, command(ReservationKind.PREORDER, "hold-1a2b", ("DC", 1)), atp)
    assert result.status is ReservationStatus.REFUSED and result.changed == {}


# --- what mutation testing found unpinned (mutmut 2.4.5 on domain/reservations.py, inventory.py) -------


def preorder(positions: dict[str, StockPosition], rid: str, *lines: tuple[str, int]):  # type: ignore[no-untyped-def]
    return apply_reservation(positions, command(ReservationKind.PREORDER, rid, *lines), atp)


def test_a_preorder_of_exactly_the_first_lot_is_expected_with_that_lot() -> None:
    p = move(StockPosition(), announce("a", 2, T0 + DAY), announce("b", 5, T0 + 4 * DAY))
    assert preorder({"DC": p}, "o1/1", ("DC", 2)).expected_at == {"DC": T0 + DAY}


def test_a_refused_preorder_says_exactly_why() -> None:
    # The reason travels with the answer to sourcing and into the order's outcome.
    a = move(StockPosition(), announce("a", 5, T0 + DAY))
    b = move(StockPosition(), announce("b", 1, T0 + DAY))
    short = preorder({"DC-A": a, "DC-B": b}, "o1/1", ("DC-A", 6), ("DC-B", 2))
    assert short.reason == "DC-A has 5 of 6 inbound with an ETA; DC-B has 1 of 2 inbound with an ETA"
    held = preorder({"DC-A": a, "DC-B": b}, "o1/1", ("DC-A", 3), ("DC-B", 1)).changed
    other = preorder(held, "o1/1", ("DC-A", 1))
    assert other.status is ReservationStatus.REFUSED
    assert other.reason == "preorder o1/1 already holds 3 at DC-A, 1 at DC-B"
    released = apply_reservation(held, command(ReservationKind.RELEASE, "o1/1"), atp).changed
    late = preorder({**held, **released}, "o1/1", ("DC-A", 3), ("DC-B", 1))
    assert late.reason == "reservation o1/1 was already released or refused"
    hold = preorder({"DC-A": a}, "hold-1a2b", ("DC-A", 1))
    assert hold.reason == "a cart hold cannot preorder inbound"


def test_a_position_keeps_four_lots() -> None:
    p = StockPosition()
    for day in range(1, 7):
        p = move(p, announce(f"a{day}", 1, T0 + day * DAY))
    assert MAX_LOTS == 4 and p.lots == (
        (T0 + DAY, 1),
        (T0 + 2 * DAY, 1),
        (T0 + 3 * DAY, 1),
        (T0 + 6 * DAY, 3),
    )


def test_an_announcement_without_an_eta_makes_no_lot() -> None:
    p = apply_movement(StockPosition(), Movement("a", MovementKind.INBOUND_ANNOUNCED, 4, T0)).position
    assert p.inbound == 4 and p.lots == () and preorderable(p) == 0


def test_the_free_lots_are_those_preorders_have_not_taken_earliest_first() -> None:
    p = move(StockPosition(), announce("a", 2, T0 + DAY), announce("b", 5, T0 + 4 * DAY))
    assert free_lots(p) == ((T0 + DAY, 2), (T0 + 4 * DAY, 5))
    p = preorder({"DC": p}, "o1/1", ("DC", 3)).changed["DC"]
    assert free_lots(p) == ((T0 + 4 * DAY, 4),)
    p = preorder({"DC": p}, "o2/1", ("DC", 1)).changed["DC"]
    assert free_lots(p) == ((T0 + 4 * DAY, 3),)


def test_a_preorder_that_partly_arrived_is_released_whole_and_fulfilled_as_far_as_it_arrived() -> None:
    p = move(StockPosition(), announce("a", 3, T0 + DAY))
    p = preorder({"DC": p}, "o1/1", ("DC", 3)).changed["DC"]
    p = move(p, receipt("r", 2))
    assert p.holds == (("o1/1", 2),) and p.preorders == (("o1/1", 1),)
    released = apply_reservation({"DC": p}, command(ReservationKind.RELEASE, "o1/1"), atp)
    assert released.lines == (("DC", 3),)
    assert released.changed["DC"].preorders == () and released.changed["DC"].reserved == 0
    fulfilled = apply_reservation({"DC": p}, command(ReservationKind.FULFIL, "o1/1"), atp)
    assert fulfilled.lines == (("DC", 2),)
    shipped = fulfilled.changed["DC"]
    assert shipped.on_hand == 0 and shipped.preorders == (("o1/1", 1),)
