"""What the ledger's dedupe id store costs at scale: ``python -m bench.dedupe_ids [--ids 10000000]``.

Writes N applied-movement ids (``SKU|LOCATION|event id`` -> applied-at ms, as
``streaming/event_ids.py`` does) into one RocksDB store opened with exactly the options the worker's
tables use (faust's ``RocksDBOptions`` with ``streaming/tables.py``'s sizes), then measures the disk
it takes, the process's memory, point lookups of present and absent ids, and what the changelog
carries. A worker holds one such store per partition it owns; the figures are for all N in one.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import resource
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from faust.stores.rocksdb import RocksDBOptions

from oms_streams.streaming.event_ids import id_key
from oms_streams.streaming.tables import MIB

RECORD_OVERHEAD = 20
"""Bytes a Kafka v2 record adds to its key and value (length varints, attributes, deltas), before
the batch header that many records share."""


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def disk_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / MIB


def an_id(i: int) -> bytes:
    # On 100k SKUs x 1,000 stores, with a random UUID as the event id (as most integrations make
    # them; a till's sequence numbers compress far better).
    store = i % 1_000
    event_id = str(uuid.UUID(bytes=hashlib.blake2b(i.to_bytes(8, "big"), digest_size=16).digest()))
    return id_key(f"SKU-{(i * 7919) % 100_000:06d}", f"STORE-{store:04d}", event_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=10_000_000)
    parser.add_argument("--lookups", type=int, default=100_000)
    args = parser.parse_args()
    from rocksdict import WriteBatch

    options = RocksDBOptions(
        write_buffer_size=8 * MIB,
        max_write_buffer_number=2,
        block_cache_size=32 * MIB,
        block_cache_compressed_size=0,
    )
    work = Path(tempfile.mkdtemp(prefix="oms-dedupe-bench-"))
    try:
        db = options.open(work / "stock_event_ids-0.db")
        rss_before = rss_mib()
        applied_at = str(int(time.time() * 1000)).encode()
        payload = 0
        started = time.perf_counter()
        for start in range(0, args.ids, 10_000):
            batch = WriteBatch(raw_mode=True)
            for i in range(start, min(start + 10_000, args.ids)):
                key = an_id(i)
                batch.put(key, applied_at)
                payload += len(key) + len(applied_at)
            db.write(batch)
        db.flush()
        write_s = time.perf_counter() - started
        db.compact_range(None, None)
        rng = random.Random(1)
        started = time.perf_counter()
        hits = sum(db.get(an_id(rng.randrange(args.ids))) is not None for _ in range(args.lookups))
        hit_us = (time.perf_counter() - started) / args.lookups * 1e6
        started = time.perf_counter()
        misses = sum(db.get(an_id(args.ids + rng.randrange(args.ids))) is None for _ in range(args.lookups))
        miss_us = (time.perf_counter() - started) / args.lookups * 1e6
        figures = {
            "ids": args.ids,
            "write_s": round(write_s, 1),
            "ids_per_s": round(args.ids / write_s),
            "disk_mib": round(disk_mib(work), 1),
            "disk_bytes_per_id": round(disk_mib(work) * MIB / args.ids, 1),
            "rss_mib_before": round(rss_before, 1),
            "rss_mib_after": round(rss_mib(), 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "lookup_hit_us": round(hit_us, 2),
            "lookup_miss_us": round(miss_us, 2),
            "hits_found": hits,
            "misses_absent": misses,
            "changelog_mib_uncompressed": round((payload + RECORD_OVERHEAD * args.ids) / MIB, 1),
        }
        db.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
