"""Domain availability to the ``oms.availability.v1`` wire format (built without pydantic: hot path)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import orjson

from oms_streams.adapters.timestamps import epoch_ms, utc_from_epoch_ms
from oms_streams.domain.visibility import ChannelView, RunningAvailability, SkuAvailability


def availability_record(availability: SkuAvailability, rules_version: str, now_ms: int) -> dict[str, Any]:
    """Matches ``schemas.availability.AvailabilityRecord`` (a contract test keeps them in step)."""
    return _record(
        availability.sku,
        utc_from_epoch_ms(now_ms).isoformat(),
        rules_version,
        availability.network_atp,
        ((view.channel, view.total, dict(view.by_location)) for view in availability.channels),
        dict(availability.lead_time_hours),
        dict(availability.protected),
        dict(availability.short),
        dict(availability.inbound),
    )


def encode(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record)


def encode_running(views: RunningAvailability, rules_version: str, published_at: str) -> bytes:
    """``encode(availability_record(views.availability(), ...))`` without copying the views: the
    ledger's hot path publishes the running state as it stands (``published_at`` in ISO 8601)."""
    names = (rule.channel for rule in views.rules.channels)
    channels = zip(names, views.totals, views.by_location, strict=True)
    return orjson.dumps(
        _record(
            views.sku,
            published_at,
            rules_version,
            views.network_atp,
            channels,
            views.lead_times,
            views.protected,
            views.short,
            views.inbound,
        )
    )


def _record(
    sku: str,
    published_at: str,
    rules_version: str,
    network_atp: int,
    channels: Iterable[tuple[str, int, dict[str, int]]],
    lead_time_hours: dict[str, int],
    protected: dict[str, int],
    short: dict[str, int],
    inbound: dict[str, tuple[tuple[int, int], ...]],
) -> dict[str, Any]:
    """The one shape of an availability record, from a copy or from the running views. ``inbound``
    only where some location has inbound a preorder may take (records stay as they were elsewhere)."""
    record = {
        "sku": sku,
        "published_at": published_at,
        "rules_version": rules_version,
        "network_atp": network_atp,
        "channels": {channel: {"total": total, "locations": shown} for channel, total, shown in channels},
        "lead_time_hours": lead_time_hours,
        "protected": protected,
        "short": short,
    }
    if inbound:
        record["inbound"] = {
            loc: {
                "units": sum(units for _, units in lots),
                "expected_at": utc_from_epoch_ms(lots[0][0]).isoformat(),
                "lots": [{"expected_at": utc_from_epoch_ms(eta).isoformat(), "units": u} for eta, u in lots],
            }
            for loc, lots in inbound.items()
        }
    return record


def inbound_lots(seen: dict[str, Any]) -> tuple[tuple[int, int], ...]:
    """(ETA ms, units) of a location's ``inbound`` entry in a record."""
    return tuple((epoch_ms(datetime.fromisoformat(lot["expected_at"])), lot["units"]) for lot in seen["lots"])


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
        inbound={loc: inbound_lots(seen) for loc, seen in record.get("inbound", {}).items()},
    )
