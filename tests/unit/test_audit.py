"""``oms audit``'s pure core: ledger rows, on-hand replay, holds, outcomes and allocations.

Every test builds a small event log with the builders below (what a test does not mention is a
consistent default: ORDER-1001 asks 3 SKU-BIKE-LIGHT, DC-NORTH received 10, reserved and allocated 3)
and looks at the findings of one kind.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from oms_streams.adapters.stock import DecodedStock, Failure, position_to_row
from oms_streams.adapters.timestamps import utc_from_epoch_ms
from oms_streams.domain.inventory import StockPosition
from oms_streams.domain.ledger import StockCommand
from oms_streams.schemas.cancellations import OrderCancellationOutcome
from oms_streams.schemas.orders import OrderPlaced
from oms_streams.schemas.sourcing import Allocation, OrderSourced, ReservationCommand, ReservationReply
from oms_streams.tools.audit import (
    At,
    AuditInput,
    AuditReport,
    Finding,
    FindingKind,
    LedgerRow,
    Logged,
    audit,
    decode_changelog_row,
)
from tests.unit.builders import T0, a_count, a_dc, a_receipt, a_sale, a_store, minutes, network

DC, STORE = "DC-NORTH", "STORE-UTRECHT-01"
LIGHT, PUMP = "SKU-BIKE-LIGHT", "SKU-PUMP"
ORDER = "ORDER-1001"
NETWORK = network(a_dc(DC), a_store(STORE))
NOW = minutes(60)
"""When the audit reads: an hour after T0, so everything at T0 has long settled."""

_offsets = itertools.count()


def _at(topic: str, at: int) -> At:
    return At(topic, 0, next(_offsets), at)


def _wire_time(at: int) -> datetime:
    return utc_from_epoch_ms(at)


# --- builders -------------------------------------------------------------------------------------


def a_receipt_event(
    *, sku: str = LIGHT, location: str = DC, qty: int = 10, at: int = T0, event_id: str | None = None
) -> Logged[DecodedStock]:
    command = StockCommand(location, a_receipt(qty=qty, at=at, event_id=event_id))
    return Logged(DecodedStock(sku, "receipt", [command]), _at("oms.inventory.movements.v1", at))


def a_sale_event(*, sku: str = LIGHT, location: str = DC, qty: int = 1, at: int = T0) -> Logged[DecodedStock]:
    command = StockCommand(location, a_sale(qty=qty, at=at))
    return Logged(DecodedStock(sku, "sale", [command]), _at("oms.inventory.movements.v1", at))


def a_count_event(
    *, sku: str = LIGHT, location: str = DC, on_hand: int = 10, at: int = T0
) -> Logged[DecodedStock]:
    command = StockCommand(location, a_count(on_hand=on_hand, as_of=at))
    return Logged(DecodedStock(sku, "count", [command]), _at("oms.inventory.counts.v1", at))


def a_row(
    *,
    sku: str = LIGHT,
    location: str = DC,
    on_hand: int = 10,
    reserved: int | None = None,
    holds: Sequence[tuple[str, int]] = (),
    holds_known: bool = True,
) -> LedgerRow:
    reserved = sum(units for _, units in holds) if reserved is None else reserved
    position = StockPosition(on_hand=on_hand, reserved=reserved, holds=tuple(holds))
    return LedgerRow(sku, location, position, holds_known)


def placed(
    order_id: str = ORDER, *, cart: Mapping[str, int] | None = None, at: int = T0
) -> Logged[OrderPlaced]:
    lines = [{"sku": sku, "quantity": qty} for sku, qty in (cart or {LIGHT: 3}).items()]
    when = _wire_time(at)
    order = OrderPlaced(
        event_id=f"PLACED-{order_id}",
        occurred_at=when,
        source="webshop",
        order_id=order_id,
        cart=lines,  # type: ignore[arg-type]
        destination={"postal_code": "3511", "lat": 52.08, "lon": 5.13},  # type: ignore[arg-type]
        option={  # type: ignore[arg-type]
            "option_id": "standard",
            "method": "standard",
            "window_start": when,
            "window_end": when,
            "confidence": 0.95,
            "parcels": 1,
            "co2e_g": 100.0,
            "shipments": [
                {"location_id": DC, "lines": lines, "ready_at": when, "handover_at": when, "arrives_at": when}
            ],
        },
    )
    return Logged(order, _at("oms.orders.placed.v1", at))


def allocation(
    order_id: str = ORDER,
    *,
    round: int = 1,
    shipment: int = 0,
    location: str = DC,
    lines: Mapping[str, int] | None = None,
    kind: str = "allocate",
    at: int = T0,
    event_id: str | None = None,
) -> Logged[Allocation]:
    allocation_id = f"{order_id}:{round}:{shipment}"
    record = Allocation(
        event_id=event_id or f"{allocation_id}:{kind}",
        occurred_at=_wire_time(at),
        source="oms-streams:source_orders",
        kind=kind,  # type: ignore[arg-type]
        allocation_id=allocation_id,
        order_id=order_id,
        round=round,
        shipment=shipment,
        location_id=location,
        lines=[{"sku": sku, "quantity": qty} for sku, qty in (lines or {LIGHT: 3}).items()],  # type: ignore[misc]
        method="standard",
    )
    return Logged(record, _at("oms.fulfilment.allocations.v1", at))


def sourced(
    order_id: str = ORDER,
    *,
    round: int = 1,
    outcome: str = "allocated",
    allocations: Sequence[str] | None = None,
    at: int = T0,
    event_id: str | None = None,
    reason: str = "",
) -> Logged[OrderSourced]:
    if allocations is None:
        allocations = [] if outcome == "rejected" else [f"{order_id}:{round}:0"]
    record = OrderSourced(
        event_id=event_id or f"{order_id}:{round}:sourced",
        occurred_at=_wire_time(at),
        source="oms-streams:source_orders",
        order_id=order_id,
        round=round,
        outcome=outcome,  # type: ignore[arg-type]
        allocations=list(allocations),
        reason=reason,
        attempts=1,
    )
    return Logged(record, _at("oms.orders.sourced.v1", at))


def command(
    order_id: str = ORDER,
    *,
    kind: str = "reserve",
    sku: str = LIGHT,
    attempt: int = 1,
    lines: Mapping[str, int] | None = None,
    at: int = T0,
) -> Logged[ReservationCommand]:
    reservation_id = f"{order_id}/{attempt}"
    if lines is None:
        lines = {DC: 3} if kind == "reserve" else {}
    record = ReservationCommand(
        event_id=f"{reservation_id}:{sku}:{kind}:cmd",
        occurred_at=_wire_time(at),
        source="oms-streams:source_orders",
        kind=kind,  # type: ignore[arg-type]
        reservation_id=reservation_id,
        order_id=order_id,
        sku=sku,
        lines=[{"location_id": loc, "quantity": qty} for loc, qty in lines.items()],  # type: ignore[misc]
    )
    return Logged(record, _at("oms.inventory.reservations.v2", at))


def reply(
    order_id: str = ORDER,
    *,
    kind: str = "reserve",
    status: str = "reserved",
    sku: str = LIGHT,
    attempt: int = 1,
    lines: Mapping[str, int] | None = None,
    at: int = T0,
) -> Logged[ReservationReply]:
    reservation_id = f"{order_id}/{attempt}"
    record = ReservationReply(
        event_id=f"{reservation_id}:{sku}:{kind}",
        occurred_at=_wire_time(at),
        source="oms-streams:apply_stock_events",
        kind=kind,  # type: ignore[arg-type]
        reservation_id=reservation_id,
        order_id=order_id,
        sku=sku,
        status=status,  # type: ignore[arg-type]
        lines=[  # type: ignore[misc]
            {"location_id": loc, "quantity": qty, "available_after": 0}
            for loc, qty in (lines if lines is not None else {DC: 3}).items()
        ],
    )
    return Logged(record, _at("oms.orders.reservation-replies.v2", at))


def cancelled(order_id: str = ORDER, *, at: int = T0) -> Logged[OrderCancellationOutcome]:
    """The answer that cancelled every line of the order (its allocation withdrawn)."""
    record = OrderCancellationOutcome(
        event_id=f"cancellation-{order_id}",
        occurred_at=_wire_time(at),
        source="oms-streams:source_orders",
        order_id=order_id,
        request_id="CANCEL-1",
        outcome="cancelled",
        lines=[  # type: ignore[list-item]
            {"sku": LIGHT, "status": "cancelled", "cancelled_quantity": 3, "refused_quantity": 0}
        ],
        withdrawn_allocations=[f"{order_id}:1:0"],
        open_lines=[],
        order_cancelled=True,
        requested_at=_wire_time(at),
    )
    return Logged(record, _at("oms.orders.cancellation-outcomes.v1", at))


def an_allocated_order(**overrides: Any) -> dict[str, Any]:
    """ORDER-1001 for 3 lights, reserved at DC-NORTH (which received 10), allocated and sourced: clean."""
    log: dict[str, Any] = {
        "stock": [a_receipt_event(qty=10)],
        "ledger": [a_row(on_hand=10, holds=[(f"{ORDER}/1", 3)])],
        "placed": [placed()],
        "commands": [command()],
        "replies": [reply()],
        "allocations": [allocation()],
        "outcomes": [sourced()],
    }
    return log | overrides


def audit_of(**records: Any) -> AuditReport:
    records.setdefault("locations", NETWORK)
    return audit(AuditInput(now_ms=NOW, **records))


def found(report: AuditReport, kind: FindingKind) -> list[Finding]:
    return [f for f in report.findings if f.kind is kind]


def kinds(report: AuditReport) -> set[FindingKind]:
    return {f.kind for f in report.findings}


# --- a clean log ----------------------------------------------------------------------------------


def test_an_allocated_order_whose_units_are_held_is_clean():
    report = audit_of(**an_allocated_order())

    assert report.findings == ()
    assert report.clean
    assert report.counts["orders_placed"] == 1
    assert report.counts["holds"] == 1
    assert report.counts["positions"] == 1


def test_an_empty_log_with_an_empty_ledger_is_clean():
    assert audit_of().clean


# --- 1. ledger rows -------------------------------------------------------------------------------


def test_more_reserved_than_on_hand_is_over_reserved():
    report = audit_of(ledger=[a_row(on_hand=2, holds=[(f"{ORDER}/1", 3)])], stock=[a_receipt_event(qty=2)])

    [finding] = found(report, FindingKind.OVER_RESERVED)
    assert finding.key == "SKU-BIKE-LIGHT|DC-NORTH"
    assert finding.detail == "reserved 3 > on hand 2"


def test_reserved_that_is_not_the_sum_of_its_holds_is_a_holds_mismatch():
    report = audit_of(**an_allocated_order(ledger=[a_row(on_hand=10, reserved=5, holds=[(f"{ORDER}/1", 3)])]))

    [finding] = found(report, FindingKind.HOLDS_MISMATCH)
    assert finding.detail == "reserved 5 but holds sum to 3 (ORDER-1001/1 3)"


def test_a_row_written_before_reservations_existed_has_no_holds_to_compare():
    report = audit_of(
        ledger=[a_row(on_hand=10, reserved=0, holds_known=False)], stock=[a_receipt_event(qty=10)]
    )

    assert report.clean


def test_negative_on_hand_is_reported():
    report = audit_of(ledger=[a_row(on_hand=-2)], stock=[a_receipt_event(qty=1), a_sale_event(qty=3)])

    [finding] = found(report, FindingKind.NEGATIVE)
    assert finding.detail == "on hand -2, reserved 0"
    assert kinds(report) == {FindingKind.NEGATIVE}


def test_negative_reserved_is_reported():
    report = audit_of(ledger=[a_row(on_hand=10, reserved=-1, holds_known=False)], stock=[a_receipt_event()])

    assert [f.detail for f in found(report, FindingKind.NEGATIVE)] == ["on hand 10, reserved -1"]


# --- 2. on hand against the event log -------------------------------------------------------------


def test_on_hand_that_differs_from_the_replayed_log_is_a_mismatch():
    report = audit_of(ledger=[a_row(on_hand=9)], stock=[a_receipt_event(qty=10)])

    [finding] = found(report, FindingKind.ON_HAND_MISMATCH)
    assert finding.key == "SKU-BIKE-LIGHT|DC-NORTH"
    assert finding.detail == "ledger 9, event log 10"


def test_a_row_of_a_sku_the_log_never_mentions_is_compared_to_zero():
    report = audit_of(ledger=[a_row(sku=PUMP, on_hand=4)])

    assert [f.detail for f in found(report, FindingKind.ON_HAND_MISMATCH)] == ["ledger 4, event log 0"]


def test_stock_in_the_log_without_a_ledger_row_is_a_mismatch():
    report = audit_of(stock=[a_receipt_event(location=STORE, qty=2)])

    [finding] = found(report, FindingKind.ON_HAND_MISMATCH)
    assert finding.key == "SKU-BIKE-LIGHT|STORE-UTRECHT-01"
    assert finding.detail == "no ledger row, event log 2"


def test_a_redelivered_movement_is_applied_once_as_the_ledger_does():
    receipt = a_receipt_event(qty=10, event_id="ERP-RECEIPT-77")
    again = a_receipt_event(qty=10, event_id="ERP-RECEIPT-77", at=minutes(1))

    assert audit_of(ledger=[a_row(on_hand=10)], stock=[receipt, again]).clean


def test_stock_at_a_location_the_config_never_published_is_left_out_as_the_ledger_rejects_it():
    report = audit_of(ledger=[], stock=[a_receipt_event(location="STORE-GHOST-99", qty=5)])

    assert report.clean
    assert report.counts["stock_events_rejected"] == 1


def test_events_are_replayed_in_log_time_order_whatever_order_they_were_read_in():
    count_later = a_count_event(on_hand=4, at=minutes(10))
    sale_between = a_sale_event(qty=1, at=minutes(20))
    receipt_first = a_receipt_event(qty=10, at=minutes(0))

    report = audit_of(ledger=[a_row(on_hand=3)], stock=[sale_between, count_later, receipt_first])

    assert report.clean


def test_units_that_left_with_a_fulfilled_reservation_leave_on_hand_in_the_replay():
    log = an_allocated_order(
        ledger=[a_row(on_hand=7)],
        commands=[command(), command(kind="fulfil", at=minutes(5))],
        replies=[reply(), reply(kind="fulfil", status="fulfilled", at=minutes(5))],
    )

    assert audit_of(**log).clean


def test_a_redelivered_fulfilled_reply_takes_the_units_once():
    fulfilled = reply(kind="fulfil", status="fulfilled", at=minutes(5))
    log = an_allocated_order(
        ledger=[a_row(on_hand=7)],
        commands=[command(), command(kind="fulfil", at=minutes(5))],
        replies=[
            reply(),
            fulfilled,
            replace(fulfilled, at=_at("oms.orders.reservation-replies.v2", minutes(6))),
        ],
    )

    assert found(audit_of(**log), FindingKind.ON_HAND_MISMATCH) == []


def test_a_count_as_of_after_a_fulfil_already_contains_it():
    # Fulfilled at minute 5, counted 7 as of minute 10: the count is the truth, no double subtraction.
    log = an_allocated_order(
        stock=[a_receipt_event(qty=10), a_count_event(on_hand=7, at=minutes(10))],
        ledger=[a_row(on_hand=7)],
        commands=[command(), command(kind="fulfil", at=minutes(5))],
        replies=[reply(), reply(kind="fulfil", status="fulfilled", at=minutes(5))],
    )

    assert found(audit_of(**log), FindingKind.ON_HAND_MISMATCH) == []


def test_a_refused_or_released_reservation_does_not_touch_on_hand():
    log = an_allocated_order(
        ledger=[a_row(on_hand=10)],
        allocations=[],
        outcomes=[sourced(outcome="rejected")],
        replies=[reply(status="refused"), reply(kind="release", status="released", attempt=2)],
    )

    assert found(audit_of(**log), FindingKind.ON_HAND_MISMATCH) == []


# --- 3. holds against sourcing --------------------------------------------------------------------


def test_a_hold_left_over_from_a_refused_attempt_is_an_orphan():
    # Attempt 1 held 3 at the store, another SKU was refused, the release never came; attempt 2 won.
    log = an_allocated_order(
        stock=[a_receipt_event(qty=10), a_receipt_event(location=STORE, qty=5)],
        ledger=[
            a_row(on_hand=10, holds=[(f"{ORDER}/2", 3)]),
            a_row(location=STORE, on_hand=5, holds=[(f"{ORDER}/1", 3)]),
        ],
    )

    [finding] = found(audit_of(**log), FindingKind.ORPHAN_HOLD)
    assert finding.key == "SKU-BIKE-LIGHT|STORE-UTRECHT-01"
    assert finding.detail.startswith("ORDER-1001/1 holds 3: no live allocation of ORDER-1001")


def test_a_second_hold_for_the_same_allocation_line_is_an_orphan():
    log = an_allocated_order(ledger=[a_row(on_hand=10, holds=[(f"{ORDER}/1", 3), (f"{ORDER}/2", 3)])])

    [finding] = found(audit_of(**log), FindingKind.ORPHAN_HOLD)
    assert finding.detail.startswith("ORDER-1001/1 holds 3")


def test_a_hold_of_a_rejected_order_is_an_orphan():
    log = an_allocated_order(allocations=[], outcomes=[sourced(outcome="rejected")])

    [finding] = found(audit_of(**log), FindingKind.ORPHAN_HOLD)
    assert finding.detail == "ORDER-1001/1 holds 3: order ORDER-1001 was rejected in round 1"


def test_a_hold_of_an_order_never_placed_is_an_orphan():
    log = an_allocated_order(
        ledger=[a_row(on_hand=10, holds=[(f"{ORDER}/1", 3), ("ORDER-GHOST/1", 2)])],
    )

    [finding] = found(audit_of(**log), FindingKind.ORPHAN_HOLD)
    assert finding.detail == "ORDER-GHOST/1 holds 2: order ORDER-GHOST was never placed"


def test_a_hold_of_an_order_still_being_sourced_is_in_flight_not_a_finding():
    log = an_allocated_order(allocations=[], outcomes=[], placed=[placed(at=NOW - 2_000)])

    report = audit_of(**log)

    assert report.clean
    assert report.counts["in_flight_holds"] == 1
    assert report.counts["in_flight"] == 1


def test_holds_of_an_order_being_re_sourced_are_in_flight():
    # Round 1's allocation was short picked and cancelled; round 2 holds the store's units, its
    # outcome is not out yet, and the DC hold's release is still on its way.
    log = an_allocated_order(
        stock=[a_receipt_event(qty=10), a_receipt_event(location=STORE, qty=5)],
        ledger=[
            a_row(on_hand=10, holds=[(f"{ORDER}/1", 3)]),
            a_row(location=STORE, on_hand=5, holds=[(f"{ORDER}/2", 3)]),
        ],
        allocations=[allocation(), allocation(kind="cancel", at=minutes(5))],
    )

    report = audit_of(**log)

    assert report.clean
    assert report.counts["in_flight_holds"] == 2


def _backordered(round_two_sent_at: int) -> dict[str, Any]:
    """3 of 5 lights allocated at the DC in round 1, 2 backordered (they wait for stock); a round
    that sources the backorder sent its reserve at ``round_two_sent_at`` and holds 2 at the store."""
    round_one = sourced(outcome="partially_allocated")
    until = {"backorder_until": _wire_time(minutes(72 * 60))}
    waiting = Logged(round_one.record.model_copy(update=until), round_one.at)
    return an_allocated_order(
        stock=[a_receipt_event(qty=10), a_receipt_event(location=STORE, qty=5)],
        ledger=[
            a_row(on_hand=10, holds=[(f"{ORDER}/1", 3)]),
            a_row(location=STORE, on_hand=5, holds=[(f"{ORDER}/2", 2)]),
        ],
        placed=[placed(cart={LIGHT: 5})],
        commands=[command(), command(attempt=2, lines={STORE: 2}, at=round_two_sent_at)],
        outcomes=[waiting],
    )


def test_the_hold_of_a_round_that_sources_a_backorder_is_in_flight_until_its_outcome():
    report = audit_of(**_backordered(round_two_sent_at=NOW - 2_000))

    assert report.clean, report.findings
    assert report.counts["in_flight_holds"] == 1


def test_the_hold_of_a_backorder_round_without_an_outcome_after_the_settle_time_is_an_orphan():
    [finding] = found(audit_of(**_backordered(round_two_sent_at=minutes(5))), FindingKind.ORPHAN_HOLD)

    assert finding.detail.startswith("ORDER-1001/2 holds 2: no live allocation of ORDER-1001")


def test_a_hold_of_a_cancelled_order_is_an_orphan_once_its_release_had_time_to_arrive():
    log = an_allocated_order(
        allocations=[allocation(), allocation(kind="cancel", at=minutes(5))],
        cancellations=[cancelled(at=minutes(5))],
    )

    [finding] = found(audit_of(**log), FindingKind.ORPHAN_HOLD)
    assert finding.detail == "ORDER-1001/1 holds 3: order ORDER-1001 was cancelled"


def test_a_hold_of_an_order_just_cancelled_is_in_flight_and_a_released_one_is_clean():
    just = an_allocated_order(
        allocations=[allocation(), allocation(kind="cancel", at=NOW - 1_000)],
        cancellations=[cancelled(at=NOW - 1_000)],
    )
    report = audit_of(**just)
    assert report.clean and report.counts["in_flight_holds"] == 1

    released = just | {"ledger": [a_row(on_hand=10)], "cancellations": [cancelled(at=minutes(5))]}
    assert audit_of(**released).clean


def test_a_live_allocation_without_a_hold_is_unheld():
    log = an_allocated_order(ledger=[a_row(on_hand=10)])

    [finding] = found(audit_of(**log), FindingKind.UNHELD_ALLOCATION)
    assert finding.key == "ORDER-1001:1:0"
    assert finding.detail == "SKU-BIKE-LIGHT at DC-NORTH: 3 units to ship, 0 held (none)"


def test_a_hold_smaller_than_its_allocation_is_unheld_for_the_rest():
    log = an_allocated_order(ledger=[a_row(on_hand=10, holds=[(f"{ORDER}/1", 2)])])

    [finding] = found(audit_of(**log), FindingKind.UNHELD_ALLOCATION)
    assert finding.detail == "SKU-BIKE-LIGHT at DC-NORTH: 3 units to ship, 2 held (ORDER-1001/1 2)"


def test_a_fulfilled_allocation_needs_no_hold():
    log = an_allocated_order(
        ledger=[a_row(on_hand=7)],
        commands=[command(), command(kind="fulfil", at=minutes(5))],
        replies=[reply(), reply(kind="fulfil", status="fulfilled", at=minutes(5))],
    )

    assert audit_of(**log).clean


def test_a_fulfil_command_not_answered_yet_excuses_the_missing_hold():
    # The ledger already took the hold and the units away; its reply is not on the topic yet.
    log = an_allocated_order(ledger=[a_row(on_hand=10)], commands=[command(), command(kind="fulfil")])

    assert found(audit_of(**log), FindingKind.UNHELD_ALLOCATION) == []


def test_two_shipments_from_one_location_may_share_one_hold():
    log = an_allocated_order(
        placed=[placed(cart={LIGHT: 3})],
        allocations=[allocation(shipment=0, lines={LIGHT: 1}), allocation(shipment=1, lines={LIGHT: 2})],
        outcomes=[sourced(allocations=[f"{ORDER}:1:0", f"{ORDER}:1:1"])],
    )

    assert audit_of(**log).clean


def test_a_cancelled_allocation_needs_no_hold():
    log = an_allocated_order(
        ledger=[a_row(on_hand=10)],
        allocations=[allocation(), allocation(kind="cancel", at=minutes(5))],
        outcomes=[sourced(), sourced(round=2, outcome="rejected", at=minutes(6))],
    )

    assert found(audit_of(**log), FindingKind.UNHELD_ALLOCATION) == []


# --- 4. outcomes ----------------------------------------------------------------------------------


def test_an_order_without_an_outcome_after_the_settle_time_is_missing_one():
    report = audit_of(placed=[placed(order_id="ORDER-2002", at=NOW - 60_000)])

    [finding] = found(report, FindingKind.MISSING_OUTCOME)
    assert finding.key == "ORDER-2002"
    assert finding.detail == "placed 60 s ago, no outcome for round 1"


def test_an_order_refused_at_placement_is_answered_in_round_0_and_needs_no_round_1():
    refused = sourced(order_id="ORDER-2003", round=0, outcome="rejected", reason="too many lines")
    report = audit_of(placed=[placed(order_id="ORDER-2003", at=NOW - 60_000)], outcomes=[refused])

    assert found(report, FindingKind.MISSING_OUTCOME) == []


def test_an_order_placed_within_the_settle_time_is_in_flight():
    report = audit_of(placed=[placed(order_id="ORDER-2002", at=NOW - 9_000)])

    assert report.clean
    assert report.counts["in_flight"] == 1


def test_two_different_outcomes_for_one_round_conflict():
    log = an_allocated_order(
        outcomes=[sourced(), sourced(event_id="OTHER-EVENT", outcome="rejected", at=minutes(1))]
    )

    [finding] = found(audit_of(**log), FindingKind.CONFLICTING_OUTCOMES)
    assert finding.key == ORDER
    assert finding.detail.startswith("round 1: 2 different outcomes")


def test_one_event_id_with_two_contents_conflicts():
    log = an_allocated_order(outcomes=[sourced(), sourced(reason="re-published differently", at=minutes(1))])

    assert len(found(audit_of(**log), FindingKind.CONFLICTING_OUTCOMES)) == 1


def test_an_exact_redelivery_of_an_outcome_is_counted_not_reported():
    outcome = sourced()
    again = replace(outcome, at=_at("oms.orders.sourced.v1", minutes(1)))

    report = audit_of(**an_allocated_order(outcomes=[outcome, again]))

    assert report.clean
    assert report.counts["redelivered"] == 1


# --- 5. allocations -------------------------------------------------------------------------------


def test_one_allocation_id_published_with_two_contents_conflicts():
    log = an_allocated_order(
        allocations=[allocation(), allocation(location=STORE, at=minutes(1), event_id="OTHER-EVENT")]
    )

    [finding] = found(audit_of(**log), FindingKind.CONFLICTING_ALLOCATION)
    assert finding.key == "ORDER-1001:1:0"
    assert "DC-NORTH [SKU-BIKE-LIGHT x3]" in finding.detail
    assert "STORE-UTRECHT-01 [SKU-BIKE-LIGHT x3]" in finding.detail


def test_an_allocation_republished_as_it_was_is_counted_not_reported():
    log = an_allocated_order(allocations=[allocation(), allocation(at=minutes(1), event_id="RESENT")])

    report = audit_of(**log)

    assert report.clean
    assert report.counts["redelivered"] == 1


def test_an_allocation_its_round_outcome_does_not_list_is_unlisted():
    log = an_allocated_order(
        allocations=[allocation(), allocation(shipment=1, location=STORE, lines={PUMP: 1})]
    )

    [finding] = found(audit_of(**log), FindingKind.UNLISTED_ALLOCATION)
    assert finding.key == "ORDER-1001:1:1"
    assert finding.detail.startswith("not listed by the outcome of round 1")


def test_an_old_allocation_whose_round_never_got_an_outcome_is_unlisted():
    log = an_allocated_order(outcomes=[])

    [finding] = found(audit_of(**log), FindingKind.UNLISTED_ALLOCATION)
    assert finding.detail == "no outcome was published for round 1 of ORDER-1001"


def test_live_allocations_covering_more_than_the_order_asked_are_over_allocated():
    log = an_allocated_order(
        ledger=[a_row(on_hand=10, holds=[(f"{ORDER}/1", 6)])],
        allocations=[allocation(shipment=0), allocation(shipment=1)],
        outcomes=[sourced(allocations=[f"{ORDER}:1:0", f"{ORDER}:1:1"])],
    )

    [finding] = found(audit_of(**log), FindingKind.OVER_ALLOCATED)
    assert finding.key == ORDER
    assert finding.detail == (
        "SKU-BIKE-LIGHT: live allocations ORDER-1001:1:0, ORDER-1001:1:1 cover 6 units, the order asked for 3"
    )


def test_a_cancelled_allocation_and_its_replacement_are_not_over_allocated():
    log = an_allocated_order(
        ledger=[a_row(on_hand=10), a_row(location=STORE, on_hand=5, holds=[(f"{ORDER}/2", 3)])],
        stock=[a_receipt_event(qty=10), a_receipt_event(location=STORE, qty=5)],
        allocations=[
            allocation(),
            allocation(kind="cancel", at=minutes(5)),
            allocation(round=2, location=STORE, at=minutes(6)),
        ],
        outcomes=[sourced(), sourced(round=2, at=minutes(6))],
    )

    assert audit_of(**log).clean


def test_an_allocation_listed_by_an_outcome_but_never_published_is_missing():
    log = an_allocated_order(outcomes=[sourced(allocations=[f"{ORDER}:1:0", f"{ORDER}:1:1"])])

    [finding] = found(audit_of(**log), FindingKind.MISSING_ALLOCATION)
    assert finding.key == "ORDER-1001:1:1"


def test_an_outcome_published_just_now_may_still_have_its_allocations_on_the_way():
    log = an_allocated_order(outcomes=[sourced(allocations=[f"{ORDER}:1:0", f"{ORDER}:1:1"], at=NOW - 1_000)])

    assert found(audit_of(**log), FindingKind.MISSING_ALLOCATION) == []


# --- properties and the report --------------------------------------------------------------------


@given(st.permutations(range(6)), st.lists(st.integers(1, 20), min_size=3, max_size=3))
def test_findings_do_not_depend_on_the_order_records_were_read_in(order, quantities):
    receipt_a, receipt_b, receipt_c = (
        a_receipt_event(qty=q, at=minutes(i)) for i, q in enumerate(quantities)
    )
    records: list[Any] = [receipt_a, receipt_b, receipt_c, placed(), allocation(), sourced()]
    shuffled = [records[i] for i in order]
    ledger = [a_row(on_hand=sum(quantities), holds=[(f"{ORDER}/1", 3)])]

    report = audit_of(
        ledger=ledger,
        stock=[r for r in shuffled if isinstance(r.record, DecodedStock)],
        placed=[r for r in shuffled if isinstance(r.record, OrderPlaced)],
        allocations=[r for r in shuffled if isinstance(r.record, Allocation)],
        outcomes=[r for r in shuffled if isinstance(r.record, OrderSourced)],
    )

    assert report.clean


def test_the_report_groups_findings_by_kind_with_at_most_twenty_examples():
    ledger = [a_row(sku=f"SKU-{n:03d}", on_hand=1) for n in range(25)]

    text = audit_of(ledger=ledger).render()

    assert "on_hand_mismatch: 25" in text
    assert "SKU-000|DC-NORTH  ledger 1, event log 0" in text
    assert "SKU-024|DC-NORTH" not in text
    assert "... and 5 more" in text


def test_the_json_report_lists_every_finding_and_the_counts():
    report = audit_of(ledger=[a_row(sku=f"SKU-{n:03d}", on_hand=1) for n in range(25)])

    parsed = orjson.loads(report.to_json())

    assert parsed["clean"] is False
    assert len(parsed["findings"]["on_hand_mismatch"]) == 25
    assert parsed["counts"]["positions"] == 25


# --- the changelog row format ---------------------------------------------------------------------


def test_a_changelog_record_is_the_raw_key_and_the_raw_json_row():
    position = StockPosition(on_hand=10, reserved=3, holds=((f"{ORDER}/1", 3),), settled=("ORDER-0999/1",))
    value = orjson.dumps(position_to_row(position))

    row = decode_changelog_row(b"SKU-BIKE-LIGHT|DC-NORTH", value)

    assert row == LedgerRow(LIGHT, DC, position, holds_known=True)


def test_a_changelog_row_from_before_reservations_has_unknown_holds():
    old_row = [10, 0, 0, 0, None, None, None, None, []]

    row = decode_changelog_row(b"SKU-BIKE-LIGHT|DC-NORTH", orjson.dumps(old_row))

    assert isinstance(row, LedgerRow)
    assert row.holds_known is False
    assert row.position.on_hand == 10


def test_junk_on_the_changelog_is_a_failure_not_a_crash():
    assert isinstance(decode_changelog_row(b"SKU-BIKE-LIGHT|DC-NORTH", b"{not json"), Failure)
    assert isinstance(decode_changelog_row(b"SKU-BIKE-LIGHT|DC-NORTH", b'{"on_hand": 3}'), Failure)
    assert isinstance(decode_changelog_row(b"SKU-BIKE-LIGHT|DC-NORTH", b'["a","b",1,1,1,1,1,1,[]]'), Failure)
    assert isinstance(decode_changelog_row(b"NO-BAR", b"[1,0,0,0,null,null,null,null,[]]"), Failure)
    assert isinstance(decode_changelog_row(None, b"[1,0,0,0,null,null,null,null,[]]"), Failure)
