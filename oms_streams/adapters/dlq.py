"""Dead letters: the reason, where the input came from, and the original bytes, intact."""

from __future__ import annotations

import base64
from typing import Protocol

import orjson

from oms_streams.adapters.timestamps import utc_from_epoch_ms


def _as_text(raw: bytes | None) -> tuple[str | None, str]:
    if raw is None:
        return None, "utf-8"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def dead_letter(
    reason: str, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, now_ms: int
) -> bytes:
    """Matches ``schemas.dlq.DeadLetter``: key and payload as text, or base64 when not valid UTF-8."""
    payload, encoding = _as_text(value)
    key_text, key_encoding = _as_text(key)
    return orjson.dumps(
        {
            "reason": reason,
            "source_topic": topic,
            "source_partition": partition,
            "source_offset": offset,
            "key": key_text,
            "key_encoding": key_encoding,
            "payload": payload,
            "payload_encoding": encoding,
            "failed_at": utc_from_epoch_ms(now_ms).isoformat(),
        }
    )


class SourceRecord(Protocol):
    """What faust messages and aiokafka consumer records both carry."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def dead_letter_for(reason: str, record: SourceRecord, now_ms: int) -> bytes:
    # A rerouted record (streaming/rerouting.py) names where its producer wrote it.
    origin = getattr(record, "origin", None) or record
    return dead_letter(
        reason, record.topic, origin.partition, origin.offset, record.key, record.value, now_ms
    )
