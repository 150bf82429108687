"""Config records (locations, visibility rules) to domain values."""

from __future__ import annotations

from pydantic import ValidationError

from oms_streams.domain.visibility import (
    ChannelRule,
    Location,
    LocationType,
    SafetyStock,
    VisibilityRules,
)
from oms_streams.schemas.config import LocationRecord, VisibilityRulesRecord


def to_location(record: LocationRecord) -> Location:
    return Location(
        location_id=record.location_id,
        type=LocationType(record.type),
        name=record.name,
        lat=record.lat,
        lon=record.lon,
        region=record.region,
        active=record.active,
        online_cap_pct=record.online_cap_pct,
    )


def to_rules(record: VisibilityRulesRecord) -> VisibilityRules:
    by_type: dict[LocationType, int] = {}
    by_sku_location: dict[tuple[str, str], int] = {}
    by_sku_location_channel: dict[tuple[str, str, str], int] = {}
    default = record.default_safety_stock
    for entry in record.safety_stock:
        if entry.sku and entry.location_id and entry.channel:
            by_sku_location_channel[(entry.sku, entry.location_id, entry.channel)] = entry.units
        elif entry.sku and entry.location_id:
            by_sku_location[(entry.sku, entry.location_id)] = entry.units
        elif entry.location_type:
            by_type[LocationType(entry.location_type)] = entry.units
        else:
            default = entry.units
    return VisibilityRules(
        channels=tuple(
            ChannelRule(
                channel=c.channel,
                location_types=frozenset(LocationType(t) for t in c.location_types),
                store_cap_applies=c.store_cap_applies,
                max_lead_time_hours=c.max_lead_time_hours,
                low_stock=c.low_stock,
            )
            for c in record.channels
        ),
        safety_stock=SafetyStock(default, by_type, by_sku_location, by_sku_location_channel),
        store_online_cap_pct=record.store_online_cap_pct,
        thresholds_only=record.thresholds_only,
        version=record.version,
    )


def decode_location(value: bytes) -> Location | str:
    """A location, or the reason it is not one."""
    try:
        return to_location(LocationRecord.model_validate_json(value))
    except ValidationError as error:
        return f"invalid location record: {error.errors()[0]['msg']} at {error.errors()[0]['loc']}"


def decode_rules(value: bytes) -> VisibilityRules | str:
    try:
        return to_rules(VisibilityRulesRecord.model_validate_json(value))
    except ValidationError as error:
        return f"invalid visibility rules: {error.errors()[0]['msg']} at {error.errors()[0]['loc']}"
