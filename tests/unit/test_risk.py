"""Orders at risk: milestones passing without their event, explicit problems, and clearing."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from oms_streams.domain.network import DeliveryMethod
from oms_streams.domain.orders import Milestone, MilestoneKind, PromiseRecord
from oms_streams.domain.promise_types import CartLine, DeliveryOption, Shipment
from oms_streams.domain.risk import (
    MAX_EVENTS,
    FulfilmentEvent,
    FulfilmentKind,
    OrderTracking,
    Risk,
    RiskReason,
    SuggestedAction,
    apply_fulfilment,
    assess,
    latest_event_ms,
    milestone_reached,
    next_check_ms,
    risk_event_id,
)
from tests.unit.builders import SKU, minutes

K = FulfilmentKind
M = MilestoneKind

# A home delivery from DC-NORTH placed at 10:00: pick by 11:00, hand over by 14:00, delivered by
# 18:00 the next day (the window end).
PICK_DUE = minutes(60)
HANDOVER_DUE = minutes(4 * 60)
WINDOW_END = minutes(32 * 60)

MINUTE = 60_000

_ids = itertools.count(1)


def a_shipment(*, location_id: str = "DC-NORTH", qty: int = 1) -> Shipment:
    return Shipment(
        location_id=location_id,
        lines=(CartLine(SKU, qty),),
        ready_at_ms=minutes(120),
        handover_at_ms=HANDOVER_DUE,
        arrives_at_ms=minutes(30 * 60),
    )


def an_option(
    *,
    method: DeliveryMethod = DeliveryMethod.STANDARD,
    shipments: tuple[Shipment, ...] | None = None,
    window_end: int = WINDOW_END,
    pickup_store_id: str | None = None,
) -> DeliveryOption:
    return DeliveryOption(
        option_id=method.value if pickup_store_id is None else f"{method.value}:{pickup_store_id}",
        method=method,
        window_start_ms=window_end - 10 * 3_600_000,
        window_end_ms=window_end,
        confidence=0.95,
        parcels=1,
        co2e_g=250.0,
        shipments=shipments if shipments is not None else (a_shipment(),),
        pickup_store_id=pickup_store_id,
    )


def a_milestone(
    kind: MilestoneKind, *, due: int, shipment: int = 0, location_id: str = "DC-NORTH"
) -> Milestone:
    return Milestone(kind, location_id, due, shipment)


def home_delivery_milestones(*, shipment: int = 0, location_id: str = "DC-NORTH") -> tuple[Milestone, ...]:
    return (
        a_milestone(M.PICK_START, due=PICK_DUE, shipment=shipment, location_id=location_id),
        a_milestone(M.CARRIER_HANDOVER, due=HANDOVER_DUE, shipment=shipment, location_id=location_id),
        a_milestone(M.DELIVERED, due=WINDOW_END, shipment=shipment, location_id=location_id),
    )


def a_record(
    *,
    option: DeliveryOption | None = None,
    milestones: tuple[Milestone, ...] | None = None,
    order_id: str = "ORDER-1001",
    version: int = 1,
) -> PromiseRecord:
    return PromiseRecord(
        order_id=order_id,
        version=version,
        placed_at_ms=minutes(0),
        option=option or an_option(),
        milestones=milestones if milestones is not None else home_delivery_milestones(),
    )


def a_home_delivery() -> PromiseRecord:
    return a_record()


def a_click_and_collect(*, from_store_stock: bool = True) -> PromiseRecord:
    """Click & collect at STORE-UTRECHT-01: from its own shelves, or from DC-NORTH on the route."""
    store = "STORE-UTRECHT-01"
    if from_store_stock:
        return a_record(
            option=an_option(
                method=DeliveryMethod.CLICK_AND_COLLECT,
                shipments=(a_shipment(location_id=store),),
                pickup_store_id=store,
            ),
            milestones=(
                a_milestone(M.PICK_START, due=PICK_DUE, location_id=store),
                a_milestone(M.READY_FOR_PICKUP, due=WINDOW_END, location_id=store),
            ),
        )
    return a_record(
        option=an_option(method=DeliveryMethod.CLICK_AND_COLLECT, pickup_store_id=store),
        milestones=(
            a_milestone(M.PICK_START, due=PICK_DUE),
            a_milestone(M.ROUTE_DEPARTURE, due=HANDOVER_DUE),
            a_milestone(M.READY_FOR_PICKUP, due=WINDOW_END, location_id=store),
        ),
    )


def an_event(
    kind: FulfilmentKind,
    *,
    at: int,
    shipment: int | None = None,
    location_id: str | None = None,
    new_eta: int | None = None,
    event_id: str | None = None,
) -> FulfilmentEvent:
    return FulfilmentEvent(
        event_id or f"FUL-{next(_ids):06d}", kind, at, location_id, shipment, new_eta, reason=""
    )


def tracking(*events: FulfilmentEvent, record: PromiseRecord | None = None) -> OrderTracking:
    order = OrderTracking(record or a_home_delivery())
    for event in events:
        order, _ = apply_fulfilment(order, event)
    return order


def ident(risk: Risk | None) -> tuple[object, ...] | None:
    """A risk without its (growing) expected delay."""
    if risk is None:
        return None
    return (risk.reason, risk.action, risk.shipment, risk.location_id, risk.milestone, risk.since_ms)


# --- milestones -----------------------------------------------------------------------------------


def test_an_order_is_on_track_until_its_first_milestone_passes():
    order = tracking()

    assert assess(order, minutes(0)) is None
    assert assess(order, PICK_DUE) is None


def test_goes_at_risk_when_the_pick_milestone_passes_without_an_event():
    risk = assess(tracking(), PICK_DUE + 15 * MINUTE)

    assert risk == Risk(
        RiskReason.PICK_NOT_STARTED,
        SuggestedAction.EXPEDITE,
        shipment=0,
        location_id="DC-NORTH",
        milestone=M.PICK_START,
        expected_delay_ms=15 * 60_000,
        since_ms=PICK_DUE,
    )


def test_clears_when_picked_arrives_late_but_still_in_time_for_the_handover():
    order = tracking(an_event(K.PICKED, at=minutes(90), location_id="DC-NORTH"))

    assert assess(order, minutes(100)) is None


def test_goes_at_risk_again_when_the_handover_passes_after_a_late_pick():
    order = tracking(an_event(K.PICKED, at=minutes(90)))

    risk = assess(order, HANDOVER_DUE + 30 * MINUTE)

    assert risk is not None
    assert (risk.reason, risk.action, risk.milestone) == (
        RiskReason.HANDOVER_MISSED,
        SuggestedAction.EXPEDITE,
        M.CARRIER_HANDOVER,
    )
    assert risk.expected_delay_ms == 30 * 60_000


def test_a_later_stage_proves_the_earlier_milestones():
    order = tracking(an_event(K.HANDED_TO_CARRIER, at=minutes(200)))

    assert assess(order, minutes(20 * 60)) is None


def test_a_milestone_is_reached_by_its_stage_or_a_later_one_even_when_late():
    pick, handover, delivered = home_delivery_milestones()
    order = tracking(an_event(K.PACKED, at=minutes(90)))

    assert milestone_reached(order, pick)
    assert not milestone_reached(order, handover)
    assert not milestone_reached(order, delivered)


def test_stays_at_risk_when_the_event_comes_after_the_promise_end():
    picked_after_the_window = WINDOW_END + 120 * MINUTE
    order = tracking(an_event(K.PICKED, at=picked_after_the_window))

    for now in (minutes(200), picked_after_the_window, picked_after_the_window + 60 * MINUTE):
        risk = assess(order, now)
        assert risk is not None
        assert (risk.reason, risk.action, risk.milestone) == (
            RiskReason.NOT_DELIVERED,
            SuggestedAction.INFORM_CUSTOMER,
            M.DELIVERED,
        )
        assert risk.expected_delay_ms == max(now, picked_after_the_window) - WINDOW_END


def test_the_promise_end_passing_without_delivery_outranks_earlier_missed_milestones():
    risk = assess(tracking(), WINDOW_END + 10 * MINUTE)

    assert risk is not None
    assert risk.reason is RiskReason.NOT_DELIVERED
    assert risk.expected_delay_ms == 10 * 60_000


def test_the_promise_end_is_watched_even_without_a_delivered_milestone():
    record = a_record(milestones=home_delivery_milestones()[:2])
    order = tracking(an_event(K.HANDED_TO_CARRIER, at=minutes(200)), record=record)

    assert next_check_ms(order) == WINDOW_END
    assert assess(order, WINDOW_END) is None
    risk = assess(order, WINDOW_END + 1)
    assert risk is not None
    assert (risk.reason, risk.milestone, risk.location_id) == (
        RiskReason.NOT_DELIVERED,
        M.DELIVERED,
        "DC-NORTH",
    )


def test_a_missed_route_departure_for_click_and_collect_informs_the_customer():
    order = tracking(an_event(K.PACKED, at=minutes(100)), record=a_click_and_collect(from_store_stock=False))

    risk = assess(order, HANDOVER_DUE + 1)

    assert risk is not None
    assert (risk.reason, risk.action) == (RiskReason.ROUTE_DEPARTURE_MISSED, SuggestedAction.INFORM_CUSTOMER)


def test_ready_for_pickup_reported_by_the_pickup_store_keeps_a_route_order_on_track():
    order = tracking(
        an_event(K.ROUTE_DEPARTED, at=minutes(200), location_id="DC-NORTH"),
        an_event(K.READY_FOR_PICKUP, at=minutes(26 * 60), location_id="STORE-UTRECHT-01"),
        record=a_click_and_collect(from_store_stock=False),
    )

    assert assess(order, WINDOW_END + 24 * 60 * MINUTE) is None
    assert next_check_ms(order) is None


def test_an_event_at_one_location_moves_only_the_shipment_from_there():
    record = a_record(
        option=an_option(
            shipments=(a_shipment(location_id="DC-NORTH"), a_shipment(location_id="STORE-UTRECHT-01"))
        ),
        milestones=(
            *home_delivery_milestones(shipment=0, location_id="DC-NORTH"),
            *home_delivery_milestones(shipment=1, location_id="STORE-UTRECHT-01"),
        ),
    )
    order = tracking(an_event(K.PICKED, at=minutes(30), location_id="DC-NORTH"), record=record)

    risk = assess(order, PICK_DUE + 1)

    assert risk is not None
    assert (risk.reason, risk.shipment, risk.location_id) == (
        RiskReason.PICK_NOT_STARTED,
        1,
        "STORE-UTRECHT-01",
    )


# --- explicit problems ----------------------------------------------------------------------------


def test_store_rejection_of_a_click_and_collect_order_informs_the_customer():
    order = tracking(
        an_event(K.STORE_REJECTED, at=minutes(20), location_id="STORE-UTRECHT-01"),
        record=a_click_and_collect(),
    )

    risk = assess(order, minutes(21))

    assert risk == Risk(
        RiskReason.STORE_REJECTED,
        SuggestedAction.INFORM_CUSTOMER,
        shipment=0,
        location_id="STORE-UTRECHT-01",
        milestone=None,
        expected_delay_ms=None,
        since_ms=minutes(20),
    )


def test_store_rejection_of_a_home_delivery_is_re_sourced():
    record = a_record(
        option=an_option(
            method=DeliveryMethod.SHIP_FROM_STORE, shipments=(a_shipment(location_id="STORE-UTRECHT-01"),)
        ),
        milestones=home_delivery_milestones(location_id="STORE-UTRECHT-01"),
    )
    order = tracking(
        an_event(K.STORE_REJECTED, at=minutes(20), location_id="STORE-UTRECHT-01"), record=record
    )

    risk = assess(order, minutes(21))

    assert risk is not None
    assert (risk.reason, risk.action) == (RiskReason.STORE_REJECTED, SuggestedAction.RESOURCE)


def test_short_pick_is_re_sourced_until_the_shipment_is_picked_again():
    short = tracking(an_event(K.PICK_STARTED, at=minutes(10)), an_event(K.SHORT_PICK, at=minutes(20)))

    risk = assess(short, minutes(25))
    assert risk is not None
    assert (risk.reason, risk.action) == (RiskReason.SHORT_PICK, SuggestedAction.RESOURCE)
    assert assess(short, minutes(20 * 60)) == risk, "an explicit problem outranks the missed handover"

    picked, changed = apply_fulfilment(short, an_event(K.PICKED, at=minutes(40)))
    assert changed
    assert assess(picked, minutes(45)) is None


def test_a_pick_start_after_a_short_pick_does_not_resolve_it():
    order = tracking(an_event(K.SHORT_PICK, at=minutes(20)), an_event(K.PICK_STARTED, at=minutes(30)))

    risk = assess(order, minutes(35))

    assert risk is not None
    assert risk.reason is RiskReason.SHORT_PICK


def test_progress_reported_before_a_short_pick_does_not_resolve_it():
    order = tracking(an_event(K.PICKED, at=minutes(15)), an_event(K.SHORT_PICK, at=minutes(20)))

    risk = assess(order, minutes(25))

    assert risk is not None
    assert risk.reason is RiskReason.SHORT_PICK


def test_carrier_delay_past_the_window_informs_the_customer_with_the_delay():
    order = tracking(
        an_event(K.HANDED_TO_CARRIER, at=minutes(200)),
        an_event(K.CARRIER_DELAY, at=minutes(20 * 60), new_eta=WINDOW_END + 180 * MINUTE),
    )

    risk = assess(order, minutes(20 * 60 + 1))

    assert risk is not None
    assert (risk.reason, risk.action, risk.expected_delay_ms) == (
        RiskReason.CARRIER_DELAY,
        SuggestedAction.INFORM_CUSTOMER,
        180 * 60_000,
    )


def test_carrier_delay_within_the_window_is_no_risk():
    order = tracking(
        an_event(K.HANDED_TO_CARRIER, at=minutes(200)),
        an_event(K.CARRIER_DELAY, at=minutes(20 * 60), new_eta=WINDOW_END - 60 * MINUTE),
    )

    assert assess(order, minutes(20 * 60 + 1)) is None


def test_a_later_carrier_delay_inside_the_window_clears_an_earlier_one():
    order = tracking(
        an_event(K.HANDED_TO_CARRIER, at=minutes(200)),
        an_event(K.CARRIER_DELAY, at=minutes(20 * 60), new_eta=WINDOW_END + 180 * MINUTE),
        an_event(K.CARRIER_DELAY, at=minutes(22 * 60), new_eta=WINDOW_END - 30 * MINUTE),
    )

    assert assess(order, minutes(22 * 60 + 1)) is None


# --- idempotency, order, finish -------------------------------------------------------------------


def test_duplicates_change_nothing():
    picked = an_event(K.PICKED, at=minutes(30), event_id="WMS-PICK-1")
    order = tracking(picked)

    again, changed = apply_fulfilment(order, picked)
    same_id, changed_too = apply_fulfilment(
        order, an_event(K.SHORT_PICK, at=minutes(31), event_id="WMS-PICK-1")
    )

    assert (again, changed) == (order, False)
    assert (same_id, changed_too) == (order, False)


def test_only_the_newest_events_are_kept_and_older_ones_are_ignored():
    order = tracking(*(an_event(K.PACKED, at=minutes(100 + i)) for i in range(MAX_EVENTS + 5)))

    assert len(order.events) == MAX_EVENTS
    assert min(e.occurred_at_ms for e in order.events) == minutes(105)
    unchanged, changed = apply_fulfilment(order, an_event(K.PICKED, at=minutes(1)))
    assert (unchanged, changed) == (order, False)


def test_delivered_is_never_at_risk_again():
    order = tracking(
        an_event(K.SHORT_PICK, at=minutes(20)),
        an_event(K.DELIVERED, at=WINDOW_END + 600 * MINUTE),
        an_event(K.CARRIER_DELAY, at=WINDOW_END + 700 * MINUTE, new_eta=WINDOW_END * 2),
    )

    for now in (minutes(0), PICK_DUE + 1, WINDOW_END + 1, WINDOW_END * 2):
        assert assess(order, now) is None
    assert next_check_ms(order) is None


def test_a_collected_click_and_collect_order_is_finished():
    order = tracking(
        an_event(K.COLLECTED, at=minutes(600), location_id="STORE-UTRECHT-01"), record=a_click_and_collect()
    )

    assert assess(order, WINDOW_END * 2) is None


def _record_with_two_shipments() -> PromiseRecord:
    return a_record(
        option=an_option(
            shipments=(a_shipment(location_id="DC-NORTH"), a_shipment(location_id="STORE-UTRECHT-01"))
        ),
        milestones=(
            *home_delivery_milestones(shipment=0, location_id="DC-NORTH"),
            *home_delivery_milestones(shipment=1, location_id="STORE-UTRECHT-01"),
        ),
    )


TWO_SHIPMENTS = _record_with_two_shipments()
MOMENTS = st.integers(min_value=minutes(-60), max_value=WINDOW_END + 600 * MINUTE)


@st.composite
def some_events(draw: st.DrawFn) -> list[FulfilmentEvent]:
    count = draw(st.integers(min_value=0, max_value=8))
    return [
        FulfilmentEvent(
            f"FUL-{i:03d}",
            draw(st.sampled_from(FulfilmentKind)),
            draw(MOMENTS),
            draw(st.sampled_from([None, "DC-NORTH", "STORE-UTRECHT-01"])),
            draw(st.sampled_from([None, None, 0, 1])),
            draw(st.sampled_from([None, WINDOW_END - 60 * MINUTE, WINDOW_END + 60 * MINUTE])),
        )
        for i in range(count)
    ]


@settings(max_examples=150)
@given(events=some_events(), data=st.data(), nows=st.lists(MOMENTS, min_size=1, max_size=4))
def test_out_of_order_events_give_the_same_assessment(events, data, nows):
    shuffled = data.draw(st.permutations(events))

    in_order = tracking(*events, record=TWO_SHIPMENTS)
    out_of_order = tracking(*shuffled, record=TWO_SHIPMENTS)

    assert in_order == out_of_order
    for now in nows:
        assert assess(in_order, now) == assess(out_of_order, now)


@settings(max_examples=100)
@given(events=some_events(), now=MOMENTS)
def test_a_delivered_shipment_set_is_never_at_risk(events, now):
    delivered = [an_event(K.DELIVERED, at=minutes(3000), shipment=i) for i in (0, 1)]

    assert assess(tracking(*events, *delivered, record=TWO_SHIPMENTS), now) is None


# --- next check -----------------------------------------------------------------------------------


def test_next_check_is_the_first_milestone_still_waiting_for_its_event():
    assert next_check_ms(tracking()) == PICK_DUE
    assert next_check_ms(tracking(an_event(K.PICKED, at=minutes(30)))) == HANDOVER_DUE
    assert next_check_ms(tracking(an_event(K.HANDED_TO_CARRIER, at=minutes(200)))) == WINDOW_END


def test_next_check_after_a_passed_milestone_is_the_following_one():
    order = tracking()

    assert next_check_ms(order, after_ms=PICK_DUE) == PICK_DUE
    assert next_check_ms(order, after_ms=PICK_DUE + 1) == HANDOVER_DUE
    assert next_check_ms(order, after_ms=WINDOW_END + 1) is None


@settings(max_examples=150)
@given(events=some_events(), start=MOMENTS, data=st.data())
def test_the_assessment_does_not_change_before_the_next_check(events, start, data):
    order = tracking(*events, record=TWO_SHIPMENTS)
    check = next_check_ms(order, after_ms=start)
    end = check if check is not None else start + 10 * 24 * 3_600_000
    now = data.draw(st.integers(min_value=start, max_value=end))

    assert ident(assess(order, now)) == ident(assess(order, start))


@settings(max_examples=100)
@given(events=some_events())
def test_nothing_changes_between_the_last_event_and_the_next_check(events):
    order = tracking(*events, record=TWO_SHIPMENTS)
    just_after = (latest_event_ms(order) or minutes(0)) + 1
    check = next_check_ms(order, after_ms=just_after)

    if check is not None:
        assert ident(assess(order, check)) == ident(assess(order, just_after))


# --- published ids --------------------------------------------------------------------------------


def test_risk_event_id_is_stable_and_distinct_per_state():
    pick_missed = assess(tracking(), PICK_DUE + 1)
    later_same_risk = assess(tracking(), PICK_DUE + 30 * MINUTE)
    handover_missed = assess(tracking(an_event(K.PICKED, at=minutes(90))), HANDOVER_DUE + 1)
    assert pick_missed is not None and handover_missed is not None

    first = risk_event_id("ORDER-1001", pick_missed, 1)
    assert first == risk_event_id("ORDER-1001", later_same_risk, 1), "a growing delay is the same state"
    distinct = {
        first,
        risk_event_id("ORDER-1001", handover_missed, 1),
        risk_event_id("ORDER-1001", pick_missed, 2),
        risk_event_id("ORDER-1002", pick_missed, 1),
        risk_event_id("ORDER-1001", None, 1),
        risk_event_id("ORDER-1001", None, 1, as_of_ms=minutes(90)),
    }
    assert len(distinct) == 6
    assert risk_event_id("ORDER-1001", None, 1, as_of_ms=minutes(90)) == risk_event_id(
        "ORDER-1001", None, 1, as_of_ms=minutes(90)
    )


def test_a_new_carrier_eta_is_a_new_state():
    def delayed_until(eta: int) -> Risk | None:
        order = tracking(
            an_event(K.HANDED_TO_CARRIER, at=minutes(200)),
            an_event(K.CARRIER_DELAY, at=minutes(1200), new_eta=eta, event_id="CARRIER-DELAY-1"),
        )
        return assess(order, minutes(1201))

    one_hour_late = delayed_until(WINDOW_END + 60 * MINUTE)
    three_hours_late = delayed_until(WINDOW_END + 180 * MINUTE)

    assert risk_event_id("ORDER-1001", one_hour_late, 1) != risk_event_id("ORDER-1001", three_hours_late, 1)
