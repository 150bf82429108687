"""Stock that disappears under a hold, in the ledger's shell: a count that leaves fewer units than
are held sheds the newest holds in the same batch (rows and changelog), tells an order's owner with
a ``shed`` reply and ends a cart hold's row and record; the same count read again sheds nothing."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson

from oms_streams.adapters.stock import decode_count, row_to_position
from oms_streams.adapters.timestamps import utc_from_epoch_ms
from tests.streaming.test_ledger_holds import HOLD, SKU, T0, Ledger


def count(ledger: Ledger, event_id: str, **on_hand: int) -> None:
    body = {
        "event_id": event_id,
        "occurred_at": utc_from_epoch_ms(T0 + 1_000).isoformat(),
        "source": "erp",
        "sku": SKU,
        "positions": [{"location_id": k.replace("_", "-"), "on_hand": v} for k, v in on_hand.items()],
    }
    ledger.runtime.decoders["counts"] = decode_count
    message = SimpleNamespace(
        topic="counts", key=SKU.encode(), value=orjson.dumps(body), partition=0, offset=1, timestamp=0
    )
    asyncio.run(ledger.runtime.apply_batch([SimpleNamespace(message=message)]))


def sheds(ledger: Ledger) -> list[dict[str, Any]]:
    return [r for batch in ledger.on("replies") for r in batch["replies"] if r["kind"] == "shed"]


def test_a_count_below_the_held_units_sheds_the_newest_order_hold_and_tells_its_owner():
    ledger = Ledger()
    ledger.stock(DC_NORTH=10)
    ledger.command("reserve", "O-1/1", {"DC-NORTH": 4})
    ledger.command("reserve", "O-2/1", {"DC-NORTH": 5})

    count(ledger, "count-1", DC_NORTH=6)

    [shed] = sheds(ledger)
    assert (shed["order_id"], shed["reservation_id"], shed["status"]) == ("O-2", "O-2/1", "released")
    assert shed["lines"] == [{"location_id": "DC-NORTH", "quantity": 5, "available_after": 2}]
    assert shed["reason"] == "stock gone: count at DC-NORTH left 6 on hand for 9 reserved"
    position = ledger.runtime._positions[SKU]["DC-NORTH"]
    assert (position.on_hand, position.reserved, position.holds) == (6, 4, (("O-1/1", 4),))
    row = row_to_position(orjson.loads(ledger.store.stock_positions.get(f"{SKU}|DC-NORTH".encode())))
    assert row == position  # written with the count, in its batch
    assert ledger.visible() == 2

    count(ledger, "count-1", DC_NORTH=6)  # read again after a crash: nothing more to shed
    assert len(sheds(ledger)) == 1
    assert ledger.runtime.metrics.holds_shed.labels("dc", "order")._value.get() == 1


def test_a_cart_hold_is_shed_before_an_order_hold_and_its_record_says_why():
    ledger = Ledger()
    ledger.stock(DC_NORTH=6)
    ledger.command("reserve", "O-1/1", {"DC-NORTH": 4})
    ledger.hold({"DC-NORTH": 2})

    count(ledger, "count-2", DC_NORTH=5)

    assert sheds(ledger) == []
    record = ledger.on("holds")[-1]
    assert (record["hold_id"], record["status"]) == (HOLD, "released")
    assert record["reason"] == "stock gone: count at DC-NORTH left 5 on hand for 6 reserved"
    assert ledger.live_holds() == []
    assert ledger.runtime._positions[SKU]["DC-NORTH"].holds == (("O-1/1", 4),)
