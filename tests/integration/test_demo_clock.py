"""The whole demo on one simulated clock (``OMS_CLOCK``, docs/demo-clock.md), on a real broker.

Business time starts 20 days ahead of the wall clock and runs 600 times as fast. The worker, the
stock simulator and the order day all read the same ``OMS_CLOCK``: promises are made for the
business day, the worker's milestone checks put a genuinely late pick at risk by business time,
every promise token signed in business time is accepted, a cart hold expires at its business TTL
(seconds of wall time), and the technical timeouts stay wall time (no reply is chased early)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from oms_streams import clock
from oms_streams.config import Settings
from oms_streams.tools.demo_day import DemoDayOptions, run_demo_day
from oms_streams.tools.simulator import run_simulation
from tests.integration.conftest import NETWORK_YAML
from tests.integration.test_demo_tools import DEMO_KEYS, FAST, every_token_valid, webshop
from tests.worker_process import WorkerProcess, wait_until

SPEED = 600
AHEAD = timedelta(days=20)
UTRECHT_HOME = {"postal_code": "3511 AB", "lat": 52.0894, "lon": 5.11, "region": "NL-UT"}


@pytest.fixture
def shared_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """This process's OMS_CLOCK (the simulators run in it), handed to the worker too."""
    start = datetime.now(UTC).replace(microsecond=0) + AHEAD
    text = f"{start.isoformat()}@{time.time():.3f}*{SPEED}"
    monkeypatch.setenv(clock.ENV, text)
    clock.current.cache_clear()
    yield text
    monkeypatch.delenv(clock.ENV)
    clock.current.cache_clear()


@pytest.fixture
def worker_env(shared_clock: str) -> dict[str, str]:
    return {**DEMO_KEYS, "OMS_CLOCK": shared_clock, "OMS_HOLD_EXPIRY_CHECK_S": "0.5"}


def business_now() -> datetime:
    return clock.now()


def promise(worker: WorkerProcess, cart: dict[str, int]) -> dict[str, Any]:
    body = {"cart": [{"sku": s, "quantity": q} for s, q in cart.items()], "destination": UTRECHT_HOME}
    status, answer = worker.post("/promise", json.dumps(body).encode())
    assert status == 200, answer
    return dict(answer)


def test_a_demo_day_on_the_shared_clock(
    worker: WorkerProcess, kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix)
    out = io.StringIO()
    # 0.05 events a business second: 30 a wall second at 600 x.
    sim = run_simulation(settings, rate=0.05, seconds=1, seed=5, network=NETWORK_YAML, out=out)
    assert sim.failed == 0 and sim.events >= 20, out.getvalue()
    assert f"OMS_CLOCK={clock.current()}" in out.getvalue()
    wait_until(lambda: webshop(worker, "SKU-BIKE-LIGHT").get("total", 0) > 0, 20, "stock visible")
    assert "business time on OMS_CLOCK=" in worker.log_path.read_text()

    # Promised for the business day, not the wall clock's (20 days earlier).
    answer = promise(worker, {"SKU-BIKE-LIGHT": 1})
    assert answer["options"], answer
    for option in answer["options"]:
        start = datetime.fromisoformat(option["window_start"])
        assert business_now() - timedelta(hours=1) < start < business_now() + timedelta(days=10), option

    options = DemoDayOptions(
        orders_per_minute=0.1,  # six a business hour: one a wall second at 600 x
        seconds=20,
        seed=3,
        order_prefix="CLOCK-",
        times=FAST,  # late picks 3 wall seconds after the milestone: 30 business minutes
        web_url=f"http://127.0.0.1:{worker.port}",
    )
    lines, told = io.StringIO(), io.StringIO()
    summary = run_demo_day(settings, options, network=NETWORK_YAML, out=lines, tell_to=told)
    assert 8 <= summary.placed <= 40 and summary.errors == 0, lines.getvalue()
    assert len(summary.allocated_orders) >= summary.placed // 2, lines.getvalue()
    assert summary.reported["picked"] >= 1 and summary.delivered_orders, lines.getvalue()
    every_token_valid(worker, summary.placed)  # signed and checked in business time
    # The late pick is at risk by the worker's business-time milestone check, and clears.
    assert summary.late_picks, lines.getvalue()
    late = sorted(summary.late_picks)[0]
    assert summary.at_risk.get(late) == "pick_not_started", (summary.at_risk, lines.getvalue())
    wait_until(lambda: worker.get(f"/orders/{late}")[1].get("risk") is None, 20, "the late order cleared")
    # Reply timeouts stay wall time: 30 s of it, not 30 business seconds (0.05 s), so no ledger
    # was chased for a reply during the day.
    assert worker.metric("oms_sourcing_resends_total") == 0, worker.log_tail()
    assert worker.metric("oms_dead_letters_total") == 0, worker.log_tail()


def test_a_cart_hold_expires_at_its_business_ttl(
    worker: WorkerProcess, kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix)
    run_simulation(settings, rate=0.05, seconds=1, seed=5, network=NETWORK_YAML, out=io.StringIO())
    wait_until(lambda: webshop(worker, "SKU-BIKE-LIGHT").get("total", 0) > 0, 20, "stock visible")
    option = next(o for o in promise(worker, {"SKU-BIKE-LIGHT": 1})["options"] if o["method"] == "standard")
    body = {"option": option, "destination": UTRECHT_HOME, "ttl_s": 1800}  # its token signed in business time
    status, held = worker.post("/holds", json.dumps(body).encode())
    assert status == 201 and held["status"] == "held", held
    expires = datetime.fromisoformat(held["expires_at"])
    assert abs((expires - business_now() - timedelta(minutes=30)).total_seconds()) < 600, held
    # 30 business minutes are 3 wall seconds: expired long before 30 wall minutes.
    wait_until(
        lambda: worker.get(f"/holds/{held['hold_id']}")[1].get("status") == "expired", 20, "the hold expired"
    )
