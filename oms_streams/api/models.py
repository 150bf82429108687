"""Response bodies of the HTTP API (documented in the OpenAPI description)."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, Field


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
