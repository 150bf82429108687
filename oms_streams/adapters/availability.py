"""Domain availability to the ``oms.availability.v1`` wire format (built without pydantic: hot path)."""

from __future__ import annotations

from typing import Any

import orjson

from oms_streams.adapters.timestamps import utc_from_epoch_ms
from oms_streams.domain.visibility import ChannelView, RunningAvailability, SkuAvailability


def availability_record(availability: SkuAvailability, rules_version: str, now_ms: int) -> dict[str, Any]:
    """Matches ``schemas.availability.AvailabilityRecord`` (a contract test keeps them in step)."""
    return {
        "sku": availability.sku,
        "published_at": utc_from_epoch_ms(now_ms).isoformat(),
        "rules_version": rules_version,
        "network_atp": availability.network_atp,
        "channels": {
            view.channel: {"total": view.total, "locations": dict(view.by_location)}
            for view in availability.channels
        },
        "lead_time_hours": dict(availability.lead_time_hours),
        "protected": dict(availability.protected),
        "short": dict(availability.short),
    }


def encode(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record)


def encode_running(views: RunningAvailability, rules_version: str, published_at: str) -> bytes:
    """``encode(availability_record(views.availability(), ...))`` without copying the views: the
    ledger's hot path publishes the running state as it stands (``published_at`` in ISO 8601)."""
    return orjson.dumps(
        {
            "sku": views.sku,
            "published_at": published_at,
            "rules_version": rules_version,
            "network_atp": views.network_atp,
            "channels": {
                rule.channel: {"total": total, "locations": shown}
                for rule, total, shown in zip(
                    views.rules.channels, views.totals, views.by_location, strict=True
                )
            },
            "lead_time_hours": views.lead_times,
            "protected": views.protected,
            "short": views.short,
        }
    )


def availability_from_record(record: dict[str, Any]) -> SkuAvailability:
    """Back from the wire, to compare a published record with a fresh computation."""
    return SkuAvailability(
        sku=record["sku"],
        network_atp=record["network_atp"],
        channels=tuple(
            ChannelView(channel, view["total"], view["locations"])
            for channel, view in record["channels"].items()
        ),
        lead_time_hours=record.get("lead_time_hours", {}),
        hidden={},
        protected=record.get("protected", {}),
        short=record.get("short", {}),
    )
