"""``oms audit`` and preorders: preordered never above inbound, every preorder hold owned, and an
order whose preorder waits for its goods is not missing an outcome but has its interim answer
('preordered' on the outcomes topic), one whatever the repeats."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from oms_streams.domain.inventory import StockPosition
from oms_streams.schemas.sourcing import OrderSourced
from oms_streams.tools.audit import FindingKind, LedgerRow, Logged
from tests.unit.builders import T0
from tests.unit.test_audit import DC, LIGHT, ORDER, audit_of, command, found, placed, sourced

DAY = 86_400_000


def a_preorder_row(preordered: int = 3, inbound: int = 5, rid: str = f"{ORDER}/1") -> LedgerRow:
    position = StockPosition(inbound=inbound, lots=((T0 + DAY, inbound),), preorders=((rid, preordered),))
    return LedgerRow(LIGHT, DC, position, True)


def interim(give_up_days: int = 1, at: int = T0) -> Logged[OrderSourced]:
    """The order's interim answer, as its owner publishes it once the ledgers held the inbound."""
    logged = sourced(outcome="preordered", allocations=[], at=at, event_id=f"{ORDER}:preordered:1")
    eta = datetime.fromtimestamp((T0 + DAY) / 1000, UTC)
    body = logged.record.model_dump(mode="json")
    body["preorder"] = {
        "expected_at": eta.isoformat(),
        "give_up_at": (eta + timedelta(days=give_up_days)).isoformat(),
        "lines": [{"sku": LIGHT, "quantity": 3, "location_id": DC, "expected_at": eta.isoformat()}],
    }
    return Logged(OrderSourced.model_validate_json(json.dumps(body)), logged.at)


def test_an_order_whose_preorder_waits_for_its_goods_is_clean() -> None:
    report = audit_of(
        ledger=[a_preorder_row()],
        placed=[placed()],
        commands=[command(kind="preorder", lines={DC: 3})],
        outcomes=[interim(), interim(at=T0 + 5)],  # read again: the same answer
    )
    assert report.clean, report.findings
    assert (report.counts["preordered"], report.counts["preorders"]) == (1, 1)
    assert (report.counts["preorder_answers"], report.counts["outcomes"]) == (1, 0)


def test_a_waiting_preorder_without_its_interim_answer_is_unanswered() -> None:
    report = audit_of(
        ledger=[a_preorder_row()], placed=[placed()], commands=[command(kind="preorder", lines={DC: 3})]
    )
    [finding] = found(report, FindingKind.UNANSWERED_PREORDER)
    assert finding.key == ORDER


def test_two_different_interim_answers_of_a_round_conflict() -> None:
    report = audit_of(
        ledger=[a_preorder_row()],
        placed=[placed()],
        commands=[command(kind="preorder", lines={DC: 3})],
        outcomes=[interim(), interim(give_up_days=3)],
    )
    [finding] = found(report, FindingKind.CONFLICTING_OUTCOMES)
    assert "2 different interim answers" in finding.detail


def test_the_interim_answer_is_not_the_round_s_outcome() -> None:
    # The round's outcome follows it: one outcome for round 1, no conflict with the interim answer.
    report = audit_of(
        placed=[placed()], outcomes=[interim(), sourced(outcome="rejected", at=T0 + 1)], commands=[]
    )
    assert FindingKind.CONFLICTING_OUTCOMES not in {f.kind for f in report.findings}
    assert report.counts["outcomes"] == 1


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
