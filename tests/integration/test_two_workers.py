"""Two workers share the SKU partitions; when one dies the other takes over its SKUs' ledgers."""

from __future__ import annotations

import random
import signal
from pathlib import Path

from tests.integration.conftest import NETWORK_YAML
from tests.integration.test_recovery import produce_random_movements, published, recompute_from_log
from tests.worker_process import Events, WorkerProcess, wait_until


def test_a_surviving_worker_takes_over_the_ledger_of_a_dead_one(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, events: Events
) -> None:
    first = WorkerProcess(kafka_bootstrap, topic_prefix, tmp_path / "w1").start()
    events.config(NETWORK_YAML)
    second = WorkerProcess(kafka_bootstrap, topic_prefix, tmp_path / "w2").start()
    try:
        rng = random.Random(7)
        produce_random_movements(events, rng, 200)
        wait_until(
            lambda: (
                published(kafka_bootstrap, topic_prefix) == recompute_from_log(kafka_bootstrap, topic_prefix)
            ),
            60,
            "two workers' availability to match the log",
        )
        # Both answer for every SKU: each reads the whole availability topic.
        sku = next(iter(published(kafka_bootstrap, topic_prefix)))
        assert first.get(f"/availability/{sku}")[0] == second.get(f"/availability/{sku}")[0] == 200
        applied = [w.metric("oms_stock_events_total", verdict="applied") for w in (first, second)]
        assert all(n > 0 for n in applied), f"both workers should own partitions: {applied}"

        second.stop(signal.SIGKILL)
        produce_random_movements(events, rng, 150)
        expected = recompute_from_log(kafka_bootstrap, topic_prefix)
        wait_until(
            lambda: published(kafka_bootstrap, topic_prefix) == expected,
            90,
            "the survivor to apply the dead worker's SKUs too",
        )
    finally:
        second.stop()
        first.stop()
