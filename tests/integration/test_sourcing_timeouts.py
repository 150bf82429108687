"""End to end on a real broker: the saga converges when a ledger's answers never reach sourcing.

The worker runs with a fault (tests/faults) that loses every answer to the first reservation
attempt of one order: the ledger holds the units and answers, sourcing never reads it. After the
reply timeout the reserve is sent again (same ids: the ledger answers the repeat without holding
twice); after the last send the attempt is given up, its hold released, and a second attempt
allocates the order. ``oms audit`` then finds every hold owned.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.integration.conftest import NETWORK_YAML
from tests.integration.test_delivery_failures import FAULTS, assert_clean_audit
from tests.integration.test_promise_and_risk import UTRECHT_HOME, records_for, stock_up
from tests.integration.test_sourcing import RESERVATIONS, allocations_of, an_option, atp_at, outcome_of
from tests.worker_process import Events, WorkerProcess, read_topic, wait_until

LOST = {
    "PYTHONPATH": FAULTS,
    "OMS_TEST_LOSE_REPLIES_OF": "ORDER-LOST/1",
    "OMS_SOURCING_REPLY_TIMEOUT_S": "1",
    "OMS_SOURCING_MAX_SENDS": "2",
}


def commands_for(worker: WorkerProcess, order_id: str) -> list[dict[str, Any]]:
    return [
        command
        for _, value in read_topic(worker.bootstrap, worker.prefix + RESERVATIONS)
        if value is not None
        for command in json.loads(value).get("commands", [])
        if command["order_id"] == order_id
    ]


def test_an_order_whose_reservation_answers_are_lost_is_allocated_after_the_timeout_and_holds_once(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, events: Events
) -> None:
    worker = WorkerProcess(kafka_bootstrap, topic_prefix, tmp_path / "worker", extra_env=LOST).start()
    events.config(NETWORK_YAML)
    try:
        stock_up(worker, events, ("SKU-TENT", "DC-NORTH", 5))
        events.order_placed("ORDER-LOST", an_option("standard", {"SKU-TENT": 2}), UTRECHT_HOME)
        events.flush()

        outcome = outcome_of(worker, "ORDER-LOST")

        assert outcome["outcome"] == "allocated" and outcome["attempts"] == 2, outcome
        [allocation] = allocations_of(worker, "ORDER-LOST")
        assert allocation["location_id"] == "DC-NORTH" and allocation["allocation_id"] == "ORDER-LOST:1:0"
        sent = [(c["kind"], c["reservation_id"], c["event_id"]) for c in commands_for(worker, "ORDER-LOST")]
        first = [s for s in sent if s[1] == "ORDER-LOST/1"]
        # Sent twice with the same id, then released; the second attempt answered at its first send.
        assert [kind for kind, _, _ in first] == ["reserve", "reserve", "release"], sent
        assert first[0][2] == first[1][2]
        assert [kind for kind, rid, _ in sent if rid == "ORDER-LOST/2"] == ["reserve"], sent
        # The ledger held the first attempt's tents once, released them, and holds the second's.
        wait_until(lambda: atp_at(worker, "SKU-TENT", "DC-NORTH") == 3, 20, "two tents held, once")
        assert worker.metric("oms_sourcing_attempt_timeouts_total") == 1
        assert worker.metric("oms_sourcing_resends_total", kind="reserve", cause="timeout") == 1
        view = wait_until(
            lambda: (
                (sourcing := (worker.get("/orders/ORDER-LOST")[1] or {}).get("sourcing"))
                and not sourcing["outstanding"]
                and sourcing
            ),
            20,
            "the release answered",
        )
        assert view["status"] == "allocated" and view["attempts"] == 2
        assert records_for(worker, "oms.orders.sourced.v1", "ORDER-LOST") == [outcome]
        assert_clean_audit(kafka_bootstrap, topic_prefix)
    finally:
        worker.stop()
