"""``python -m bench.patched_worker worker``: the oms worker with experimental faust patches.

For what-if measurements only (``python -m bench.run --worker-module bench.patched_worker
--worker-env OMS_BENCH_PATCHES=drain``); oms_streams itself is untouched. Patches, comma-separated
in ``OMS_BENCH_PATCHES``:

  drain  faust's ProducerBuffer hands one queued ``send_soon`` message to aiokafka per event-loop
         iteration (and the conductor blocks every incoming message while more than 100 are
         queued). This drains the whole queue per wake-up instead.
  ebb    never block the conductor on the producer buffer (ProducerBuffer.max_messages = 10**9).
  fetchwait
         faust hard-codes ``fetch_max_wait_ms=1500`` for its consumer, and aiokafka keeps one fetch
         in flight per broker: a partition whose records were just processed waits for that long
         poll to return. This caps the wait at ``OMS_BENCH_FETCH_WAIT_MS`` (default 10).
  chunk  the ledger engine's chunk of input bytes applied at once: ``OMS_BENCH_CHUNK_BYTES``
         (default 4 MiB) instead of 1 MiB.
  unacked
         the ledger engine's applied chunks that may await their acknowledgements at once:
         ``OMS_BENCH_MAX_UNACKED`` (default 64) instead of 4.
  cycles the ledger engine's loop: every cycle slower than 30 ms is printed with its parts
         (fetch wait, apply, flush) and how long the event loop took to come back after the fetch.
  trace  every chunk of the ledger engine as a JSON line in ``OMS_BENCH_TRACE`` (a file): its
         records, the age of its oldest and newest record when fetched (now - Kafka timestamp),
         the fetch wait, the loop's way back, and the apply (``python -m bench.trace FILE``).
"""

from __future__ import annotations

import os
import sys
from typing import Any


def apply(patches: set[str]) -> None:
    from faust.transport.producer import ProducerBuffer

    if "drain" in patches:

        async def _send_pending(self: Any, fut: Any) -> None:
            await fut.message.channel.publish_message(fut, wait=False)
            queue = self.pending
            while not queue.empty():  # no trip through the event loop per message
                nxt = queue.get_nowait()
                await nxt.message.channel.publish_message(nxt, wait=False)

        ProducerBuffer._send_pending = _send_pending  # type: ignore[method-assign]
    if "ebb" in patches:
        ProducerBuffer.max_messages = 10**9
    if "fetchwait" in patches:
        import aiokafka

        wait_ms = int(os.environ.get("OMS_BENCH_FETCH_WAIT_MS", "10"))
        original = aiokafka.AIOKafkaConsumer.__init__

        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            kwargs["fetch_max_wait_ms"] = min(kwargs.get("fetch_max_wait_ms", wait_ms), wait_ms)
            original(self, *args, **kwargs)

        aiokafka.AIOKafkaConsumer.__init__ = __init__  # type: ignore[method-assign]
    if "chunk" in patches:
        from oms_streams.streaming import ledger_engine

        ledger_engine.CHUNK_BYTES = int(os.environ.get("OMS_BENCH_CHUNK_BYTES", str(4 << 20)))
    if "unacked" in patches:
        from oms_streams.streaming import ledger_engine

        ledger_engine.MAX_UNACKED_CHUNKS = int(os.environ.get("OMS_BENCH_MAX_UNACKED", "64"))
    if "cycles" in patches:
        _time_cycles()
    if "trace" in patches:
        _trace_chunks(os.environ["OMS_BENCH_TRACE"])


def _time_cycles() -> None:
    import time

    from oms_streams.streaming import ledger_engine

    engine = ledger_engine.LedgerEngine
    (
        fetch,
        apply_,
    ) = engine._fetch, engine._apply

    def timed_fetch(self: Any, consumer: Any) -> Any:
        started = time.monotonic()
        out = fetch(self, consumer)
        self._fetched = (started, time.monotonic(), len(out))
        return out

    async def timed_apply(self: Any, consumer: Any, messages: Any) -> None:
        started = time.monotonic()
        flush = self._flush
        marks: dict[str, float] = {}

        async def timed_flush() -> None:
            marks["flush"] = time.monotonic()
            await flush()

        self._flush = timed_flush
        try:
            await apply_(self, consumer, messages)
        finally:
            self._flush = flush
        done = time.monotonic()
        f0, f1, n = getattr(self, "_fetched", (started, started, 0))
        if done - f1 > 0.03:
            flushed = marks.get("flush", done)
            print(
                f"cycle {1000 * (done - f1):6.1f} ms: n={len(messages)} of {n}"
                f" fetch {1000 * (f1 - f0):5.1f} loop-back {1000 * (started - f1):5.1f}"
                f" apply {1000 * (flushed - started):5.1f} flush {1000 * (done - flushed):5.1f}",
                file=sys.stderr,
                flush=True,
            )

    engine._fetch, engine._apply = timed_fetch, timed_apply


def _trace_chunks(path: str) -> None:
    import json
    import time

    from oms_streams.streaming import ledger_engine

    engine = ledger_engine.LedgerEngine
    fetch, apply_ = engine._fetch, engine._apply
    out = open(path, "a", buffering=1)  # noqa: SIM115 (open for the process's life; line-buffered: it is killed)

    def traced_fetch(self: Any, consumer: Any) -> Any:
        started = time.monotonic()
        messages = fetch(self, consumer)
        wall = time.time()
        ages = [wall - m.timestamp()[1] / 1000 for m in messages if m.error() is None]
        self._traced = (started, time.monotonic(), min(ages, default=0.0), max(ages, default=0.0))
        return messages

    async def traced_apply(self: Any, consumer: Any, messages: Any) -> None:
        started, cpu = time.monotonic(), time.thread_time()
        runtime = self.runtime
        spent: list[float] = []

        class Timed:  # the runtime may be compiled (no instance attributes to patch): a proxy
            def __getattr__(self, name: str) -> Any:
                return getattr(runtime, name)

            async def apply_batch(self, records: Any) -> Any:
                begun = time.monotonic()
                try:
                    return await runtime.apply_batch(records)
                finally:
                    spent.append(time.monotonic() - begun)

        self.runtime = Timed()
        try:
            await apply_(self, consumer, messages)
        finally:
            self.runtime = runtime
        done = time.monotonic()
        f0, f1, newest, oldest = getattr(self, "_traced", (started, started, 0.0, 0.0))
        self._traced = (started, started, newest + done - f1, oldest + done - f1)  # a later chunk
        line = {
            "t": time.time(),
            "n": len(messages),
            "fetch_ms": 1000 * (f1 - f0),
            "back_ms": 1000 * (started - f1),
            "apply_ms": 1000 * (done - started),
            "batch_ms": 1000 * sum(spent),
            "cpu_ms": 1000 * (time.thread_time() - cpu),
            "newest_age_ms": 1000 * newest,
            "oldest_age_ms": 1000 * oldest,
        }
        out.write(json.dumps(line) + "\n")

    engine._fetch, engine._apply = traced_fetch, traced_apply


def main() -> int:
    apply({p.strip() for p in os.environ.get("OMS_BENCH_PATCHES", "").split(",") if p.strip()})
    from oms_streams.cli import main as oms_main

    return oms_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
