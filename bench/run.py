"""``python -m bench.run``: Kafka client ceilings vs the oms-streams ledger pipeline, in one run.

Phases, all on one broker (``OMS_KAFKA_BOOTSTRAP``, else a private one from deploy/kafka/start.sh):

  preload  N movements (2,000 SKUs x 50 Texas sites by default) onto the movements topic
  warm-up  (--warmup-s, default 40) a throwaway worker applies fresh movements, 100,000 at a time,
           until that many seconds have passed: a broker just started runs its JIT compiler and
           fills its caches on the same 2 cores, and (c) measured on a cold broker came out
           11,800 -> 15,800 -> 17,500 ev/s in three runs one after the other (2026-12-08)
  (a)      bare aiokafka consume→produce passthrough of that topic (getmany + send_batch)
  (b)      bare confluent-kafka passthrough (consume(5000) + produce/poll)
  (c)      an ``oms worker`` started on the pre-loaded topic: events/s from its first to its N-th
           applied event (``oms_stock_events_total``), start-up excluded
  latency  movements paced at 0.5 x (c) for 20 s into that worker: produce timestamp → availability
           record seen by a consumer (p50/p99), plus the worker's own histogram; worker peak RSS
           (--latency-curve 0.05,0.1,0.25: again at those loads, for p50/p99 against load)
  (d)      a fresh worker on a 200-site network: 5,000 StockCount messages x 200 positions (1M)
           produced at once; time until all 5,000 SKUs' availability is on the output topic; its RSS
  profile  (--profile) extra passes of (c) and a smaller (d) under py-spy, broken down by stage

Prints a table and writes bench/results/latest.json. Figures only: nothing here asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import ledger, passthrough
from bench.cpu import CpuWindow, broker_pids
from bench.data import REPO_ROOT, MovementGenerator, build_network, count_messages
from bench.kafka import (
    broker,
    bulk_producer,
    create_topics,
    delete_topics_with_prefixes,
    produce_all,
    wait_for,
)
from bench.profile import Profiler, breakdown, render
from bench.worker import Worker
from oms_streams import compiled

RESULTS = REPO_ROOT / "bench" / "results"
TARGETS = {"c_over_a": 0.25, "p99_ms": 50.0, "count_seconds": 20.0, "count_rss_mib": 1536.0}
"""Issue 14's targets on this machine (also: the ledger pipeline at 20,000 movements/s per worker)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--movements", type=int, default=200_000)
    p.add_argument("--skus", type=int, default=2_000)
    p.add_argument("--locations", type=int, default=50)
    p.add_argument("--count-skus", type=int, default=5_000)
    p.add_argument("--count-locations", type=int, default=200)
    p.add_argument("--latency-seconds", type=float, default=20.0)
    p.add_argument("--latency-load", type=float, default=0.5, help="fraction of (c)'s rate (default 0.5)")
    p.add_argument("--latency-curve", default="", metavar="LOADS",
                   help="more latency phases after the first, at these fractions of (c)'s rate "
                        "(comma-separated, e.g. 0.05,0.1,0.25): p50/p99 against load")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--warmup-s", type=float, default=40.0,
                   help="seconds of throwaway ledger work to warm the broker first (0: none)")
    p.add_argument("--count-timeout", type=float, default=600.0)
    p.add_argument("--skip-count", action="store_true", help="skip (d)")
    p.add_argument("--skip-passthrough", action="store_true", help="skip (a) and (b)")
    p.add_argument("--profile", action="store_true", help="extra py-spy passes of (c) and (d)")
    p.add_argument("--quick", action="store_true", help="small smoke run (< 1 min)")
    p.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    p.add_argument("--worker-env", action="append", default=[], metavar="K=V",
                   help="extra env for the worker, e.g. OMS_BATCH_MAX=10000 (repeatable)")
    p.add_argument("--worker-module", default="oms_streams.cli",
                   help="module run as `python -m MODULE worker` (bench.patched_worker for what-ifs)")
    args = p.parse_args(argv)
    if args.quick:
        args.movements, args.skus, args.count_skus, args.count_locations = 10_000, 500, 300, 50
        args.latency_seconds, args.warmup_s = 5.0, 0.0
    return args


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace, bootstrap: str) -> None:
        self.args = args
        self.bootstrap = bootstrap
        self.run_id = f"bench{int(time.time()) % 1_000_000}"
        self.work = Path("/tmp/oms-bench") / self.run_id
        self.logs = RESULTS / "logs"
        self.worker_env = dict(kv.split("=", 1) for kv in args.worker_env)
        self.workers: list[Worker] = []

    # --- helpers --------------------------------------------------------------------------------

    def cpu(self, *workers: Worker) -> CpuWindow:
        """Start measuring CPU of ours (bench, workers, broker) vs other processes on the host."""
        return CpuWindow([os.getpid(), *(w.pid for w in workers), *broker_pids(self.bootstrap)])

    def settings(self, prefix: str, app_id: str) -> Any:
        from oms_streams.config import Settings

        return Settings(kafka_bootstrap=self.bootstrap, topic_prefix=prefix, app_id=app_id,
                        partitions=self.args.partitions)

    def prepare(self, prefix: str, app_id: str, network_yaml: Path) -> Any:
        """Create the worker's topics and publish the network, as an operator would before start."""
        from oms_streams.streaming.admin import ensure_topics
        from oms_streams.streaming.config_publisher import publish_network_config

        settings = self.settings(prefix, app_id)
        ensure_topics(settings)
        publish_network_config(settings, network_yaml)
        return settings

    def worker(self, prefix: str, app_id: str, name: str) -> Worker:
        w = Worker(self.bootstrap, prefix, app_id, self.work / name, self.logs / f"{self.run_id}-{name}.log",
                   self.args.partitions, self.worker_env, self.args.worker_module)
        self.workers.append(w)
        return w.start()

    @staticmethod
    def wait_config(w: Worker, n_locations: int) -> None:
        def applied() -> bool:
            return w.metric("oms_config_updates_total", kind="location", verdict="applied") >= n_locations

        wait_for(applied, 60)
        try:  # /health 'ready' where the worker has it (resync done)
            def ready() -> bool:
                with urllib.request.urlopen(f"http://127.0.0.1:{w.port}/health", timeout=5) as r:
                    return bool(json.loads(r.read()).get("ready", True))
            wait_for(ready, 60, 0.2)
        except Exception:
            pass
        time.sleep(2)

    # --- phases ---------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        a = self.args
        out: dict[str, Any] = {
            "run_id": self.run_id, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                     "machine": platform.machine()},
            "bootstrap": self.bootstrap,
            "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
        }
        prefix, app_id = f"{self.run_id}.", self.run_id
        network = build_network(a.locations, self.work)
        settings = self.prepare(prefix, app_id, network.yaml_path)
        movements_topic = settings.topic("oms.inventory.movements.v1")
        generator = MovementGenerator(network, a.skus, tag=self.run_id)
        t = time.monotonic()
        messages = list(generator.many(a.movements))
        avg = sum(len(v) for _, v in messages) / len(messages)
        log(f"generated {len(messages):,} movements ({avg:.0f} B avg) in {time.monotonic() - t:.1f}s")
        t = time.monotonic()
        produce_all(bulk_producer(self.bootstrap), movements_topic, messages)
        out["preload"] = {"messages": len(messages), "avg_bytes": round(avg), "seconds": time.monotonic() - t}
        log(f"pre-loaded {movements_topic} in {out['preload']['seconds']:.1f}s")

        if a.warmup_s > 0:
            out["warmup"] = self.warm_up(min(len(messages), 100_000), network, a.warmup_s)

        if not a.skip_passthrough:
            dst_a, dst_b = f"{prefix}pass.aiokafka", f"{prefix}pass.confluent"
            create_topics(self.bootstrap, [dst_a, dst_b], a.partitions)
            window = self.cpu()
            out["a_aiokafka"] = passthrough.aiokafka_passthrough(
                self.bootstrap, movements_topic, dst_a, len(messages), f"{self.run_id}-pass-a")
            out["a_aiokafka"]["cpu"] = window.result()
            log(f"(a) aiokafka passthrough: {out['a_aiokafka']['events_per_s']:,.0f} events/s")
            window = self.cpu()
            out["b_confluent"] = passthrough.confluent_passthrough(
                self.bootstrap, movements_topic, dst_b, len(messages), f"{self.run_id}-pass-b")
            out["b_confluent"]["cpu"] = window.result()
            log(f"(b) confluent passthrough: {out['b_confluent']['events_per_s']:,.0f} events/s")

        log("(c) starting the worker on the pre-loaded topic ...")
        wc = self.worker(prefix, app_id, "c")
        window = self.cpu(wc)
        out["c_ledger"] = ledger.throughput(wc, len(messages), timeout_s=max(300.0, len(messages) / 200),
                                            bootstrap=self.bootstrap,
                                            out_topic=settings.topic("oms.availability.v1"))
        out["c_ledger"]["cpu"] = window.result()
        c_applied = out["c_ledger"]["events_per_s"]
        c_rate = out["c_ledger"].get("events_per_s_e2e") or c_applied
        log(f"(c) ledger pipeline: {c_applied or 0:,.0f} events/s applied, {c_rate or 0:,.0f} events/s "
            f"with availability on Kafka, worker CPU {out['c_ledger'].get('worker_cpu_pct', 0):.0f}%")
        if c_rate:
            rate = a.latency_load * c_rate
            log(f"latency: pacing {rate:,.0f} movements/s for {a.latency_seconds:.0f}s ...")
            window = self.cpu(wc)
            out["latency"] = ledger.latency(
                self.bootstrap, wc, movements_topic, settings.topic("oms.availability.v1"), generator,
                rate, a.latency_seconds)
            out["latency"]["cpu"] = window.result()
            lat = out["latency"]
            log(f"latency: p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms ({lat['matched']:,} matched)")
            out["latency_curve"] = [self.latency_at(wc, settings, generator, float(load), c_rate)
                                    for load in a.latency_curve.split(",") if load.strip()]
        out["c_worker_memory_mib"] = wc.memory()
        wc.stop()

        if not a.skip_count:
            out["d_count"] = self.count_phase("d", a.count_skus, a.count_locations)
        if a.profile:
            out["profile"] = self.profile_passes(messages, network)
        return out

    def warm_up(self, count: int, network: Any, seconds: float) -> dict[str, Any]:
        """A throwaway worker (its own topics) applies ``count`` new movements (not duplicates: those
        cost little), again and again until ``seconds`` have passed: the broker's JIT and caches
        are warm when the phases start."""
        prefix, app_id = f"{self.run_id}w.", f"{self.run_id}w"
        settings = self.prepare(prefix, app_id, network.yaml_path)
        topic = settings.topic("oms.inventory.movements.v1")
        log(f"warm-up: a throwaway worker applies fresh movements for {seconds:.0f}s ...")
        started, passes, applied = time.monotonic(), 0, 0
        w = self.worker(prefix, app_id, "warmup")
        window = self.cpu(w)
        try:
            while time.monotonic() - started < seconds:
                generator = MovementGenerator(network, self.args.skus, seed=passes, tag=f"{app_id}{passes}")
                produce_all(bulk_producer(self.bootstrap), topic, list(generator.many(count)))
                passes += 1
                expected = passes * count
                timeout = max(120.0, 3 * seconds)
                done = wait_for(lambda n=expected: w.metric("oms_stock_events_total") >= n, timeout)
                if not done:
                    log("warm-up: the throwaway worker fell behind; going on with the phases")
                    break
                applied = expected
        finally:
            w.stop()
        result = {"seconds": round(time.monotonic() - started, 1), "passes": passes, "applied": applied,
                  "cpu": window.result()}
        log(f"warm-up: {applied:,} movements applied in {result['seconds']}s")
        return result

    def latency_at(self, w: Worker, settings: Any, generator: MovementGenerator, load: float,
                   c_rate: float) -> dict[str, Any]:
        time.sleep(3.0)  # the last phase's records drained
        log(f"latency curve: pacing {load * c_rate:,.0f} movements/s ({load:g} of (c)) ...")
        window = self.cpu(w)
        point = ledger.latency(self.bootstrap, w, settings.topic("oms.inventory.movements.v1"),
                               settings.topic("oms.availability.v1"), generator, load * c_rate,
                               self.args.latency_seconds)
        point.update(load=load, cpu=window.result())
        return point

    def count_phase(self, name: str, n_skus: int, n_locations: int,
                    profile_to: Path | None = None) -> dict[str, Any]:
        prefix, app_id = f"{self.run_id}{name}.", f"{self.run_id}{name}"
        network = build_network(n_locations, self.work)
        settings = self.prepare(prefix, app_id, network.yaml_path)
        t = time.monotonic()
        messages = list(count_messages(network, n_skus, tag=app_id))
        mib = sum(len(v) for _, v in messages) / 2**20
        log(f"({name}) generated {n_skus:,} counts x {n_locations} positions ({mib:.0f} MiB) "
            f"in {time.monotonic() - t:.1f}s")
        w = self.worker(prefix, app_id, name)
        self.wait_config(w, n_locations)
        idle = w.memory()
        profiler = Profiler(w.pid, profile_to) if profile_to else None
        if profiler:
            profiler.start()
        log(f"({name}) producing the counts into the idle worker ...")
        window = self.cpu(w)
        result = ledger.full_count(self.bootstrap, w, settings.topic("oms.inventory.counts.v1"),
                                   settings.topic("oms.availability.v1"), messages, n_skus * n_locations,
                                   self.args.count_timeout)
        result["cpu"] = window.result()
        if profiler:
            profiler.stop()
        result["rss_mib_idle_before"] = idle.get("VmRSS")
        result["message_mib"] = mib
        log(f"({name}) {result['positions']:,} positions: all availability out after "
            f"{result['seconds_total']} s, RSS {result['rss_mib_settled']} MiB")
        w.stop()
        return result

    def profile_passes(self, messages: list[tuple[bytes, bytes]], network: Any) -> dict[str, Any]:
        if Profiler.available() is None:
            log("profile: py-spy not found (.venv/bin/pip install py-spy); skipped")
            return {"skipped": "py-spy not installed"}
        report: dict[str, Any] = {}
        prefix, app_id = f"{self.run_id}p.", f"{self.run_id}p"
        settings = self.prepare(prefix, app_id, network.yaml_path)
        produce_all(bulk_producer(self.bootstrap), settings.topic("oms.inventory.movements.v1"), messages)
        log("profile (c): worker under py-spy ...")
        w = self.worker(prefix, app_id, "profile-c")
        path = RESULTS / f"profile-c-{self.run_id}.txt"
        profiler = Profiler(w.pid, path)
        profiler.start()
        report["c_throughput_profiled"] = ledger.throughput(w, len(messages), timeout_s=600)
        profiler.stop()
        w.stop()
        report["c"] = {"file": str(path), **breakdown(path)} if path.exists() else {"file": None}
        skus = max(100, self.args.count_skus // 5)
        path_d = RESULTS / f"profile-d-{self.run_id}.txt"
        log(f"profile (d): {skus:,} counts x {self.args.count_locations} under py-spy ...")
        report["d_count_profiled"] = self.count_phase("pd", skus, self.args.count_locations,
                                                      profile_to=path_d)
        report["d"] = {"file": str(path_d), **breakdown(path_d)} if path_d.exists() else {"file": None}
        return report

    def cleanup(self) -> None:
        for w in self.workers:
            with contextlib.suppress(Exception):
                w.stop()
        shutil.rmtree(self.work, ignore_errors=True)


# --- report -------------------------------------------------------------------------------------

def _fmt(v: Any, unit: str = "", digits: int = 0) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float | int):
        return f"{v:,.{digits}f}{unit}"
    return str(v)


def targets(out: dict[str, Any]) -> dict[str, Any]:
    t: dict[str, Any] = {}
    a = (out.get("a_aiokafka") or {}).get("events_per_s")
    cl = out.get("c_ledger") or {}
    c = cl.get("events_per_s_e2e") or cl.get("events_per_s")
    if a and c:
        out["c_over_a"] = c / a
        if cl.get("events_per_s"):
            out["c_applied_over_a"] = cl["events_per_s"] / a
        t["c/a >= 0.25"] = {"value": round(c / a, 4), "met": c / a >= TARGETS["c_over_a"]}
    p99 = (out.get("latency") or {}).get("p99_ms")
    if p99 is not None:
        t[f"p99 <= {TARGETS['p99_ms']:.0f} ms at half load"] = {
            "value": round(p99, 1), "met": p99 <= TARGETS["p99_ms"]}
    d = out.get("d_count") or {}
    if d:
        secs = d.get("seconds_total")
        t[f"{d['positions']:,}-position count <= {TARGETS['count_seconds']:.0f} s"] = {
            "value": None if secs is None else round(secs, 1),
            "met": secs is not None and secs <= TARGETS["count_seconds"]}
        rss = d.get("rss_mib_when_done")
        t[f"RSS holding {d['positions']:,} positions <= 1.5 GB"] = {
            "value": rss, "met": rss is not None and rss <= TARGETS["count_rss_mib"]}
    out["targets"] = t
    return t


def table(out: dict[str, Any]) -> str:
    rows: list[tuple[str, str]] = []
    a, b, c = out.get("a_aiokafka") or {}, out.get("b_confluent") or {}, out.get("c_ledger") or {}
    rows.append(("worker hot path", str(out.get("hot_path", "?"))))
    warm = out.get("warmup")
    rows.append(("broker warmed first", f"{warm['applied']:,} movements in {warm['seconds']} s"
                 if warm else "no (--warmup-s 0): a cold broker slows every phase"))
    rows.append(("(a) aiokafka passthrough", _fmt(a.get("events_per_s"), " ev/s")))
    rows.append(("(b) confluent-kafka passthrough", _fmt(b.get("events_per_s"), " ev/s")))
    c_rate = c.get("events_per_s_e2e") or c.get("events_per_s")
    rows.append(("(c) ledger pipeline, availability on Kafka", _fmt(c.get("events_per_s_e2e"), " ev/s")))
    rows.append(("    (c) first→N-th applied (/metrics)", _fmt(c.get("events_per_s"), " ev/s")))
    rows.append(("    (c) 10%→90% of events applied", _fmt(c.get("events_per_s_10_90"), " ev/s")))
    rows.append(("    (c) output lag after the last apply", _fmt(c.get("output_lag_s"), " s", 1)))
    rows.append(("    (c) worker CPU", _fmt(c.get("worker_cpu_pct"), " % of a core")))
    rows.append(("c / a (applied c / a)",
                 f"{_fmt(out.get('c_over_a'), '', 4)} ({_fmt(out.get('c_applied_over_a'), '', 4)})"))
    if b.get("events_per_s") and c_rate:
        rows.append(("c / b", _fmt(c_rate / b["events_per_s"], "", 4)))
    lat = out.get("latency") or {}
    if lat:
        rows.append((f"latency @ {lat['achieved_rate']:,.0f} ev/s, external p50 / p99",
                     f"{_fmt(lat['p50_ms'], ' ms', 1)} / {_fmt(lat['p99_ms'], ' ms', 1)}"))
        rows.append(("    external p90 / max",
                     f"{_fmt(lat['p90_ms'], ' ms', 1)} / {_fmt(lat['max_ms'], ' ms', 1)}"))
        rows.append(("    worker histogram p50 / p99",
                     f"{_fmt(lat['worker_hist_p50_ms'], ' ms', 1)} / "
                     f"{_fmt(lat['worker_hist_p99_ms'], ' ms', 1)}"))
        rows.append(("    matched / sent", f"{lat['matched']:,} / {lat['sent']:,}"))
    for point in out.get("latency_curve") or []:
        rows.append((f"    at {point['load']:g} of (c), {point['achieved_rate']:,.0f} ev/s: p50 / p99",
                     f"{_fmt(point['p50_ms'], ' ms', 1)} / {_fmt(point['p99_ms'], ' ms', 1)} "
                     f"(others {point['cpu']['cores_others']:.2f} cores)"))
    mem = out.get("c_worker_memory_mib") or {}
    rows.append(("worker peak RSS (c + latency)", _fmt(mem.get("VmHWM"), " MiB")))
    d = out.get("d_count") or {}
    if d:
        rows.append((f"(d) count {d['positions']:,} positions: produce→all published",
                     _fmt(d.get("seconds_total"), " s", 1)))
        rows.append(("    (d) first apply→all published", _fmt(d.get("seconds_from_first_apply"), " s", 1)))
        rows.append(("    (d) producing the counts", _fmt(d.get("produce_s"), " s", 1)))
        rows.append(("    (d) RSS idle / holding positions / peak",
                     f"{_fmt(d.get('rss_mib_idle_before'))} / {_fmt(d.get('rss_mib_when_done'))} / "
                     f"{_fmt(d.get('peak_rss_mib'))} MiB"))
    contention = []
    for label, phase in (("a", a), ("b", b), ("c", c), ("lat", lat), ("d", d)):
        if phase.get("cpu"):
            contention.append(f"{label} {phase['cpu']['cores_others']:.2f}")
    if contention:
        rows.append((f"other processes' CPU, cores of {os.cpu_count()}", ", ".join(contention)))
    width = max(len(r[0]) for r in rows) + 2
    lines = ["", "=" * (width + 24), *(f"{k:<{width}}{v}" for k, v in rows), "-" * (width + 24)]
    for name, t in (out.get("targets") or {}).items():
        lines.append(f"{name:<{width}}{_fmt(t['value'], '', 4 if 'c/a' in name else 1):>12}   "
                     f"{'MET' if t['met'] else 'NOT MET'}")
    lines.append("=" * (width + 24))
    prof = out.get("profile") or {}
    for phase in ("c", "d"):
        if prof.get(phase, {}).get("samples"):
            lines.append(f"\nprofile ({phase}), {prof[phase]['file']}:")
            lines.append(render(prof[phase]))
    return "\n".join(lines)


def hot_path_build() -> str:
    """What the worker processes run: the mypyc build (``make compile``) or the sources."""
    if compiled.extensions() and os.environ.get("OMS_COMPILED") != "0":
        return f"compiled with mypyc ({len(compiled.MODULES)} modules, make compile)"
    return "pure Python (make compile builds the mypyc hot path)"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with broker(os.environ.get("OMS_KAFKA_BOOTSTRAP")) as (bootstrap, started_here):
        bench = Bench(args, bootstrap)
        log(f"run {bench.run_id} on {bootstrap} ({'private broker' if started_here else 'given broker'})")
        hot_path = hot_path_build()
        log(f"the worker's hot path: {hot_path}")
        try:
            out = bench.run()
        finally:
            bench.cleanup()
            if not started_here:
                n = delete_topics_with_prefixes(bootstrap, [bench.run_id])
                log(f"deleted {n} bench topics")
    out["hot_path"] = hot_path
    targets(out)
    print(table(out), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=str))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
