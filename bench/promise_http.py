"""``python -m bench.promise_http``: ``POST /promise`` under a real HTTP load generator.

Target: a 10-line cart over 300 locations answered with a server-side p99 ≤ 5 ms at ≥ 500 requests/s
on the dev machine, measured by a real HTTP client against the running worker.

  setup    a private broker (``OMS_KAFKA_BOOTSTRAP`` to use another), the 300-location network of
           ``bench/promise_network.py`` published, 500 SKUs' stock produced as receipts, one
           ``oms worker`` that applies them, publishes availability and reads it back
  probe    each of the 4 cart bodies once (status, options, option ids, reasons for the rest)
  max      per cart: ``hey -c 16 -z 20s`` with the body (closed loop: as fast as the worker answers)
  rate     the 4 carts mixed at 500 req/s in all: 16 hey processes, each ``-c 1 -q 31.25``, started
           2 ms apart. (hey paces every worker with its own ticker, all started at once, so a single
           ``hey -c 16 -q Q`` sends bursts of 16 requests; ``--burst-run`` adds that run to compare.)
  stages   (no load) the same network, stock and bodies promised inside this process, stage by stage:
           what the domain costs without HTTP, pydantic and the event loop
  profile  (--profile) one more mixed run under py-spy, the worker's busy time by stage

The bodies carry ``asked_at`` = next Tuesday 10:00 Chicago time (``--asked-at now`` for the server's
clock), so every run promises the same work whatever the hour: stores open, pickups ahead.

Per run: requests/s, the client latencies hey measured (p50/p90/p99/max, from its per-request CSV),
the server-side p50/p99 from the delta of the worker's ``oms_promise_seconds`` histogram (bucket
bounds 0.5/1/2/3/5/10 ms, interpolated as PromQL does) and its exact mean (_sum/_count), the worker's
CPU and CPU per request, hey's CPU and what other processes took. The histogram times
``PromiseService.answer`` (stock lookup, promise, response dict); body parsing, the JSON encode and
aiohttp are outside it, and show in the client latency and the CPU per request.

The machine has 2 cores: hey (about 0.15-0.25 of a core), the worker and the broker (about 0.06-0.1,
answering the worker's fetches) share them, with whatever else runs there ("other" in the table).
Figures only: nothing here asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.cpu import CpuWindow, _proc_cpu_s, _system_busy_s, broker_pids
from bench.data import REPO_ROOT
from bench.kafka import broker, bulk_producer, delete_topics_with_prefixes, produce_all, wait_for
from bench.ledger import cpu_seconds, wait_output_flushed
from bench.profile import _OUTER, Profiler
from bench.promise_network import build_promise_network, carts, next_weekday_at, receipts, stock_positions
from bench.worker import Worker, histogram, histogram_quantile

RESULTS = REPO_ROOT / "bench" / "results"
TARGET_RPS = 500.0
TARGET_SERVER_P99_MS = 5.0
HIST = "oms_promise_seconds"
ANSWERED = "oms_promise_requests_total"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.promise_http",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--seconds", type=float, default=20.0, help="length of each max-throughput run")
    p.add_argument("--concurrency", type=int, default=16, help="hey workers of each max run")
    p.add_argument("--rate", type=float, default=TARGET_RPS, help="total req/s of the rate-limited run")
    p.add_argument("--rate-seconds", type=float, default=20.0)
    p.add_argument(
        "--rate-streams",
        type=int,
        default=16,
        help="hey processes of the rate run, -c 1 each, paced at rate/streams, carts round-robin",
    )
    p.add_argument(
        "--burst-run",
        action="store_true",
        help="add the rate run as plain hey pacing makes it: 4 x hey -c 16 -q rate/64 (bursts of 16)",
    )
    p.add_argument(
        "--asked-at",
        default="next-tuesday",
        help="'next-tuesday' (10:00 Chicago, the default: the same work whatever the hour), 'now' "
        "(the server's clock) or an ISO time",
    )
    p.add_argument("--warmup-seconds", type=float, default=3.0)
    p.add_argument("--idle-seconds", type=float, default=5.0, help="worker CPU measured with no load")
    p.add_argument("--locations", type=int, default=300)
    p.add_argument("--skus", type=int, default=500)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--profile", action="store_true", help="add a mixed run with py-spy on the worker")
    p.add_argument("--quick", action="store_true", help="5 s runs (smoke test)")
    p.add_argument(
        "--keep",
        action="store_true",
        help="keep the network, carts, answers and hey CSVs in bench/results/<run id>/",
    )
    p.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="OUT",
        help="write every figure as JSON (default bench/results/promise-http-latest.json)",
    )
    p.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="K=V",
        help="extra env for the worker (repeatable)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.seconds = args.rate_seconds = 5.0
        args.warmup_seconds = 1.0
    return args


# --- the load generator ---------------------------------------------------------------------------


def ensure_hey() -> str:
    """Path of hey, built into ~/.cache/oms-streams/tools by bench/tools.sh on first use."""
    out = subprocess.run(
        ["bash", str(REPO_ROOT / "bench" / "tools.sh"), "hey"], check=True, capture_output=True, text=True
    )
    path = out.stdout.strip().splitlines()[-1]
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"bench/tools.sh did not produce hey: {out.stderr}")
    return path


@dataclass(frozen=True)
class Body:
    name: str
    path: Path


def _percentile(ordered: list[float], q: float) -> float | None:
    """Nearest rank on sorted values."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))]


def _quantiles(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)
    return {
        "p50": _percentile(ordered, 0.50),
        "p90": _percentile(ordered, 0.90),
        "p99": _percentile(ordered, 0.99),
        "max": ordered[-1] if ordered else None,
    }


def run_hey(
    hey: str,
    url: str,
    bodies: list[Body],
    concurrency: int,
    seconds: float,
    qps_per_worker: float | None,
    out_dir: Path,
    tag: str,
    stagger_s: float = 0.0,
    pids: list[int] | None = None,
) -> dict[str, Any]:
    """One hey process per body (a body may repeat), started ``stagger_s`` apart, each for
    ``seconds``; merges their per-request CSVs.

    hey's CSV lists only the requests that got a response (errors such as the requests cut off at
    the end of ``-z`` are left out); the worker's answered counter is the cross-check."""
    procs = []
    for i, body in enumerate(bodies):
        if i and stagger_s:
            time.sleep(stagger_s)
        cmd = [
            hey,
            "-z",
            f"{seconds}s",
            "-c",
            str(concurrency),
            "-m",
            "POST",
            "-T",
            "application/json",
            "-D",
            str(body.path),
            "-o",
            "csv",
            "-t",
            "10",
        ]
        if qps_per_worker:
            cmd += ["-q", f"{qps_per_worker:.4f}"]
        out_path = out_dir / f"hey-{tag}-{i}-{body.name}.csv"
        f = out_path.open("wb")
        proc = subprocess.Popen([*cmd, url], stdout=f, stderr=subprocess.PIPE)
        if pids is not None:
            pids.append(proc.pid)
        procs.append((body, out_path, f, proc))
    errors = {}
    try:
        for body, _out, f, proc in procs:
            _, err = proc.communicate(timeout=seconds + 60)
            f.close()
            if proc.returncode != 0:
                errors[body.name] = err.decode(errors="replace")[-500:]
    finally:  # on any error, leave no load generator behind
        for _body, _out, f, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            f.close()
    lats: list[float] = []
    statuses: Counter[int] = Counter()
    per_body: dict[str, int] = {}
    end = 0.0
    # The steady rate: requests each hey process started from `skip_start` after its own start to
    # 1 s before its end (leaves out the start of every run, where the shared 2 cores are busiest,
    # and the cut-off at the end).
    skip_start, skip_end = min(2.0, seconds / 5), min(1.0, seconds / 5)
    steady_lats: list[float] = []
    for body, out_path, _f, _proc in procs:
        n = 0
        with out_path.open(newline="") as f:
            for row in csv.DictReader(f):
                rt, offset = float(row["response-time"]), float(row["offset"])
                lats.append(rt * 1000)
                statuses[int(row["status-code"])] += 1
                end = max(end, offset + rt)
                if skip_start <= offset < seconds - skip_end:
                    steady_lats.append(rt * 1000)
                n += 1
        per_body[body.name] = per_body.get(body.name, 0) + n
    lats.sort()
    duration = end or seconds
    return {
        "responses": len(lats),
        "seconds": round(duration, 3),
        "rps": len(steady_lats) / (seconds - skip_start - skip_end),
        "rps_whole_run": len(lats) / duration if lats else 0.0,
        "status": dict(statuses),
        "per_body": per_body,
        "errors": errors,
        "concurrency": concurrency * len(bodies),
        "qps_per_worker": qps_per_worker,
        "offered_rps": qps_per_worker * concurrency * len(bodies) if qps_per_worker else None,
        "client_ms": {
            "p50": _percentile(lats, 0.50),
            "p90": _percentile(lats, 0.90),
            "p99": _percentile(lats, 0.99),
            "max": lats[-1] if lats else None,
            "mean": sum(lats) / len(lats) if lats else None,
        },
        "client_ms_steady": _quantiles(steady_lats),
    }


# --- the worker and its figures -------------------------------------------------------------------


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Timeline(threading.Thread):
    """Every ``interval`` s: cores used by the worker and by processes not ours (system busy minus
    bench, worker, broker and hey): shows when the shared machine was busy during a run."""

    def __init__(self, worker_pid: int, ours: list[int], hey_pids: list[int], interval: float = 0.5):
        super().__init__(daemon=True)
        self.worker_pid, self.ours, self.hey_pids, self.interval = worker_pid, ours, hey_pids, interval
        self.samples: list[dict[str, float]] = []
        self._halt = threading.Event()

    def _read(self) -> tuple[float, float, dict[int, float]]:
        pids = [*self.ours, *list(self.hey_pids)]
        return time.monotonic(), _system_busy_s(), {p: _proc_cpu_s(p) for p in pids}

    def run(self) -> None:
        t0, busy0, cpu0 = self._read()
        t_prev, busy_prev, cpu_prev = t0, busy0, cpu0
        while not self._halt.wait(self.interval):
            t, busy, cpu = self._read()
            dt = t - t_prev
            # Per pid, so a hey process that exits (reads 0 from then on) does not count negative.
            ours = sum(max(0.0, v - cpu_prev.get(p, 0.0)) for p, v in cpu.items() if v > 0)
            worker = cpu.get(self.worker_pid, 0.0) - cpu_prev.get(self.worker_pid, 0.0)
            self.samples.append(
                {
                    "t": round(t - t0, 2),
                    "worker_cores": round(worker / dt, 2),
                    "others_cores": round(max(0.0, busy - busy_prev - ours) / dt, 2),
                }
            )
            t_prev, busy_prev, cpu_prev = t, busy, cpu

    def stop(self) -> list[dict[str, float]]:
        self._halt.set()
        self.join(5)
        return self.samples


def measured(worker: Worker, bootstrap: str, fn: Any, hey_pids: list[int] | None = None) -> dict[str, Any]:
    """Run ``fn()`` (a hey run) and add the worker's side: histogram delta, CPU, requests answered."""
    hey_pids = hey_pids if hey_pids is not None else []
    timeline = Timeline(worker.pid, [os.getpid(), worker.pid, *broker_pids(bootstrap)], hey_pids)
    timeline.start()
    before = worker.scrape() or ""
    window = CpuWindow([os.getpid(), worker.pid, *broker_pids(bootstrap)])
    brokers = broker_pids(bootstrap)
    broker0 = sum(cpu_seconds(p) for p in brokers)
    worker0, children0, t0 = cpu_seconds(worker.pid), _children_cpu_s(), time.monotonic()
    result: dict[str, Any] = fn()
    wall = time.monotonic() - t0
    worker_cpu = cpu_seconds(worker.pid) - worker0
    hey_cpu = _children_cpu_s() - children0
    broker_cpu = sum(cpu_seconds(p) for p in brokers) - broker0
    cpu = window.result()
    samples = timeline.stop()
    time.sleep(0.2)
    after = worker.scrape() or ""
    h0, h1 = histogram(before, HIST), histogram(after, HIST)
    count = worker.metric(f"{HIST}_count", after) - worker.metric(f"{HIST}_count", before)
    total_s = worker.metric(f"{HIST}_sum", after) - worker.metric(f"{HIST}_sum", before)
    answered = worker.metric(ANSWERED, after, path="http", outcome="answered") - worker.metric(
        ANSWERED, before, path="http", outcome="answered"
    )
    rejected = worker.metric(ANSWERED, after, path="http", outcome="rejected") - worker.metric(
        ANSWERED, before, path="http", outcome="rejected"
    )

    def hq(q: float) -> float | None:
        v = histogram_quantile(h0, h1, q)
        return None if v is None else v * 1000

    le5 = (h1.get(0.005, 0) - h0.get(0.005, 0)) / count if count else None
    result["server"] = {
        "answered": int(answered),
        "rejected": int(rejected),
        "hist_p50_ms": hq(0.50),
        "hist_p90_ms": hq(0.90),
        "hist_p99_ms": hq(0.99),
        "mean_ms": 1000 * total_s / count if count else None,
        "share_within_5ms": le5,
    }
    result["cpu"] = {
        "wall_s": round(wall, 2),
        "worker_pct": 100 * worker_cpu / wall,
        "worker_ms_per_request": 1000 * worker_cpu / answered if answered else None,
        "hey_cores": hey_cpu / wall,
        "broker_cores": broker_cpu / wall,
        # CpuWindow counts hey (a reaped child, not a live pid) among "others": take it out.
        "others_cores": max(0.0, cpu["cores_others"] - hey_cpu / wall),
        "loadavg_1m": cpu["loadavg_1m"],
        "others_cores_max_500ms": max((x["others_cores"] for x in samples), default=None),
    }
    result["timeline"] = samples
    return result


def post(port: int, body: bytes, timeout: float = 10) -> tuple[int, dict[str, Any], float]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/promise",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    t = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw, status = response.read(), response.status
    except urllib.error.HTTPError as error:
        raw, status = error.read(), error.code
    ms = (time.perf_counter() - t) * 1000
    try:
        return status, orjson.loads(raw), ms
    except orjson.JSONDecodeError:
        return status, {"raw": raw.decode(errors="replace")[:500]}, ms


def summarize_answer(answer: dict[str, Any]) -> dict[str, Any]:
    options = answer.get("options", [])
    return {
        "options": len(options),
        "option_ids": [o["option_id"] for o in options],
        "parcels": {o["option_id"]: o["parcels"] for o in options},
        "windows": {o["option_id"]: [o["window_start"], o["window_end"]] for o in options},
        "unavailable": {u["method"]: u["reason"] for u in answer.get("unavailable", [])},
        "bytes": len(orjson.dumps(answer)),
    }


# --- the bench ------------------------------------------------------------------------------------


class PromiseBench:
    def __init__(self, args: argparse.Namespace, bootstrap: str) -> None:
        self.args = args
        self.bootstrap = bootstrap
        self.run_id = f"promise{int(time.time()) % 1_000_000}"
        self.work = Path("/tmp/oms-bench") / self.run_id
        self.logs = RESULTS / "logs"
        self.worker: Worker | None = None

    def setup(self) -> dict[str, Any]:
        from oms_streams.config import Settings
        from oms_streams.streaming.admin import ensure_topics
        from oms_streams.streaming.config_publisher import publish_network_config

        a = self.args
        prefix = f"{self.run_id}."
        settings = Settings(
            kafka_bootstrap=self.bootstrap, topic_prefix=prefix, app_id=self.run_id, partitions=a.partitions
        )
        self.network = build_promise_network(self.work, a.locations)
        self.positions = stock_positions(self.network, a.skus)
        n_positions = sum(len(at) for at in self.positions.values())
        ensure_topics(settings)
        published = publish_network_config(settings, self.network.yaml_path)
        t = time.monotonic()
        produce_all(
            bulk_producer(self.bootstrap),
            settings.topic("oms.inventory.movements.v1"),
            receipts(self.positions, tag=self.run_id),
        )
        log(
            f"network {self.network.yaml_path.name}: {len(self.network.dcs)} DCs, "
            f"{len(self.network.stores)} stores, {len(self.network.routes)} routes; {a.skus} SKUs at "
            f"{n_positions:,} positions produced as receipts in {time.monotonic() - t:.1f}s"
        )
        self.bodies = []
        self.asked_at = (
            None
            if a.asked_at == "now"
            else (next_weekday_at() if a.asked_at == "next-tuesday" else a.asked_at)
        )
        for name, body in carts(self.network, self.positions):
            if self.asked_at is not None:
                body["asked_at"] = self.asked_at
            path = self.work / f"cart-{name}.json"
            path.write_bytes(orjson.dumps(body))
            self.bodies.append(Body(name, path))

        env = {"OMS_LOG_LEVEL": "WARNING", **dict(kv.split("=", 1) for kv in a.worker_env)}
        self.worker = w = Worker(
            self.bootstrap,
            prefix,
            self.run_id,
            self.work / "worker",
            self.logs / f"{self.run_id}.log",
            a.partitions,
            env,
        )
        t = time.monotonic()
        w.start()
        log(f"worker up (pid {w.pid}, port {w.port}); applying the stock ...")

        def config_applied() -> bool:
            text = w.scrape() or ""

            def n(kind: str) -> float:
                return w.metric("oms_config_updates_total", text, kind=kind, verdict="applied")

            return (
                n("location") >= published["locations"]
                and n("carrier_service") >= published["carrier_services"]
                and n("route") >= published["routes"]
                and n("promise_policy") >= 1
            )

        def stock_applied() -> bool:
            w.check_alive()
            return w.metric("oms_stock_events_total", verdict="applied") >= n_positions

        if not wait_for(config_applied, 120, 0.5):
            raise RuntimeError("the worker did not apply the network config within 120 s")
        if not wait_for(stock_applied, 600, 0.5):
            raise RuntimeError(f"the worker did not apply {n_positions:,} receipts within 600 s")
        applied_s = time.monotonic() - t
        if wait_output_flushed(self.bootstrap, w, settings.topic("oms.availability.v1"), 120) is None:
            raise RuntimeError("availability records not all on Kafka within 120 s")

        def view_complete() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{w.port}/health", timeout=5) as r:
                return int(json.loads(r.read()).get("availability_records", 0)) >= a.skus

        if not wait_for(view_complete, 60, 0.5):
            raise RuntimeError("the worker's availability view did not reach every SKU within 60 s")
        time.sleep(3)  # the view follower reads the last records of the availability topic
        log(f"stock applied and availability read back {time.monotonic() - t:.1f}s after start")
        return {
            "network": str(self.network.yaml_path),
            "locations": len(self.network.places),
            "dcs": len(self.network.dcs),
            "stores": len(self.network.stores),
            "routes": len(self.network.routes),
            "skus": a.skus,
            "positions": n_positions,
            "published": published,
            "stock_applied_s": round(applied_s, 1),
            "dead_lettered": int(w.metric("oms_stock_events_total", verdict="dead_lettered")),
        }

    def probe(self) -> dict[str, Any]:
        assert self.worker is not None
        out = {}
        for body in self.bodies:
            status, answer, ms = post(self.worker.port, body.path.read_bytes())
            if status == 200:
                out[body.name] = {"status": status, "ms": round(ms, 2), **summarize_answer(answer)}
                (self.work / f"answer-{body.name}.json").write_bytes(orjson.dumps(answer))
            else:
                out[body.name] = {"status": status, "ms": round(ms, 2), "error": answer}
            log(
                f"probe {body.name}: HTTP {status}, {out[body.name].get('options', 0)} options "
                f"{out[body.name].get('option_ids', answer)}"
            )
        return out

    def hey_run(
        self,
        hey: str,
        tag: str,
        bodies: list[Body],
        concurrency: int,
        seconds: float,
        qps: float | None,
        stagger_s: float = 0.0,
    ) -> dict[str, Any]:
        assert self.worker is not None
        url = f"http://127.0.0.1:{self.worker.port}/promise"
        pids: list[int] = []
        return measured(
            self.worker,
            self.bootstrap,
            lambda: run_hey(hey, url, bodies, concurrency, seconds, qps, self.work, tag, stagger_s, pids),
            pids,
        )

    def stages(self, iterations: int = 300) -> dict[str, Any]:
        """The promise path inside this process, stage by stage, on the worker's own stock records."""
        from oms_streams.adapters.network import promise_network
        from oms_streams.adapters.promise import parse_query, result_to_wire, stock_for, to_request
        from oms_streams.adapters.stock import Failure
        from oms_streams.adapters.timestamps import epoch_ms
        from oms_streams.domain.promise import promise_options
        from oms_streams.domain.transit import TransitModel
        from oms_streams.streaming.config_publisher import load_network_config
        from oms_streams.streaming.network import _holiday_years
        from oms_streams.streaming.promise_service import CHANNELS

        assert self.worker is not None
        config = load_network_config(self.network.yaml_path)
        network = promise_network(
            config.locations, config.carrier_services, config.routes, config.promise_policy, _holiday_years()
        )
        records: dict[str, dict[str, Any]] = {}
        for body in self.bodies:
            for line in orjson.loads(body.path.read_bytes())["cart"]:
                url = f"http://127.0.0.1:{self.worker.port}/availability/{line['sku']}"
                with urllib.request.urlopen(url, timeout=5) as r:
                    records[line["sku"]] = orjson.loads(r.read())
        transit = TransitModel()
        out: dict[str, Any] = {}
        for body in self.bodies:
            raw = body.path.read_bytes()
            timings: dict[str, float] = Counter()
            n_options = 0
            for i in range(iterations):
                t0 = time.perf_counter()
                query = parse_query(raw)
                t1 = time.perf_counter()
                assert not isinstance(query, Failure)
                asked_at = epoch_ms(query.asked_at) if query.asked_at else time.time_ns() // 1_000_000
                request = to_request(query, f"r{i}", asked_at)
                stock = stock_for((line.sku for line in request.cart), records.get, CHANNELS)
                t2 = time.perf_counter()
                result = promise_options(request, stock, network, transit, {})
                t3 = time.perf_counter()
                wire = result_to_wire(result, 1)
                t4 = time.perf_counter()
                orjson.dumps(wire)
                t5 = time.perf_counter()
                if i >= iterations // 5:  # the first fifth warms the caches
                    for stage, dt in (
                        ("parse", t1 - t0),
                        ("stock", t2 - t1),
                        ("promise", t3 - t2),
                        ("wire", t4 - t3),
                        ("encode", t5 - t4),
                    ):
                        timings[stage] += dt
                n_options = len(result.options)
            counted = iterations - iterations // 5
            out[body.name] = {
                "options": n_options,
                **{k: round(1000 * v / counted, 3) for k, v in timings.items()},
                "total": round(1000 * sum(timings.values()) / counted, 3),
            }
        return out

    def run(self) -> dict[str, Any]:
        a = self.args
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "machine": platform.machine(),
            },
            "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
        }
        hey = ensure_hey()
        out["hey"] = hey
        out["setup"] = self.setup()
        out["probe"] = self.probe()
        out["asked_at"] = self.asked_at
        if any(p["status"] != 200 for p in out["probe"].values()):
            raise RuntimeError(f"a cart is not answered 200: {out['probe']}")
        log(f"warm-up: {a.warmup_seconds:.0f}s per cart ...")
        for body in self.bodies:
            self.hey_run(hey, "warmup", [body], 4, a.warmup_seconds, None)
        assert self.worker is not None
        cpu0, t0 = cpu_seconds(self.worker.pid), time.monotonic()
        time.sleep(a.idle_seconds)
        out["worker_idle_pct"] = 100 * (cpu_seconds(self.worker.pid) - cpu0) / (time.monotonic() - t0)
        log(f"worker idle: {out['worker_idle_pct']:.1f}% of a core (faust/aiokafka loops, no requests)")
        out["max"] = {}
        for body in self.bodies:
            log(f"max {body.name}: hey -c {a.concurrency} -z {a.seconds:g}s ...")
            r = out["max"][body.name] = self.hey_run(
                hey, f"max-{body.name}", [body], a.concurrency, a.seconds, None
            )
            log(
                f"  {r['rps']:,.0f} req/s, client p99 {r['client_ms']['p99']:.1f} ms, server p99 "
                f"{_fmt(r['server']['hist_p99_ms'], 2)} ms, worker {r['cpu']['worker_pct']:.0f}% CPU"
            )
        # hey paces each worker with its own ticker, all started together: -c N -q Q sends bursts
        # of N requests every 1/Q s. So the rate run is many single-worker streams, started one
        # inter-arrival apart, which spreads the requests out.
        streams = [self.bodies[i % len(self.bodies)] for i in range(a.rate_streams)]
        qps = a.rate / len(streams)
        log(
            f"rate: {a.rate:g} req/s over the {len(self.bodies)} carts ({len(streams)} x hey -c 1 "
            f"-q {qps:g}) for {a.rate_seconds:g}s ..."
        )
        r = out["rate"] = self.hey_run(hey, "rate", streams, 1, a.rate_seconds, qps, 1 / a.rate)
        log(
            f"  {r['rps']:,.0f} req/s, client p99 {r['client_ms']['p99']:.1f} ms, server p99 "
            f"{_fmt(r['server']['hist_p99_ms'], 2)} ms, worker {r['cpu']['worker_pct']:.0f}% CPU"
        )
        if a.burst_run:
            qps = a.rate / len(self.bodies) / 16
            log(f"rate, bursty: {len(self.bodies)} x hey -c 16 -q {qps:g} for {a.rate_seconds:g}s ...")
            r = out["rate_burst"] = self.hey_run(hey, "burst", self.bodies, 16, a.rate_seconds, qps)
            log(
                f"  {r['rps']:,.0f} req/s, client p50 {r['client_ms']['p50']:.1f} ms, "
                f"p99 {r['client_ms']['p99']:.1f} ms"
            )
        log("stages: the promise path in this process, no HTTP ...")
        out["stages"] = self.stages()
        if a.profile:
            out["profile"] = self.profile(hey)
        out["worker_memory_mib"] = self.worker.memory() if self.worker else {}
        return out

    def profile(self, hey: str) -> dict[str, Any]:
        if Profiler.available() is None:
            log("profile: py-spy not found (.venv/bin/pip install py-spy); skipped")
            return {"skipped": "py-spy not installed"}
        assert self.worker is not None
        path = RESULTS / f"profile-{self.run_id}.txt"
        profiler = Profiler(self.worker.pid, path)
        log(f"profile: the 4 carts at once, hey -c 4 each, {self.args.seconds:g}s, py-spy on the worker ...")
        profiler.start()
        time.sleep(1)
        try:
            run = self.hey_run(hey, "profile", self.bodies, 4, self.args.seconds, None)
        finally:
            profiler.stop()
        return {
            "file": str(path),
            "run": {k: run[k] for k in ("rps", "client_ms", "client_ms_steady", "server", "cpu")},
            **(promise_breakdown(path) if path.exists() else {}),
        }

    def cleanup(self) -> None:
        if self.worker is not None:
            with contextlib.suppress(Exception):
                self.worker.stop()
        if self.args.keep and self.work.exists():
            kept = RESULTS / self.run_id
            shutil.rmtree(kept / "worker", ignore_errors=True)
            shutil.copytree(self.work, kept, ignore=shutil.ignore_patterns("worker"), dirs_exist_ok=True)
            log(f"kept the run's files in {kept}")
        shutil.rmtree(self.work, ignore_errors=True)


# --- the profile, by stage of a request ------------------------------------------------------------

_STAGES = (
    # First match wins, looking at the whole stack (the path fragment of a frame's file) once the
    # process's outer frames (runpy, cli, mode's worker running the loop) are dropped.
    (
        "domain: promise_options",
        (
            "domain/promise",  # promise.py and the promise_*.py modules it is split into
            "domain/calendar.py",
            "domain/transit.py",
            "domain/network.py",
            "domain/visibility.py",
        ),
    ),
    ("stock lookup (view.get, orjson.loads, stock_for)", ("ledger_runtime.py", "stock_for")),
    ("result_to_wire (dicts, isoformat)", ("adapters/promise.py", "adapters/timestamps.py")),
    ("body parse (PromiseQuery, pydantic)", ("pydantic", "parse_query")),
    ("metrics (prometheus_client)", ("prometheus_client",)),
    ("response encode (orjson.dumps in _json)", ("_json (oms_streams/api/http.py",)),
    ("rest of the /promise view", ("api/http.py", "promise_service.py")),
    ("aiohttp: HTTP parsing, routing, response write", ("aiohttp", "faust/web")),
    ("kafka client (aiokafka fetch requests, responses)", ("aiokafka", "kafka/")),
    ("faust/mode service loops (timers, gc freeze, commit)", ("faust/", "mode/", "oms_streams/")),
    ("event loop: epoll wait + socket reads", ("asyncio/", "selectors.py")),
)


def promise_breakdown(path: Path, top: int = 15) -> dict[str, Any]:
    stages: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        frames = [
            f
            for f in stack.split(";")
            if not f.startswith(("process ", "thread ")) and not any(n in f for n in _OUTER)
        ]
        if not frames:
            continue
        count = int(count_s)
        total += count
        label = next(
            (name for name, needles in _STAGES if any(n in f for f in frames for n in needles)), "other"
        )
        stages[label] += count
        name, _, where = frames[-1].partition(" (")
        leaf[f"{name} ({'/'.join(where.rstrip(')').rsplit(':', 1)[0].split('/')[-2:])})"] += count
    if not total:
        return {"samples": 0}
    return {
        "samples": total,
        "stages": [(k, round(100 * v / total, 1)) for k, v in stages.most_common()],
        "self_top": [(k, round(100 * v / total, 1)) for k, v in leaf.most_common(top)],
    }


# --- report ---------------------------------------------------------------------------------------


def _fmt(v: Any, digits: int = 1, unit: str = "") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float | int):
        return f"{v:,.{digits}f}{unit}"
    return str(v)


def targets(out: dict[str, Any]) -> dict[str, Any]:
    t: dict[str, Any] = {}
    runs = out.get("max") or {}
    if runs:
        worst = min(runs.items(), key=lambda kv: kv[1]["rps"])
        t["max throughput >= 500 req/s (slowest cart)"] = {
            "value": round(worst[1]["rps"], 1),
            "cart": worst[0],
            "ratio": worst[1]["rps"] / TARGET_RPS,
            "met": worst[1]["rps"] >= TARGET_RPS,
        }
    rate = out.get("rate") or {}
    if rate:
        ok = rate["rps"] >= 0.98 * TARGET_RPS and set(rate["status"]) == {200}
        t["rate run sustains 500 req/s (4 carts mixed)"] = {
            "value": round(rate["rps"], 1),
            "ratio": rate["rps"] / TARGET_RPS,
            "met": ok,
        }
        p99 = rate["server"]["hist_p99_ms"]
        t["server p99 <= 5 ms at the rate run (histogram)"] = {
            "value": None if p99 is None else round(p99, 2),
            "ratio": None if p99 is None else p99 / TARGET_SERVER_P99_MS,
            "met": p99 is not None and p99 <= TARGET_SERVER_P99_MS,
        }
    if runs:
        worst_p99 = max((r["server"]["hist_p99_ms"] or 0.0) for r in runs.values())
        t["server p99 <= 5 ms in every max run (histogram)"] = {
            "value": round(worst_p99, 2),
            "ratio": worst_p99 / TARGET_SERVER_P99_MS,
            "met": worst_p99 <= TARGET_SERVER_P99_MS,
        }
    out["targets"] = t
    return t


def table(out: dict[str, Any]) -> str:
    lines = [""]
    s = out.get("setup") or {}
    lines.append(
        f"network: {s.get('locations')} locations ({s.get('dcs')} DCs, {s.get('stores')} stores, "
        f"{s.get('routes')} routes), {s.get('skus')} SKUs at {s.get('positions'):,} positions; "
        f"host {out['host']['cpus']} cores shared by hey, the worker and the broker"
    )
    lines.append(
        f"asked_at {out.get('asked_at') or 'now (server clock)'}; worker idle "
        f"{_fmt(out.get('worker_idle_pct'))}% of a core; worker RSS "
        f"{_fmt((out.get('worker_memory_mib') or {}).get('VmRSS'), 0)} MiB"
    )
    lines.append("answers (probe):")
    for name, p in (out.get("probe") or {}).items():
        lines.append(
            f"  {name:<12} {p.get('options', 0)} options {p.get('option_ids')}, {p.get('bytes', 0):,} B"
        )
        for method, reason in (p.get("unavailable") or {}).items():
            lines.append(f"  {'':<12}   no {method}: {reason}")
    header = (
        f"{'run':<22}{'req/s':>8}  {'client p50/p90/p99/max ms':<27}{'p99*':>6}  {'server p50/p99 ms':<19}"
        f"{'mean':>6}{'≤5ms':>7}{'worker':>8}{'ms/req':>8}{'hey':>6}{'other':>6}{'max':>6}"
    )
    lines += ["", header, "-" * len(header)]
    rows = [(f"max {name} c{r['concurrency']}", r) for name, r in (out.get("max") or {}).items()]
    if out.get("rate"):
        r = out["rate"]
        rows.append((f"rate {r['offered_rps']:.0f}/s mix {r['concurrency']}x1", r))
    if out.get("rate_burst"):
        r = out["rate_burst"]
        rows.append((f"burst {r['offered_rps']:.0f}/s 4x16", r))
    if (out.get("profile") or {}).get("run"):
        rows.append(("(profiled mix c16)", {**out["profile"]["run"], "status": {}}))
    for label, r in rows:
        c, sv, cpu = r["client_ms"], r["server"], r["cpu"]
        steady = r.get("client_ms_steady") or {}
        client = "/".join(_fmt(c[k], 1) for k in ("p50", "p90", "p99", "max"))
        server = f"{_fmt(sv['hist_p50_ms'], 2)}/{_fmt(sv['hist_p99_ms'], 2)}"
        within = "n/a" if sv["share_within_5ms"] is None else f"{100 * sv['share_within_5ms']:.1f}%"
        lines.append(
            f"{label:<22}{r['rps']:>8,.0f}  {client:<27}{_fmt(steady.get('p99'), 1):>6}  {server:<19}"
            f"{_fmt(sv['mean_ms'], 2):>6}"
            f"{within:>7}{cpu['worker_pct']:>7.0f}%{_fmt(cpu['worker_ms_per_request'], 2):>8}"
            f"{cpu['hey_cores']:>6.2f}{cpu['others_cores']:>6.2f}"
            f"{_fmt(cpu.get('others_cores_max_500ms'), 2):>6}"
        )
        bad = {k: v for k, v in r.get("status", {}).items() if k != 200}
        if bad or r.get("errors"):
            lines.append(f"{'':<22}non-200: {bad} hey errors: {list(r.get('errors', {}))}")
        if (
            sv["answered"]
            and abs(sv["answered"] - r.get("responses", sv["answered"])) > 0.02 * sv["answered"]
        ):
            lines.append(f"{'':<22}worker answered {sv['answered']:,}, hey saw {r.get('responses'):,}")
    lines.append(
        "(req/s and p99* = requests started 2 s after each hey process began until 1 s before its end; "
        "client = all of them; server = oms_promise_seconds delta: bucket-interpolated p50/p99, exact "
        "mean, share ≤ 5 ms; worker = % of one core; ms/req = worker CPU per answered request; "
        "hey/other = cores, mean over the run; max = other processes' cores, busiest 0.5 s)"
    )
    st = out.get("stages") or {}
    if st:
        lines.append("")
        lines.append(
            "stages in-process, ms per request (parse = parse_query, pydantic; stock = to_request + "
            "stock_for; promise = promise_options, the domain; wire = result_to_wire; encode = orjson.dumps):"
        )
        keys = [k for k in next(iter(st.values())) if k != "options"]
        lines.append(f"  {'cart':<12}" + "".join(f"{k:>9}" for k in keys))
        for name, v in st.items():
            lines.append(f"  {name:<12}" + "".join(f"{v[k]:>9.3f}" for k in keys))
    prof = out.get("profile") or {}
    if prof.get("samples"):
        lines.append("")
        lines.append(f"profile of the worker's busy time ({prof['samples']} samples, {prof['file']}):")
        lines += [f"  {p:5.1f}%  {k}" for k, p in prof["stages"]]
        lines.append("  top functions, self:")
        lines += [f"  {p:5.1f}%  {k}" for k, p in prof["self_top"]]
    lines.append("")
    for name, t in (out.get("targets") or {}).items():
        ratio = "" if t.get("ratio") is None else f" ({t['ratio']:.2f} x target)"
        lines.append(f"{name:<52}{_fmt(t['value'], 2):>10}{ratio:<18} {'MET' if t['met'] else 'NOT MET'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out: dict[str, Any] = {}
    with broker(os.environ.get("OMS_KAFKA_BOOTSTRAP")) as (bootstrap, started_here):
        bench = PromiseBench(args, bootstrap)
        log(f"run {bench.run_id} on {bootstrap} ({'private broker' if started_here else 'given broker'})")
        try:
            out = bench.run()
            out["bootstrap"] = bootstrap
        finally:
            bench.cleanup()
            if not started_here:
                n = delete_topics_with_prefixes(bootstrap, [bench.run_id])
                log(f"deleted {n} bench topics")
    targets(out)
    print(table(out), flush=True)
    path = args.json or RESULTS / "promise-http-latest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=str))
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
