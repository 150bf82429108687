"""Small builders for stock events, positions, locations and rules, with readable defaults.

Every builder takes keyword arguments only; what a test does not mention is a sensible default.
Times are epoch milliseconds relative to ``T0`` (2024-05-01 10:00 UTC); use ``minutes(n)``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from oms_streams.domain.inventory import (
    Count,
    Movement,
    MovementKind,
    StockPosition,
    SupplierFeed,
)
from oms_streams.domain.visibility import (
    DEFAULT_RULES,
    ChannelRule,
    Location,
    LocationType,
    SafetyStock,
    VisibilityRules,
)

SKU = "SKU-BIKE-LIGHT"
T0 = 1_714_557_600_000
"""2024-05-01T10:00:00Z in epoch milliseconds."""

_ids = itertools.count(1)


def minutes(n: float) -> int:
    """T0 plus ``n`` minutes, in epoch milliseconds."""
    return T0 + int(n * 60_000)


def next_event_id(prefix: str = "EV") -> str:
    return f"{prefix}-{next(_ids):06d}"


# --- stock events -------------------------------------------------------------------------------


def a_movement(
    *, kind: MovementKind = MovementKind.RECEIPT, qty: int = 5, at: int = T0, event_id: str | None = None
) -> Movement:
    return Movement(event_id or next_event_id(kind.value.upper()), kind, qty, at)


def a_receipt(*, qty: int = 5, at: int = T0, event_id: str | None = None) -> Movement:
    return a_movement(kind=MovementKind.RECEIPT, qty=qty, at=at, event_id=event_id)


def a_sale(*, qty: int = 1, at: int = T0, event_id: str | None = None) -> Movement:
    return a_movement(kind=MovementKind.SALE, qty=qty, at=at, event_id=event_id)


def an_adjustment(*, qty: int = -1, at: int = T0, event_id: str | None = None) -> Movement:
    return a_movement(kind=MovementKind.ADJUSTMENT, qty=qty, at=at, event_id=event_id)


def an_inbound_announcement(*, qty: int = 10, at: int = T0, event_id: str | None = None) -> Movement:
    return a_movement(kind=MovementKind.INBOUND_ANNOUNCED, qty=qty, at=at, event_id=event_id)


def a_count(
    *, on_hand: int = 10, as_of: int = T0, unsellable: int | None = None, event_id: str | None = None
) -> Count:
    return Count(event_id or next_event_id("COUNT"), on_hand, as_of, unsellable)


def a_supplier_feed(
    *, qty: int = 100, lead_time_hours: int = 48, as_of: int = T0, event_id: str | None = None
) -> SupplierFeed:
    return SupplierFeed(event_id or next_event_id("FEED"), qty, lead_time_hours, as_of)


def a_position(
    *,
    on_hand: int = 10,
    reserved: int = 0,
    unsellable: int = 0,
    inbound: int = 0,
    lead_time_hours: int | None = None,
    applied: int = 0,
) -> StockPosition:
    return StockPosition(
        on_hand=on_hand,
        reserved=reserved,
        unsellable=unsellable,
        inbound=inbound,
        applied=applied,
        lead_time_hours=lead_time_hours,
    )


# --- network ------------------------------------------------------------------------------------


def a_location(
    *,
    location_id: str = "DC-NORTH",
    type: LocationType = LocationType.DC,
    active: bool = True,
    online_cap_pct: float | None = None,
    lat: float | None = None,
    lon: float | None = None,
) -> Location:
    return Location(
        location_id=location_id,
        type=type,
        name=location_id.title(),
        lat=lat,
        lon=lon,
        active=active,
        online_cap_pct=online_cap_pct,
    )


def a_dc(location_id: str = "DC-NORTH", **kw: object) -> Location:
    return a_location(location_id=location_id, type=LocationType.DC, **kw)  # type: ignore[arg-type]


def a_store(location_id: str = "STORE-UTRECHT-01", **kw: object) -> Location:
    return a_location(location_id=location_id, type=LocationType.STORE, **kw)  # type: ignore[arg-type]


def a_supplier(location_id: str = "SUPPLIER-ACME", **kw: object) -> Location:
    return a_location(location_id=location_id, type=LocationType.THIRD_PARTY, **kw)  # type: ignore[arg-type]


def network(*locations: Location) -> dict[str, Location]:
    return {loc.location_id: loc for loc in locations}


def a_channel(
    channel: str = "webshop",
    *,
    sees: Iterable[LocationType] = (LocationType.DC, LocationType.STORE),
    store_cap_applies: bool = False,
    max_lead_time_hours: int | None = None,
    low_stock: int = 0,
) -> ChannelRule:
    return ChannelRule(channel, frozenset(sees), store_cap_applies, max_lead_time_hours, low_stock)


def some_rules(
    *,
    channels: Iterable[ChannelRule] = DEFAULT_RULES.channels,
    safety_stock: SafetyStock | None = None,
    store_online_cap_pct: float = 100.0,
    thresholds_only: bool = False,
) -> VisibilityRules:
    return VisibilityRules(
        channels=tuple(channels),
        safety_stock=safety_stock or SafetyStock(),
        store_online_cap_pct=store_online_cap_pct,
        thresholds_only=thresholds_only,
    )
