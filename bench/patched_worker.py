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
  cycles the ledger engine's loop: every cycle slower than 30 ms is printed with its parts
         (fetch wait, apply, flush) and how long the event loop took to come back after the fetch.
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
    if "cycles" in patches:
        _time_cycles()


def _time_cycles() -> None:
    import time

    from oms_streams.streaming import ledger_engine

    engine = ledger_engine.LedgerEngine
    fetch, apply_, = engine._fetch, engine._apply

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
            print(f"cycle {1000 * (done - f1):6.1f} ms: n={len(messages)} of {n}"
                  f" fetch {1000 * (f1 - f0):5.1f} loop-back {1000 * (started - f1):5.1f}"
                  f" apply {1000 * (flushed - started):5.1f} flush {1000 * (done - flushed):5.1f}",
                  file=sys.stderr, flush=True)

    engine._fetch, engine._apply = timed_fetch, timed_apply


def main() -> int:
    apply({p.strip() for p in os.environ.get("OMS_BENCH_PATCHES", "").split(",") if p.strip()})
    from oms_streams.cli import main as oms_main

    return oms_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
