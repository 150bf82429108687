"""The demo tools on a real broker: ``oms simulate`` feeds a worker cleanly, ``oms watch`` shows it,
the order day places, fulfils and delivers orders (one of them genuinely late to pick, so at risk),
and the same runs on a US state of the Walmart sample with demand shaped on real sales."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from oms_streams.config import Settings
from oms_streams.schemas.availability import AvailabilityRecord, ChannelAvailability
from oms_streams.tools.demand_shape import load_shape
from oms_streams.tools.demo_day import DemoDayOptions, run_demo_day
from oms_streams.tools.demo_network import read_sites, region_document, write_region_network
from oms_streams.tools.fulfilment_sim import FulfilmentTimes
from oms_streams.tools.simulator import SKU_NAMES, run_simulation
from oms_streams.tools.watch import watch_availability
from tests.integration.conftest import NETWORK_YAML
from tests.kafka_broker import make_topics
from tests.worker_process import Events, WorkerProcess, wait_until

AVAILABILITY = "oms.availability.v1"
FAST = FulfilmentTimes(
    pick_wait_s=0.5,
    pick_s=0.4,
    pack_s=0.3,
    handover_s=0.4,
    transit_s=0.8,
    collect_s=0.8,
    late_pick_after_milestone_s=3.0,
)
"""A demo day's fulfilment in seconds, so a test sees orders picked, shipped and delivered."""

DEMO_KEYS = {"OMS_PROMISE_SIGNING_KEYS": "demo-test=demo-test-secret-0123456789"}


@pytest.fixture
def worker_env() -> dict[str, str]:
    """As in the demo (deploy/demo/run.sh): placements must bring their promise token back."""
    return DEMO_KEYS


def webshop(worker: WorkerProcess, sku: str) -> dict[str, Any]:
    status, body = worker.get(f"/availability/{sku}?channel=webshop")
    return body if status == 200 else {}


def test_simulator_feeds_a_worker_without_dead_letters(
    worker: WorkerProcess, kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix)
    out = io.StringIO()
    summary = run_simulation(settings, rate=50, seconds=4, seed=11, network=NETWORK_YAML, out=out)

    assert summary.events >= 150, out.getvalue()  # the opening (12) plus ~200 paced events
    assert summary.failed == 0 and summary.delivered == summary.events, out.getvalue()
    assert {"sale", "transfer", "count", "supplier"} <= summary.by_kind.keys(), summary.by_kind
    assert "(done)" in out.getvalue().splitlines()[-1]

    # Every SKU becomes visible, and the DCs' webshop quantities (no safety stock, no cap) are
    # exactly the ATP of the simulator's own stock model once the worker has caught up.
    def caught_up() -> bool:
        for sku in SKU_NAMES:
            view = webshop(worker, sku)
            if not view or view["total"] <= 0:
                return False
            shown = {row["location_id"]: row["quantity"] for row in view["locations"]}
            for dc in ("DC-NORTH", "DC-SOUTH"):
                if shown.get(dc, 0) != summary.atp[sku][dc]:
                    return False
        return True

    wait_until(caught_up, 20, "availability of every simulated SKU matching the simulator's model")
    assert worker.metric("oms_stock_events_total") >= summary.events  # counts: one per position
    assert worker.metric("oms_dead_letters_total") == 0, worker.log_tail()

    # watch shows the current state of the simulated SKUs (one line each) and returns.
    lines = io.StringIO()
    shown = watch_availability(
        settings, ["SKU-BIKE-LIGHT", "SKU-KAYAK"], channel="webshop", max_records=2, timeout_s=20, out=lines
    )
    assert shown == 2, lines.getvalue()
    text = lines.getvalue()
    assert "SKU-BIKE-LIGHT" in text and "SKU-KAYAK" in text and "DC-NORTH" in text
    assert "SKU-HELMET" not in text


def publish(events: Events, sku: str, webshop_locations: dict[str, int]) -> None:
    """An availability record as a worker would publish it (webshop channel only)."""
    total = sum(webshop_locations.values())
    record = AvailabilityRecord(
        sku=sku,
        published_at=datetime.now(UTC),
        rules_version="demo-1",
        network_atp=total,
        channels={"webshop": ChannelAvailability(total=total, locations=webshop_locations)},
    )
    events.send(AVAILABILITY, sku.encode(), record.model_dump_json().encode())


def test_watch_prints_current_state_then_live_changes(
    kafka_bootstrap: str, topic_prefix: str, events: Events
) -> None:
    topic = topic_prefix + AVAILABILITY
    make_topics(kafka_bootstrap, [topic], partitions=3, config={"cleanup.policy": "compact"})
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix)
    # History: only the latest record of a SKU is shown when watch starts.
    publish(events, "SKU-BIKE-LIGHT", {"DC-NORTH": 30})
    publish(events, "SKU-BIKE-LIGHT", {"DC-NORTH": 40, "STORE-UTRECHT-01": 5})
    publish(events, "SKU-TENT", {"DC-SOUTH": 3})
    events.flush()

    out = io.StringIO()
    result: list[int] = []
    watcher = threading.Thread(
        target=lambda: result.append(
            watch_availability(
                settings,
                ["SKU-BIKE-LIGHT"],
                channel="webshop",
                max_records=3,
                timeout_s=25,
                out=out,
                color=False,
            )
        )
    )
    watcher.start()
    try:
        wait_until(lambda: "SKU-BIKE-LIGHT" in out.getvalue(), 15, "the current state line")
        publish(events, "SKU-TENT", {"DC-SOUTH": 2})  # not asked for
        publish(events, "SKU-BIKE-LIGHT", {"DC-NORTH": 40, "STORE-UTRECHT-01": 4})
        publish(events, "SKU-BIKE-LIGHT", {"DC-NORTH": 43})
        events.flush()
    finally:
        watcher.join(30)
    assert not watcher.is_alive()
    assert result == [3]
    lines = out.getvalue().splitlines()
    assert len(lines) == 3, lines
    assert all("SKU-BIKE-LIGHT" in line and " webshop " in line for line in lines)
    assert lines[0].endswith("45  (DC-NORTH 40, STORE-UTRECHT-01 5)"), lines[0]
    assert lines[1].endswith("44 -1  (DC-NORTH 40, STORE-UTRECHT-01 4 -1)"), lines[1]
    assert lines[2].endswith("43 -1  (DC-NORTH 43 +3, STORE-UTRECHT-01 0 -4)"), lines[2]


def test_demo_day_places_fulfils_and_delivers_orders(
    worker: WorkerProcess, kafka_bootstrap: str, topic_prefix: str
) -> None:
    """The webshop, WMS and carrier simulators against a real worker, through its HTTP API and topics."""
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix)
    run_simulation(settings, rate=20, seconds=1, seed=5, network=NETWORK_YAML, out=io.StringIO())
    wait_until(lambda: webshop(worker, "SKU-BIKE-LIGHT").get("total", 0) > 0, 20, "stock visible")

    options = DemoDayOptions(
        orders_per_minute=60,
        seconds=20,
        seed=3,
        order_prefix="DEMO-",
        times=FAST,
        web_url=f"http://127.0.0.1:{worker.port}",
    )
    out, told = io.StringIO(), io.StringIO()
    summary = run_demo_day(settings, options, network=NETWORK_YAML, out=out, tell_to=told)

    assert summary.placed >= 8, out.getvalue()
    assert summary.errors == 0, out.getvalue()
    assert len(summary.allocated_orders) >= summary.placed // 2, out.getvalue()
    assert summary.reported["picked"] >= 1 and summary.delivered_orders, out.getvalue()
    assert "/orders/DEMO-" in told.getvalue()
    order_id = sorted(summary.delivered_orders)[0]
    status, body = worker.get(f"/orders/{order_id}")
    assert status == 200, body
    assert worker.metric("oms_dead_letters_total") == 0, worker.log_tail()
    every_token_valid(worker, summary.placed)

    # The first click & collect order (its pick due at once: the fixture promises shelf orders ready
    # after the pick alone, and its stores never close) was
    # picked late: the worker put it at risk for the missed pick start, and cleared it once picked.
    assert summary.late_picks, out.getvalue()
    late = sorted(summary.late_picks)[0]
    assert summary.at_risk.get(late) == "pick_not_started", (summary.at_risk, out.getvalue())
    assert "is behind" in told.getvalue() and "at risk, pick_not_started" in told.getvalue()
    wait_until(lambda: worker.get(f"/orders/{late}")[1].get("risk") is None, 20, "the late order cleared")


def every_token_valid(worker: WorkerProcess, placed: int) -> None:
    """The webshop placed every order with its option's promise token, and none was refused."""
    wait_until(
        lambda: worker.metric("oms_promise_tokens_total", verdict="valid") == placed,
        20,
        "every token checked",
    )
    assert worker.metric("oms_promise_tokens_total") == placed


SAMPLE_SITES = Path(__file__).resolve().parent.parent / "fixtures" / "walmart_sample.csv"


@pytest.fixture
def missouri(tmp_path: Path) -> Path:
    """Missouri's real Walmart DCs and stores (from the committed sample) as the worker's network."""
    document = region_document(read_sites(SAMPLE_SITES), "MO", dcs=2, stores=6)
    path = tmp_path / "network-mo.yaml"
    write_region_network(document, path, "MO")
    return path


@pytest.fixture
def us_worker(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, events: Events, missouri: Path
) -> Iterator[WorkerProcess]:
    process = WorkerProcess(kafka_bootstrap, topic_prefix, tmp_path / "worker", DEMO_KEYS)
    process.start()
    events.config(missouri)
    try:
        yield process
    finally:
        process.stop()


def test_the_demo_runs_on_a_us_state_with_shaped_demand(
    us_worker: WorkerProcess, kafka_bootstrap: str, topic_prefix: str, missouri: Path
) -> None:
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix)
    out = io.StringIO()
    sim = run_simulation(settings, rate=20, seconds=2, seed=5, network=missouri, demand=load_shape(), out=out)
    assert sim.failed == 0 and sim.by_kind["sale"] > 0, out.getvalue()
    assert "shaped on real daily sales" in out.getvalue()
    wait_until(lambda: webshop(us_worker, "SKU-BIKE-LIGHT").get("total", 0) > 0, 20, "stock visible")

    options = DemoDayOptions(
        orders_per_minute=60,
        seconds=15,
        seed=4,
        order_prefix="MO-",
        times=FulfilmentTimes(pick_wait_s=0.5, pick_s=0.4, pack_s=0.3, handover_s=0.4, transit_s=0.8),
        web_url=f"http://127.0.0.1:{us_worker.port}",
    )
    lines = io.StringIO()
    summary = run_demo_day(settings, options, network=missouri, out=lines, tell_to=io.StringIO())
    assert summary.placed >= 5 and summary.errors == 0, lines.getvalue()
    assert summary.allocated_orders and summary.reported["picked"] >= 1, lines.getvalue()
    assert us_worker.metric("oms_dead_letters_total") == 0, us_worker.log_tail()
    every_token_valid(us_worker, summary.placed)
