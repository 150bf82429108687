"""Response bodies of the HTTP API (documented in the OpenAPI description)."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, Field

from oms_streams.schemas.promise import DeliveryOptionModel


class LocationAvailability(BaseModel):
    location_id: str
    quantity: int
    type: str | None = None
    name: str | None = None
    distance_km: float | None = Field(default=None, description="Only with ?near=")
    lead_time_hours: int | None = Field(default=None, description="Third-party stock only.")


class ChannelAvailabilityResponse(BaseModel):
    sku: str
    channel: str
    total: int
    locations: list[LocationAvailability]
    published_at: AwareDatetime
    rules_version: str


class ApiError(BaseModel):
    error: str


class MilestoneView(BaseModel):
    kind: str
    location_id: str
    shipment: int
    due: AwareDatetime = Field(description="The latest time this step may happen for the promise to hold.")
    reached: bool


class FulfilmentEventView(BaseModel):
    event_id: str
    kind: str
    occurred_at: AwareDatetime
    location_id: str | None = None
    shipment: int | None = None


class RiskView(BaseModel):
    reason: str
    suggested_action: str
    milestone: str | None = None
    location_id: str
    shipment: int
    expected_delay_minutes: int | None = None


class PromiseView(BaseModel):
    version: int
    placed_at: AwareDatetime
    option: DeliveryOptionModel


class AllocationView(BaseModel):
    allocation_id: str
    location_id: str
    lines: list[dict[str, Any]]
    state: str = Field(description="live, fulfilled (left the location) or cancelled")


class SourcingView(BaseModel):
    status: str = Field(description="reserving, allocated, partially_allocated or rejected")
    round: int
    attempts: int
    allocations: list[AllocationView]
    backorder: list[dict[str, Any]]
    reason: str


class OrderResponse(BaseModel):
    order_id: str
    status: str = Field(description="on_track, at_risk, or awaiting_placement (events came first)")
    promise: PromiseView | None = None
    milestones: list[MilestoneView] = []
    events: list[FulfilmentEventView] | int = []
    risk: RiskView | None = None
    sourcing: SourcingView | None = None
