"""``python -m bench.trace FILE [--window S]``: the ledger engine's chunks, as traced by
``bench.patched_worker``'s ``trace`` patch, summed per time window: records per chunk, the wall time
of a chunk's apply against the main thread's CPU in it, CPU per record, and the age of the oldest
record when fetched (p99). It shows where a paced load's latency goes: a chunk's fixed cost, the
cost per record at that chunk size, and how busy the loop is.

    python -m bench.run --skip-passthrough --skip-count --latency-load 0.1 --latency-curve 0.25,0.5 \\
        --worker-module bench.patched_worker --worker-env OMS_BENCH_PATCHES=trace \\
        --worker-env OMS_BENCH_TRACE=/tmp/chunks.jsonl
    python -m bench.trace /tmp/chunks.jsonl
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from typing import Any

from bench.ledger import _percentile


def windows(rows: list[dict[str, Any]], seconds: float) -> list[dict[str, float]]:
    """One summary per window of ``seconds`` that saw a chunk, oldest first."""
    if not rows:
        return []
    start = rows[0]["t"]
    grouped: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[int((row["t"] - start) // seconds)].append(row)
    out = []
    for index in sorted(grouped):
        chunks = grouped[index]
        records = sum(c["n"] for c in chunks)
        wall = sum(c["apply_ms"] for c in chunks)
        cpu = sum(c.get("cpu_ms", 0.0) for c in chunks)
        out.append(
            {
                "at_s": index * seconds,
                "records_per_s": records / seconds,
                "chunks": len(chunks),
                "records_per_chunk": records / len(chunks),
                "apply_ms_per_chunk": wall / len(chunks),
                "cpu_ms_per_chunk": cpu / len(chunks),
                "cpu_us_per_record": 1000 * cpu / max(records, 1),
                "apply_busy": wall / (1000 * seconds),
                "oldest_age_p99_ms": _percentile([c["oldest_age_ms"] for c in chunks], 0.99) or 0.0,
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.trace", description=__doc__)
    parser.add_argument("file")
    parser.add_argument("--window", type=float, default=2.0, help="seconds per line")
    args = parser.parse_args()
    with open(args.file) as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    print(" at s   rec/s  chunks  rec/chunk  apply ms  cpu ms  cpu µs/rec  busy  oldest p99 ms")
    for w in windows(rows, args.window):
        print(
            f"{w['at_s']:5.0f} {w['records_per_s']:7.0f} {w['chunks']:7d} {w['records_per_chunk']:10.1f}"
            f" {w['apply_ms_per_chunk']:9.2f} {w['cpu_ms_per_chunk']:7.2f} {w['cpu_us_per_record']:11.0f}"
            f" {100 * w['apply_busy']:4.0f}% {w['oldest_age_p99_ms']:14.1f}"
        )


if __name__ == "__main__":
    main()
