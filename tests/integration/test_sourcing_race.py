"""Thousands of orders race for scarce stock on two workers while one is killed (SIGKILL) and
restarted: every order ends with exactly one outcome, nothing is oversold or allocated twice, and
``oms audit`` finds nothing."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from tests.integration.conftest import NETWORK_YAML
from tests.integration.test_promise_and_risk import UTRECHT_HOME
from tests.integration.test_sourcing import ALLOCATIONS, SOURCED, an_option
from tests.worker_process import REPO_ROOT, Events, WorkerProcess, read_topic, restart_if_stalled, wait_until

SKUS = [f"SKU-RACE-{i:02d}" for i in range(12)]
SHIPPING = ("DC-NORTH", "DC-SOUTH")
ORDERS = 2000


def decoded(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    return [json.loads(v) for _, v in read_topic(bootstrap, topic, timeout_s=30) if v is not None]


def run_audit(bootstrap: str, prefix: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "OMS_KAFKA_BOOTSTRAP": bootstrap,
        "OMS_TOPIC_PREFIX": prefix,
        "OMS_APP_ID": f"{prefix}oms",
    }
    return subprocess.run(
        [sys.executable, "-m", "oms_streams.cli", "audit", "--settle-s", "0"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_orders_racing_for_scarce_stock_across_a_worker_crash_never_oversell(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, events: Events
) -> None:
    stall = {"OMS_STALL_AFTER_S": "10"}
    first = WorkerProcess(kafka_bootstrap, topic_prefix, tmp_path / "w1", extra_env=stall).start()
    events.config(NETWORK_YAML)
    second = WorkerProcess(kafka_bootstrap, topic_prefix, tmp_path / "w2", extra_env=stall).start()
    try:
        rng = random.Random(11)
        # About 4 units per order: the stock runs out around order 1,400, well after the crash.
        stock = {(sku, dc): rng.randint(150, 320) for sku in SKUS for dc in SHIPPING}
        for (sku, dc), units in stock.items():
            events.movement(sku, dc, "receipt", units)
        events.flush()
        wait_until(
            lambda: all(
                (first.get(f"/availability/{sku}")[1] or {}).get("network_atp")
                == sum(stock[(sku, dc)] for dc in SHIPPING)
                for sku in SKUS
            ),
            60,
            "stock visible",
        )
        placed: dict[str, dict[str, int]] = {}
        for i in range(ORDERS):
            order_id = f"RACE-{i:05d}"
            cart = {sku: rng.randint(1, 3) for sku in rng.sample(SKUS, rng.randint(1, 3))}
            placed[order_id] = cart
            events.order_placed(order_id, an_option("standard", cart), UTRECHT_HOME)
            if i == ORDERS // 3:
                events.flush()
                first.stop(signal.SIGKILL)  # in the middle of the race, without any goodbye
            if i == ORDERS // 2:
                first.start()
        events.flush()

        def outcomes() -> dict[str, list[dict[str, Any]]]:
            by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for record in decoded(kafka_bootstrap, topic_prefix + SOURCED):
                by_order[record["order_id"]].append(record)
            return by_order

        def probe() -> None:  # what a liveness probe on /health does (see test_two_workers)
            for worker in (first, second):
                restart_if_stalled(worker)

        sourced = wait_until(
            lambda: (o := outcomes()) and len(o) == ORDERS and o, 240, "every order sourced", probe
        )

        # Exactly one outcome per order (a redelivered record has the same id and content; a round
        # published again after a crash carries no trace).
        for records in sourced.values():
            distinct = {
                json.dumps({k: v for k, v in r.items() if k not in ("occurred_at", "trace")}, sort_keys=True)
                for r in records
            }
            assert len({r["event_id"] for r in records}) == 1 and len(distinct) == 1, records
        results = Counter(records[0]["outcome"] for records in sourced.values())
        assert results["allocated"] > 0 and results["rejected"] + results["partially_allocated"] > 0, results

        # No allocation twice: one content per allocation id; never more allocated than there was.
        by_id: dict[str, set[str]] = defaultdict(set)
        allocated: Counter[tuple[str, str]] = Counter()
        for record in decoded(kafka_bootstrap, topic_prefix + ALLOCATIONS):
            key = json.dumps(
                {k: v for k, v in record.items() if k not in ("occurred_at", "trace")}, sort_keys=True
            )
            if key not in by_id[record["allocation_id"]]:
                by_id[record["allocation_id"]].add(key)
                for line in record["lines"]:
                    allocated[(line["sku"], record["location_id"])] += line["quantity"]
        assert all(len(contents) == 1 for contents in by_id.values())
        listed = {a for records in sourced.values() for a in records[0]["allocations"]}
        assert listed == set(by_id)
        for position, units in allocated.items():
            assert units <= stock[position], f"oversold {position}: {units} > {stock[position]}"
        for order_id, records in sourced.items():
            if records[0]["outcome"] == "allocated":
                got: Counter[str] = Counter()
                for allocation_id in records[0]["allocations"]:
                    for content in by_id[allocation_id]:
                        for line in json.loads(content)["lines"]:
                            got[line["sku"]] += line["quantity"]
                assert dict(got) == placed[order_id], order_id

        audit = wait_until(
            lambda: (r := run_audit(kafka_bootstrap, topic_prefix)).returncode == 0 and r, 60, "a clean audit"
        )
        print(audit.stdout[-2000:])
        refused = sum(w.metric("oms_reservations_refused_total") for w in (first, second))
        print(f"outcomes: {dict(results)}; reservations refused (re-planned): {refused:.0f}")
    finally:
        first.stop()
        second.stop()
