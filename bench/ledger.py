"""The ledger pipeline phases: throughput (c), paced latency, and a full 1M-position count (d)."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from bench.data import MovementGenerator
from bench.kafka import bulk_producer, produce_all
from bench.worker import Worker, histogram, histogram_quantile

EVENTS = "oms_stock_events_total"


def cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of a process so far."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def topic_end(bootstrap: str, topic: str) -> int:
    """Records on a (fresh, never compacted) topic: the sum of its partitions' end offsets."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-unused"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions]
        return sum(ends)
    finally:
        consumer.close()


def wait_output_flushed(bootstrap: str, worker: Worker, out_topic: str, timeout_s: float) -> float | None:
    """Wait until every availability record the worker has published (``send_soon``) is on the
    output topic; returns when (monotonic), or None on timeout. faust queues sends in its producer
    buffer, so 'applied' can run far ahead of 'on Kafka'."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        worker.check_alive()
        published = worker.metric("oms_availability_published_total")
        if topic_end(bootstrap, out_topic) >= published:
            return time.monotonic()
        time.sleep(0.2)
    return None


def throughput(worker: Worker, expected: int, timeout_s: float, poll_s: float = 0.1,
               bootstrap: str | None = None, out_topic: str | None = None) -> dict[str, Any]:
    """Steady-state rate: from the first counted event to ``expected``, scraping /metrics.

    The worker was started on a pre-loaded topic, so its start-up is excluded. Also gives the rate
    between 10 % and 90 % of the events (drops the first batch and the tail) and the worker's CPU use.
    """
    samples: list[tuple[float, float]] = []
    deadline = time.monotonic() + timeout_s
    cpu_first = None
    while time.monotonic() < deadline:
        worker.check_alive()
        text = worker.scrape()
        now = time.monotonic()
        count = worker.metric(EVENTS, text) if text else 0.0
        if count > 0:
            if cpu_first is None:
                cpu_first = cpu_seconds(worker.pid)
            samples.append((now, count))
            if count >= expected:
                break
        time.sleep(poll_s)
    cpu_last = cpu_seconds(worker.pid)
    if len(samples) < 2:
        return {"events": samples[-1][1] if samples else 0, "events_per_s": None, "timed_out": True}
    (t0, c0), (t1, c1) = samples[0], samples[-1]
    result: dict[str, Any] = {
        "events": int(c1), "seconds": t1 - t0, "events_per_s": (c1 - c0) / (t1 - t0),
        "timed_out": c1 < expected,
        "worker_cpu_pct": 100 * (cpu_last - (cpu_first or cpu_last)) / (t1 - t0),
    }
    lo = next(((t, c) for t, c in samples if c >= 0.1 * expected), None)
    hi = next(((t, c) for t, c in samples if c >= 0.9 * expected), None)
    if lo and hi and hi[0] > lo[0]:
        result["events_per_s_10_90"] = (hi[1] - lo[1]) / (hi[0] - lo[0])
    if bootstrap and out_topic and not result["timed_out"]:
        # End to end, like the passthroughs: until the last availability record is on Kafka.
        flushed = wait_output_flushed(bootstrap, worker, out_topic, timeout_s=max(60.0, timeout_s / 2))
        if flushed is not None:
            result["output_lag_s"] = flushed - t1
            result["events_per_s_e2e"] = (c1 - c0) / (flushed - t0)
    text = worker.scrape() or ""
    result["published"] = int(worker.metric("oms_availability_published_total", text))
    result["dead_lettered"] = int(worker.metric(EVENTS, text, verdict="dead_lettered"))
    result["duplicates"] = int(worker.metric(EVENTS, text, verdict="duplicate"))
    return result


class _AvailabilityWatcher(threading.Thread):
    """Reads the availability topic (no group) and resolves pending events by SKU."""

    def __init__(self, bootstrap: str, topic: str, from_beginning: bool) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": "bench-unused", "enable.auto.commit": False,
            "fetch.wait.max.ms": 10, "fetch.error.backoff.ms": 10,
        })
        partitions = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        tps = []
        for p in partitions:
            high = self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            tps.append(TopicPartition(topic, p, OFFSET_BEGINNING if from_beginning else high))
        self.consumer.assign(tps)
        self.lock = threading.Lock()
        self.pending: dict[str, int] = {}
        self.free: list[str] = []
        self.latencies_ms: list[float] = []
        self.unexpected = 0
        self.keys: set[bytes] = set()
        self.first_new: float | None = None
        self.last_new: float | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            message = self.consumer.poll(0.05)
            if message is None or message.error():
                continue
            now = time.monotonic()
            now_ms = time.time() * 1000
            key = message.key() or b""
            if key not in self.keys:
                self.keys.add(key)
                self.first_new = self.first_new or now
                self.last_new = now
            sku = key.decode()
            with self.lock:
                sent_ms = self.pending.pop(sku, None)
                if sent_ms is None:
                    self.unexpected += 1
                else:
                    self.latencies_ms.append(now_ms - sent_ms)
                    self.free.append(sku)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)
        self.consumer.close()


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency(bootstrap: str, worker: Worker, in_topic: str, out_topic: str, generator: MovementGenerator,
            rate: float, seconds: float) -> dict[str, Any]:
    """Produce movements at ``rate``/s for ``seconds`` into the running worker; measure each one's
    produce timestamp → its SKU's availability record seen by a consumer.

    At most one event per SKU is in flight, so each availability record answers exactly one event
    (the generator guarantees every event changes a visible quantity).
    """
    watcher = _AvailabilityWatcher(bootstrap, out_topic, from_beginning=False)
    watcher.free = list(generator.skus)
    watcher.start()
    time.sleep(1.0)  # let the watcher's first fetch settle
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 1, "acks": 1, "partitioner": "murmur2_random"}
    )
    rng = random.Random(3)
    before = worker.scrape() or ""
    sent = stalled = 0
    t0 = time.monotonic()
    while (elapsed := time.monotonic() - t0) < seconds:
        due = int(elapsed * rate)
        while sent < due:
            with watcher.lock:
                if not watcher.free:
                    stalled += 1
                    break
                i = rng.randrange(len(watcher.free))
                watcher.free[i], watcher.free[-1] = watcher.free[-1], watcher.free[i]
                sku = watcher.free.pop()
                key, value = generator.movement(sku)
                ts = int(time.time() * 1000)
                watcher.pending[sku] = ts
            producer.produce(in_topic, value, key, timestamp=ts)
            sent += 1
        producer.poll(0)
        time.sleep(0.0005)
    producer.flush(10)
    produced_s = time.monotonic() - t0
    deadline = time.monotonic() + 15
    while watcher.pending and time.monotonic() < deadline:
        time.sleep(0.05)
    watcher.stop()
    time.sleep(0.5)  # the worker observes its histogram right after sending
    after = worker.scrape() or ""
    lat = watcher.latencies_ms
    h_before = histogram(before, "oms_event_to_availability_seconds")
    h_after = histogram(after, "oms_event_to_availability_seconds")

    def hq(q: float) -> float | None:
        v = histogram_quantile(h_before, h_after, q)
        return None if v is None else v * 1000

    return {
        "target_rate": rate, "achieved_rate": sent / produced_s, "sent": sent, "matched": len(lat),
        "unmatched": len(watcher.pending), "unexpected_records": watcher.unexpected, "stalled_ticks": stalled,
        "p50_ms": _percentile(lat, 0.50), "p90_ms": _percentile(lat, 0.90), "p99_ms": _percentile(lat, 0.99),
        "max_ms": max(lat) if lat else None,
        "worker_hist_p50_ms": hq(0.50), "worker_hist_p99_ms": hq(0.99),
    }


def full_count(bootstrap: str, worker: Worker, counts_topic: str, out_topic: str,
               messages: list[tuple[bytes, bytes]], positions: int, timeout_s: float) -> dict[str, Any]:
    """Produce every StockCount into the idle, ready worker; time until every SKU's availability is out."""
    watcher = _AvailabilityWatcher(bootstrap, out_topic, from_beginning=True)
    watcher.start()
    n_skus = len(messages)
    cpu0 = cpu_seconds(worker.pid)
    t0 = time.monotonic()
    produce_all(bulk_producer(bootstrap), counts_topic, messages)
    produced = time.monotonic() - t0
    first_applied = all_applied = None
    deadline = t0 + timeout_s
    while time.monotonic() < deadline and len(watcher.keys) < n_skus:
        worker.check_alive()
        applied = worker.metric(EVENTS)
        now = time.monotonic()
        if applied > 0 and first_applied is None:
            first_applied = now
        if applied >= positions and all_applied is None:
            all_applied = now
        time.sleep(0.25)
    done = watcher.last_new if len(watcher.keys) >= n_skus else None
    cpu1 = cpu_seconds(worker.pid)
    watcher.stop()
    mem_done = worker.memory()
    time.sleep(3)  # let the changelog and rocksdb flushes settle
    text = worker.scrape() or ""
    return {
        "skus": n_skus, "positions": positions, "produce_s": produced,
        "skus_published": len(watcher.keys),
        "seconds_total": (done - t0) if done else None,
        "seconds_from_first_apply": (done - first_applied) if done and first_applied else None,
        "first_apply_after_s": (first_applied - t0) if first_applied else None,
        "first_record_after_s": (watcher.first_new - t0) if watcher.first_new else None,
        "positions_applied": int(worker.metric(EVENTS, text, verdict="applied")),
        "dead_lettered": int(worker.metric(EVENTS, text, verdict="dead_lettered")),
        "timed_out": done is None,
        "worker_cpu_s": cpu1 - cpu0,
        "rss_mib_when_done": mem_done.get("VmRSS"),
        "rss_mib_settled": worker.memory().get("VmRSS"),
        "peak_rss_mib": worker.memory().get("VmHWM"),
    }
