"""``python -m bench.scale_out [--workers 1 2]``: the ledger's rate with 1, 2, ... workers.

For each worker count: fresh topics and network (as ``bench.run``'s phase (c)), the workers started
and ready first (so no rebalance falls inside the measurement), then N movements produced at once;
the rate is from the first applied movement to the N-th, summed over the workers' /metrics. On this
machine the broker, the producer and the workers share 2 cores: two workers measure the machine as
much as the design. Figures only.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from bench.data import MovementGenerator, build_network
from bench.kafka import broker, bulk_producer, produce_all
from bench.ledger import EVENTS
from bench.run import Bench, log, parse_args


def measure(bench: Bench, workers: int, movements: int) -> dict[str, Any]:
    prefix, app_id = f"{bench.run_id}w{workers}.", f"{bench.run_id}w{workers}"
    network = build_network(bench.args.locations, bench.work)
    settings = bench.prepare(prefix, app_id, network.yaml_path)
    started = [bench.worker(prefix, app_id, f"scale{workers}-{i}") for i in range(workers)]
    for w in started:
        bench.wait_config(w, bench.args.locations)
    time.sleep(10)  # let the group settle with every member
    messages = list(MovementGenerator(network, bench.args.skus, tag=app_id).many(movements))
    produce_all(bulk_producer(bench.bootstrap), settings.topic("oms.inventory.movements.v1"), messages)
    samples: list[tuple[float, float]] = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        applied = sum(w.metric(EVENTS) for w in started)
        if applied > 0:
            samples.append((time.monotonic(), applied))
        if applied >= movements:
            break
        time.sleep(0.1)
    per_worker = [w.metric(EVENTS) for w in started]
    for w in started:
        w.stop()
    (t0, c0), (t1, c1) = samples[0], samples[-1]
    rate = (c1 - c0) / (t1 - t0)
    return {"workers": workers, "events": int(c1), "events_per_s": rate, "per_worker": per_worker}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_out", description=__doc__)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--movements", type=int, default=100_000)
    own = parser.parse_known_args()[0]
    args = parse_args(["--partitions", "6"])
    with broker(os.environ.get("OMS_KAFKA_BOOTSTRAP")) as (bootstrap, _):
        bench = Bench(args, bootstrap)
        results = []
        for n in own.workers:
            result = measure(bench, n, own.movements)
            rate, split = result["events_per_s"], result["per_worker"]
            log(f"{n} worker(s): {rate:,.0f} movements/s (applied per worker: {split})")
            results.append(result)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
