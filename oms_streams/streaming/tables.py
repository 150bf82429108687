"""Every faust table of the worker, in one place (the ledger keeps its own: ``ledger_store``).

``orders`` is co-partitioned with the order topics (keyed by order id) and
written only by ``track_orders`` and its milestone timer; ``sourcing`` likewise, by
``source_orders``; ``returns`` is co-partitioned with the return topics (keyed by return id) and
written only by ``handle_returns``. Every write is made inside the partition of its key (see
``table_context``).
Values are raw JSON bytes written whole (faust only writes the changelog on ``table[key] = value``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust

from oms_streams.config import Settings

MIB = 1024 * 1024


@dataclass(frozen=True)
class Tables:
    orders: Any
    """Order id -> order row: promise versions, milestones, fulfilment events, last risk state."""
    sourcing: Any
    """Order id -> the order's sourcing saga: attempt, plan, holds, allocations (written by
    ``source_orders``)."""
    returns: Any
    """Return id -> its routing decision and its receipts with their dispositions (written by
    ``handle_returns``)."""


def define_tables(app: faust.App, settings: Settings) -> Tables:
    # faust's RocksDB defaults (64 MiB x 3 memtables and a 2 GiB block cache per partition store)
    # cost gigabytes on a worker with a dozen stores; the runtimes cache hot rows themselves.
    options = (
        {
            "driver": "rocksdict",
            "write_buffer_size": 8 * MIB,
            "max_write_buffer_number": 2,
            "block_cache_size": 32 * MIB,
            "block_cache_compressed_size": 0,
        }
        if settings.table_store == "rocksdb"
        else None
    )
    common: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "partitions": settings.partitions,
    }
    return Tables(
        orders=app.Table("orders", options=options, help="Orders, their promise and progress", **common),
        sourcing=app.Table("sourcing", options=options, help="Sourcing saga per order", **common),
        returns=app.Table("returns", options=options, help="Returns: routing and receipts", **common),
    )
