"""Local table state is trusted only when the last run stopped cleanly.

faust writes a table row to the local RocksDB store at once and to its changelog when the producer
delivers it. A worker that dies in between (a record not delivered, SIGKILL, power loss) leaves local
rows the changelog does not have; after a restart the input that caused them is read again, looks
like a duplicate, and the changelog would never get the row: the ledger would differ from its event
log for good. So, as Kafka Streams does after an unclean stop, a worker that finds no clean-stop mark
drops its local tables and restores them from their changelogs. The producer writes the mark when
it stops with every record acknowledged; the next start consumes it.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

CLEAN_STOP = "clean-stop"
LEDGER = "ledger"
"""``<data_dir>/ledger``: the ledger's stores (``ledger_store``)."""


def table_dirs(data_dir: Path) -> list[Path]:
    """faust's local table stores (``<data_dir>/v<version>/tables``) and the ledger's."""
    dirs = [*data_dir.glob("v*/tables"), data_dir / LEDGER]
    return sorted(path for path in dirs if path.is_dir())


def trust_or_rebuild(data_dir: Path) -> bool:
    """At start: keep the local tables if the last run stopped cleanly, else remove them so faust
    restores them from their changelogs. Returns True when they were removed."""
    mark = data_dir / CLEAN_STOP
    stopped_cleanly = mark.exists()
    mark.unlink(missing_ok=True)  # this run has not stopped cleanly yet
    dirs = table_dirs(data_dir)
    stores = sum(1 for tables in dirs for _ in tables.iterdir())
    if stopped_cleanly or not stores:
        return False
    log.warning(
        "the last run did not stop cleanly: %d local table stores are rebuilt from their changelogs", stores
    )
    for tables in dirs:
        shutil.rmtree(tables)
    return True


def mark_clean_stop(data_dir: Path) -> None:
    """Every record the worker produced is acknowledged: its local tables equal their changelogs."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / CLEAN_STOP).touch()
