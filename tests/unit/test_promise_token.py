"""Promise tokens: only an option the OMS promised, unchanged and in time, may reserve stock."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import replace
from typing import Any

import pytest

from oms_streams.adapters.orders import Placement, decode_placement
from oms_streams.adapters.promise import add_tokens, option_from_wire, option_to_wire
from oms_streams.adapters.stock import Failure
from oms_streams.config import Settings
from oms_streams.domain.network import DeliveryMethod
from oms_streams.domain.promise_token import (
    MIN_SECRET_BYTES,
    PromiseKeys,
    PromiseToken,
    SigningKey,
    promise_terms,
    sign_promise,
    verify_promise,
)
from oms_streams.domain.promise_types import CartLine, DeliveryOption, Destination, Shipment
from oms_streams.schemas.promise import DeliveryOptionModel
from oms_streams.streaming.placement_gate import promise_keys

T0 = 1_767_261_600_000  # 2026-01-01T10:00:00Z
MINUTE = 60_000
CURRENT = SigningKey("k2026b", b"current-secret-0123456789")
PREVIOUS = SigningKey("k2026a", b"previous-secret-0123456789")
KEYS = PromiseKeys((CURRENT,), ttl_ms=30 * MINUTE, grace_ms=MINUTE)
HOME = (52.0894, 5.11)


def a_shipment(location_id: str = "DC-NORTH", **lines: int) -> Shipment:
    return Shipment(
        location_id=location_id,
        lines=tuple(CartLine(sku.replace("_", "-"), q) for sku, q in (lines or {"SKU_TENT": 1}).items()),
        ready_at_ms=T0 + 60 * MINUTE,
        handover_at_ms=T0 + 120 * MINUTE,
        arrives_at_ms=T0 + 2 * 1440 * MINUTE,
        service_id="POSTNL-STANDARD",
    )


def an_option(
    *shipments: Shipment, method: DeliveryMethod = DeliveryMethod.STANDARD, **kw: Any
) -> DeliveryOption:
    fields: dict[str, Any] = {
        "option_id": method.value,
        "method": method,
        "window_start_ms": T0 + 2 * 1440 * MINUTE,
        "window_end_ms": T0 + 2 * 1440 * MINUTE + 600 * MINUTE,
        "confidence": 0.95,
        "parcels": len(shipments) or 1,
        "co2e_g": 120.0,
        "shipments": shipments or (a_shipment(),),
        **kw,
    }
    return DeliveryOption(**fields)


def verdict(token: str | None, option: DeliveryOption, keys: PromiseKeys = KEYS, now: int = T0) -> str | None:
    problem = verify_promise(token, option, HOME, keys, now)
    return None if problem is None else problem.reason


# --- sign and verify ------------------------------------------------------------------------------


def test_a_signed_option_verifies_until_its_expiry_and_the_token_is_compact_and_url_safe() -> None:
    option = an_option()
    token = sign_promise(option, HOME, KEYS, T0)

    assert token.expires_at_ms == T0 + 30 * MINUTE
    assert re.fullmatch(r"p1\.k2026b\.1767263400000\.[A-Za-z0-9_-]{43}", token.text), token.text
    assert verdict(token.text, option, now=T0 + 29 * MINUTE) is None


def test_the_same_option_signed_twice_at_the_same_time_gives_the_same_token() -> None:
    assert sign_promise(an_option(), HOME, KEYS, T0) == sign_promise(an_option(), HOME, KEYS, T0)


@pytest.mark.parametrize("token", [None, ""])
def test_a_placement_without_a_token_is_refused(token: str | None) -> None:
    problem = verify_promise(token, an_option(), HOME, KEYS, T0)
    assert problem is not None and (problem.kind, problem.reason) == ("missing", "no promise token")


@pytest.mark.parametrize(
    "token",
    [
        "forged",
        "p2.k2026b.1767263400000." + "A" * 43,  # another version
        "p1.k2026b.soon." + "A" * 43,
        "p1.k2026b.1767263400000." + "A" * 42,
        "p1.k2026b.1767263400000." + "A" * 43 + "\n",
        "p1.k 2026.1767263400000." + "A" * 43,
        "p1.k2026b.1767263400000." + "A" * 40 + "+/=",
    ],
)
def test_a_token_that_is_not_one_is_refused_as_malformed(token: str) -> None:
    problem = verify_promise(token, an_option(), HOME, KEYS, T0)
    assert problem is not None and (problem.kind, problem.reason) == ("malformed", "malformed promise token")


def test_a_token_of_a_key_this_worker_does_not_know_is_refused_naming_the_key() -> None:
    elsewhere = PromiseKeys((SigningKey("staging", b"another-secret-0123456789"),))
    token = sign_promise(an_option(), HOME, elsewhere, T0).text

    problem = verify_promise(token, an_option(), HOME, KEYS, T0)
    assert problem is not None and problem.kind == "unknown_key"
    assert problem.reason == "unknown signing key 'staging'"


def test_a_forged_mac_or_a_secret_that_differs_behind_the_same_key_id_is_a_mismatch() -> None:
    token = sign_promise(an_option(), HOME, KEYS, T0).text
    forged = token[:-43] + ("B" if token[-43] == "A" else "A") + token[-42:]
    impostor = PromiseKeys((SigningKey("k2026b", b"guessed-secret-0123456789"),))

    assert verdict(forged, an_option()) == "option does not match its promise token"
    assert verdict(sign_promise(an_option(), HOME, impostor, T0).text, an_option()) == (
        "option does not match its promise token"
    )


# --- expiry -----------------------------------------------------------------------------------------


def test_the_expiry_boundary_is_the_expiry_plus_the_grace() -> None:
    option = an_option()
    token = sign_promise(option, HOME, KEYS, T0).text
    expires = T0 + 30 * MINUTE

    assert verdict(token, option, now=expires) is None
    assert verdict(token, option, now=expires + MINUTE) is None  # the grace: clocks, a rebalance
    assert verdict(token, option, now=expires + MINUTE + 1) == (
        "promise token expired at 2026-01-01T10:30:00+00:00"
    )
    problem = verify_promise(token, option, HOME, KEYS, expires + MINUTE + 1)
    assert problem is not None and problem.kind == "expired"


def test_without_grace_a_token_expires_the_millisecond_after_its_expiry() -> None:
    strict = replace(KEYS, grace_ms=0)
    token = sign_promise(an_option(), HOME, strict, T0).text
    assert verdict(token, an_option(), strict, T0 + 30 * MINUTE) is None
    assert verdict(token, an_option(), strict, T0 + 30 * MINUTE + 1) is not None


def test_an_extended_expiry_is_a_mismatch_not_a_longer_promise() -> None:
    token = sign_promise(an_option(), HOME, KEYS, T0).text
    extended = token.replace(".1767263400000.", ".1767349800000.")  # a day later
    assert verdict(extended, an_option(), now=T0 + 120 * MINUTE) == "option does not match its promise token"


def test_the_mac_is_checked_before_the_expiry_so_a_forged_option_is_never_told_it_expired() -> None:
    token = sign_promise(an_option(), HOME, KEYS, T0).text
    forged = an_option(a_shipment(SKU_TENT=5_000))
    assert verdict(token, forged, now=T0 + 1440 * MINUTE) == "option does not match its promise token"


# --- key rotation -----------------------------------------------------------------------------------


def test_during_a_rotation_the_new_key_signs_and_tokens_of_the_previous_one_still_verify() -> None:
    before = PromiseKeys((PREVIOUS,))
    during = PromiseKeys((CURRENT, PREVIOUS))
    after = PromiseKeys((CURRENT,))
    old_token = sign_promise(an_option(), HOME, before, T0).text
    new_token = sign_promise(an_option(), HOME, during, T0).text

    assert new_token.startswith("p1.k2026b.") and old_token.startswith("p1.k2026a.")
    assert verdict(old_token, an_option(), during) is None
    assert verdict(new_token, an_option(), during) is None
    assert verdict(new_token, an_option(), after) is None
    assert verdict(old_token, an_option(), after) == "unknown signing key 'k2026a'"


def test_a_token_names_its_key_so_another_key_id_on_it_is_a_mismatch() -> None:
    both = PromiseKeys((CURRENT, PREVIOUS))
    token = sign_promise(an_option(), HOME, both, T0).text
    relabelled = token.replace(".k2026b.", ".k2026a.")
    assert verdict(relabelled, an_option(), both) == "option does not match its promise token"


# --- what the token binds ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changed",
    [
        an_option(a_shipment(SKU_TENT=5_000)),
        an_option(a_shipment(SKU_TENT=2)),
        an_option(a_shipment(SKU_STOVE=1)),
        an_option(a_shipment("DC-SOUTH")),
        an_option(a_shipment(), a_shipment(SKU_TENT=1)),
        an_option(window_end_ms=T0 + 3 * 1440 * MINUTE),
        an_option(window_start_ms=T0 + 1440 * MINUTE),
        an_option(method=DeliveryMethod.GREEN),
        an_option(shipments=(replace(a_shipment(), handover_at_ms=T0 + 600 * MINUTE),)),
        an_option(shipments=(replace(a_shipment(), service_id="DHL-PARCEL"),)),
    ],
    ids=[
        "5000 units",
        "one more unit",
        "another SKU",
        "another location",
        "a second shipment",
        "a later window end",
        "an earlier window start",
        "another method",
        "a later handover",
        "another carrier service",
    ],
)
def test_any_change_to_what_the_option_commits_the_oms_to_is_refused(changed: DeliveryOption) -> None:
    token = sign_promise(an_option(), HOME, KEYS, T0).text
    assert verdict(token, changed) == "option does not match its promise token"


def test_descriptions_of_the_same_promise_are_not_signed() -> None:
    token = sign_promise(an_option(), HOME, KEYS, T0).text
    described = an_option(option_id="standard-2", confidence=None, parcels=1, co2e_g=99.9)
    assert verdict(token, described) is None


def test_a_home_delivery_is_bound_to_the_home_it_was_promised_for_to_about_a_metre() -> None:
    token = sign_promise(an_option(), HOME, KEYS, T0).text
    assert verify_promise(token, an_option(), (HOME[0] + 0.000_001, HOME[1]), KEYS, T0) is None
    moved = verify_promise(token, an_option(), (50.85, 5.69), KEYS, T0)  # Maastricht
    assert moved is not None and moved.kind == "mismatch"
    assert verify_promise(token, an_option(), None, KEYS, T0) is not None


def test_a_click_and_collect_option_is_bound_to_its_store_not_to_the_customers_home() -> None:
    store = a_shipment("STORE-UTRECHT-01")
    collect = an_option(store, method=DeliveryMethod.CLICK_AND_COLLECT, pickup_store_id="STORE-UTRECHT-01")
    token = sign_promise(collect, HOME, KEYS, T0).text

    # The webshop places it with the pickup store as its destination: no home coordinates.
    assert verify_promise(token, collect, None, KEYS, T0) is None
    other_store = replace(collect, pickup_store_id="STORE-AMSTERDAM-01")
    assert verify_promise(token, other_store, None, KEYS, T0) is not None


def test_the_encoding_does_not_depend_on_the_order_of_the_lines_in_a_shipment() -> None:
    two = an_option(a_shipment(SKU_TENT=1, SKU_STOVE=2))
    swapped = an_option(a_shipment(SKU_STOVE=2, SKU_TENT=1))
    assert promise_terms(two, HOME) == promise_terms(swapped, HOME)
    assert verdict(sign_promise(two, HOME, KEYS, T0).text, swapped) is None


def test_the_encoding_does_not_depend_on_json_key_order_or_time_zone_notation() -> None:
    wire = option_to_wire(an_option(a_shipment(SKU_TENT=1, SKU_STOVE=2)))
    reordered = _reversed_keys(wire)
    reordered["shipments"][0]["lines"].reverse()
    reordered["window_start"] = "2026-01-03T11:00:00+01:00"  # the same instant, another notation
    assert wire["window_start"] == "2026-01-03T10:00:00+00:00"

    def terms(body: dict[str, Any]) -> bytes:
        return promise_terms(
            option_from_wire(DeliveryOptionModel.model_validate_json(json.dumps(body))), HOME
        )

    assert list(reordered) != list(wire) and terms(reordered) == terms(wire)


def _reversed_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reversed_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reversed_keys(v) for v in value]
    return value


# --- keys ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: SigningKey("k.1", b"0123456789abcdef"), "key id"),
        (lambda: SigningKey("k1", b"too-short"), "needs 16"),
        (lambda: PromiseKeys(()), "at least one key"),
        (lambda: PromiseKeys((CURRENT, CURRENT)), "twice"),
        (lambda: PromiseKeys((CURRENT,), ttl_ms=0), "TTL"),
    ],
)
def test_keys_that_would_weaken_or_confuse_tokens_are_refused_at_start(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_a_key_never_shows_its_secret() -> None:
    assert "current-secret" not in repr(CURRENT) and "current-secret" not in repr(KEYS)


def test_signing_keys_come_from_the_environment_in_order_and_stay_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "OMS_PROMISE_SIGNING_KEYS", "k2026b=new-secret-0123456789,k2026a=old=secret-0123456789"
    )
    settings = Settings()
    assert settings.promise_key_pairs() == [
        ("k2026b", "new-secret-0123456789"),
        ("k2026a", "old=secret-0123456789"),
    ]
    assert "new-secret" not in repr(settings) and "new-secret" not in settings.model_dump_json()
    assert (settings.promise_token_ttl_s, settings.promise_token_grace_s) == (1800, 60)
    assert Settings(promise_signing_keys=None).promise_key_pairs() == []


def test_the_worker_builds_its_keys_from_the_settings_and_warns_at_start_without_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    configured = Settings(
        promise_signing_keys="k2026b=new-secret-0123456789,k2026a=old-secret-0123456789",
        promise_token_ttl_s=600,
        promise_token_grace_s=5,
    )
    keys = promise_keys(configured)
    assert keys is not None and [k.key_id for k in keys.keys] == ["k2026b", "k2026a"]
    assert (keys.ttl_ms, keys.grace_ms) == (600_000, 5_000)
    assert "not token-checked" not in caplog.text

    assert promise_keys(Settings(promise_signing_keys=None)) is None
    assert "placements are not token-checked" in caplog.text


def test_a_malformed_key_list_is_refused_without_echoing_it() -> None:
    settings = Settings(promise_signing_keys="just-a-secret-0123456789")
    with pytest.raises(ValueError) as refused:
        settings.promise_key_pairs()
    assert "just-a-secret" not in str(refused.value)


# --- on the wire -------------------------------------------------------------------------------


def placed(option: dict[str, Any], **fields: Any) -> bytes:
    cart: dict[str, int] = {}
    for shipment in option["shipments"]:
        for line in shipment["lines"]:
            cart[line["sku"]] = cart.get(line["sku"], 0) + line["quantity"]
    body = {
        "event_id": "ORDER-1-placed",
        "occurred_at": "2026-01-01T10:05:00+00:00",
        "source": "webshop",
        "order_id": "ORDER-1",
        "cart": [{"sku": sku, "quantity": q} for sku, q in cart.items()],
        "destination": {"lat": HOME[0], "lon": HOME[1], "postal_code": "3511 AB"},
        "option": option,
        **fields,
    }
    return json.dumps(body).encode()


def promised(option: DeliveryOption) -> dict[str, Any]:
    """The option as POST /promise answers it with a signing key configured."""
    wire = [option_to_wire(option)]
    add_tokens(wire, [option], Destination(lat=HOME[0], lon=HOME[1]), KEYS, T0)
    return wire[0]


def test_post_promise_answers_each_option_with_its_token_and_expiry() -> None:
    wire = promised(an_option())
    assert wire["token_expires_at"] == "2026-01-01T10:30:00+00:00"
    assert verdict(wire["promise_token"], an_option()) is None
    DeliveryOptionModel.model_validate_json(json.dumps(wire))  # the response schema has both fields


def test_a_placement_brings_its_token_at_the_top_level_or_left_in_the_option() -> None:
    wire = promised(an_option())
    token = wire["promise_token"]
    bare = {k: v for k, v in wire.items() if k not in ("promise_token", "token_expires_at")}

    top = decode_placement(b"ORDER-1", placed(bare, promise_token=token))
    echoed = decode_placement(b"ORDER-1", placed(wire))
    without = decode_placement(b"ORDER-1", placed(bare))
    assert isinstance(top, Placement) and top.promise_token == token
    assert isinstance(echoed, Placement) and echoed.promise_token == token
    assert isinstance(without, Placement) and without.promise_token is None
    # The order row keeps the option without its token: the token was for sourcing only.
    assert "promise_token" not in echoed.option_wire and "token_expires_at" not in echoed.option_wire


def test_two_different_tokens_in_one_placement_are_a_schema_violation() -> None:
    wire = promised(an_option())
    other = promised(an_option(a_shipment(SKU_TENT=2)))["promise_token"]
    decoded = decode_placement(b"ORDER-1", placed(wire, promise_token=other))
    assert isinstance(decoded, Failure) and "promise_token and option.promise_token differ" in decoded.reason


# --- what mutation testing found unpinned (mutmut 2.4.5 on domain/promise_token.py) --------------------


def test_the_signed_encoding_is_fixed_so_tokens_outlive_a_restart_or_an_upgrade() -> None:
    # A token made before a rolling upgrade is verified after it by the new code: the canonical
    # terms (coordinates to 1e-5 degrees, compact JSON, the preorder marker) and the MAC may not drift.
    option = an_option(a_shipment(SKU_TENT=2, SKU_STOVE=1), preorder=True)
    assert promise_terms(option, HOME) == (
        b'["standard",1767434400000,1767470400000,null,[5208940,511000],'
        b'[["DC-NORTH",[["SKU-STOVE",1],["SKU-TENT",2]],1767265200000,1767268800000,1767434400000,'
        b'"POSTNL-STANDARD",null]],"preorder"]'
    )
    assert sign_promise(option, HOME, KEYS, T0) == PromiseToken(
        "p1.k2026b.1767263400000.FtUgxh8DpzldVMlzPWwv6bQaYYaHLkmSv1rsZG9wvqY", 1_767_263_400_000
    )


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: SigningKey("k.1", b"0123456789abcdef"),
            "a promise key id is 1-32 of A-Z a-z 0-9 _ -, got 'k.1'",
        ),
        (lambda: SigningKey("k1", b"too-short"), "promise key 'k1': the secret needs 16+ bytes"),
        (lambda: PromiseKeys(()), "promise keys: at least one key"),
        (lambda: PromiseKeys((CURRENT, CURRENT)), "promise keys: a key id twice in ['k2026b', 'k2026b']"),
        (
            lambda: PromiseKeys((CURRENT,), ttl_ms=0),
            "promise keys: the TTL must be positive and the grace not negative",
        ),
    ],
)
def test_a_refused_key_says_exactly_what_is_wrong(build: Any, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        build()
    assert str(refused.value) == message


def test_the_smallest_keys_allowed_are_accepted() -> None:
    assert len(SigningKey("k1", b"0123456789abcdef").secret) == MIN_SECRET_BYTES == 16
    keys = PromiseKeys((CURRENT,), ttl_ms=1, grace_ms=0)
    token = sign_promise(an_option(), HOME, keys, T0)
    assert verdict(token.text, an_option(), keys, now=T0 + 1) is None
    assert verdict(token.text, an_option(), keys, now=T0 + 2) is not None


def test_keys_tokens_and_problems_cannot_be_changed_once_made() -> None:
    problem = verify_promise(None, an_option(), HOME, KEYS, T0)
    for value in (CURRENT, KEYS, sign_promise(an_option(), HOME, KEYS, T0), problem):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, dataclasses.fields(value)[0].name, None)


def test_the_keys_default_ttl_and_grace_are_the_settings_defaults() -> None:
    # 30 minutes to place a promised option, a minute of clock skew and rebalance tolerated.
    defaults = PromiseKeys((CURRENT,))
    settings = Settings(promise_signing_keys=None)
    assert (defaults.ttl_ms, defaults.grace_ms) == (30 * MINUTE, MINUTE)
    assert (settings.promise_token_ttl_s * 1000, settings.promise_token_grace_s * 1000) == (
        30 * MINUTE,
        MINUTE,
    )
