"""The demo tools on a real broker: ``oms simulate`` feeds a worker cleanly, ``oms watch`` shows it."""

from __future__ import annotations

import io
import threading
from datetime import UTC, datetime
from typing import Any

from oms_streams.config import Settings
from oms_streams.schemas.availability import AvailabilityRecord, ChannelAvailability
from oms_streams.tools.demo_day import DemoDayOptions, run_demo_day
from oms_streams.tools.fulfilment_sim import FulfilmentTimes
from oms_streams.tools.simulator import SKU_NAMES, run_simulation
from oms_streams.tools.watch import watch_availability
from tests.integration.conftest import NETWORK_YAML
from tests.kafka_broker import make_topics
from tests.worker_process import Events, WorkerProcess, wait_until

AVAILABILITY = "oms.availability.v1"


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

    fast = FulfilmentTimes(
        pick_wait_s=0.5, pick_s=0.4, pack_s=0.3, handover_s=0.4, transit_s=0.8, collect_s=0.8
    )
    options = DemoDayOptions(
        orders_per_minute=60,
        seconds=20,
        seed=3,
        order_prefix="DEMO-",
        times=fast,
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
