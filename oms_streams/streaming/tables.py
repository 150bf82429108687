"""Every faust table of the worker, in one place (the ledger keeps its own: ``ledger_store``).

``orders`` is co-partitioned with the order topics (keyed by order id) and
written only by ``track_orders`` and its milestone timer; ``sourcing`` likewise, by
``source_orders``; ``returns`` is co-partitioned with the return topics (keyed by return id) and
written only by ``handle_returns``. Every write is made inside the partition of its key (see
``table_context``).
Values are raw JSON bytes written whole (faust only writes the changelog on ``table[key] = value``).
Each has an index table (``<table>_index``, same keys and partitions, written by the same runtime):
which rows are open and when the finished ones may be removed (``streaming.retention``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import faust

from oms_streams.config import Settings
from oms_streams.streaming.admin import ensure_changelogs

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
    orders_index: Any
    """Order id -> [order id, partition, removal time or null while open] (``track_orders``)."""
    sourcing_index: Any
    """Order id -> the same for its sourcing row (``source_orders``)."""
    returns_index: Any
    """Return id -> the same for its row (``handle_returns``)."""
    courier_slots: Any
    """Store id -> its booked courier slots (``source_orders``, as the owner of the store id's
    partition of ``oms.orders.courier-slots.v1``: ``streaming.courier_slots``)."""


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
    tables = Tables(
        orders=app.Table("orders", options=options, help="Orders, their promise and progress", **common),
        sourcing=app.Table("sourcing", options=options, help="Sourcing saga per order", **common),
        returns=app.Table("returns", options=options, help="Returns: routing and receipts", **common),
        orders_index=app.Table("orders_index", options=options, help="Open and finished orders", **common),
        sourcing_index=app.Table("sourcing_index", options=options, help="Open and finished sagas", **common),
        returns_index=app.Table("returns_index", options=options, help="Returns and their removal", **common),
        courier_slots=app.Table(
            "courier_slots", options=options, help="Courier slots booked per store", **common
        ),
    )
    # faust creates a new table's changelog itself, but may check it is co-partitioned before its
    # metadata shows the topic (seen in a demo: PartitionsMismatch, "... has 0 partitions").
    ensure_changelogs(
        settings, [getattr(tables, f.name).changelog_topic.get_topic_name() for f in fields(tables)]
    )
    return tables
