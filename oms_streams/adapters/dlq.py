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


MAX_LETTER_BYTES = 900_000
"""A letter is kept below the producer's ``message.max.bytes`` (1,000,000): one refused for its size
would stop the worker (a record not sent is fatal), and the same input would stop it again."""
HEAD_CHARS = 65_536
"""What a letter too large to send keeps of the key and the payload."""


def dead_letter(
    reason: str, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, now_ms: int
) -> bytes:
    """Matches ``schemas.dlq.DeadLetter``: key and payload as text, or base64 when not valid UTF-8.

    An input near Kafka's size limit grows in a letter (base64, JSON escapes): then the letter keeps
    the head of the key and payload, says how many bytes the payload had, and points at the input's
    offset, where the whole record stays for the topic's retention."""
    payload, encoding = _as_text(value)
    key_text, key_encoding = _as_text(key)
    letter = {
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
    encoded = orjson.dumps(letter)
    if len(encoded) <= MAX_LETTER_BYTES:
        return encoded
    letter["key"] = key_text[:HEAD_CHARS] if key_text is not None else None
    letter["payload"] = payload[:HEAD_CHARS] if payload is not None else None
    letter["truncated"] = True
    letter["payload_bytes"] = len(value) if value is not None else 0
    return orjson.dumps(letter)


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
