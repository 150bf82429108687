"""The sourcing saga's commands to the SKUs' ledgers: reserve, release, fulfil.

Every path of the saga (a round's reserves, a retry's releases, a stray answer's release, a
withdrawal's or a cancellation's releases, a handover's fulfils) sends through ``send``: the command
waits in the order's row until it is answered (``SourcingRow.outstanding``), and ``again`` sends a
waiting one once more with the same ids (a reply timeout, a reload), so the ledger answers it as it
answered the first copy. A batch's commands leave grouped per partition of the reservations topic
(``outbox.PartitionBatches``), once its rows are stored (``drain``, then the outbox's flush).
"""

from __future__ import annotations

from typing import Any

from oms_streams.adapters.sourcing import SourcingRow, reservation_batch_record, reservation_command
from oms_streams.streaming.outbox import Outbox, PartitionBatches


class LedgerCommands:
    def __init__(self, topic: str, partitions: int | None, outbox: Outbox) -> None:
        self.outbox = outbox
        self.batches = PartitionBatches(topic, partitions, reservation_batch_record)

    def send(
        self,
        kind: str,
        row: SourcingRow | None,
        reservation_id: str,
        sku: str,
        lines: list[list[Any]],
        now: int,
        order_id: str | None = None,
        at_ms: int | None = None,
    ) -> None:
        """A command to the SKU's ledger; it waits in the row (if any) for its answer. ``at_ms``:
        when it happened, if not now (a fulfil: the handover)."""
        order = row.order_id if row is not None else order_id
        channel = row.channel if row is not None else "webshop"
        assert order is not None
        if row is not None:
            row.await_reply(kind, reservation_id, sku, lines, now, at_ms)
        takes_over = row.hold_id if row is not None else None  # sent on reserves only
        at = now if at_ms is None else at_ms
        self.batches.add(
            sku,
            reservation_command(kind, reservation_id, order, sku, channel, lines, at, takes_over=takes_over),
        )

    def again(self, entry: dict[str, Any], row: SourcingRow, now: int) -> None:
        """A waiting command again (same ids: the ledger answers it as the first copy), with the
        time each location's step happened."""
        kind, rid, sku = entry["kind"], entry["reservation_id"], entry["sku"]
        times = entry.get("at_ms", {})
        by_time: dict[int, list[list[Any]]] = {}
        for line in entry["lines"]:
            by_time.setdefault(times.get(str(line[0]), now), []).append(line)
        for at, lines in by_time.items():
            self.batches.add(
                sku,
                reservation_command(
                    kind, rid, row.order_id, sku, row.channel, lines, at, takes_over=row.hold_id
                ),
            )

    def drain(self, now: int) -> None:
        """The batch's commands into the outbox, one record per partition (sent at its flush)."""
        self.batches.drain_into(self.outbox, now)
