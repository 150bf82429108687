"""Preorders in the ledger's shell without a broker: an announcement with an ETA, a ``preorder``
command answered ``preordered`` with the ETA, on-hand availability untouched, and the arrival
answered to the order, unasked, as the reserve the preorder became (after a restart too)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson

from oms_streams.adapters.stock import decode_movement
from oms_streams.adapters.timestamps import utc_from_epoch_ms
from oms_streams.schemas.availability import AvailabilityRecord
from oms_streams.schemas.sourcing import ReplyBatch
from tests.streaming.test_ledger_holds import SKU, T0, Ledger

DAY = 86_400_000


class StockLedger(Ledger):
    def __init__(self, dbs: Any = None) -> None:
        super().__init__(dbs)
        self.runtime.decoders["movements"] = decode_movement
        self._seq = 0

    def movement(self, kind: str, quantity: int, location: str = "DC-NORTH", **extra: Any) -> None:
        self._seq += 1
        body = {
            "event_id": f"m{self._seq}",
            "occurred_at": utc_from_epoch_ms(T0 + self._seq).isoformat(),
            "source": "erp",
            "sku": SKU,
            "location_id": location,
            "kind": kind,
            "quantity": quantity,
            **extra,
        }
        message = SimpleNamespace(
            topic="movements", key=SKU.encode(), value=orjson.dumps(body), partition=0, offset=0, timestamp=0
        )
        asyncio.run(self.runtime.apply_batch([SimpleNamespace(message=message)]))

    def replies(self) -> list[dict[str, Any]]:
        for topic, _, value in self.sent:
            if topic == "replies" and value is not None:
                ReplyBatch.model_validate_json(value)
        return [reply for record in self.on("replies") for reply in record["replies"]]


def test_a_preorder_holds_inbound_and_its_arrival_is_answered_as_a_reserve() -> None:
    ledger = StockLedger()
    ledger.stock(DC_NORTH=1)
    eta = utc_from_epoch_ms(T0 + 5 * DAY).isoformat()
    ledger.movement("inbound_announced", 4, expected_at=eta)
    ledger.command("preorder", "ORDER-9/1", {"DC-NORTH": 3})

    [answer] = ledger.replies()
    assert (answer["kind"], answer["status"], answer["reservation_id"]) == (
        "preorder",
        "preordered",
        "ORDER-9/1",
    )
    assert answer["lines"] == [
        {"location_id": "DC-NORTH", "quantity": 3, "available_after": 1, "expected_at": eta}
    ]
    position = ledger.runtime._positions[SKU]["DC-NORTH"]
    assert (position.preorders, position.reserved, position.inbound) == ((("ORDER-9/1", 3),), 0, 4)
    assert ledger.visible() == 1  # on hand untouched by the preorder

    ledger.sent.clear()
    ledger.movement("receipt", 4)
    [arrival] = ledger.replies()
    assert (arrival["kind"], arrival["status"], arrival["event_id"]) == (
        "reserve",
        "reserved",
        "ORDER-9/1:SKU-TENT:arrived",
    )
    assert [(line["location_id"], line["quantity"]) for line in arrival["lines"]] == [("DC-NORTH", 3)]
    position = ledger.runtime._positions[SKU]["DC-NORTH"]
    assert (position.on_hand, position.reserved, position.preorders) == (5, 3, ())
    assert ledger.visible() == 2  # the preorder's units never became anyone else's


def test_a_partial_arrival_waits_for_the_rest_and_a_restart_keeps_lots_and_preorders() -> None:
    ledger = StockLedger()
    ledger.movement("inbound_announced", 5, expected_at=utc_from_epoch_ms(T0 + DAY).isoformat())
    ledger.command("preorder", "ORDER-9/1", {"DC-NORTH": 4})
    ledger.sent.clear()
    ledger.movement("receipt", 2)
    assert ledger.replies() == []  # the lots still cover 3 of its 4: the order waits for all of them

    restarted = StockLedger(ledger.dbs)  # a new worker reading the same store
    restarted._seq = ledger._seq
    position = restarted.runtime._load(SKU)["DC-NORTH"]
    assert position.preorders == (("ORDER-9/1", 3),) and position.holds == (("ORDER-9/1", 1),)
    assert position.lots == ((T0 + DAY, 3),)
    restarted.movement("receipt", 3)
    [arrival] = restarted.replies()
    assert [(line["location_id"], line["quantity"]) for line in arrival["lines"]] == [("DC-NORTH", 4)]


def test_a_released_preorder_gives_the_inbound_back() -> None:
    ledger = StockLedger()
    ledger.movement("inbound_announced", 5, expected_at=utc_from_epoch_ms(T0 + DAY).isoformat())
    ledger.command("preorder", "ORDER-9/1", {"DC-NORTH": 4})
    ledger.command("release", "ORDER-9/1", {"DC-NORTH": 4})
    ledger.command("preorder", "ORDER-8/1", {"DC-NORTH": 5})
    statuses = [(r["reservation_id"], r["status"]) for r in ledger.replies()]
    assert statuses == [("ORDER-9/1", "preordered"), ("ORDER-9/1", "released"), ("ORDER-8/1", "preordered")]


def test_expected_at_on_another_kind_is_dead_lettered() -> None:
    ledger = StockLedger()
    ledger.movement("receipt", 2, expected_at=utc_from_epoch_ms(T0).isoformat())
    [letter] = ledger.on("dlq")
    assert "expected_at is for inbound_announced" in str(letter)


def test_availability_shows_inbound_a_preorder_may_take_with_its_earliest_eta() -> None:
    ledger = StockLedger()
    ledger.stock(DC_NORTH=2)
    soon, later = (utc_from_epoch_ms(T0 + d * DAY).isoformat() for d in (2, 9))
    ledger.movement("inbound_announced", 3, expected_at=later)
    ledger.movement("inbound_announced", 2, expected_at=soon)
    lots = [{"expected_at": soon, "units": 2}, {"expected_at": later, "units": 3}]
    assert ledger.on("availability")[-1]["inbound"] == {
        "DC-NORTH": {"units": 5, "expected_at": soon, "lots": lots}
    }
    ledger.command("preorder", "ORDER-9/1", {"DC-NORTH": 2})
    latest = ledger.on("availability")[-1]
    assert latest["inbound"] == {"DC-NORTH": {"units": 3, "expected_at": later, "lots": lots[1:]}}
    assert latest["channels"]["webshop"]["locations"]["DC-NORTH"] == 2  # on hand as it was
    AvailabilityRecord.model_validate_json(orjson.dumps(latest))
    ledger.command("preorder", "ORDER-8/1", {"DC-NORTH": 3})
    assert "inbound" not in ledger.on("availability")[-1]  # all of it promised
