"""A till that was offline re-sends its whole day of sales: none is applied twice, however many
movements each position saw since, and even by a worker that lost its disk in between (the ids of
applied movements come back from their changelog with the rest of the partition's state)."""

from __future__ import annotations

import shutil
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.integration.conftest import NETWORK_YAML
from tests.integration.test_delivery_failures import assert_availability_is_the_log, assert_clean_audit
from tests.worker_process import Events, WorkerProcess, read_topic, wait_until

SKUS = ("SKU-000", "SKU-001", "SKU-002")
STORES = ("STORE-UTRECHT-01", "STORE-AMSTERDAM-01")


def test_a_till_resending_a_day_of_sales_after_an_outage_applies_none_twice(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, events: Events
) -> None:
    # Protection off: the availability compared below is then a function of the ledger alone.
    worker = WorkerProcess(
        kafka_bootstrap, topic_prefix, tmp_path / "worker", extra_env={"OMS_PROTECTION_QUANTILE": "0"}
    ).start()
    events.config(NETWORK_YAML)
    try:
        for sku in SKUS:
            for store in STORES:
                events.movement(sku, store, "receipt", 2_000)
        start = datetime.now(UTC) - timedelta(hours=24)
        day = [
            events.movement(
                SKUS[i % 3],
                STORES[i % 2],
                "sale",
                1 + i % 3,
                at=start + timedelta(minutes=2 * i),
                source="pos",
            )
            for i in range(700)  # about 117 sales per position: well past its 64-movement journal
        ]
        events.flush()
        wait_until(
            lambda: worker.metric("oms_stock_events_total", verdict="applied") == 706, 60, "the day applied"
        )
        for topic in ("oms.inventory.movements.v1",):
            wait_until(lambda t=topic: worker.has_committed_everything(t), 30, f"{topic} committed")

        # A new machine: the local state is gone, only the changelogs remain.
        worker.stop(signal.SIGKILL)
        shutil.rmtree(worker.data_dir)
        worker.start()

        # Back online, the till sends the whole day again, in its order, with a few new sales.
        for i, sale in enumerate(day):
            events.movement(
                sale["sku"],
                sale["location_id"],
                "sale",
                sale["quantity"],
                at=datetime.fromisoformat(sale["occurred_at"]),
                event_id=sale["event_id"],
                source="pos",
            )
            if i % 100 == 0:
                events.movement(SKUS[0], STORES[0], "sale", 1, source="pos")
        events.flush()

        wait_until(
            lambda: worker.metric("oms_stock_events_total", verdict="duplicate") == 700,
            60,
            "the day recognised",
        )
        assert worker.metric("oms_stock_events_total", verdict="applied") == 7  # only the new sales
        assert_availability_is_the_log(kafka_bootstrap, topic_prefix, timeout_s=30)
        assert_clean_audit(kafka_bootstrap, topic_prefix)
    finally:
        worker.stop()


def test_ids_older_than_the_window_are_swept_from_the_store_and_its_changelog(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, events: Events
) -> None:
    window = {"OMS_DEDUPE_WINDOW_DAYS": str(6 / 86_400), "OMS_DEDUPE_SWEEP_INTERVAL_S": "1"}  # 6 s
    worker = WorkerProcess(kafka_bootstrap, topic_prefix, tmp_path / "worker", extra_env=window).start()
    events.config(NETWORK_YAML)
    try:
        first = events.movement("SKU-000", "DC-NORTH", "receipt", 5)
        for _ in range(70):  # more than the position's journal remembers
            events.movement("SKU-000", "DC-NORTH", "receipt", 1)
        events.flush()
        wait_until(lambda: worker.metric("oms_stock_events_total", verdict="applied") == 71, 30, "applied")
        changelog = f"{topic_prefix}oms-stock_event_ids-changelog"
        # Each id written, then deleted (a tombstone) once the window is over.
        wait_until(
            lambda: [v for _, v in read_topic(kafka_bootstrap, changelog)].count(None) == 71, 30, "swept"
        )
        # Past the window (and the journal) a re-send is a new movement: the window is the promise.
        events.movement("SKU-000", "DC-NORTH", "receipt", 5, event_id=first["event_id"])
        events.flush()
        wait_until(
            lambda: worker.metric("oms_stock_events_total", verdict="applied") == 72, 30, "applied again"
        )
    finally:
        worker.stop()
