"""Backorders as pure rules: which wait for stock, until when, how often they are tried again."""

from __future__ import annotations

import dataclasses

import pytest

from oms_streams.domain.backorders import (
    HOUR_MS,
    Backorder,
    BackorderPolicy,
    Final,
    Next,
    Step,
    backoff_ms,
    carry_backorder,
    deadline_ms,
    describe,
    final_outcome,
    final_reason,
    look_again_ms,
    next_step,
    open_lines,
    round_outcome,
    with_stock,
)
from oms_streams.domain.network import DeliveryMethod
from oms_streams.domain.promise_types import CartLine, Destination
from oms_streams.domain.sourcing import source_order
from tests.unit.promise_builders import BIKE_LIGHT, PUMP
from tests.unit.sourcing_builders import a_snapshot, a_world, an_order

T = 1_800_000_000_000
POLICY = BackorderPolicy(horizon_ms=72 * HOUR_MS, retry_ms=300_000, max_retry_ms=HOUR_MS, check_ms=30_000)
TENT = CartLine("SKU-TENT", 2)


def waiting(**facts: object) -> Backorder:
    defaults: dict[str, object] = {
        "lines": (TENT,),
        "until_ms": T + 72 * HOUR_MS,
        "final": False,
        "busy": False,
        "rounds": 0,
        "tried_ms": None,
    }
    return Backorder(**{**defaults, **facts})  # type: ignore[arg-type]


def reason(**facts: object) -> Final | None:
    defaults: dict[str, object] = {
        "method": DeliveryMethod.STANDARD,
        "round": 1,
        "stock_short": True,
        "placed_at_ms": T,
        "now_ms": T,
        "policy": POLICY,
    }
    return final_reason(**{**defaults, **facts})  # type: ignore[arg-type]


# --- which backorders wait for stock --------------------------------------------------------------


@pytest.mark.parametrize(
    "method",
    [
        DeliveryMethod.STANDARD,
        DeliveryMethod.GREEN,
        DeliveryMethod.SHIP_FROM_STORE,
        DeliveryMethod.CLICK_AND_COLLECT,
    ],
)
def test_a_backorder_for_lack_of_stock_waits_for_it_whatever_the_method_but_the_courier(
    method: DeliveryMethod,
) -> None:
    assert reason(method=method) is None
    assert reason(method=method, round=4) is None  # also after re-sourcing rounds


def test_a_backorder_waits_until_the_horizon_after_placement_and_not_a_millisecond_longer() -> None:
    assert deadline_ms(T, POLICY) == T + 72 * HOUR_MS
    assert reason(now_ms=T + 72 * HOUR_MS - 1) is None
    assert reason(now_ms=T + 72 * HOUR_MS) == Final("not in stock within 72 h of placement", True)


@pytest.mark.parametrize(
    ("facts", "why"),
    [
        ({"round": 0}, "refused at placement"),
        (
            {"method": DeliveryMethod.COURIER},
            "a same-day courier delivery is not sourced again when stock arrives",
        ),
        ({"stock_short": False}, "not for lack of stock: the order cannot be served by its method"),
        ({"placed_at_ms": None}, "placed before backorders were sourced again"),
        ({"policy": BackorderPolicy(horizon_ms=0)}, "backorders are not sourced again (the horizon is 0)"),
    ],
)
def test_some_backorders_never_wait_for_stock(facts: dict[str, object], why: str) -> None:
    assert reason(**facts) == Final(why, False)


def test_settings_are_read_as_milliseconds() -> None:
    policy = BackorderPolicy.of(horizon_h=24, retry_s=60, check_s=15)
    assert (policy.horizon_ms, policy.retry_ms, policy.check_ms) == (24 * HOUR_MS, 60_000, 15_000)


def test_a_cancelled_line_never_waits() -> None:
    lines = (TENT, CartLine("SKU-STOVE", 1))
    assert open_lines(lines, ["SKU-STOVE"]) == (TENT,)
    assert open_lines(lines, ["SKU-STOVE", "SKU-TENT"]) == ()


# --- when to look, when to try again ----------------------------------------------------------------


def test_a_waiting_backorder_is_looked_at_now_and_again_after_each_look_without_stock() -> None:
    assert next_step(waiting(), T, POLICY).step is Step.CHECK
    assert look_again_ms(T, T + HOUR_MS, POLICY) == T + 30_000
    assert look_again_ms(T, T + 10_000, POLICY) == T + 10_000  # never past the horizon


@pytest.mark.parametrize(
    "facts",
    [{"lines": ()}, {"until_ms": None}, {"final": True}, {"busy": True}],
)
def test_nothing_to_do_without_an_open_backorder_or_while_a_round_is_under_way(
    facts: dict[str, object],
) -> None:
    assert next_step(waiting(**facts), T, POLICY).step is Step.NONE


def test_at_its_horizon_a_backorder_expires_even_while_it_waits_out_the_spacing() -> None:
    until = T + 72 * HOUR_MS
    assert next_step(waiting(), until, POLICY).step is Step.EXPIRE
    spaced = waiting(rounds=1, tried_ms=until - 1000)
    assert next_step(spaced, until - 1, POLICY).at_ms == until  # the wait ends at the horizon
    assert next_step(spaced, until, POLICY).step is Step.EXPIRE


def test_rounds_of_one_order_are_spaced_more_and_more_up_to_an_hour() -> None:
    assert [backoff_ms(n, POLICY) // 1000 for n in range(6)] == [0, 300, 600, 1200, 2400, 3600]
    assert backoff_ms(1_000, POLICY) == HOUR_MS
    after_two = waiting(rounds=2, tried_ms=T)
    assert next_step(after_two, T + 599_999, POLICY).step is Step.WAIT
    assert next_step(after_two, T + 599_999, POLICY).at_ms == T + 600_000
    assert next_step(after_two, T + 600_000, POLICY).step is Step.CHECK


def test_a_spacing_longer_than_the_cap_is_kept() -> None:
    slow = BackorderPolicy(retry_ms=2 * HOUR_MS, max_retry_ms=HOUR_MS)
    assert backoff_ms(1, slow) == backoff_ms(5, slow) == 2 * HOUR_MS


# --- is there stock worth planning on ---------------------------------------------------------------


def test_stock_counts_only_where_the_order_may_take_it() -> None:
    units = {"SKU-TENT": {"DC-NORTH": 3, "DC-SOUTH": 0}, "SKU-STOVE": {"DC-NORTH": 0}}
    lines = (TENT, CartLine("SKU-STOVE", 1))
    assert with_stock(lines, units) == ("SKU-TENT",)
    assert with_stock(lines, units, {("DC-NORTH", "SKU-TENT")}) == ()  # short-picked there before
    assert with_stock(lines, {}) == ()


def test_the_planner_says_whether_a_backorder_is_for_lack_of_stock() -> None:
    world = a_world()

    def decide(destination: Destination | None = None, **units: int) -> bool:
        order = an_order((BIKE_LIGHT, 2), (PUMP, 1), destination=destination)
        snapshot = a_snapshot({"DC-NORTH": {BIKE_LIGHT: units.get("lights", 0)}})
        return source_order(order, snapshot, world.network, world.transit, world.policy).stock_short

    assert decide(lights=0) is True  # nothing in stock: wait for it
    assert decide(lights=2) is True  # the pump is missing
    assert decide(Destination(postal_code="3511 AB")) is False  # no coordinates: no stock will help


# --- the backorder and the outcome after a round ----------------------------------------------------


def test_a_round_adds_what_it_could_not_allocate_to_what_earlier_rounds_left() -> None:
    stove = CartLine("SKU-STOVE", 1)
    assert carry_backorder((TENT,), (stove, CartLine("SKU-TENT", 1))) == (CartLine("SKU-TENT", 3), stove)
    assert carry_backorder((), (TENT,)) == (TENT,)
    assert carry_backorder((TENT,), ()) == (TENT,)


def test_a_round_s_outcome_says_partially_allocated_while_an_earlier_backorder_remains() -> None:
    assert round_outcome("allocated", allocated=True, backordered=False) == "allocated"
    assert round_outcome("allocated", allocated=True, backordered=True) == "partially_allocated"
    assert round_outcome("partially_allocated", allocated=True, backordered=True) == "partially_allocated"
    assert round_outcome("allocated", allocated=False, backordered=True) == "rejected"
    assert final_outcome(has_allocations=True) == "partially_allocated"
    assert final_outcome(has_allocations=False) == "rejected"


# --- what mutation testing found unpinned (mutmut 2.4.5 on domain/backorders.py) ----------------------


def test_the_default_policy_waits_72_hours_spaces_rounds_5_minutes_to_an_hour_and_looks_every_30_s() -> None:
    # What a sourcing runtime started without settings uses (``BackorderPolicy()``).
    assert HOUR_MS == 3_600_000
    assert BackorderPolicy() == BackorderPolicy(
        horizon_ms=259_200_000, retry_ms=300_000, max_retry_ms=3_600_000, check_ms=30_000
    )
    assert BackorderPolicy.of(horizon_h=72, retry_s=300, check_s=30) == BackorderPolicy()
    assert reason(now_ms=T + 259_200_000, policy=BackorderPolicy()) == Final(
        "not in stock within 72 h of placement", True
    )


def test_the_policy_and_the_answers_about_a_backorder_cannot_be_changed_once_made() -> None:
    values = [POLICY, waiting(), Next(Step.CHECK, T), Final("refused at placement", False)]
    for value in values:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, dataclasses.fields(value)[0].name, None)


def test_any_horizon_above_zero_makes_a_backorder_wait() -> None:
    assert reason(now_ms=T, policy=BackorderPolicy(horizon_ms=1)) is None
    expired = reason(now_ms=T + 1, policy=BackorderPolicy(horizon_ms=1))
    assert expired is not None and expired.expired


def test_before_any_round_to_source_the_backorder_there_is_no_spacing() -> None:
    assert backoff_ms(0, POLICY) == 0
    assert backoff_ms(-1, POLICY) == 0
    assert backoff_ms(1, POLICY) == 300_000


def test_a_single_unit_is_stock_and_a_single_unit_line_waits() -> None:
    assert with_stock((TENT,), {"SKU-TENT": {"DC-NORTH": 1}}) == ("SKU-TENT",)
    one = CartLine("SKU-STOVE", 1)
    assert open_lines((one, CartLine("SKU-LAMP", 0)), ()) == (one,)


def test_a_sku_whose_units_come_to_nothing_leaves_the_backorder() -> None:
    assert carry_backorder((CartLine("SKU-STOVE", 0),), (TENT,)) == (TENT,)


def test_the_lines_of_a_backorder_are_described_for_people() -> None:
    # The text of the row's ``resourced`` note: "stock arrived for the backorder (<lines>)".
    assert describe((TENT, CartLine("SKU-STOVE", 1))) == "SKU-TENT x 2, SKU-STOVE x 1"
