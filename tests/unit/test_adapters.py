"""Wire <-> domain: decoding stock events never raises, it says why; table rows round-trip."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from oms_streams.adapters.config import decode_location, decode_rules, to_location, to_rules
from oms_streams.adapters.orders import OrderRow
from oms_streams.adapters.sourcing import SourcingRow
from oms_streams.adapters.stock import (
    DecodedStock,
    Failure,
    decode_count,
    decode_movement,
    decode_supplier_stock,
    position_key,
    position_to_row,
    row_demand,
    row_to_position,
)
from oms_streams.domain.forecast import HoltWintersForecaster
from oms_streams.domain.inventory import (
    Count,
    JournalEntry,
    Movement,
    MovementKind,
    StockPosition,
    SupplierFeed,
)
from oms_streams.domain.ledger import StockCommand
from oms_streams.domain.visibility import LocationType
from oms_streams.schemas.config import LocationRecord, VisibilityRulesRecord
from tests.unit.builders import SKU, T0, a_dc, a_store

KEY = SKU.encode()
AT = "2024-05-01T10:00:00+00:00"


# --- wire builders --------------------------------------------------------------------------------


def a_movement_message(**fields: Any) -> dict[str, Any]:
    return {
        "event_id": "ERP-RCPT-1",
        "occurred_at": AT,
        "source": "erp",
        "sku": SKU,
        "location_id": "DC-NORTH",
        "kind": "receipt",
        "quantity": 5,
    } | fields


def a_count_message(**fields: Any) -> dict[str, Any]:
    return {
        "event_id": "ERP-COUNT-1",
        "occurred_at": AT,
        "source": "erp",
        "sku": SKU,
        "positions": [{"location_id": "DC-NORTH", "on_hand": 40}],
    } | fields


def a_supplier_stock_message(**fields: Any) -> dict[str, Any]:
    return {
        "event_id": "ACME-FEED-1",
        "occurred_at": AT,
        "source": "supplier:ACME",
        "sku": SKU,
        "location_id": "SUPPLIER-ACME",
        "quantity": 250,
        "lead_time_hours": 48,
    } | fields


def without(message: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k != field}


def wire(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message)


DECODERS = {
    "movement": (decode_movement, a_movement_message),
    "count": (decode_count, a_count_message),
    "supplier_stock": (decode_supplier_stock, a_supplier_stock_message),
}
each_decoder = pytest.mark.parametrize("decoder_name", sorted(DECODERS))


def failure_of(decoder_name: str, key: bytes | None, value: bytes | None) -> str:
    decode, _ = DECODERS[decoder_name]
    result = decode(key, value)
    assert isinstance(result, Failure), result
    return result.reason


# --- valid messages -------------------------------------------------------------------------------


def test_a_movement_becomes_one_command_at_its_location():
    decoded = decode_movement(
        KEY, wire(a_movement_message(kind="sale", quantity=2, location_id="STORE-UTRECHT-01"))
    )

    assert decoded == DecodedStock(
        sku=SKU,
        kind="sale",
        commands=[StockCommand("STORE-UTRECHT-01", Movement("ERP-RCPT-1", MovementKind.SALE, 2, T0))],
    )


def test_occurred_at_in_another_time_zone_is_the_same_instant():
    decoded = decode_movement(KEY, wire(a_movement_message(occurred_at="2024-05-01T12:00:00.250+02:00")))

    assert isinstance(decoded, DecodedStock)
    assert decoded.commands[0].event.occurred_at_ms == T0 + 250


def test_a_signed_adjustment_decodes_with_its_sign():
    decoded = decode_movement(KEY, wire(a_movement_message(kind="adjustment", quantity=-3)))

    assert isinstance(decoded, DecodedStock)
    assert decoded.commands[0].event.quantity == -3


def test_a_count_becomes_one_command_per_counted_location():
    message = a_count_message(
        positions=[
            {"location_id": "DC-NORTH", "on_hand": 40},
            {"location_id": "STORE-UTRECHT-01", "on_hand": 6, "unsellable": 1},
        ]
    )

    decoded = decode_count(KEY, wire(message))

    assert decoded == DecodedStock(
        sku=SKU,
        kind="count",
        commands=[
            StockCommand("DC-NORTH", Count("ERP-COUNT-1", 40, T0, None)),
            StockCommand("STORE-UTRECHT-01", Count("ERP-COUNT-1", 6, T0, 1)),
        ],
    )


def test_a_supplier_snapshot_becomes_a_feed_for_its_third_party_location():
    decoded = decode_supplier_stock(KEY, wire(a_supplier_stock_message()))

    assert decoded == DecodedStock(
        sku=SKU,
        kind="supplier_stock",
        commands=[StockCommand("SUPPLIER-ACME", SupplierFeed("ACME-FEED-1", 250, 48, T0))],
    )


# --- invalid messages -----------------------------------------------------------------------------


@each_decoder
@pytest.mark.parametrize(
    "value",
    [b"{not json", b'{"event_id": "EV-1",', b"", b"\xff\xfe\x00garbage"],
    ids=["broken", "truncated", "empty", "binary"],
)
def test_bytes_that_are_not_json_are_malformed(decoder_name, value):
    assert failure_of(decoder_name, KEY, value) == "malformed JSON"


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (without(a_movement_message(), "location_id"), "location_id"),
        (a_movement_message(kind="teleport"), "kind"),
        (a_movement_message(quantity=2.5), "quantity"),
        (a_movement_message(event_id="EV 1"), "event_id"),
        (a_movement_message(sku="SKU|BIKE"), "sku"),
        (a_movement_message(schema_version=2), "schema_version"),
    ],
    ids=[
        "missing-location",
        "unknown-kind",
        "fractional-quantity",
        "space-in-event-id",
        "pipe-in-sku",
        "future-schema-version",
    ],
)
def test_a_movement_that_violates_the_schema_says_which_field(message, field):
    reason = failure_of("movement", KEY, wire(message))

    assert reason.startswith(f"schema violation at {field}")


def test_a_count_without_positions_or_with_a_bad_position_says_where():
    assert failure_of("count", KEY, wire(a_count_message(positions=[]))).startswith(
        "schema violation at positions"
    )
    bad = a_count_message(positions=[{"location_id": "DC-NORTH", "on_hand": "lots"}])
    assert failure_of("count", KEY, wire(bad)).startswith("schema violation at positions.0.on_hand")


def test_a_supplier_snapshot_without_lead_time_says_which_field():
    reason = failure_of("supplier_stock", KEY, wire(without(a_supplier_stock_message(), "lead_time_hours")))

    assert reason.startswith("schema violation at lead_time_hours")


def test_a_reason_counts_the_further_violations():
    reason = failure_of("movement", KEY, wire(without(without(a_movement_message(), "sku"), "kind")))

    assert reason.endswith("(+1 more)")


@each_decoder
@pytest.mark.parametrize("naive", ["2024-05-01T10:00:00", "2024-05-01 10:00"])
def test_a_time_without_time_zone_is_rejected(decoder_name, naive):
    _, message = DECODERS[decoder_name]

    reason = failure_of(decoder_name, KEY, wire(message(occurred_at=naive)))

    assert reason.startswith("schema violation at occurred_at")


@each_decoder
@pytest.mark.parametrize(
    "key", [b"SKU-PUMP", b"", None, b"sku-bike-light"], ids=["other-sku", "empty", "none", "other-case"]
)
def test_a_message_not_keyed_by_its_sku_is_rejected(decoder_name, key):
    _, message = DECODERS[decoder_name]

    reason = failure_of(decoder_name, key, wire(message()))

    assert reason.startswith("message key")
    assert repr(SKU) in reason


@each_decoder
def test_a_tombstone_is_rejected(decoder_name):
    assert failure_of(decoder_name, KEY, None) == "empty message (tombstone) on a stock topic"


@each_decoder
def test_an_unknown_field_is_rejected_by_name(decoder_name):
    _, message = DECODERS[decoder_name]

    reason = failure_of(decoder_name, KEY, wire(message(warehouse_mood="grumpy")))

    assert reason.startswith("schema violation at warehouse_mood")


@pytest.mark.parametrize("quantity", ["5", True], ids=["string", "boolean"])
def test_a_quantity_is_not_coerced_from_another_json_type(quantity):
    """``WireModel`` promises 'types are not coerced from strings': a till sending ``"5"`` or ``true``
    must be dead-lettered, not booked as 5 or 1 units."""
    result = decode_movement(KEY, wire(a_movement_message(quantity=quantity)))

    assert isinstance(result, Failure), result
    assert result.reason.startswith("schema violation at quantity")


# --- table rows -----------------------------------------------------------------------------------

ints = st.integers(-(2**53), 2**53)
journal_entries = st.builds(
    JournalEntry,
    event_id=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:/@#+-]{0,20}", fullmatch=True),
    occurred_at_ms=ints,
    on_hand_delta=ints,
    unsellable_delta=ints,
)
positions = st.builds(
    StockPosition,
    on_hand=ints,
    reserved=ints,
    unsellable=ints,
    inbound=ints,
    lead_time_hours=st.none() | st.integers(0, 24 * 365),
    counted_at_ms=st.none() | ints,
    horizon_ms=st.none() | ints,
    journal=st.lists(journal_entries, max_size=8).map(tuple),
    applied=st.integers(0, 2**53),
)


@given(position=positions)
def test_a_position_survives_the_table_row_and_its_json_changelog(position):
    row = position_to_row(position)

    assert row_to_position(row) == position
    assert row_to_position(orjson.loads(orjson.dumps(row))) == position


@pytest.mark.parametrize("with_demand", [False, True])
def test_the_applied_count_travels_with_the_row_beside_or_without_a_demand_model(with_demand):
    demand = HoltWintersForecaster().initial() if with_demand else None
    row = position_to_row(StockPosition(on_hand=3, applied=7), demand)

    assert row_to_position(orjson.loads(orjson.dumps(row))).applied == 7
    assert row_demand(row) == demand


def test_a_position_key_joins_sku_and_location():
    assert position_key(SKU, "STORE-UTRECHT-01") == "SKU-BIKE-LIGHT|STORE-UTRECHT-01"


# --- config ---------------------------------------------------------------------------------------


def rules_record(**fields: Any) -> VisibilityRulesRecord:
    return VisibilityRulesRecord.model_validate(
        {"version": "2024-05-01", "channels": [{"channel": "webshop", "location_types": ["dc", "store"]}]}
        | fields
    )


def test_safety_stock_entries_map_to_their_level_of_the_hierarchy():
    record = rules_record(
        default_safety_stock=1,
        safety_stock=[
            {"units": 4, "sku": SKU, "location_id": "STORE-UTRECHT-01", "channel": "webshop"},
            {"units": 3, "sku": SKU, "location_id": "STORE-UTRECHT-01"},
            {"units": 2, "location_type": "store"},
        ],
    )

    safety = to_rules(record).safety_stock

    assert safety.by_sku_location_channel == {(SKU, "STORE-UTRECHT-01", "webshop"): 4}
    assert safety.by_sku_location == {(SKU, "STORE-UTRECHT-01"): 3}
    assert safety.by_location_type == {LocationType.STORE: 2}
    assert safety.default == 1
    utrecht, amsterdam = a_store("STORE-UTRECHT-01"), a_store("STORE-AMSTERDAM-02")
    assert safety.for_position(SKU, utrecht, "webshop") == 4
    assert safety.for_position(SKU, utrecht, "marketplace") == 3
    assert safety.for_position(SKU, amsterdam, "webshop") == 2
    assert safety.for_position(SKU, a_dc(), "webshop") == 1


def test_an_unscoped_safety_stock_entry_is_the_global_default():
    assert (
        to_rules(rules_record(default_safety_stock=1, safety_stock=[{"units": 6}])).safety_stock.default == 6
    )


@pytest.mark.parametrize(
    "entry",
    [
        {"units": 7, "sku": SKU},
        {"units": 7, "location_id": "STORE-UTRECHT-01"},
        {"units": 7, "sku": SKU, "channel": "webshop"},
        {"units": 7, "channel": "webshop"},
        {"units": 7, "sku": SKU, "location_type": "dc"},
    ],
    ids=["sku-only", "location-only", "sku-and-channel", "channel-only", "sku-and-location-type"],
)
def test_a_safety_stock_entry_scoped_to_one_sku_location_or_channel_never_becomes_the_global_default(entry):
    """No hierarchy level fits these entries. Holding 7 units of *every* SKU at *every* location back
    because someone scoped an entry to one SKU would empty the webshop: the rules are rejected whole,
    with a reason naming the allowed scopes, never widened."""
    document = {
        "version": "2024-05-01",
        "channels": [{"channel": "webshop", "location_types": ["dc", "store"]}],
        "safety_stock": [entry],
    }
    decoded = decode_rules(orjson.dumps(document))

    assert isinstance(decoded, str)
    assert "safety stock scope" in decoded


def test_channel_rules_and_store_cap_map_from_the_record():
    record = rules_record(
        channels=[
            {
                "channel": "webshop",
                "location_types": ["dc", "store", "third_party"],
                "store_cap_applies": True,
                "max_lead_time_hours": 72,
                "low_stock": 3,
            }
        ],
        store_online_cap_pct=40,
        thresholds_only=True,
    )

    rules = to_rules(record)

    [webshop] = rules.channels
    assert webshop.location_types == {LocationType.DC, LocationType.STORE, LocationType.THIRD_PARTY}
    assert (webshop.store_cap_applies, webshop.max_lead_time_hours, webshop.low_stock) == (True, 72, 3)
    assert (rules.store_online_cap_pct, rules.thresholds_only, rules.version) == (40, True, "2024-05-01")


def test_a_location_record_maps_to_a_location():
    record = LocationRecord(
        location_id="STORE-UTRECHT-01",
        type="store",
        name="Utrecht Centraal",
        lat=52.09,
        lon=5.12,
        online_cap_pct=50,
    )

    location = to_location(record)

    assert location.type is LocationType.STORE
    assert (location.location_id, location.lat, location.lon, location.online_cap_pct, location.active) == (
        "STORE-UTRECHT-01",
        52.09,
        5.12,
        50,
        True,
    )


@pytest.mark.parametrize(
    ("decode", "value", "prefix"),
    [
        (decode_location, b'{"location_id": "DC-NORTH", "type": "warehouse"}', "invalid location record"),
        (decode_location, b"{oops", "invalid location record"),
        (decode_rules, b'{"version": "v1", "channels": []}', "invalid visibility rules"),
        (
            decode_rules,
            b'{"version": "v1", "channels": [{"channel": "web", "location_types": ["dc"]}], '
            b'"store_online_cap_pct": 120}',
            "invalid visibility rules",
        ),
    ],
    ids=["unknown-location-type", "malformed-location", "rules-without-channels", "cap-above-100"],
)
def test_invalid_config_records_are_reasons_not_exceptions(decode, value, prefix):
    result = decode(value)

    assert isinstance(result, str)
    assert result.startswith(prefix)


def test_a_row_written_by_a_newer_version_still_loads_without_the_fields_it_does_not_know():
    # A rolling upgrade can hand a partition back to an older worker: its rows must not fail.
    sourcing = orjson.loads(
        SourcingRow(
            order_id="O-1",
            placement="e",
            partition=0,
            method="standard",
            lines=[["SKU", 1]],
            destination={},
            window_start_ms=0,
            promised_by_ms=0,
            channel="webshop",
        ).encode()
    )
    sourcing["field_of_a_later_version"] = [1, 2]
    assert SourcingRow.decode(orjson.dumps(sourcing)).order_id == "O-1"

    order = {**orjson.loads(OrderRow("O-1", ["ev-place"], partition=2).encode()), "later": True}
    assert OrderRow.decode(orjson.dumps(order)) == OrderRow("O-1", ["ev-place"], partition=2)
