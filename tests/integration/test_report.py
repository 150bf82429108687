"""``oms report`` on a real broker: orders placed, one delivered, one cancelled, then the page."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_promise_and_risk import UTRECHT_HOME, stock_up
from tests.integration.test_sourcing import an_option, outcome_of
from tests.worker_process import REPO_ROOT, Events, WorkerProcess

pytestmark = pytest.mark.kafka


def fact(page: str, key: str) -> str:
    found = re.search(rf"id='fact-{key}'>([^<]*)<", page)
    assert found, f"no fact {key} on the page"
    return found.group(1)


def test_the_report_reads_the_topics_and_writes_the_figures(
    worker: WorkerProcess, events: Events, tmp_path: Path
) -> None:
    stock_up(worker, events, ("SKU-TENT", "DC-NORTH", 5), ("SKU-BIKE-LIGHT", "DC-NORTH", 10))
    carts = {
        "ORDER-R1": {"SKU-TENT": 1},
        "ORDER-R2": {"SKU-BIKE-LIGHT": 2},
        "ORDER-R3": {"SKU-TENT": 1, "SKU-BIKE-LIGHT": 1},
    }
    for order_id, cart in carts.items():
        events.order_placed(order_id, an_option("standard", cart), UTRECHT_HOME)
    events.flush()
    for order_id in carts:
        assert outcome_of(worker, order_id)["outcome"] == "allocated"

    events.fulfilment("ORDER-R1", "handed_to_carrier", location_id="DC-NORTH")
    events.fulfilment("ORDER-R1", "delivered", location_id="DC-NORTH")
    events.flush()
    status, answer = worker.post(
        "/orders/ORDER-R2/cancellations", json.dumps({"reason": "changed mind"}).encode()
    )
    assert status == 200 and answer["outcome"] == "cancelled", answer

    out = tmp_path / "report.html"
    env = {**os.environ, "OMS_KAFKA_BOOTSTRAP": "127.0.0.1:1", "OMS_TOPIC_PREFIX": ""}  # the flags win
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "oms_streams.cli",
            "report",
            "--bootstrap",
            worker.bootstrap,
            "--prefix",
            worker.prefix,
            "--out",
            str(out),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "3 orders, 1.00 parcels per order" in done.stdout

    page = out.read_text()
    for anchor in (
        "parcels",
        "baselines",
        "promise",
        "risk",
        "cancellations",
        "returns",
        "protection",
        "dlq",
    ):
        assert f"id='{anchor}'" in page
    assert fact(page, "orders") == "3"
    assert fact(page, "shipped-orders") == "2"  # ORDER-R2 was cancelled whole
    assert fact(page, "parcels-per-order") == "1.00"
    assert fact(page, "fully-cancelled") == "1"
    assert fact(page, "completed") == "1" and fact(page, "on-time-rate") == "100.0 %"
    assert fact(page, "cancellation-requests") == "1" and fact(page, "orders-cancelled") == "1"
    # Everything is at DC-NORTH: both baselines ship what the engine shipped.
    assert fact(page, "parcels-vs-nearest-dc") == "+0.0 %" and fact(page, "km-vs-per-line") == "+0.0 %"
    assert "No return was received in this window." in page
    assert page.count("data:image/png;base64,") >= 3
