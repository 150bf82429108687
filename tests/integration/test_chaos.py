"""The chaos run of ``bench.chaos`` at CI size: three workers under racing orders, cart holds that
expire or are taken over, cancellations, shipments and short picks, while a worker dies at each
step of the saga on purpose (a kill point, ``tests/faults/kill_points.py``) and once at random.
Afterwards nothing is oversold, every hold has a live owner, nothing is allocated twice, and
``oms audit`` finds nothing else either, and every order has ended."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from bench.chaos import SAGA_STEPS, ChaosRun, kill_plan


@pytest.mark.timeout(480)  # about 2 minutes of kills, then the settling and the audit (slow under load)
def test_workers_killed_at_every_saga_step_strand_no_stock_and_end_every_order(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    plan = kill_plan(random.Random(3), rounds=1, steps=SAGA_STEPS, random_kills=1)
    # With edits (bench.chaos's default): they found the last bugs (agents.in_order).
    run = ChaosRun(kafka_bootstrap, topic_prefix, tmp_path, plan, seed=3)
    result = run.run(settle_timeout_s=150)
    report = result.report()
    print(json.dumps(report, indent=2))

    assert set(result.kills.by_step) == set(SAGA_STEPS), report  # each step's window was hit
    assert report["orders"] > 50 and report["cancellations"] > 0 and report["holds"] > 0
    assert report["load"]["edits"] > 0
    # Safety: nothing oversold, no hold without a live owner, nothing allocated twice, no other finding.
    assert report["oversold_units"] == 0, report
    assert report["holds_without_live_owner"] == 0, report
    assert report["duplicate_allocations"] == 0, report
    assert not result.end.other_audit_findings, report
    # Liveness: every order ended (an outcome for its last round), every cancellation and every edit
    # was answered.
    assert result.end.orders_without_end_state == 0, report
    assert result.end.cancellations_unanswered == 0, report
    assert result.end.edits_unanswered == 0, report
    assert result.end.clean, report
