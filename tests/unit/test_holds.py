"""Cart holds on one SKU's ledger: every hold owned (by its order or by its expiry), released at
expiry, taken over by the order placed with it, never more than is usable."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from oms_streams.adapters.holds import hold_view
from oms_streams.domain.inventory import (
    Count,
    Movement,
    MovementKind,
    StockPosition,
    apply_count,
    apply_movement,
)
from oms_streams.domain.reservations import (
    ReservationCommand,
    ReservationKind,
    ReservationResult,
    ReservationStatus,
    apply_reservation,
    expire_holds,
    is_cart_hold,
)
from oms_streams.schemas.sourcing import ReservationCommand as ReservationCommandModel
from oms_streams.tools.audit import FindingKind, Logged
from tests.unit.builders import T0, minutes
from tests.unit.test_audit import DC, LIGHT, NOW, _at, _wire_time, a_receipt_event, a_row, audit_of
from tests.unit.test_reservations import applied, atp, release, reserve, stock

H1, H2 = "hold-1", "hold-2"


def hold(hid: str, *lines: tuple[str, int], expires_at: int = T0 + minutes(15)) -> ReservationCommand:
    return ReservationCommand(ReservationKind.RESERVE, hid, tuple(lines), T0, expires_at_ms=expires_at)


def place(rid: str, *lines: tuple[str, int], takes_over: str | None = None) -> ReservationCommand:
    return ReservationCommand(ReservationKind.RESERVE, rid, tuple(lines), T0, takes_over=takes_over)


def nothing_usable(location_id: str, position: StockPosition) -> int:
    return 0


def test_ids_tell_cart_holds_from_orders_reservations():
    assert is_cart_hold("hold-4f2a") and not is_cart_hold("ORDER-1/1") and not is_cart_hold("hold-7/1")


def test_a_hold_reserves_its_lines_and_says_when_it_expires():
    result = apply_reservation(stock(DC_NORTH=5), hold(H1, ("DC-NORTH", 2)), atp, now_ms=T0)

    assert result.status is ReservationStatus.RESERVED
    assert result.changed["DC-NORTH"].holds == ((H1, 2),)
    assert result.expiries == {H1: T0 + minutes(15)}


def test_a_hold_that_arrives_after_its_expiry_or_without_one_is_refused_and_changes_nothing():
    late = apply_reservation(stock(DC_NORTH=5), hold(H1, ("DC-NORTH", 2), expires_at=T0), atp, now_ms=T0)
    unowned = ReservationCommand(ReservationKind.RESERVE, H1, (("DC-NORTH", 2),), T0)
    bare = apply_reservation(stock(DC_NORTH=5), unowned, atp, now_ms=T0)

    assert (late.status, late.changed, late.expiries) == (ReservationStatus.REFUSED, {}, {})
    assert "expired" in late.reason
    assert bare.status is ReservationStatus.REFUSED and bare.changed == {}


def test_a_hold_that_cannot_have_all_its_units_gets_none():
    result = apply_reservation(stock(DC_NORTH=1), hold(H1, ("DC-NORTH", 2)), atp, now_ms=T0)

    assert result.status is ReservationStatus.REFUSED and result.expiries == {H1: None}
    assert result.changed["DC-NORTH"].reserved == 0


def test_expiry_releases_the_holds_due_and_keeps_the_others():
    positions = _run(
        stock(DC_NORTH=5), hold(H1, ("DC-NORTH", 2)), hold(H2, ("DC-NORTH", 1), expires_at=T0 + minutes(30))
    )

    result = expire_holds(positions, {H1: T0 + minutes(15), H2: T0 + minutes(30)}, T0 + minutes(15))

    assert result.expired == {H1: (("DC-NORTH", 2),)}
    assert result.changed["DC-NORTH"].reserved == 1 and result.changed["DC-NORTH"].holds == ((H2, 1),)
    resent = apply_reservation(
        {**positions, **result.changed},
        hold(H1, ("DC-NORTH", 2), expires_at=T0 + minutes(99)),
        atp,
        now_ms=T0,
    )
    assert resent.status is ReservationStatus.REFUSED  # a resend of an expired hold is not held again


def test_an_order_takes_over_exactly_the_held_units_even_when_nothing_else_is_usable():
    positions = _run(stock(DC_NORTH=3), hold(H1, ("DC-NORTH", 3)))

    result = apply_reservation(positions, place("O-1/1", ("DC-NORTH", 3), takes_over=H1), nothing_usable)

    assert result.status is ReservationStatus.RESERVED
    assert result.changed["DC-NORTH"].holds == (("O-1/1", 3),) and result.changed["DC-NORTH"].reserved == 3
    assert result.expiries == {H1: None} and result.taken_over == (("DC-NORTH", 3),)


def test_an_order_asking_more_than_was_held_gets_the_rest_from_what_is_usable_or_nothing():
    positions = _run(stock(DC_NORTH=4), hold(H1, ("DC-NORTH", 2)))

    more = apply_reservation(positions, place("O-1/1", ("DC-NORTH", 4), takes_over=H1), atp)
    too_much = apply_reservation(positions, place("O-1/1", ("DC-NORTH", 5), takes_over=H1), atp)

    assert more.status is ReservationStatus.RESERVED and more.changed["DC-NORTH"].holds == (("O-1/1", 4),)
    assert too_much.status is ReservationStatus.REFUSED and too_much.expiries == {}
    kept = {**positions, **too_much.changed}["DC-NORTH"]
    assert kept.holds == ((H1, 2),) and kept.reserved == 2  # the cart keeps its hold


def test_an_order_planned_elsewhere_gives_the_hold_back():
    positions = _run(stock(DC_NORTH=2, DC_SOUTH=2), hold(H1, ("DC-NORTH", 2)))

    result = apply_reservation(positions, place("O-1/1", ("DC-SOUTH", 2), takes_over=H1), atp)
    after = {**positions, **result.changed}

    assert result.status is ReservationStatus.RESERVED and result.expiries == {H1: None}
    assert after["DC-NORTH"].reserved == 0 and after["DC-SOUTH"].holds == (("O-1/1", 2),)


def test_taking_over_a_hold_that_is_gone_is_an_ordinary_reserve():
    positions = _run(stock(DC_NORTH=2), hold(H1, ("DC-NORTH", 2)), release(H1, "DC-NORTH"))

    result = apply_reservation(positions, place("O-1/1", ("DC-NORTH", 2), takes_over=H1), atp)

    assert result.status is ReservationStatus.RESERVED and result.expiries == {} and result.taken_over == ()


def test_an_order_cannot_take_over_another_orders_reservation():
    positions = _run(stock(DC_NORTH=2), reserve("O-1/1", ("DC-NORTH", 2)))

    result = apply_reservation(positions, place("O-2/1", ("DC-NORTH", 2), takes_over="O-1/1"), atp)

    assert result.status is ReservationStatus.REFUSED


def test_releasing_a_hold_ends_it():
    positions = _run(stock(DC_NORTH=2), hold(H1, ("DC-NORTH", 2)))

    result = apply_reservation(positions, release(H1, "DC-NORTH"), atp)

    assert result.status is ReservationStatus.RELEASED and result.expiries == {H1: None}
    assert result.changed["DC-NORTH"].reserved == 0


def test_a_hold_is_put_together_from_its_request_and_each_ledgers_word():
    request = {
        "hold_id": H1,
        "channel": "webshop",
        "expires_at": "2026-11-27T09:15:00+00:00",
        "skus": ["A", "B"],
    }
    held_a = {**request, "sku": "A", "status": "held", "lines": [{"location_id": "DC", "quantity": 1}]}
    records: dict[str | None, dict] = {None: request, "A": held_a}

    assert hold_view({}) is None
    assert hold_view(records)["status"] == "pending"
    assert hold_view({**records, "B": {**held_a, "sku": "B"}})["status"] == "held"
    refused = hold_view(
        {**records, "B": {**held_a, "sku": "B", "status": "refused", "reason": "DC has 0 of 1"}}
    )
    assert refused["status"] == "refused" and refused["reason"] == "DC has 0 of 1"
    taken = {**held_a, "status": "taken_over", "order_id": "O-1"}
    view = hold_view({**records, "A": taken, "B": {**held_a, "sku": "B", "status": "expired"}})
    assert view["status"] == "taken_over" and view["order_id"] == "O-1"


def _run(positions: dict[str, StockPosition], *commands: ReservationCommand) -> dict[str, StockPosition]:
    for command in commands:
        positions = {**positions, **apply_reservation(positions, command, atp, now_ms=T0).changed}
    return positions


LOCATIONS = ["DC-NORTH", "STORE-UTRECHT-01"]
lines = st.lists(st.tuples(st.sampled_from(LOCATIONS), st.integers(1, 4)), min_size=1, max_size=2)
steps = st.one_of(
    st.tuples(st.just("hold"), st.integers(1, 3), lines, st.integers(1, 20)),
    st.tuples(st.just("place"), st.integers(1, 3), lines, st.sampled_from([None, 1, 2, 3])),
    st.tuples(st.just("expire"), st.integers(0, 15)),
    st.tuples(st.just("release"), st.sampled_from(["hold-1", "hold-2", "hold-3", "O-1/1", "O-2/1", "O-3/1"])),
    st.tuples(st.just("fulfil"), st.integers(1, 3), st.sampled_from(LOCATIONS)),
    st.tuples(st.just("count"), st.sampled_from(LOCATIONS), st.integers(0, 8)),
    st.tuples(st.just("sale"), st.sampled_from(LOCATIONS), st.integers(1, 3)),
    st.tuples(st.just("receipt"), st.sampled_from(LOCATIONS), st.integers(1, 5)),
)


@settings(max_examples=300)
@given(st.lists(steps, max_size=50))
def test_any_interleaving_keeps_every_hold_owned_and_never_reserves_what_is_not_there(script):
    positions = stock(DC_NORTH=6, STORE_UTRECHT_01=3)
    expiries: dict[str, int] = {}  # the ledger's rows of live cart holds
    now, seq = T0, 0
    for step in script:
        seq += 1
        free_before = {loc: p.on_hand - p.reserved for loc, p in positions.items()}
        result = _step(positions, step, now, seq, expiries)
        if isinstance(result, int):
            now = result
            continue
        positions = {**positions, **result.changed}
        for hid, expires_at in result.expiries.items():
            if expires_at is None:
                expiries.pop(hid, None)
            else:
                expiries[hid] = expires_at
        for loc, p in positions.items():
            assert p.reserved == sum(units for _, units in p.holds) >= 0
            if step[0] in ("hold", "place", "expire", "release", "fulfil"):
                # Holds never take what is not there (a count or a sale may leave less than reserved).
                assert p.on_hand - p.reserved >= min(0, free_before.get(loc, 0))
        carts = {rid for p in positions.values() for rid, _ in p.holds if is_cart_hold(rid)}
        orders = {rid for p in positions.values() for rid, _ in p.holds if not is_cart_hold(rid)}
        assert carts == set(expiries)  # every cart hold has its expiry row, and no row outlives it
        assert all(rid.startswith("O-") for rid in orders)  # every other hold has its order
        assert all(expires_at > now for expires_at in expiries.values()) or step[0] != "expire"


def _step(
    positions: dict[str, StockPosition], step: tuple, now: int, seq: int, expiries: dict[str, int]
) -> ReservationResult | int:
    kind = step[0]
    if kind == "hold":
        command = ReservationCommand(
            ReservationKind.RESERVE,
            f"hold-{step[1]}",
            tuple(step[2]),
            now,
            expires_at_ms=now + minutes(step[3]),
        )
        return apply_reservation(positions, command, atp, now_ms=now)
    if kind == "place":
        takes = f"hold-{step[3]}" if step[3] else None
        return apply_reservation(
            positions, place(f"O-{step[1]}/1", *step[2], takes_over=takes), atp, now_ms=now
        )
    if kind == "expire":
        now += minutes(step[1])
        expired = expire_holds(positions, expiries, now)
        ended: dict[str, int | None] = dict.fromkeys(expired.expired)
        return ReservationResult(ReservationStatus.EXPIRED, expired.changed, (), expiries=ended)
    if kind == "release":
        return apply_reservation(positions, release(step[1], *LOCATIONS), atp, now_ms=now)
    if kind == "fulfil":
        command = ReservationCommand(ReservationKind.FULFIL, f"O-{step[1]}/1", ((step[2], 1),), now + seq)
        return apply_reservation(positions, command, atp, now_ms=now)
    position = positions[step[1]]
    if kind == "count":
        outcome = apply_count(position, Count(f"C-{seq}", step[2], now + seq))
    else:
        movement_kind = MovementKind.SALE if kind == "sale" else MovementKind.RECEIPT
        outcome = apply_movement(position, Movement(f"M-{seq}", movement_kind, step[2], now + seq))
    return ReservationResult(ReservationStatus.RESERVED, {step[1]: outcome.position}, ())


# --- the audit: a live cart hold is owned by its expiry; an expired one still held is a finding ------


def _hold_command(expires_at: int | None, at: int) -> Logged[ReservationCommandModel]:
    record = ReservationCommandModel(
        event_id=f"{H1}:{LIGHT}:reserve",
        occurred_at=_wire_time(at),
        source="oms-streams:holds",
        kind="reserve",
        reservation_id=H1,
        order_id=H1,
        sku=LIGHT,
        lines=[{"location_id": DC, "quantity": 2}],  # type: ignore[list-item]
        expires_at=_wire_time(expires_at) if expires_at is not None else None,
    )
    return Logged(record, _at("oms.inventory.reservations.v2", at))


def test_the_audit_finds_cart_holds_held_past_their_expiry_or_without_one():
    ledger = [a_row(on_hand=10, holds=[(H1, 2)])]
    stock_ = [a_receipt_event(qty=10)]

    live = audit_of(
        ledger=ledger, stock=stock_, commands=[_hold_command(NOW + minutes(5), NOW - minutes(10))]
    )
    expired = audit_of(
        ledger=ledger, stock=stock_, commands=[_hold_command(NOW - minutes(5), NOW - minutes(20))]
    )
    unowned = audit_of(ledger=ledger, stock=stock_)

    assert live.clean and live.counts["cart_holds"] == 1
    assert [f.kind for f in expired.findings] == [FindingKind.EXPIRED_HOLD]
    assert [f.kind for f in unowned.findings] == [FindingKind.UNOWNED_HOLD]


# --- mutants a mutmut run left alive (reservations.py) ----------------------------------------------


def test_the_wire_names_of_kinds_and_statuses_are_fixed():
    # They travel on oms.inventory.reservations.v2 and the replies topic: renaming one breaks clients.
    assert [k.value for k in ReservationKind] == ["reserve", "release", "fulfil"]
    assert [s.value for s in ReservationStatus] == ["reserved", "refused", "released", "fulfilled", "expired"]


def test_an_expired_hold_is_released_even_when_a_live_one_sorts_before_it():
    positions = {"DC-NORTH": StockPosition(on_hand=10, reserved=5, holds=(("hold-a", 2), ("hold-b", 3)))}
    expiries = {"hold-a": T0 + minutes(30), "hold-b": T0}

    result = expire_holds(positions, expiries, now_ms=T0 + minutes(1))

    assert set(result.expired) == {"hold-b"}
    assert result.changed["DC-NORTH"].holds == (("hold-a", 2),)


def test_a_hold_without_an_expiry_says_it_needs_one():
    result = apply_reservation(stock(DC_NORTH=5), reserve(H1, ("DC-NORTH", 1)), atp, now_ms=T0)

    assert result.status is ReservationStatus.REFUSED and result.reason == "a cart hold needs an expiry"


def test_a_reserve_after_its_own_release_says_why_it_is_refused():
    positions = applied(stock(DC_NORTH=5), reserve("O-1/1", ("DC-NORTH", 1)), release("O-1/1", "DC-NORTH"))

    result = apply_reservation(positions, reserve("O-1/1", ("DC-NORTH", 1)), atp)

    assert result.reason == "reservation O-1/1 was already released or refused"


def test_a_fulfilment_is_journalled_under_its_reservation_and_the_last_64_settled_ids_are_kept():
    positions = applied(stock(DC_NORTH=100), reserve("O-0/1", ("DC-NORTH", 1)))
    fulfil = ReservationCommand(ReservationKind.FULFIL, "O-0/1", (("DC-NORTH", 1),), T0)
    positions = {**positions, **apply_reservation(positions, fulfil, atp).changed}
    assert positions["DC-NORTH"].journal[-1].event_id == "fulfil:O-0/1"

    for n in range(1, 65):
        positions = applied(positions, release(f"O-{n}/1", "DC-NORTH"))
    settled = positions["DC-NORTH"].settled
    assert len(settled) == 64 and "O-0/1" not in settled and settled[-1] == "O-64/1"


def test_a_hold_that_arrives_expired_says_so():
    late = hold(H1, ("DC-NORTH", 1), expires_at=T0)
    result = apply_reservation(stock(DC_NORTH=5), late, atp, now_ms=T0 + 1)

    assert result.status is ReservationStatus.REFUSED and result.changed == {}
    assert result.reason == f"hold {H1} expired before it arrived"


def test_a_take_over_finds_the_hold_through_the_callers_index_of_where_it_holds():
    positions = applied(stock(DC_NORTH=2), hold(H1, ("DC-NORTH", 2)))

    result = apply_reservation(
        positions, place("O-1/1", ("DC-NORTH", 2), takes_over=H1), nothing_usable, hold_at={"DC-NORTH"}
    )

    assert result.status is ReservationStatus.RESERVED
    assert result.changed["DC-NORTH"].holds == (("O-1/1", 2),)


def test_a_take_over_adds_nothing_where_the_hold_held_nothing_and_nothing_is_usable():
    positions = applied(stock(DC_NORTH=2, DC_SOUTH=0), hold(H1, ("DC-NORTH", 2)))

    order = place("O-1/1", ("DC-NORTH", 2), ("DC-SOUTH", 1), takes_over=H1)
    result = apply_reservation(positions, order, nothing_usable)

    assert result.status is ReservationStatus.REFUSED
    assert result.reason == "DC-SOUTH has 0 of 1"
    assert positions["DC-NORTH"].holds == ((H1, 2),)  # the cart keeps its hold


def test_a_refusal_names_every_short_location():
    result = apply_reservation(
        stock(DC_NORTH=1, DC_SOUTH=0), reserve("O-1/1", ("DC-NORTH", 2), ("DC-SOUTH", 1)), atp
    )

    assert result.reason == "DC-NORTH has 1 of 2; DC-SOUTH has 0 of 1"
