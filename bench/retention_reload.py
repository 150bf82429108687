"""``python -m bench.retention_reload [N]``: what a rebalance's reload of the orders runtime costs
with N finished rows, N open rows, and N finished plus N/100 open (docs/retention.md).

The orders runtime over in-memory tables (the streaming tests' harness), in one process; CPU time,
best of 3. Finished rows cost only their index entries; open rows are read and checked. Figures only.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import timedelta

import oms_streams.streaming.orders_runtime as orders_runtime
from oms_streams.adapters.timestamps import epoch_ms
from tests.streaming.test_orders_runtime import T0, click_and_collect
from tests.streaming.test_retention import Orders

CHUNK = 500


def build(n_finished: int, n_open: int) -> Orders:
    """Orders placed, the first ``n_finished`` of them collected (finished)."""
    harness = Orders()
    orders_runtime.now_ms = lambda: epoch_ms(harness.now)  # type: ignore[assignment]
    option = click_and_collect(T0 + timedelta(hours=1))
    placements = [harness.placement(f"O-{i}", option) for i in range(n_finished + n_open)]
    collections = [
        harness.fulfilment(f"O-{i}", "collected", location_id="STORE-AMSTERDAM-01") for i in range(n_finished)
    ]
    for events in (placements, collections):
        for start in range(0, len(events), CHUNK):
            harness.apply(*events[start : start + CHUNK])
    return harness


def reload_best_of_3(harness: Orders) -> tuple[float, int]:
    """CPU seconds of the fastest of three reloads, and how many orders it watches."""
    best, watched = float("inf"), 0
    for _ in range(3):
        started = time.process_time()
        watched = asyncio.run(harness.owner().reload())
        best = min(best, time.process_time() - started)
    return best, watched


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    for label, finished, open_ in (("finished", n, 0), ("open", 0, n), ("99 % finished", n, n // 100)):
        seconds, watched = reload_best_of_3(build(finished, open_))
        print(
            f"{label:>14}: {finished:>7,} finished + {open_:>7,} open rows: reload {seconds * 1000:8.1f} ms "
            f"of CPU, {watched:,} orders watched"
        )


if __name__ == "__main__":
    main()
