"""What goes on the wire matches the published models, and what operators scrape parses."""

from __future__ import annotations

import base64

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from oms_streams.adapters.availability import availability_from_record, availability_record, encode
from oms_streams.adapters.config import decode_location, decode_rules
from oms_streams.adapters.dlq import dead_letter
from oms_streams.adapters.stock import Failure, decode_count, decode_movement, decode_supplier_stock
from oms_streams.adapters.timestamps import utc_from_epoch_ms
from oms_streams.domain.inventory import (
    JOURNAL_WINDOW,
    MAX_QUANTITY,
    StockPosition,
    apply_count,
    apply_movement,
    apply_supplier_feed,
)
from oms_streams.domain.ledger import StockCommand, apply_commands
from oms_streams.domain.visibility import DEFAULT_RULES, sku_availability
from oms_streams.metrics import Metrics, reason_class
from oms_streams.schemas.availability import AvailabilityRecord
from oms_streams.schemas.dlq import DeadLetter
from tests.unit.builders import (
    SKU,
    T0,
    a_count,
    a_dc,
    a_position,
    a_receipt,
    a_sale,
    a_store,
    a_supplier,
    a_supplier_feed,
    an_adjustment,
    minutes,
    network,
)

NETWORK = network(
    a_dc("DC-NORTH"),
    a_store("STORE-UTRECHT-01"),
    a_store("STORE-AMSTERDAM-02", active=False),
    a_supplier("SUPPLIER-ACME"),
)

# --- availability ---------------------------------------------------------------------------------

network_positions = st.fixed_dictionaries(
    {},
    optional={
        loc: st.builds(
            a_position,
            on_hand=st.integers(-5, 10_000),
            reserved=st.integers(0, 100),
            unsellable=st.integers(0, 100),
            lead_time_hours=st.none() | st.integers(0, 200),
        )
        for loc in [*NETWORK, "DC-GHOST"]
    },
)


@given(positions=network_positions, now_ms=st.integers(0, 4_102_444_800_000))
def test_an_availability_record_is_a_valid_availability_record(positions, now_ms):
    availability = sku_availability(SKU, positions, NETWORK, DEFAULT_RULES)

    record = availability_record(availability, "2024-05-01", now_ms)

    parsed = AvailabilityRecord.model_validate_json(encode(record))
    assert parsed.sku == SKU
    assert parsed.published_at == utc_from_epoch_ms(now_ms)  # exact, to the millisecond
    assert set(parsed.channels) == {"webshop", "marketplace", "click_and_collect"}
    assert all(view.total == sum(view.locations.values()) for view in parsed.channels.values())
    back = availability_from_record(orjson.loads(encode(record)))
    assert back.channels == availability.channels
    assert back.network_atp == availability.network_atp


# --- dead letters ---------------------------------------------------------------------------------


def payload_bytes(letter: DeadLetter) -> bytes | None:
    if letter.payload is None:
        return None
    if letter.payload_encoding == "base64":
        return base64.b64decode(letter.payload, validate=True)
    assert letter.payload_encoding == "utf-8"
    return letter.payload.encode("utf-8")


KEY = SKU.encode()


def a_dead_letter(*, value: bytes | None, key: bytes | None = KEY) -> DeadLetter:
    raw = dead_letter("malformed JSON", "oms.inventory.movements.v1", 3, 1234, key, value, T0)
    return DeadLetter.model_validate_json(raw)


def test_a_utf8_payload_is_dead_lettered_as_text():
    letter = a_dead_letter(value='{"sku": "SKU-FIETSBEL-ß"'.encode())

    assert letter.payload_encoding == "utf-8"
    assert letter.payload == '{"sku": "SKU-FIETSBEL-ß"'
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "oms.inventory.movements.v1",
        3,
        1234,
    )
    assert letter.key == SKU
    assert letter.failed_at == utc_from_epoch_ms(T0)


def test_a_binary_payload_is_dead_lettered_as_base64_and_comes_back_intact():
    value = b"\xff\xfe\x00\x80avro?"

    letter = a_dead_letter(value=value)

    assert letter.payload_encoding == "base64"
    assert payload_bytes(letter) == value


def test_a_tombstone_and_a_missing_key_are_dead_lettered_as_null():
    letter = a_dead_letter(value=None, key=None)

    assert (letter.payload, letter.key) == (None, None)


@given(
    value=st.binary(max_size=200) | st.text(max_size=100).map(str.encode),
    key=st.none() | st.binary(max_size=20),
)
def test_any_payload_round_trips_exactly_through_a_dead_letter(value, key):
    letter = a_dead_letter(value=value, key=key)

    assert payload_bytes(letter) == value


# --- reason classes -------------------------------------------------------------------------------


def rejection(outcome_or_result: object) -> str:
    reason = getattr(outcome_or_result, "reason", "")
    assert reason, outcome_or_result
    return reason


def every_reason_the_code_produces() -> dict[str, str]:
    """Reasons obtained by actually triggering each rejection, by a readable name."""
    message = {
        "event_id": "EV-1",
        "occurred_at": "2024-05-01T10:00:00+00:00",
        "source": "erp",
        "sku": SKU,
        "location_id": "DC-NORTH",
        "kind": "receipt",
        "quantity": 5,
    }
    key = SKU.encode()
    crowded = StockPosition()
    for i in range(JOURNAL_WINDOW + 1):
        crowded = apply_movement(crowded, a_receipt(qty=1, at=minutes(i))).position
    ledger = apply_commands(
        {},
        [StockCommand("STORE-GHOST-99", a_sale()), StockCommand("DC-NORTH", a_supplier_feed())],
        NETWORK,
    )
    reasons = {
        "malformed movement": decode_movement(key, b"{nope"),
        "malformed count": decode_count(key, b"\xff"),
        "schema violation": decode_movement(key, orjson.dumps(message | {"kind": "teleport"})),
        "naive time": decode_supplier_stock(key, orjson.dumps(message | {"occurred_at": "2024-05-01T10:00"})),
        "tombstone": decode_movement(key, None),
        "wrong key": decode_movement(b"SKU-PUMP", orjson.dumps(message)),
        "zero receipt": apply_movement(StockPosition(), a_receipt(qty=0)),
        "huge receipt": apply_movement(StockPosition(), a_receipt(qty=MAX_QUANTITY + 1)),
        "zero adjustment": apply_movement(StockPosition(), an_adjustment(qty=0)),
        "negative count": apply_count(StockPosition(), a_count(on_hand=-1)),
        "counted unsellable": apply_count(StockPosition(), a_count(on_hand=1, unsellable=2)),
        "stale count": apply_count(crowded, a_count(as_of=minutes(-1))),
        "negative supplier quantity": apply_supplier_feed(StockPosition(), a_supplier_feed(qty=-1)),
        "impossible lead time": apply_supplier_feed(StockPosition(), a_supplier_feed(lead_time_hours=-1)),
    }
    found = {name: rejection(outcome) for name, outcome in reasons.items()}
    assert all(isinstance(r, Failure) for r in list(reasons.values())[:6])
    (_, unknown), (_, wrong_type) = ledger.verdicts
    found["unknown location"] = unknown
    found["supplier feed for a dc"] = wrong_type
    found["invalid location"] = decode_location(b'{"location_id": "DC-NORTH"}')
    found["invalid rules"] = decode_rules(b"{}")
    return found


EXPECTED_CLASS = {
    "malformed movement": "malformed",
    "malformed count": "malformed",
    "schema violation": "schema",
    "naive time": "schema",
    "tombstone": "schema",
    "wrong key": "key",
    "zero receipt": "impossible_quantity",
    "huge receipt": "impossible_quantity",
    "zero adjustment": "impossible_quantity",
    "negative count": "impossible_quantity",
    "counted unsellable": "impossible_quantity",
    "stale count": "stale_count",
    "negative supplier quantity": "impossible_quantity",
    "impossible lead time": "impossible_quantity",
    "unknown location": "unknown_location",
    "supplier feed for a dc": "wrong_location_type",
    "invalid location": "schema",
    "invalid rules": "schema",
}


@pytest.fixture(scope="module")
def reasons() -> dict[str, str]:
    return every_reason_the_code_produces()


def test_the_reasons_triggered_are_the_reasons_classified(reasons):
    assert set(reasons) == set(EXPECTED_CLASS)


@pytest.mark.parametrize("name", sorted(EXPECTED_CLASS))
def test_every_reason_the_code_produces_has_a_dead_letter_class(name, reasons):
    reason = reasons[name]
    assert isinstance(reason, str) and reason
    assert reason_class(reason) == EXPECTED_CLASS[name] != "other", reason


def test_an_unforeseen_reason_is_classed_as_other():
    assert reason_class("the warehouse is on fire") == "other"


# --- metrics --------------------------------------------------------------------------------------


def test_a_scrape_is_valid_prometheus_text_with_every_metric(reasons):
    metrics = Metrics()
    metrics.stock_events.labels("receipt", "applied").inc()
    metrics.dead_letters.labels("oms.inventory.movements.v1", reason_class(reasons["wrong key"])).inc(2)
    metrics.config_updates.labels("rules", "applied").inc()
    metrics.availability_published.labels("stock").inc()
    metrics.event_to_availability.observe(0.03)
    metrics.batch_size.observe(120)
    metrics.units_hidden.labels("marketplace", "store", "exposure").set(8)
    metrics.consumer_lag.labels("oms.inventory.movements.v1").set(0)
    metrics.positions.set(3)

    families = {f.name: f for f in text_string_to_metric_families(metrics.scrape().decode("utf-8"))}

    assert {
        "oms_stock_events",
        "oms_dead_letters",
        "oms_config_updates",
        "oms_availability_published",
        "oms_event_to_availability_seconds",
        "oms_stock_batch_events",
        "oms_units_hidden",
        "oms_consumer_lag",
        "oms_ledger_positions",
    } <= set(families)
    dead = {s.name: s for s in families["oms_dead_letters"].samples}
    assert dead["oms_dead_letters_total"].labels == {"topic": "oms.inventory.movements.v1", "reason": "key"}
    assert dead["oms_dead_letters_total"].value == 2
    assert families["oms_event_to_availability_seconds"].type == "histogram"


def test_a_fresh_worker_scrape_parses_too():
    assert list(text_string_to_metric_families(Metrics().scrape().decode("utf-8")))
