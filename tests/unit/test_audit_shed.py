"""``oms audit`` and a hold the ledger shed: the allocation it held is unheld only until its order's
owner had the settle time to cancel it; the ledger row itself is never over-reserved."""

from __future__ import annotations

from oms_streams.tools.audit import FindingKind
from tests.unit.builders import minutes
from tests.unit.test_audit import NOW, a_row, an_allocated_order, audit_of, command, found, reply


def test_an_allocation_whose_hold_was_just_shed_is_in_flight_not_unheld():
    log = an_allocated_order(
        ledger=[a_row(on_hand=1)],
        replies=[reply(), reply(kind="shed", status="released", at=NOW - 2_000)],
    )

    report = audit_of(**log)

    assert found(report, FindingKind.UNHELD_ALLOCATION) == []
    assert report.counts["in_flight_sheds"] == 1


def test_a_shed_its_order_never_acted_on_is_unheld_after_the_settle_time():
    log = an_allocated_order(
        ledger=[a_row(on_hand=1)],
        replies=[reply(), reply(kind="shed", status="released", at=minutes(5))],
    )

    assert len(found(audit_of(**log), FindingKind.UNHELD_ALLOCATION)) == 1


def test_an_allocation_fulfilled_after_a_count_shed_its_hold_needs_no_hold():
    # The units left at handover; a count taken before the WMS reported it excluded them and the
    # ledger shed the hold; the late fulfil found nothing to take and was answered fulfilled.
    log = an_allocated_order(
        ledger=[a_row(on_hand=7)],
        commands=[command(), command(kind="fulfil", lines={"DC-NORTH": 3}, at=minutes(3))],
        replies=[
            reply(),
            reply(kind="shed", status="released", at=minutes(2)),
            reply(kind="fulfil", status="fulfilled", lines={}, at=minutes(3)),
        ],
    )

    report = audit_of(**log)

    assert found(report, FindingKind.UNHELD_ALLOCATION) == []
    assert report.counts["fulfilled_after_shed"] == 1
