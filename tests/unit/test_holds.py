"""Cart holds on one SKU's ledger: every hold owned (by its order or by its expiry), released at
expiry, taken over by the order placed with it, never more than is usable."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from oms_streams.adapters.holds import held_lines, hold_cart, hold_view, parse_request
from oms_streams.adapters.stock import Failure
from oms_streams.domain.inventory import Count, Movement, MovementKind, StockPosition, Verdict
from oms_streams.domain.ledger import StockCommand, apply_commands
from oms_streams.domain.reservations import (
    ReservationCommand,
    ReservationKind,
    ReservationResult,
    ReservationStatus,
    apply_reservation,
    expire_holds,
    is_cart_hold,
)
from oms_streams.domain.shortfall import sellable, shed_shortfalls
from oms_streams.schemas.sourcing import ReservationCommand as ReservationCommandModel
from oms_streams.tools.audit import FindingKind, Logged
from tests.integration.test_sourcing import an_option
from tests.unit.builders import T0, a_dc, a_store, minutes, network
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
STOCKED = network(a_dc("DC-NORTH"), a_store("STORE-UTRECHT-01"))
lines = st.lists(st.tuples(st.sampled_from(LOCATIONS), st.integers(1, 4)), min_size=1, max_size=2)
orders = st.integers(1, 3)
steps = st.one_of(
    st.tuples(st.just("hold"), st.integers(1, 3), lines, st.integers(1, 20)),
    st.tuples(st.just("place"), orders, lines, st.sampled_from([None, 1, 2, 3])),
    st.tuples(st.just("expire"), st.integers(0, 15)),
    st.tuples(st.just("release"), st.sampled_from(["hold-1", "hold-2", "hold-3", "O-1/1", "O-2/1", "O-3/1"])),
    st.tuples(st.just("cancel"), orders, st.sampled_from([None, *LOCATIONS])),
    st.tuples(st.just("fulfil"), orders, st.sampled_from(LOCATIONS)),
    st.tuples(st.just("short_pick"), orders),
    st.tuples(st.just("resend")),
    st.tuples(st.just("count"), st.sampled_from(LOCATIONS), st.integers(0, 8)),
    st.tuples(st.just("sale"), st.sampled_from(LOCATIONS), st.integers(1, 3)),
    st.tuples(st.just("transfer_out"), st.sampled_from(LOCATIONS), st.integers(1, 3)),
    st.tuples(st.just("receipt"), st.sampled_from(LOCATIONS), st.integers(1, 5)),
)


class SkuLedger:
    """One SKU's ledger as the worker runs it (reservations, expiry, stock events with the holds they
    leave uncovered shed), and what each owner believes it holds: an order its reservations' lines
    as answered, a cart hold its expiry row."""

    def __init__(self, positions: dict[str, StockPosition]) -> None:
        self.positions = positions
        self.now, self.seq = T0, 0
        self.expiries: dict[str, int] = {}
        self.owned: dict[tuple[str, str], int] = {}
        """(order reservation id, location) -> units its order believes held there."""
        self.attempt: dict[int, int] = {}
        """Order -> its latest attempt (a short pick sources the rest in a new one)."""
        self.reserves: dict[str, ReservationCommand] = {}
        """Reservation id -> the reserve its order sent last (a new owner sends it again)."""

    def rid(self, order: int) -> str:
        return f"O-{order}/{self.attempt.get(order, 1)}"

    def command(self, command: ReservationCommand, repeat: bool = False) -> ReservationResult:
        """``repeat``: a command sent again after its answer was applied (the order's owner died
        before storing that; its successor sends what it has as unanswered): the ledger answers it
        as the first time, so its order believes what it did."""
        result = apply_reservation(self.positions, command, atp, now_ms=self.now)
        self.positions = {**self.positions, **result.changed}
        self._rows(result.expiries)
        rid = command.reservation_id
        if is_cart_hold(rid) or repeat:
            return result
        if command.kind is ReservationKind.RESERVE:
            self.reserves[rid] = command
        named = {loc for loc, _ in command.lines} if command.kind is not ReservationKind.RESERVE else set()
        for key in [k for k in self.owned if k[0] == rid and (not named or k[1] in named)]:
            del self.owned[key]  # re-planned, refused, released or shipped: the order holds it no more
        if result.status is ReservationStatus.RESERVED:
            self.owned.update({(rid, loc): units for loc, units in result.lines})
        elif command.kind is ReservationKind.RESERVE:
            # The attempt is given up: released where it asked (``LedgerAnswers._retry``).
            self.command(ReservationCommand(ReservationKind.RELEASE, rid, command.lines, self.now))
        return result

    def expire(self, minutes_on: int) -> None:
        self.now += minutes(minutes_on) - T0
        expired = expire_holds(self.positions, self.expiries, self.now)
        self.positions = {**self.positions, **expired.changed}
        self._rows(dict.fromkeys(expired.expired))

    def stock_event(self, kind: str, location_id: str, units: int) -> None:
        at = self.now + self.seq
        event = (
            Count(f"C-{self.seq}", units, at)
            if kind == "count"
            else Movement(f"M-{self.seq}", MovementKind(kind), units, at)
        )
        result = apply_commands(self.positions, [StockCommand(location_id, event)], STOCKED)
        self.positions = {**self.positions, **result.changed}
        causes = {location_id: kind} if result.verdicts[0][0] is Verdict.APPLIED else {}
        shedding = shed_shortfalls(self.positions, causes)
        self.positions = {**self.positions, **shedding.changed}
        for shed in shedding.shed:  # each owner is told (a shed reply; the cart hold's row ends)
            if is_cart_hold(shed.reservation_id):
                self.expiries.pop(shed.reservation_id, None)
            else:
                assert self.owned.pop((shed.reservation_id, shed.location_id)) == shed.units

    def _rows(self, expiries: dict[str, int | None]) -> None:
        for hid, expires_at in expiries.items():
            if expires_at is None:
                self.expiries.pop(hid, None)
            else:
                self.expiries[hid] = expires_at


@settings(max_examples=400)
@given(st.lists(steps, max_size=60))
def test_any_interleaving_keeps_on_hand_above_reserved_and_every_hold_owned(script):
    """Place, hold, expire, release, cancel, fulfil, short pick, counts and movements, in any order."""
    ledger = SkuLedger(stock(DC_NORTH=6, STORE_UTRECHT_01=3))
    for step in script:
        ledger.seq += 1
        _step(ledger, step)
        for p in ledger.positions.values():
            assert p.reserved == sum(units for _, units in p.holds) >= 0
            # Nothing held that is not there: on hand - unsellable - reserved >= 0 (a till may sell
            # what the ledger did not know of: on hand below 0 then, and nothing held there).
            assert p.reserved <= sellable(p)
        holds = {(rid, loc): u for loc, p in ledger.positions.items() for rid, u in p.holds}
        carts = {rid for rid, _ in holds if is_cart_hold(rid)}
        assert carts == set(ledger.expiries)  # every cart hold has its expiry row, and no row outlives it
        assert {k: u for k, u in holds.items() if not is_cart_hold(k[0])} == ledger.owned  # and every
        # order hold its order, which believes in no hold that is gone
        if step[0] == "expire":
            assert all(expires_at > ledger.now for expires_at in ledger.expiries.values())


def _step(ledger: SkuLedger, step: tuple) -> None:
    kind, now = step[0], ledger.now
    if kind == "hold":
        expires_at = now + minutes(step[3]) - T0
        ledger.command(
            ReservationCommand(ReservationKind.RESERVE, f"hold-{step[1]}", tuple(step[2]), now, expires_at)
        )
    elif kind == "place":
        takes = f"hold-{step[3]}" if step[3] else None
        ledger.command(place(ledger.rid(step[1]), *step[2], takes_over=takes))
    elif kind == "expire":
        ledger.expire(step[1])
    elif kind == "release":  # a cart let go early, or an attempt given up
        ledger.command(ReservationCommand(ReservationKind.RELEASE, step[1], (), now))
    elif kind == "cancel":  # the order's lines at one location, or everywhere (cancellation_runtime)
        where = ((step[2], 1),) if step[2] else tuple((loc, 1) for loc in LOCATIONS)
        ledger.command(ReservationCommand(ReservationKind.RELEASE, ledger.rid(step[1]), where, now))
    elif kind == "fulfil":
        rid = ledger.rid(step[1])
        ledger.command(ReservationCommand(ReservationKind.FULFIL, rid, ((step[2], 1),), now + ledger.seq))
    elif kind == "short_pick":
        _short_pick(ledger, step[1])
    elif kind == "resend":  # a new owner of the orders sends their latest reserves again
        for order in (1, 2, 3):
            if (sent := ledger.reserves.get(ledger.rid(order))) is not None:
                ledger.command(sent, repeat=True)
    else:
        ledger.stock_event(kind, step[1], step[2])


def _short_pick(ledger: SkuLedger, order: int) -> None:
    """At the first location its latest attempt holds: that hold is released and its units sourced
    at the other location in a new attempt (``Withdrawals.withdraw``); the order's other holds
    stay with their attempt."""
    rid = ledger.rid(order)
    held = sorted((loc, units) for (r, loc), units in ledger.owned.items() if r == rid)
    if not held:
        return  # nothing allocated: the WMS event is ignored
    location_id, units = held[0]
    ledger.command(ReservationCommand(ReservationKind.RELEASE, rid, ((location_id, units),), ledger.now))
    ledger.attempt[order] = ledger.attempt.get(order, 1) + 1
    elsewhere = next(loc for loc in LOCATIONS if loc != location_id)
    ledger.command(place(ledger.rid(order), (elsewhere, units)))


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
    assert [k.value for k in ReservationKind] == ["reserve", "release", "fulfil", "preorder"]
    assert [s.value for s in ReservationStatus] == [
        "reserved",
        "refused",
        "released",
        "fulfilled",
        "expired",
        "preordered",
    ]


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


def test_a_hold_request_holds_its_options_lines_per_location_or_its_own_lines_never_both():
    option = an_option("standard", {"SKU-TENT": 2, "SKU-STOVE": 1})
    south = an_option("standard", {"SKU-TENT": 1}, location="DC-SOUTH")["shipments"][0]
    option["shipments"].append(south)
    request = parse_request(orjson.dumps({"option": option}))
    assert not isinstance(request, Failure), request
    assert [(line.sku, line.location_id, line.quantity) for line in held_lines(request)] == [
        ("SKU-TENT", "DC-NORTH", 2),
        ("SKU-STOVE", "DC-NORTH", 1),
        ("SKU-TENT", "DC-SOUTH", 1),
    ]
    assert hold_cart(request) == {"SKU-TENT": 3, "SKU-STOVE": 1}  # what the per-line limit bounds
    lines = [{"sku": "SKU-TENT", "location_id": "DC-NORTH", "quantity": 1}]
    for body in ({"option": option, "lines": lines}, {"channel": "webshop"}):
        failure = parse_request(orjson.dumps(body))
        assert isinstance(failure, Failure) and "either its option" in failure.reason
