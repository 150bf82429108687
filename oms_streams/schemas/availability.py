"""The availability feed the webshop consumes (``oms.availability.v1``, compacted, keyed by SKU)."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from oms_streams.schemas.envelope import WireModel


class ChannelAvailability(WireModel):
    total: int = Field(description="Visible units over the whole network for this channel.")
    locations: dict[str, int] = Field(description="Visible units per location; absent means zero.")


class InboundLot(WireModel):
    expected_at: AwareDatetime
    units: int


class InboundAvailability(WireModel):
    units: int = Field(description="Announced inbound units with an ETA not promised to preorders yet.")
    expected_at: AwareDatetime = Field(description="When the first of them is expected (the earliest ETA).")
    lots: list[InboundLot] = Field(
        description="The same units by ETA, earliest first (a preorder takes the earliest free units)."
    )


class AvailabilityRecord(WireModel):
    """The whole visible state of one SKU; the latest record per key is the truth."""

    sku: str
    published_at: AwareDatetime
    rules_version: str
    network_atp: int = Field(description="ATP summed over all known locations, before channel rules.")
    channels: dict[str, ChannelAvailability]
    lead_time_hours: dict[str, int] = Field(default={}, description="Per visible third-party location.")
    protected: dict[str, int] = Field(
        default={},
        description="Units each store keeps for its walk-in shoppers until its next replenishment "
        "(forecast-aware protection); already excluded from every channel.",
    )
    short: dict[str, int] = Field(
        default={},
        description="Units each location lacks to its target stock (forecast demand until its next "
        "replenishment plus safety stock); shipped returns are routed where a SKU is short.",
    )
    inbound: dict[str, InboundAvailability] = Field(
        default={},
        description="Per location: announced inbound (with an ETA) a preorder may still take, and its "
        "earliest ETA (docs/preorders.md). On-hand figures above do not include it.",
    )
