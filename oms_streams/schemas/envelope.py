"""The envelope every event on an oms-streams topic carries."""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/@#+-]*$")]
"""SKUs, location ids, event ids: printable, no spaces, no separators we use in keys."""


class WireModel(BaseModel):
    """Strict about what it accepts: unknown fields are kept out, types are not coerced from strings."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)


class Envelope(WireModel):
    event_id: Identifier = Field(
        description="Unique per event; redeliveries keep it, so it is the dedupe key."
    )
    occurred_at: AwareDatetime = Field(description="When it happened at the source, with time zone.")
    source: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="The publishing system, e.g. 'erp', 'pos:STORE-UTRECHT-01', 'supplier:ACME'."
    )
    schema_version: Annotated[int, Field(ge=1, le=1)] = 1
