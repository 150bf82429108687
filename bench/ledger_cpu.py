"""``python -m bench.ledger_cpu``: the ledger runtime's CPU per event, in-process, without a broker.

The same ``LedgerRuntime.apply_batch`` the worker runs, fed with the bench's movements in batches,
over a RocksDB (or in-memory) ledger store; the producer is a stub that only counts what it is
handed. What Kafka costs (fetch, produce, acknowledgements) is left out on purpose: this is the
Python work per event that bounds a worker, measured without the noise of a shared broker.

    python -m bench.ledger_cpu [--movements 100000] [--batch 5000] [--one-per-sku] [--profile]
    python -m bench.ledger_cpu --counts 1000 [--locations 200] [--profile]

``--one-per-sku`` makes every batch hold at most one event per SKU (the paced-latency regime, where
nothing coalesces); ``--counts N`` applies N ``StockCount`` messages of a position at every location
instead (the (d) phase of ``bench.run``, 125 to a batch as the worker's 1 MiB chunks hold them);
``--profile`` prints cProfile's top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.data import RULES, MovementGenerator, Network, build_network, count_messages
from oms_streams.adapters.config import decode_rules
from oms_streams.adapters.reservations import decode_reservations
from oms_streams.adapters.stock import decode_count, decode_movement
from oms_streams.config import Settings
from oms_streams.domain.visibility import Location, LocationType, VisibilityRules
from oms_streams.metrics import Metrics
from oms_streams.streaming.ledger_engine import Record
from oms_streams.streaming.ledger_runtime import AvailabilityView, LedgerRuntime
from oms_streams.streaming.ledger_store import LedgerStore, MemoryDb, RocksDb, _Partition
from oms_streams.streaming.network import NetworkState
from oms_streams.streaming.partitioning import partition_for

PARTITIONS = 4


class _Follower:
    async def caught_up(self, timeout_s: float) -> None:
        return None


class _Sink:
    def __init__(self) -> None:
        self.records = 0

    async def send_many(self, records: list[Any]) -> None:
        self.records += len(records)

    async def produce(self, topic: str, key: bytes, value: bytes | None) -> None:
        self.records += 1


def runtime(network_file: Network, data_dir: Path | None) -> tuple[LedgerRuntime, _Sink]:
    network = NetworkState({}, Metrics(), lambda reason, record: None, on_change=lambda: None)
    types = {"dc": LocationType.DC, "store": LocationType.STORE}
    for loc in network_file.locations:
        network.locations[loc] = Location(loc, types["dc" if loc.startswith("DC-") else "store"])
    rules = decode_rules(orjson.dumps(RULES))
    assert isinstance(rules, VisibilityRules)
    network.rules = rules
    store = LedgerStore("bench", PARTITIONS, data_dir, {})
    for p in range(PARTITIONS):
        path = data_dir / f"p{p}" if data_dir is not None else None
        store._owned[p] = _Partition(RocksDb(path) if path is not None else MemoryDb(), path)
    sink = _Sink()
    rt = LedgerRuntime(
        store=store, send_many=sink.send_many, network=network, config_follower=_Follower(),  # type: ignore[arg-type]
        view=AvailabilityView(), view_follower=_Follower(),  # type: ignore[arg-type]
        decoders={"movements": decode_movement, "counts": decode_count, "reservations": decode_reservations},
        availability_topic="availability", replies_topic="replies", dlq_topic="dlq",
        produce=sink.produce, metrics=Metrics(), partitions=PARTITIONS,
    )
    return rt, sink


def batches(generator: MovementGenerator, n: int, size: int, one_per_sku: bool) -> list[list[Record]]:
    out: list[list[Record]] = []
    now = time.time()
    skus = list(generator.skus)
    for offset in range(n):
        if not out or len(out[-1]) >= size:
            out.append([])
        sku = skus[len(out[-1]) % len(skus)] if one_per_sku else None
        key, value = generator.movement(sku)
        out[-1].append(Record("movements", partition_for(key, PARTITIONS), offset, key, value, now, None))
    return out


def counts(network_file: Network, n: int, per_batch: int = 125) -> list[list[Record]]:
    now, out = time.time(), []
    for offset, (key, value) in enumerate(count_messages(network_file, n)):
        if offset % per_batch == 0:
            out.append([])
        out[-1].append(Record("counts", partition_for(key, PARTITIONS), offset, key, value, now, None))
    return out


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="ledger-cpu-") as scratch:  # the RocksDB goes with it
        await measure(args, Path(scratch))


async def measure(args: argparse.Namespace, scratch: Path) -> None:
    data_dir = None if args.memory else scratch / "db"
    network = build_network(args.locations, scratch / "network")
    rt, sink = runtime(network, data_dir)
    if args.counts:
        what = f"{args.counts:,} counts x {args.locations} locations"
        await timed(rt, sink, counts(network, args.counts), what, args)
        return
    generator = MovementGenerator(network, args.skus)
    # Every SKU loaded and most positions created first, as in a worker that runs for a while.
    warm = batches(generator, args.skus * args.locations, args.batch, one_per_sku=False)
    for batch in warm:
        await rt.apply_batch(batch)
    work = batches(generator, args.movements, args.batch, args.one_per_sku)
    mix = "one per SKU" if args.one_per_sku else "random SKUs"
    what = f"{args.movements:,} movements in batches of {args.batch} ({mix}), {args.skus:,} SKUs"
    await timed(rt, sink, work, f"{what} x {args.locations} locations", args)


async def timed(rt: LedgerRuntime, sink: _Sink, work: list[list[Record]], what: str, args: Any) -> None:
    gc.set_threshold(*Settings().gc_thresholds)  # the worker's collector, as ``oms worker`` sets it
    gc.freeze()
    profiler = cProfile.Profile(time.process_time) if args.profile else None  # CPU, not preemption
    sink.records = 0
    started, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    for batch in work:
        await rt.apply_batch(batch)
    if profiler:
        profiler.disable()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    n = sum(len(b) for b in work) * (args.locations if args.counts else 1)
    unit = "position" if args.counts else "event"
    print(what)
    print(f"  {n / cpu:,.0f} {unit}s/s of CPU ({1e6 * cpu / n:.1f} µs/{unit}), wall {n / wall:,.0f}/s;"
          f" {sink.records / n:.2f} records produced per {unit}")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.ledger_cpu", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--movements", type=int, default=100_000)
    p.add_argument("--skus", type=int, default=2_000)
    p.add_argument("--locations", type=int, default=50)
    p.add_argument("--batch", type=int, default=5_000)
    p.add_argument("--one-per-sku", action="store_true")
    p.add_argument("--counts", type=int, default=0, help="apply N counts instead of movements")
    p.add_argument("--memory", action="store_true", help="in-memory store instead of RocksDB")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--top", type=int, default=30)
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
