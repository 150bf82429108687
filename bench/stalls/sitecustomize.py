"""A stall logger for a bench worker: every event-loop callback over 30 ms and every garbage
collection over 5 ms, one line each with its wall-clock time, in the file ``OMS_STALL_LOG`` names.

    python -m bench.sourcing_e2e --worker-env PYTHONPATH=bench/stalls \\
        --worker-env OMS_STALL_LOG=/tmp/stalls.txt

Python imports ``sitecustomize`` at start-up from ``PYTHONPATH``; without ``OMS_STALL_LOG`` this
does nothing. Line up the times with the latency series in bench/results/sourcing_e2e.json.
"""

import asyncio.events
import gc
import os
import time

_path = os.environ.get("OMS_STALL_LOG")
if _path:
    _out = open(_path, "a", buffering=1)  # noqa: SIM115 - open for the life of the process
    _started = [0.0]

    def _on_gc(phase, info):
        if phase == "start":
            _started[0] = time.perf_counter()
            return
        took = time.perf_counter() - _started[0]
        if took > 0.005:
            _out.write(f"{time.time():.3f} gc gen{info['generation']} {took * 1000:.1f} ms\n")

    gc.callbacks.append(_on_gc)
    _run = asyncio.events.Handle._run

    def _timed_run(self):
        start = time.perf_counter()
        _run(self)
        took = time.perf_counter() - start
        if took > 0.03:
            _out.write(f"{time.time():.3f} callback {took * 1000:.1f} ms {self._callback!r:.200}\n")

    asyncio.events.Handle._run = _timed_run
