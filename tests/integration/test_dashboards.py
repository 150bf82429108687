"""Every panel of the Grafana dashboards shows data from a real worker: a real ``prometheus`` scrapes a
real worker (1 s interval) fed by the simulator plus the few orders, returns and bad events the
simulator does not send, and each panel's PromQL returns data through Prometheus' HTTP API. The alert
rules load and evaluate against the same data.

``prometheus`` is Debian's package (.ci/run installs it). Without it the test skips, except in CI
(``CI=true``), where it fails."""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from oms_streams.config import Settings
from oms_streams.streaming.partitioning import partition_for
from oms_streams.tools import dashboard_panels
from oms_streams.tools.simulator import run_simulation
from tests.integration.conftest import NETWORK_YAML
from tests.integration.test_courier_slots import courier_option, slot_at
from tests.integration.test_promise_and_risk import UTRECHT_HOME, click_and_collect_option, stock_up
from tests.integration.test_returns import CUSTOMER_IN_UTRECHT
from tests.integration.test_sourcing import allocations_of, an_option, outcome_of
from tests.worker_process import REPO_ROOT, Events, WorkerProcess, free_port, wait_until

ALERTS = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"
WINDOW = "5m"
"""What ``$__rate_interval`` and ``$__range`` stand for here: longer than the whole test, so every
window holds every sample scraped since the worker started."""

NOT_FED = {
    (
        "oms-engine",
        "Stalled partitions",
        f"sum by (topic) (increase(oms_partitions_reread_total[{dashboard_panels.RATE}]))",
    ),
    (
        "oms-engine",
        "Commands resent and attempts given up",
        f"sum by (kind, cause) (rate(oms_sourcing_resends_total[{dashboard_panels.RATE}]))",
    ),
    (
        "oms-business",
        "Preorders",
        f"sum by (event) (rate(oms_preorders_total[{dashboard_panels.RATE}]))",
    ),
    (
        "oms-business",
        "Promise tokens",
        f"sum by (verdict) (rate(oms_promise_tokens_total[{dashboard_panels.RATE}]))",
    ),
}
"""Queries whose series only a fault creates (a rebalance that drops a record: faust_fixes; a ledger
that does not answer a saga command in time, or a rebalance during a sourcing round), a setting this
worker does not have (promise tokens are checked only with OMS_PROMISE_SIGNING_KEYS, which would
refuse the feed's unsigned placements), or a flow the feed does not place (preorders); they must run
without error but may return nothing."""


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        reason = "prometheus not found on PATH (Debian: apt-get install prometheus)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI installs it in .ci/run", pytrace=False)
        pytest.skip(reason)
    return path


class Prometheus:
    def __init__(self, binary: str, work_dir: Path, target_port: int) -> None:
        self.port = free_port()
        work_dir.mkdir(parents=True, exist_ok=True)
        config = work_dir / "prometheus.yml"
        config.write_text(
            json.dumps(  # JSON is YAML
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(ALERTS)],
                    "scrape_configs": [
                        {
                            "job_name": dashboard_panels.JOB,
                            "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
                        }
                    ],
                }
            )
        )
        self.log_path = work_dir / "prometheus.log"
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={work_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def assert_alive(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited with {self.process.returncode}:\n{self.log_tail()}")

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def has_data(result: list[dict[str, Any]]) -> bool:
    """At least one series with a number a panel can draw (a quantile of nothing is NaN)."""
    return any(math.isfinite(float(series["value"][1])) for series in result)


def runnable(expr: str) -> str:
    for variable in dashboard_panels.GRAFANA_VARIABLES:
        expr = expr.replace(variable, WINDOW)
    assert "$" not in expr, f"a Grafana variable this test does not substitute: {expr}"
    return expr


@pytest.fixture
def prometheus_bin() -> str:
    return prometheus_binary()


@pytest.fixture
def monitored_worker(
    prometheus_bin: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, events: Events
) -> Iterator[WorkerProcess]:
    """A worker on tests/fixtures/network.yaml that counts its frozen objects every second and
    removes delivered orders at once."""
    process = WorkerProcess(
        kafka_bootstrap,
        topic_prefix,
        tmp_path / "worker",
        extra_env={
            "OMS_GC_COUNT_INTERVAL_S": "1",
            "OMS_GC_FREEZE_INTERVAL_S": "1",
            # A delivered order leaves the state about 2 s after its delivery (the retention panel).
            "OMS_RETENTION_DELIVERED_DAYS": "0.00002",
            "OMS_RETENTION_SWEEP_INTERVAL_S": "1",
        },
    )
    process.start()
    events.config(NETWORK_YAML)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def prometheus(prometheus_bin: str, monitored_worker: WorkerProcess, tmp_path: Path) -> Iterator[Prometheus]:
    server = Prometheus(prometheus_bin, tmp_path / "prometheus", monitored_worker.port)
    try:
        wait_until(server.ready, 30, f"prometheus ready (log: {server.log_path})", server.assert_alive)
        wait_until(
            lambda: server.query(f'up{{job="{dashboard_panels.JOB}"}} == 1'),
            30,
            "the worker scraped",
            server.assert_alive,
        )
        yield server
    finally:
        server.stop()


def feed(worker: WorkerProcess, events: Events) -> None:
    """What the simulator does not send: a bad event, one in the wrong partition, a promise, orders
    (allocated and delivered, short-picked, cancelled, at risk) and returns (in store and shipped)."""
    movements = worker.prefix + "oms.inventory.movements.v1"
    events.send("oms.inventory.movements.v1", b"SKU-STOVE", b"{not json")
    wrong = (partition_for(b"SKU-STOVE", 3) + 1) % 3
    rerouted = events.movement("SKU-STOVE", "DC-SOUTH", "receipt", 1)
    events.producer.produce(movements, key=b"SKU-STOVE", value=json.dumps(rerouted).encode(), partition=wrong)
    stock_up(
        worker,
        events,
        ("SKU-STOVE", "DC-NORTH", 20),
        ("SKU-STOVE", "DC-SOUTH", 20),
        (
            "SKU-TENT",
            "STORE-AMSTERDAM-01",
            3,
        ),  # ORDER-D4 is allocated there (a rejected order is not watched)
    )

    cart = [{"sku": "SKU-STOVE", "quantity": 1}]
    status, answer = worker.post("/promise", json.dumps({"cart": cart, "destination": UTRECHT_HOME}).encode())
    assert status == 200, answer
    standard = next(option for option in answer["options"] if option["option_id"] == "standard")

    # ORDER-D1 takes the promised option (its carrier service is what a delivery teaches).
    events.order_placed("ORDER-D1", standard, UTRECHT_HOME)
    for order_id in ("ORDER-D2", "ORDER-D3"):
        events.order_placed(order_id, an_option("standard", {"SKU-STOVE": 1}), UTRECHT_HOME)
    events.order_placed(
        "ORDER-D4", click_and_collect_option(timedelta(seconds=63)), {"pickup_store_id": "STORE-AMSTERDAM-01"}
    )
    events.flush()
    located = {}
    for order_id in ("ORDER-D1", "ORDER-D2", "ORDER-D3"):
        assert outcome_of(worker, order_id)["outcome"] == "allocated"
        [allocation] = wait_until(lambda o=order_id: allocations_of(worker, o), 20, f"{order_id} allocated")
        located[order_id] = allocation["location_id"]
    events.fulfilment("ORDER-D1", "handed_to_carrier", location_id=located["ORDER-D1"])
    events.fulfilment("ORDER-D1", "delivered")
    events.fulfilment("ORDER-D2", "short_pick", location_id=located["ORDER-D2"], reason="not on the shelf")
    # Returns without an order are not checked against one: restocked in the store, routed.
    events.return_received("RET-D1", "STORE-UTRECHT-01", [("SKU-STOVE", 1, "as_new")], channel="webshop")
    events.return_requested("RET-D2", {"SKU-STOVE": 1}, CUSTOMER_IN_UTRECHT)
    # ORDER-D3 never shipped: its return is refused.
    events.return_received(
        "RET-D3", "STORE-UTRECHT-01", [("SKU-STOVE", 1, "as_new")], order_id="ORDER-D3", channel="webshop"
    )
    events.flush()
    status, answer = worker.post("/orders/ORDER-D3/cancellations", b"")
    assert status == 200, answer
    # A cart hold; a courier order (its slot booked) for more tents than the store has: a courier
    # order's backorder is final at once.
    hold = {"lines": [{"sku": "SKU-STOVE", "location_id": "DC-NORTH", "quantity": 1}]}
    status, answer = worker.post("/holds", json.dumps(hold).encode())
    assert status == 201, answer
    courier = courier_option(slot_at(20))
    courier["shipments"][0]["lines"][0]["quantity"] = 900
    events.order_placed("ORDER-D5", courier, UTRECHT_HOME)
    events.flush()

    for metric, labels in (
        ("oms_transit_observations_total", {"verdict": "learned"}),
        ("oms_resourced_total", {"cause": "short_pick"}),
        ("oms_returns_km_avoided_total", {}),
        ("oms_returns_routed_units_total", {}),
        ("oms_returns_refused_units_total", {}),
        ("oms_orders_at_risk", {"reason": "pick_not_started"}),
        ("oms_rerouted_total", {}),
        ("oms_dead_letters_total", {"reason": "malformed"}),
        ("oms_retention_removed_total", {"ending": "delivered"}),
        ("oms_hold_requests_total", {"answer": "held"}),
        ("oms_courier_slots_total", {"outcome": "booked"}),
        ("oms_backorders_total", {"event": "final"}),
    ):
        wait_until(lambda m=metric, lb=labels: worker.metric(m, **lb) > 0, 20, f"{metric} {labels}")


def test_every_dashboard_panel_shows_data_from_a_fed_worker(
    monitored_worker: WorkerProcess, prometheus: Prometheus, events: Events, kafka_bootstrap: str
) -> None:
    worker = monitored_worker
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=worker.prefix)
    simulated: dict[str, Any] = {}

    def simulate() -> None:
        summary = run_simulation(
            settings, rate=50, seconds=3, seed=17, network=NETWORK_YAML, out=io.StringIO()
        )
        simulated["events"] = summary.events

    simulator = threading.Thread(target=simulate, name="simulator")
    simulator.start()
    try:
        feed(worker, events)
    finally:
        simulator.join(30)
    assert simulated.get("events", 0) > 100, simulated

    queries = [(uid, title, expr, runnable(expr)) for uid, title, expr in dashboard_panels.panel_queries()]
    required = [q for q in queries if q[:3] not in NOT_FED]
    assert len(required) == len(queries) - len(NOT_FED), "NOT_FED names a query no panel has"
    missing: list[tuple[str, str, str]] = []

    def all_have_data() -> bool:
        missing.clear()
        for uid, title, expr, promql in required:
            if not has_data(prometheus.query(promql)):
                missing.append((uid, title, expr))
        return not missing

    deadline = time.monotonic() + 30
    while not all_have_data() and time.monotonic() < deadline:
        prometheus.assert_alive()
        time.sleep(1)
    assert not missing, "panels without data:\n" + "\n".join(f"  {m}" for m in missing)
    for _, _, _, promql in queries:  # the rare ones run too (a typo would be an error)
        prometheus.query(promql)

    # The alert rules load and evaluate against the worker's real series.
    def rules() -> list[dict[str, Any]]:
        return [rule for group in prometheus.api("/api/v1/rules")["groups"] for rule in group["rules"]]

    wait_until(lambda: all(r["health"] == "ok" for r in rules()), 15, "every alert rule evaluated")
    written = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    assert {r["name"] for r in rules()} == {r["alert"] for r in written}
    assert all(not r.get("lastError") for r in rules())
