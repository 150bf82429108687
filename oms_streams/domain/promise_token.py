"""Promise tokens: a placement refers to a promise the OMS made, so a forged option cannot reserve stock.

``POST /promise`` signs, with each option, what that option commits the OMS to; the webshop places
the order with the option and its token, and the sourcing worker verifies the token before any
stock is asked for. Pure: the keys, the option, the destination and the time are passed in.

Token (compact, URL-safe, about 80 characters)::

    p1.<key id>.<expires at, epoch ms>.<MAC>

MAC = base64url without padding of HMAC-SHA256(secret, ``p1.<key id>.<expires ms>.`` + terms).
The token does not carry the option: the placement does, and ``promise_terms`` encodes it again on
the worker's side. What is signed (``promise_terms``) is what the OMS acts on or promised the
customer: the method, the window, the pickup store, each shipment (location, lines, its ready /
handover / arrival times that the milestones derive from, carrier service, route) and, for a
delivery to a home, the point the option was computed for (distance, service area and courier radius
depend on it). Confidence, parcels, CO2e, km and option id are descriptions of the same promise
(floats rounded on the wire): they are not signed, and changing them changes nothing the OMS does.

The key id names the key that signed, so keys rotate without a restart of every webshop session:
the first key signs, every key verifies (the previous one until its last tokens expired).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from oms_streams.domain.network import DeliveryMethod
from oms_streams.domain.promise_types import DeliveryOption, Shipment

VERSION = "p1"
KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
TOKEN = re.compile(rf"{VERSION}\.([A-Za-z0-9_-]{{1,32}})\.([0-9]{{1,15}})\.([A-Za-z0-9_-]{{43}})")
"""Version, key id, expiry (epoch ms), MAC (32 bytes, base64url without padding)."""
MIN_SECRET_BYTES = 16
"""A shorter secret could be guessed offline from one token and its option."""
POINT_SCALE = 100_000
"""Coordinates are signed to 1e-5 degrees (about a metre): the same float parsed from the same JSON
number on both sides, without depending on how a client prints it."""

Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class SigningKey:
    key_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not KEY_ID.fullmatch(self.key_id):
            raise ValueError(f"a promise key id is 1-32 of A-Z a-z 0-9 _ -, got {self.key_id!r}")
        if len(self.secret) < MIN_SECRET_BYTES:
            raise ValueError(f"promise key {self.key_id!r}: the secret needs {MIN_SECRET_BYTES}+ bytes")


@dataclass(frozen=True, slots=True)
class PromiseKeys:
    keys: tuple[SigningKey, ...]
    """The first signs; every one verifies (during a rotation: the new key first, then the old)."""
    ttl_ms: int = 30 * 60_000
    """How long after ``POST /promise`` its options may be placed."""
    grace_ms: int = 60_000
    """Tolerated past the expiry: the clocks of the worker that signed and the one that verifies,
    and the time a placement waits in the topic while its partition moves (a rebalance)."""

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("promise keys: at least one key")
        ids = [key.key_id for key in self.keys]
        if len(set(ids)) != len(ids):
            raise ValueError(f"promise keys: a key id twice in {ids}")
        if self.ttl_ms <= 0 or self.grace_ms < 0:
            raise ValueError("promise keys: the TTL must be positive and the grace not negative")


@dataclass(frozen=True, slots=True)
class PromiseToken:
    text: str
    expires_at_ms: int


@dataclass(frozen=True, slots=True)
class TokenProblem:
    """Why a placement's token does not show a promise the OMS made."""

    kind: str
    """missing, malformed, unknown_key, mismatch or expired (a bounded metric label)."""
    reason: str


def promise_terms(option: DeliveryOption, point: Point | None) -> bytes:
    """The canonical encoding of what the option commits the OMS to: JSON of nested lists (no
    objects, so no key order), instants as epoch ms (not as text in some time zone), lines sorted
    by SKU within a shipment. Shipments keep their order: fulfilment events name them by index."""
    home = option.method is not DeliveryMethod.CLICK_AND_COLLECT
    where = [round(point[0] * POINT_SCALE), round(point[1] * POINT_SCALE)] if home and point else None
    body = [
        option.method.value,
        option.window_start_ms,
        option.window_end_ms,
        option.pickup_store_id,
        where,
        [_shipment_terms(shipment) for shipment in option.shipments],
    ]
    if option.preorder:  # only then: tokens of ordinary options are what they always were
        body.append("preorder")
    return json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode()


def _shipment_terms(shipment: Shipment) -> list[object]:
    return [
        shipment.location_id,
        sorted([line.sku, line.quantity] for line in shipment.lines),
        shipment.ready_at_ms,
        shipment.handover_at_ms,
        shipment.arrives_at_ms,
        shipment.service_id,
        shipment.route_id,
    ]


def sign_promise(option: DeliveryOption, point: Point | None, keys: PromiseKeys, now_ms: int) -> PromiseToken:
    key = keys.keys[0]
    expires = now_ms + keys.ttl_ms
    return PromiseToken(f"{_header(key.key_id, expires)}{_mac(key, expires, option, point)}", expires)


def verify_promise(
    token: str | None, option: DeliveryOption, point: Point | None, keys: PromiseKeys, now_ms: int
) -> TokenProblem | None:
    """None when the token was signed by one of the keys for exactly this option and has not
    expired; else why not. The MAC is checked before the expiry: the expiry is signed too, so an
    edited one reads as a mismatch, and only a genuine token is told it expired."""
    if not token:
        return TokenProblem("missing", "no promise token")
    parts = TOKEN.fullmatch(token)
    if parts is None:
        return TokenProblem("malformed", "malformed promise token")
    key_id, expires, mac = parts[1], int(parts[2]), parts[3]
    key = _key(keys.keys, key_id)
    if key is None:
        return TokenProblem("unknown_key", f"unknown signing key {key_id!r}")
    if not hmac.compare_digest(mac, _mac(key, expires, option, point)):
        return TokenProblem("mismatch", "option does not match its promise token")
    if now_ms > expires + keys.grace_ms:
        return TokenProblem("expired", f"promise token expired at {_iso(expires)}")
    return None


def _key(keys: Sequence[SigningKey], key_id: str) -> SigningKey | None:
    return next((key for key in keys if key.key_id == key_id), None)


def _header(key_id: str, expires_ms: int) -> str:
    return f"{VERSION}.{key_id}.{expires_ms}."


def _mac(key: SigningKey, expires_ms: int, option: DeliveryOption, point: Point | None) -> str:
    signed = _header(key.key_id, expires_ms).encode() + promise_terms(option, point)
    digest = hmac.new(key.secret, signed, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds")
