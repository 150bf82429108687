"""Two throughput/latency fixes for the pinned faust-streaming 0.15.3, applied once at start-up.

Measured with ``make bench`` (see bench/README.md); both are small, local and version-guarded:

1. faust's ``ProducerBuffer`` hands queued ``send_soon`` messages (every table changelog write) to
   the Kafka producer one per event-loop turn, and the conductor stops taking in messages while more
   than 100 are queued; a batch that writes thousands of positions then crawls. The fix hands over
   everything queued per wake-up, and pauses intake only beyond 20,000 queued records.
2. faust hard-codes ``fetch_max_wait_ms=1500`` for its consumer: a partition that has just been
   drained waits up to 1.5 s for its next fetch, which is the p99 of event-to-availability latency
   at moderate load. The fix makes it a setting (``OMS_FETCH_MAX_WAIT_MS``).
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.producer import ProducerBuffer

SUPPORTED = "0.15.3"
_applied: dict[str, Any] = {}


def apply(fetch_max_wait_ms: int) -> None:
    if faust.__version__ != SUPPORTED:  # another version may have fixed or moved these internals
        return
    _applied["fetch_max_wait_ms"] = fetch_max_wait_ms
    if _applied.get("done"):
        return
    _applied["done"] = True

    async def _send_pending(self: Any, fut: Any) -> None:
        await fut.message.channel.publish_message(fut, wait=False)
        queue = self.pending
        while not queue.empty():  # everything already queued, without a loop turn per message
            queued = queue.get_nowait()
            await queued.message.channel.publish_message(queued, wait=False)

    ProducerBuffer._send_pending = _send_pending  # type: ignore[method-assign]
    # One batch writes a changelog record per changed position: at faust's limit of 100 the intake
    # pauses (with a warning) after nearly every batch. The limit stays a bound on memory.
    ProducerBuffer.max_messages = 20_000

    original = AIOKafkaConsumerThread._create_worker_consumer

    def _create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = _applied["fetch_max_wait_ms"]  # read when the consumer starts
        return consumer

    AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer  # type: ignore[method-assign]
