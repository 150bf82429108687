"""Master data and rules on compacted config topics: they change at run time, never need a restart."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from oms_streams.schemas.envelope import Identifier, WireModel

LocationTypeName = Literal["dc", "store", "third_party"]
Percent = Annotated[float, Field(ge=0, le=100)]
Units = Annotated[int, Field(ge=0, le=1_000_000)]


class LocationRecord(WireModel):
    """One location of the network (``oms.config.locations.v1``, keyed by location id)."""

    location_id: Identifier
    type: LocationTypeName
    name: str = ""
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180)] | None = None
    region: str = ""
    active: bool = True
    online_cap_pct: Percent | None = Field(default=None, description="Overrides the store online cap.")


class ChannelRuleRecord(WireModel):
    channel: Identifier
    location_types: Annotated[list[LocationTypeName], Field(min_length=1)]
    store_cap_applies: bool = False
    max_lead_time_hours: Annotated[int, Field(ge=0)] | None = None
    low_stock: Units = 0


SAFETY_STOCK_SCOPES = ((), ("location_type",), ("sku", "location_id"), ("sku", "location_id", "channel"))


class SafetyStockEntry(WireModel):
    """Most specific wins: sku+location+channel, then sku+location, then location type, then default."""

    units: Units
    sku: Identifier | None = None
    location_id: Identifier | None = None
    channel: Identifier | None = None
    location_type: LocationTypeName | None = None

    @model_validator(mode="after")
    def _one_of_the_hierarchy_levels(self) -> SafetyStockEntry:
        scope = tuple(
            name
            for name in ("sku", "location_id", "channel", "location_type")
            if getattr(self, name) is not None
        )
        if scope not in SAFETY_STOCK_SCOPES:
            allowed = " | ".join("+".join(s) or "(none: default)" for s in SAFETY_STOCK_SCOPES)
            raise ValueError(f"safety stock scope {'+'.join(scope)} is not one of: {allowed}")
        return self


class VisibilityRulesRecord(WireModel):
    """The visibility rules (``oms.config.visibility-rules.v1``, key ``default``)."""

    version: Annotated[str, Field(min_length=1, max_length=64)]
    channels: Annotated[list[ChannelRuleRecord], Field(min_length=1)]
    default_safety_stock: Units = 0
    safety_stock: list[SafetyStockEntry] = []
    store_online_cap_pct: Percent = 100.0
    thresholds_only: bool = False


class NetworkConfig(WireModel):
    """The YAML file ``oms config publish`` reads: locations and rules in one document."""

    locations: list[LocationRecord] = []
    visibility_rules: VisibilityRulesRecord | None = None
