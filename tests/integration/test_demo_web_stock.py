"""The stock simulator and the order day together on a real broker and worker, as ``make demo``
runs them: the simulator follows the web orders' allocations and departures on the public topics
(``web_order_stock``), and the audit of the run finds nothing (no negative on hand)."""

from __future__ import annotations

import io
import threading

import pytest

from oms_streams.config import Settings
from oms_streams.tools.demo_day import DemoDayOptions, run_demo_day
from oms_streams.tools.simulator import SimulationSummary, run_simulation
from tests.integration.conftest import NETWORK_YAML
from tests.integration.test_delivery_failures import assert_clean_audit
from tests.integration.test_demo_tools import DEMO_KEYS, FAST, webshop
from tests.worker_process import WorkerProcess, wait_until


@pytest.fixture
def worker_env() -> dict[str, str]:
    return DEMO_KEYS


def test_the_stock_simulator_follows_what_web_orders_take(
    worker: WorkerProcess, kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix)
    sim: list[SimulationSummary] = []
    sim_out = io.StringIO()
    stocks = threading.Thread(
        target=lambda: sim.append(
            run_simulation(settings, rate=15, seconds=30, seed=5, network=NETWORK_YAML, out=sim_out)
        )
    )
    stocks.start()
    wait_until(lambda: webshop(worker, "SKU-BIKE-LIGHT").get("total", 0) > 0, 20, "stock visible")
    options = DemoDayOptions(
        orders_per_minute=90,
        seconds=20,
        seed=4,
        order_prefix="WEB-",
        times=FAST,
        web_url=f"http://127.0.0.1:{worker.port}",
    )
    out = io.StringIO()
    day = run_demo_day(settings, options, network=NETWORK_YAML, out=out, tell_to=io.StringIO())
    stocks.join(60)
    assert sim, sim_out.getvalue()
    followed = sim[0].web_orders
    assert day.errors == 0 and day.allocations >= 5, out.getvalue()
    # Every allocation the day's WMS saw, the simulator saw too (it reads from the end of the topics
    # as they were at its start, before the first order), and some have left their location.
    assert followed["set_aside"] == day.allocations, (followed, out.getvalue())
    assert followed["left"] >= 1 and followed["left"] + followed["put_back"] <= followed["set_aside"]
    assert "web orders" in sim_out.getvalue()
    assert_clean_audit(kafka_bootstrap, topic_prefix)
