"""The sourcing worker with a signing key, without a broker: a placement reserves stock only with the
token of the option it carries; any other is answered rejected in round 0, counted, and reserves
nothing. Without a key nothing is checked (existing integrations keep working)."""

from __future__ import annotations

import json
import time

from oms_streams.adapters.orders import Placement, decode_placement
from oms_streams.domain.placement import PlacementLimits
from oms_streams.domain.promise_token import PromiseKeys, SigningKey, sign_promise
from tests.streaming.test_orders_runtime import FakeEvent
from tests.streaming.test_sourcing_runtime import Harness

KEYS = PromiseKeys((SigningKey("k1", b"streaming-test-secret-0123"),))


def signed_harness() -> Harness:
    h = Harness()
    h.saga.gate.limits = PlacementLimits(promise_keys=KEYS)
    h.stock("SKU-TENT", DC_NORTH=5)
    return h


def with_token(event: FakeEvent, signed_ms: int | None = None) -> FakeEvent:
    """The placement with the token POST /promise would have given its option and destination."""
    placement = decode_placement(event.message.key, event.message.value)
    assert isinstance(placement, Placement)
    home = (placement.destination["lat"], placement.destination["lon"])
    now = signed_ms if signed_ms is not None else time.time_ns() // 1_000_000
    body = json.loads(event.message.value)
    body["promise_token"] = sign_promise(placement.option, home, KEYS, now).text
    event.message.value = json.dumps(body).encode()
    return event


def tokens(h: Harness, verdict: str) -> float:
    return float(h.metrics.promise_tokens.labels(verdict)._value.get())


def test_a_placement_with_its_token_is_sourced() -> None:
    h = signed_harness()
    h.run(with_token(h.placement("ORDER-OK", {"SKU-TENT": 2})))

    assert [(c["order_id"], c["kind"]) for c in h.commands()] == [("ORDER-OK", "reserve")]
    assert h.on("sourced") == [] and tokens(h, "valid") == 1


def test_a_placement_without_a_token_is_rejected_in_round_0_and_reserves_nothing() -> None:
    h = signed_harness()
    h.place("ORDER-NONE", {"SKU-TENT": 1})

    assert h.commands() == []
    [answer] = h.on("sourced")
    assert (answer["round"], answer["outcome"], answer["reason"]) == (0, "rejected", "no promise token")
    assert tokens(h, "missing") == 1 and tokens(h, "valid") == 0


def test_an_option_changed_after_it_was_signed_is_rejected_even_within_the_limits() -> None:
    h = signed_harness()
    forged = with_token(h.placement("ORDER-FORGED", {"SKU-TENT": 1}))
    body = json.loads(forged.message.value)  # the signed option, then 4 units instead of 1
    body["option"]["shipments"][0]["lines"][0]["quantity"] = body["cart"][0]["quantity"] = 4
    forged.message.value = json.dumps(body).encode()
    h.run(forged)

    assert h.commands() == []
    [answer] = h.on("sourced")
    assert answer["reason"] == "option does not match its promise token"
    assert tokens(h, "mismatch") == 1


def test_an_expired_token_is_rejected_with_its_expiry() -> None:
    h = signed_harness()
    an_hour_ago = time.time_ns() // 1_000_000 - 3_600_000
    h.run(with_token(h.placement("ORDER-LATE", {"SKU-TENT": 1}), signed_ms=an_hour_ago))

    assert h.commands() == []
    [answer] = h.on("sourced")
    assert answer["reason"].startswith("promise token expired at ")
    assert tokens(h, "expired") == 1


def test_a_placement_that_reached_its_topic_in_time_is_accepted_after_an_outage() -> None:
    # Signed an hour ago, placed 20 minutes later (within the 30-minute TTL), read only now after
    # the sourcing workers were down: the broker's time of arrival counts, not the reading's.
    h = signed_harness()
    now = time.time_ns() // 1_000_000
    placed = with_token(h.placement("ORDER-WAITED", {"SKU-TENT": 1}), signed_ms=now - 3_600_000)
    placed.message.timestamp = (now - 3_600_000 + 20 * 60_000) / 1000  # faust: seconds
    h.run(placed)

    assert [c["order_id"] for c in h.commands("reserve")] == ["ORDER-WAITED"]
    assert tokens(h, "valid") == 1


def test_the_token_is_checked_before_the_limits() -> None:
    h = signed_harness()
    h.place("ORDER-HUGE", {"SKU-TENT": 5_000})
    [answer] = h.on("sourced")
    assert answer["reason"] == "no promise token"


def test_without_keys_placements_are_not_token_checked() -> None:
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=5)
    h.place("ORDER-PLAIN", {"SKU-TENT": 1})

    assert [c["order_id"] for c in h.commands("reserve")] == ["ORDER-PLAIN"]
    assert tokens(h, "missing") == 0 and tokens(h, "valid") == 0
