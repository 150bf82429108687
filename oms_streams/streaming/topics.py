"""Every topic oms-streams reads or writes, in one registry.

Stock topics are keyed and partitioned by SKU so one worker owns all locations of a SKU; they must
share one partition count (faust co-partitions them with the ledger tables' changelogs).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from oms_streams.config import Settings
from oms_streams.schemas.availability import AvailabilityRecord
from oms_streams.schemas.config import LocationRecord, VisibilityRulesRecord
from oms_streams.schemas.dlq import DeadLetter
from oms_streams.schemas.inventory import StockCount, StockMovement, SupplierStock


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    key: str
    model: type[BaseModel]
    description: str
    compacted: bool = False
    single_partition: bool = False
    """Config topics: one partition keeps their order total and their size tiny."""
    producers: tuple[str, ...] = ()
    consumers: tuple[str, ...] = ()

    def partitions(self, settings: Settings) -> int:
        override = settings.topic_overrides.get(self.name)
        if override and override.partitions:
            return override.partitions
        return 1 if self.single_partition else settings.partitions

    def replication_factor(self, settings: Settings) -> int:
        override = settings.topic_overrides.get(self.name)
        if override and override.replication_factor:
            return override.replication_factor
        return settings.replication_factor

    def kafka_config(self) -> dict[str, str]:
        return {"cleanup.policy": "compact"} if self.compacted else {}


MOVEMENTS = TopicSpec(
    "oms.inventory.movements.v1",
    "sku",
    StockMovement,
    "Stock movements at a location: receipts, sales, returns, transfers, adjustments, unsellable.",
    producers=("ERP", "POS"),
    consumers=("apply_stock_events",),
)
COUNTS = TopicSpec(
    "oms.inventory.counts.v1",
    "sku",
    StockCount,
    "Full stock counts: absolute quantities per location as of a time.",
    producers=("ERP",),
    consumers=("apply_stock_events",),
)
SUPPLIER_STOCK = TopicSpec(
    "oms.inventory.supplier-stock.v1",
    "sku",
    SupplierStock,
    "Third-party stock snapshots with lead time.",
    producers=("suppliers", "marketplaces"),
    consumers=("apply_stock_events",),
)
LOCATIONS = TopicSpec(
    "oms.config.locations.v1",
    "location_id",
    LocationRecord,
    "Location master data; a tombstone removes a location.",
    compacted=True,
    single_partition=True,
    producers=("oms config publish", "ERP"),
    consumers=("config follower (every worker)",),
)
VISIBILITY_RULES = TopicSpec(
    "oms.config.visibility-rules.v1",
    "'default'",
    VisibilityRulesRecord,
    "Channel exposure, safety stock, store cap, publication thresholds.",
    compacted=True,
    single_partition=True,
    producers=("oms config publish",),
    consumers=("config follower (every worker)",),
)
AVAILABILITY = TopicSpec(
    "oms.availability.v1",
    "sku",
    AvailabilityRecord,
    "Visible availability per channel and location; published only when a visible quantity changes.",
    compacted=True,
    producers=("apply_stock_events", "resync (config change, rebalance)"),
    consumers=("webshop", "availability view (HTTP)"),
)
DLQ = TopicSpec(
    "oms.dlq.v1",
    "source topic",
    DeadLetter,
    "Input that could not be applied, with the reason, its origin and the original bytes.",
    producers=("apply_stock_events", "config follower (every worker)"),
    consumers=("operators",),
)

STOCK_INPUTS = (MOVEMENTS, COUNTS, SUPPLIER_STOCK)
CONFIG_INPUTS = (LOCATIONS, VISIBILITY_RULES)
ALL_TOPICS = (*STOCK_INPUTS, *CONFIG_INPUTS, AVAILABILITY, DLQ)
