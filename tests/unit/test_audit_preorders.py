"""``oms audit`` and preorders: preordered never above inbound, every preorder hold owned, and an
order whose preorder waits for its goods is not missing an outcome."""

from __future__ import annotations

from oms_streams.domain.inventory import StockPosition
from oms_streams.tools.audit import FindingKind, LedgerRow
from tests.unit.builders import T0
from tests.unit.test_audit import DC, LIGHT, ORDER, audit_of, command, found, placed, sourced

DAY = 86_400_000


def a_preorder_row(preordered: int = 3, inbound: int = 5, rid: str = f"{ORDER}/1") -> LedgerRow:
    position = StockPosition(inbound=inbound, lots=((T0 + DAY, inbound),), preorders=((rid, preordered),))
    return LedgerRow(LIGHT, DC, position, True)


def test_an_order_whose_preorder_waits_for_its_goods_is_clean() -> None:
    report = audit_of(
        ledger=[a_preorder_row()], placed=[placed()], commands=[command(kind="preorder", lines={DC: 3})]
    )
    assert report.clean, report.findings
    assert (report.counts["preordered"], report.counts["preorders"]) == (1, 1)


def test_more_preordered_than_inbound_is_over_preordered() -> None:
    row = a_preorder_row(preordered=6, inbound=5)
    report = audit_of(ledger=[row], placed=[placed()], commands=[command(kind="preorder", lines={DC: 6})])
    [finding] = found(report, FindingKind.OVER_PREORDERED)
    assert finding.key == f"{LIGHT}|{DC}" and "preordered 6 > inbound 5" in finding.detail


def test_a_preorder_of_an_order_never_placed_is_unowned() -> None:
    report = audit_of(ledger=[a_preorder_row(rid="ORDER-GHOST/1")])
    [finding] = found(report, FindingKind.UNOWNED_PREORDER)
    assert "ORDER-GHOST was never placed" in finding.detail


def test_a_preorder_left_after_its_order_was_given_up_is_unowned() -> None:
    report = audit_of(
        ledger=[a_preorder_row()],
        placed=[placed()],
        commands=[command(kind="preorder", lines={DC: 3})],
        outcomes=[sourced(outcome="rejected", at=T0 + 1)],
    )
    [finding] = found(report, FindingKind.UNOWNED_PREORDER)
    assert "has an outcome since (rejected in round 1)" in finding.detail
