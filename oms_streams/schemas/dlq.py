"""Dead letters (``oms.dlq.v1``): input we could not apply, with the reason and where it came from."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from oms_streams.schemas.envelope import WireModel


class DeadLetter(WireModel):
    reason: str
    source_topic: str
    source_partition: int
    source_offset: int
    key: str | None = Field(description="The original key, as text (base64 when it was not UTF-8).")
    key_encoding: str = Field(description="'utf-8' or 'base64'.")
    payload: str | None = Field(description="The original value, as text (base64 when it was not UTF-8).")
    payload_encoding: str = Field(description="'utf-8' or 'base64'.")
    failed_at: AwareDatetime
    truncated: bool = Field(
        default=False,
        description="True when the input was too large to copy whole (near Kafka's record size limit): "
        "key and payload then hold their first 65,536 characters; the whole record stays at its "
        "source offset for the topic's retention.",
    )
    payload_bytes: int | None = Field(default=None, description="The input value's size, when truncated.")
