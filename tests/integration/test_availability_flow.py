"""End to end on a real broker: ERP/POS/supplier events in, availability on the topic and over HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from tests.worker_process import Events, WorkerProcess, latest_by_key, read_topic, wait_until

AVAILABILITY = "oms.availability.v1"
DLQ = "oms.dlq.v1"


def channel_at(worker: WorkerProcess, sku: str, channel: str, **query: str) -> dict:
    params = "&".join(f"{k}={v}" for k, v in {"channel": channel, **query}.items())
    status, body = worker.get(f"/availability/{sku}?{params}")
    return body if status == 200 else {}


def wait_for_total(worker: WorkerProcess, sku: str, channel: str, total: int, timeout_s: float = 20) -> dict:
    return wait_until(
        lambda: (view := channel_at(worker, sku, channel)).get("total") == total and view,
        timeout_s,
        f"{sku} {channel} total {total} (last: {channel_at(worker, sku, channel)})",
    )


def test_erp_and_pos_events_become_availability_on_topic_and_http(
    worker: WorkerProcess, events: Events
) -> None:
    events.movement("SKU-BIKE-LIGHT", "DC-NORTH", "receipt", 40)
    events.movement("SKU-BIKE-LIGHT", "STORE-UTRECHT-01", "receipt", 10)
    events.movement("SKU-BIKE-LIGHT", "STORE-UTRECHT-01", "sale", 2, source="pos:STORE-UTRECHT-01")
    events.movement("SKU-BIKE-LIGHT", "STORE-UTRECHT-01", "unsellable_in", 1)
    events.supplier_stock("SKU-BIKE-LIGHT", "SUPPLIER-ACME", 100, lead_time_hours=48)
    events.flush()

    # Utrecht: 10 - 2 sold - 1 unsellable = ATP 7; store safety stock 1 -> 6; 80 % online cap of 7 -> 5.
    webshop = wait_for_total(worker, "SKU-BIKE-LIGHT", "webshop", 40 + 5 + 100)
    assert {r["location_id"]: r["quantity"] for r in webshop["locations"]} == {
        "DC-NORTH": 40,
        "STORE-UTRECHT-01": 5,
        "SUPPLIER-ACME": 100,
    }
    supplier = next(r for r in webshop["locations"] if r["location_id"] == "SUPPLIER-ACME")
    assert supplier["lead_time_hours"] == 48
    # Marketplace: DCs only, and 5 units of safety stock for this SKU at DC-NORTH.
    assert channel_at(worker, "SKU-BIKE-LIGHT", "marketplace")["total"] == 35
    # Click & collect sees the pickup store without the online cap: 7 - 1 safety stock.
    assert channel_at(worker, "SKU-BIKE-LIGHT", "click_and_collect")["total"] == 6
    near_utrecht = channel_at(worker, "SKU-BIKE-LIGHT", "webshop", near="52.09,5.12", radius_km="25")
    assert [r["location_id"] for r in near_utrecht["locations"]] == ["STORE-UTRECHT-01"]

    record = latest_by_key(worker.bootstrap, worker.prefix + AVAILABILITY)[b"SKU-BIKE-LIGHT"]
    assert record["channels"]["webshop"]["total"] == 145
    assert record["network_atp"] == 40 + 7 + 100
    assert worker.metric("oms_stock_events_total", verdict="applied") == 5


def test_availability_is_published_only_when_a_visible_quantity_changes(
    worker: WorkerProcess, events: Events
) -> None:
    events.movement("SKU-TENT", "DC-SOUTH", "receipt", 5)
    events.flush()
    wait_for_total(worker, "SKU-TENT", "webshop", 5)
    # An inbound announcement changes the ledger but nothing any channel can see.
    events.movement("SKU-TENT", "DC-SOUTH", "inbound_announced", 50)
    events.movement("SKU-TENT", "DC-SOUTH", "sale", 1)
    events.flush()
    wait_for_total(worker, "SKU-TENT", "webshop", 4)
    published = [k for k, _ in read_topic(worker.bootstrap, worker.prefix + AVAILABILITY) if k == b"SKU-TENT"]
    assert len(published) == 2


def test_duplicates_and_counts_follow_count_semantics(worker: WorkerProcess, events: Events) -> None:
    t0 = datetime.now(UTC) - timedelta(hours=1)
    receipt = events.movement("SKU-KAYAK", "DC-NORTH", "receipt", 10, at=t0)
    events.movement("SKU-KAYAK", "DC-NORTH", "receipt", 10, at=t0, event_id=receipt["event_id"])  # resent
    events.flush()
    wait_for_total(worker, "SKU-KAYAK", "webshop", 10)
    assert worker.metric("oms_stock_events_total", verdict="duplicate") == 1

    events.movement("SKU-KAYAK", "DC-NORTH", "sale", 3, at=t0 + timedelta(minutes=30))  # after the count
    events.count("SKU-KAYAK", {"DC-NORTH": 20}, at=t0 + timedelta(minutes=10))  # counted, arrives late
    events.flush()
    # Whatever order the two topics interleave in: the count, plus what happened after it.
    wait_for_total(worker, "SKU-KAYAK", "webshop", 20 - 3)
    events.movement("SKU-KAYAK", "DC-NORTH", "sale", 4, at=t0 + timedelta(minutes=5))  # already counted
    events.flush()
    wait_until(lambda: worker.metric("oms_stock_events_total", verdict="superseded") == 1, 10, "superseded")
    assert channel_at(worker, "SKU-KAYAK", "webshop")["total"] == 20 - 3


def test_rule_change_on_the_config_topic_changes_availability_without_restart(
    worker: WorkerProcess, events: Events, tmp_path: Path
) -> None:
    events.movement("SKU-HELMET", "DC-NORTH", "receipt", 30)
    events.movement("SKU-HELMET", "STORE-AMSTERDAM-01", "receipt", 15)
    events.flush()
    wait_for_total(worker, "SKU-HELMET", "marketplace", 30)

    network = yaml.safe_load((Path(__file__).parent.parent / "fixtures" / "network.yaml").read_text())
    rules = network["visibility_rules"]
    rules["version"] = "test-2"
    rules["channels"][1]["location_types"] = ["dc", "store"]  # marketplace now sees stores too
    rules["safety_stock"].append({"location_type": "dc", "units": 10})
    changed = tmp_path / "rules.yaml"
    changed.write_text(yaml.safe_dump({"visibility_rules": rules}))
    events.config(changed)

    # DC: 30 - 10 safety stock; Amsterdam store: 15 - 1 safety stock (no cap for the marketplace).
    view = wait_for_total(worker, "SKU-HELMET", "marketplace", 20 + 14)
    assert view["rules_version"] == "test-2"
    assert worker.metric("oms_units_hidden", channel="marketplace", rule="safety_stock") >= 11


def test_poison_messages_go_to_the_dlq_and_later_good_messages_are_applied(
    worker: WorkerProcess, events: Events
) -> None:
    good = events.movement("SKU-PUMP", "DC-NORTH", "receipt", 5)
    events.send("oms.inventory.movements.v1", b"SKU-PUMP", b"\xff\xfenot json at all")
    events.send("oms.inventory.movements.v1", b"SKU-PUMP", json.dumps({**good, "quantity": "many"}).encode())
    events.send(
        "oms.inventory.movements.v1",
        b"SKU-PUMP",
        json.dumps({**good, "event_id": "x1", "location_id": "NOWHERE"}).encode(),
    )
    events.send(
        "oms.inventory.movements.v1",
        b"SKU-PUMP",
        json.dumps({**good, "event_id": "x2", "quantity": -4}).encode(),
    )
    events.send("oms.inventory.movements.v1", b"OTHER-SKU", json.dumps({**good, "event_id": "x3"}).encode())
    events.send("oms.inventory.counts.v1", b"SKU-PUMP", None)
    events.movement("SKU-PUMP", "DC-NORTH", "receipt", 7)
    events.flush()

    wait_for_total(worker, "SKU-PUMP", "webshop", 12)
    letters = wait_until(
        lambda: len(dl := read_topic(worker.bootstrap, worker.prefix + DLQ)) >= 6 and dl,
        20,
        "six dead letters",
    )
    reasons = sorted(json.loads(v)["reason"].split(" ")[0] for _, v in letters)
    assert len(letters) == 6, reasons
    dead = [json.loads(v) for _, v in letters]
    binary = next(d for d in dead if d["payload_encoding"] == "base64")
    assert binary["reason"] == "malformed JSON" and binary["source_topic"].endswith("movements.v1")
    assert {d["reason"].split(" ")[0] for d in dead} >= {
        "malformed",
        "schema",
        "unknown",
        "impossible",
        "message",
    }
    assert all(isinstance(d["source_offset"], int) for d in dead)
    assert worker.metric("oms_dead_letters_total") == 6


def test_bad_http_requests_get_a_clear_4xx(worker: WorkerProcess, events: Events) -> None:
    events.movement("SKU-BELL", "DC-NORTH", "receipt", 1)
    events.flush()
    wait_for_total(worker, "SKU-BELL", "webshop", 1)
    for query, expected in [
        ("?channel=teleport", "unknown channel"),
        ("?channel=webshop&near=52.1&radius_km=3", "near must be"),
        ("?channel=webshop&near=95,5&radius_km=3", "not a point on earth"),
        ("?channel=webshop&near=52,5", "go together"),
        ("?channel=webshop&near=52,5&radius_km=-1", "radius_km must be"),
    ]:
        status, body = worker.get(f"/availability/SKU-BELL{query}")
        assert status == 400 and expected in body["error"], (query, body)
    status, body = worker.get("/availability/SKU-NEVER-SEEN")
    assert status == 404 and "no availability" in body["error"]
    status, body = worker.get("/openapi.json")
    assert status == 200 and "/availability/{sku}" in body["paths"]


def test_an_invalid_config_record_is_dead_lettered_and_the_rest_still_applies(
    worker: WorkerProcess, events: Events
) -> None:
    events.send(
        "oms.config.locations.v1", b"STORE-NOWHERE", b'{"location_id": "STORE-NOWHERE", "type": "kiosk"}'
    )
    events.send(
        "oms.config.locations.v1",
        b"STORE-DEN-HAAG-01",
        json.dumps({"location_id": "STORE-DEN-HAAG-01", "type": "store", "lat": 52.08, "lon": 4.31}).encode(),
    )
    events.movement("SKU-MAP", "STORE-DEN-HAAG-01", "receipt", 4)
    events.flush()

    wait_for_total(worker, "SKU-MAP", "click_and_collect", 3)  # 4 - 1 store safety stock
    letters = wait_until(lambda: read_topic(worker.bootstrap, worker.prefix + DLQ), 20, "a dead letter")
    letter = json.loads(letters[0][1])
    assert letter["source_topic"].endswith("oms.config.locations.v1")
    assert letter["reason"].startswith("invalid location record") and "kiosk" in letter["payload"]


def test_an_input_near_the_size_limit_is_dead_lettered_truncated_and_the_stream_goes_on(
    worker: WorkerProcess, events: Events
) -> None:
    # 990,000 bytes of binary: base64 in a letter would be 1.3 MB, over the producer's limit. Sent
    # whole it would be refused, and a record not sent stops the worker (on this input, every time).
    huge = bytes(range(256)) * (990_000 // 256)
    events.send("oms.inventory.movements.v1", b"SKU-ROPE", b"\xff" + huge)
    events.movement("SKU-ROPE", "DC-NORTH", "receipt", 4)
    events.flush()

    wait_for_total(worker, "SKU-ROPE", "webshop", 4)
    letters = wait_until(lambda: read_topic(worker.bootstrap, worker.prefix + DLQ), 20, "a dead letter")
    letter = json.loads(letters[0][1])
    assert letter["reason"] == "malformed JSON" and letter["truncated"] is True
    assert letter["payload_bytes"] == len(huge) + 1 and letter["payload_encoding"] == "base64"
    assert len(letter["payload"]) == 65_536 and isinstance(letter["source_offset"], int)
