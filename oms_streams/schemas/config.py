"""Master data and rules on compacted config topics: they change at run time, never need a restart."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from oms_streams.schemas.envelope import Identifier, WireModel

LocationTypeName = Literal["dc", "store", "third_party"]
Percent = Annotated[float, Field(ge=0, le=100)]
Units = Annotated[int, Field(ge=0, le=1_000_000)]


CapabilityName = Literal["ships", "ship_from_store", "click_and_collect", "courier", "accepts_returns"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_GROUPS = {"daily": WEEKDAYS, "weekdays": WEEKDAYS[:5], "weekend": WEEKDAYS[5:]}
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]"
_INTERVAL = re.compile(rf"^({_TIME})-({_TIME}|24:00)$")
_CLOCK = re.compile(rf"^{_TIME}$")


def _check_days(value: dict[str, list[str]], pattern: re.Pattern[str], what: str) -> dict[str, list[str]]:
    for day, entries in value.items():
        if day not in WEEKDAYS and day not in DAY_GROUPS:
            raise ValueError(f"unknown day {day!r}: use mon..sun, weekdays, weekend or daily")
        for entry in entries:
            match = pattern.match(entry)
            if match is None:
                raise ValueError(f"{entry!r} on {day} is not {what}")
            if match.groups() and match.group(1) >= match.group(2):
                raise ValueError(f"{entry!r} on {day} ends before it starts")
    return value


WeeklyHours = dict[str, list[str]]
"""{'weekdays': ['08:00-12:00', '13:00-18:00'], 'sat': ['09:00-17:00']}: local opening intervals;
a day not named is closed. A specific day overrides a group (weekdays, weekend, daily)."""
WeeklyTimes = dict[str, list[str]]
"""{'weekdays': ['17:00'], 'sat': ['12:00']}: local clock times (pickups, departures)."""


class CourierRecord(WireModel):
    radius_km: Annotated[float, Field(gt=0, le=100)]
    slot_minutes: Annotated[int, Field(ge=15, le=720)] = 120
    slot_capacity: Annotated[int, Field(ge=1, le=1000)] = 4
    ride_kmh: Annotated[float, Field(gt=0, le=100)] = 15.0


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
    # The operational profile a delivery promise needs (all optional: a location without it is
    # always open, picks in the defaults, and offers no fulfilment capability).
    timezone: Annotated[str, Field(max_length=64)] = "UTC"
    country: Annotated[str, Field(max_length=8)] | None = Field(
        default=None, description="ISO 3166 country for public holidays (python-holidays)."
    )
    subdivision: Annotated[str, Field(max_length=16)] | None = None
    opening_hours: WeeklyHours | None = Field(default=None, description="None: always open.")
    closed_dates: list[date] = Field(default=[], description="Closures on top of public holidays.")
    pick_minutes: Annotated[int, Field(ge=0, le=10_080)] = 30
    pack_minutes: Annotated[int, Field(ge=0, le=10_080)] = 15
    capabilities: list[CapabilityName] = []
    courier: CourierRecord | None = None
    returns_per_day: Annotated[int, Field(ge=0, le=1_000_000)] | None = Field(
        default=None,
        description="Shipped return items it can receive per local day; None: no limit.",
    )

    @field_validator("opening_hours")
    @classmethod
    def _hours(cls, value: WeeklyHours | None) -> WeeklyHours | None:
        return None if value is None else _check_days(value, _INTERVAL, "an interval HH:MM-HH:MM")

    @model_validator(mode="after")
    def _courier_needs_capability(self) -> LocationRecord:
        if "courier" in self.capabilities and self.courier is None:
            raise ValueError("capability 'courier' needs a courier profile (radius_km, slots)")
        if "courier" in self.capabilities and (self.lat is None or self.lon is None):
            raise ValueError("capability 'courier' needs the location's coordinates")
        return self


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


class CarrierServiceRecord(WireModel):
    """A carrier product (``oms.config.carrier-services.v1``, keyed by service id)."""

    service_id: Identifier
    carrier: Annotated[str, Field(min_length=1, max_length=64)]
    method: Literal["standard", "green"]
    pickups: WeeklyTimes = Field(description="Collection times at the origin, in the origin's time zone.")
    cutoff_minutes: Annotated[int, Field(ge=0, le=1440)] = 60
    delivery_hours: WeeklyHours = Field(
        default={"weekdays": ["09:00-18:00"], "sat": ["09:00-14:00"]},
        description="When the carrier delivers (its time zone); the promised window is one such day.",
    )
    timezone: Annotated[str, Field(max_length=64)] = "UTC"
    country: Annotated[str, Field(max_length=8)] | None = None
    subdivision: Annotated[str, Field(max_length=16)] | None = None
    co2e_g_per_parcel_km: Annotated[float, Field(ge=0, le=10_000)] = 10.0
    origins: list[Identifier] = Field(
        default=[], description="Locations it collects from; empty = all that ship."
    )
    prior_transit_hours: Annotated[list[Annotated[float, Field(gt=0, le=2000)]], Field(min_length=1)] = [
        24.0,
        48.0,
    ]
    max_km: Annotated[float, Field(gt=0, le=40_000)] | None = Field(
        default=None, description="Service area: farthest delivery from the origin (great circle)."
    )
    regions: list[Annotated[str, Field(min_length=1, max_length=16)]] = Field(
        default=[],
        description="Service area: destination regions or their prefixes ('NL' covers 'NL-UT'); empty = any.",
    )

    @field_validator("pickups")
    @classmethod
    def _pickups(cls, value: WeeklyTimes) -> WeeklyTimes:
        return _check_days(value, _CLOCK, "a time HH:MM")

    @field_validator("delivery_hours")
    @classmethod
    def _hours(cls, value: WeeklyHours) -> WeeklyHours:
        return _check_days(value, _INTERVAL, "an interval HH:MM-HH:MM")


class RouteStopRecord(WireModel):
    location_id: Identifier
    travel_minutes: Annotated[int, Field(ge=0, le=10_080)]


class RouteRecord(WireModel):
    """A fixed replenishment route DC -> stores (``oms.config.routes.v1``, keyed by route id)."""

    route_id: Identifier
    origin_id: Identifier
    departures: WeeklyTimes = Field(description="In the origin's time zone.")
    stops: Annotated[list[RouteStopRecord], Field(min_length=1)]

    @field_validator("departures")
    @classmethod
    def _departures(cls, value: WeeklyTimes) -> WeeklyTimes:
        return _check_days(value, _CLOCK, "a time HH:MM")


class PromisePolicyRecord(WireModel):
    """How promises are made (``oms.config.promise-policy.v1``, key ``default``)."""

    quantile: Annotated[float, Field(gt=0.5, lt=1)] = 0.95
    min_lane_samples: Annotated[int, Field(ge=1, le=100_000)] = 30
    max_parcels: Annotated[int, Field(ge=1, le=10)] = 3
    click_and_collect_radius_km: Annotated[float, Field(gt=0, le=500)] = 25.0
    click_and_collect_max_stores: Annotated[int, Field(ge=1, le=50)] = 5
    store_receiving_minutes: Annotated[int, Field(ge=0, le=1440)] = 60
    store_ready_minutes: Annotated[int, Field(ge=0, le=1440)] = Field(
        default=120,
        description="A click & collect order from the pickup store's shelf is promised ready this many "
        "working minutes after it is asked for (at least the store's pick time).",
    )
    van_co2e_g_per_km: Annotated[float, Field(ge=0)] = 900.0
    route_share: Annotated[float, Field(ge=0, le=1)] = 0.01
    horizon_days: Annotated[int, Field(ge=1, le=60)] = 21


class DispositionRuleRecord(WireModel):
    """What happens to a returned item of a grade; the first matching rule wins, then the defaults
    (as new and resellable: restock; damaged: unsellable; defective: return to vendor)."""

    grade: Literal["as_new", "resellable", "damaged", "defective"]
    disposition: Literal["restock", "unsellable", "return_to_vendor"]
    sku_prefix: Annotated[str, Field(max_length=128)] = ""
    channel: Annotated[str, Field(max_length=64)] | None = None
    location_type: LocationTypeName | None = None
    max_days_since_sale: Annotated[int, Field(ge=0, le=3650)] | None = None
    name: Annotated[str, Field(max_length=128)] = ""


class ReturnRoutingRecord(WireModel):
    """Weights of return routing, in km-equivalents."""

    km_weight: Annotated[float, Field(ge=0, le=1000)] = 1.0
    need_weight: Annotated[float, Field(ge=0, le=100_000)] = 100.0
    load_weight: Annotated[float, Field(ge=0, le=100_000)] = 50.0
    parcel_weight: Annotated[float, Field(ge=0, le=100_000)] = 40.0
    max_km: Annotated[float, Field(gt=0, le=20_000)] = 400.0
    central_location: Identifier | None = None
    horizon_days: Annotated[int, Field(ge=1, le=60)] = 7
    trace_top: Annotated[int, Field(ge=1, le=50)] = 5


class ReturnPolicyRecord(WireModel):
    """How returns are handled (``oms.config.return-policy.v1``, key ``default``)."""

    dispositions: Annotated[list[DispositionRuleRecord], Field(max_length=1000)] = []
    routing: ReturnRoutingRecord = ReturnRoutingRecord()


class NetworkConfig(WireModel):
    """The YAML file ``oms config publish`` reads: the whole network in one document."""

    locations: list[LocationRecord] = []
    visibility_rules: VisibilityRulesRecord | None = None
    carrier_services: list[CarrierServiceRecord] = []
    routes: list[RouteRecord] = []
    promise_policy: PromisePolicyRecord | None = None
    return_policy: ReturnPolicyRecord | None = None
