"""End to end on a real broker: a finished order leaves the state after its retention.

A delivered order (retention shortened to seconds) is removed by its owner's sweep: its ``orders``
and ``sourcing`` rows and their index entries end with a tombstone on their changelogs, ``GET
/orders/{id}`` says it was removed, and a worker restarted on a wiped disk restores neither the row
nor anything to watch, while an open order is untouched through all of it and ``oms audit`` stays
clean.
"""

from __future__ import annotations

import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import NETWORK_YAML
from tests.integration.test_delivery_failures import assert_clean_audit
from tests.integration.test_promise_and_risk import UTRECHT_HOME, stock_up
from tests.integration.test_sourcing import an_option, outcome_of
from tests.worker_process import Events, WorkerProcess, read_topic, wait_until

SECONDS = 1 / 86_400
RETENTION = {
    "OMS_RETENTION_DELIVERED_DAYS": str(4 * SECONDS),
    "OMS_RETENTION_SWEEP_INTERVAL_S": "1",
}
TABLES = ("orders", "sourcing", "orders_index", "sourcing_index")


@pytest.fixture
def worker(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, events: Events
) -> Iterator[WorkerProcess]:
    process = WorkerProcess(kafka_bootstrap, topic_prefix, tmp_path / "worker", extra_env=RETENTION)
    process.start()
    events.config(NETWORK_YAML)
    try:
        yield process
    finally:
        process.stop()


def last_values(worker: WorkerProcess, table: str, key: str) -> list[bytes | None]:
    """The values of ``key`` on the table's changelog, in order (None: a tombstone)."""
    topic = f"{worker.prefix}oms-{table}-changelog"  # faust: '<app id>-<table>-changelog'
    return [value for k, value in read_topic(worker.bootstrap, topic) if k == key.encode()]


def status_of(worker: WorkerProcess, order_id: str) -> tuple[int, object]:
    return worker.get(f"/orders/{order_id}")


def test_a_delivered_order_leaves_the_state_after_its_retention_and_an_open_one_stays(
    worker: WorkerProcess, events: Events
) -> None:
    stock_up(worker, events, ("SKU-TENT", "DC-NORTH", 5))
    for order_id in ("ORDER-DONE", "ORDER-OPEN"):
        events.order_placed(order_id, an_option("standard", {"SKU-TENT": 1}), UTRECHT_HOME)
    events.flush()
    for order_id in ("ORDER-DONE", "ORDER-OPEN"):
        assert outcome_of(worker, order_id)["outcome"] == "allocated"
    events.fulfilment("ORDER-DONE", "handed_to_carrier", location_id="DC-NORTH")
    events.flush()
    wait_until(
        lambda: status_of(worker, "ORDER-DONE")[1]["sourcing"]["allocations"][0]["state"] == "fulfilled",  # type: ignore[index]
        30,
        "the allocation fulfilled",
    )
    events.fulfilment("ORDER-DONE", "delivered")
    events.flush()

    gone = wait_until(lambda: status_of(worker, "ORDER-DONE")[0] == 404, 60, "the delivered order removed")
    assert gone
    status, body = status_of(worker, "ORDER-DONE")
    assert status == 404 and "removed after its retention" in body["error"], body  # type: ignore[index]
    for table in TABLES:
        values = wait_until(lambda t=table: last_values(worker, t, "ORDER-DONE"), 30, f"{table} records")
        assert values[-1] is None, f"no tombstone for ORDER-DONE on the {table} changelog"
        assert last_values(worker, table, "ORDER-OPEN")[-1] is not None, table
    assert worker.metric("oms_retention_removed_total", table="orders", ending="delivered") == 1
    assert worker.metric("oms_retention_removed_total", table="sourcing", ending="delivered") == 1

    # A new machine: only the changelogs are left. The removed order is not restored, not watched.
    wait_until(lambda: worker.has_committed_everything("oms.orders.placed.v1"), 30, "placements committed")
    worker.stop(signal.SIGKILL)
    shutil.rmtree(worker.data_dir)
    worker.start()
    wait_until(lambda: status_of(worker, "ORDER-OPEN")[0] == 200, 60, "the open order restored")
    assert status_of(worker, "ORDER-DONE")[0] == 404
    open_view = status_of(worker, "ORDER-OPEN")[1]
    assert open_view["sourcing"]["status"] == "allocated", open_view  # type: ignore[index]
    wait_until(
        lambda: worker.metric("oms_retention_rows", table="orders", state="open") == 1, 30, "one open order"
    )
    assert worker.metric("oms_retention_rows", table="orders", state="finished") == 0
    assert worker.metric("oms_retention_rows", table="sourcing", state="open") == 1
    assert_clean_audit(worker.bootstrap, worker.prefix)
