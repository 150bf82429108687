"""When the ledger publishes a SKU's availability, without a broker: only when what a record shows
moved, and as a record equal to the one built from a full copy of the views; a SKU whose views were
evicted from the cache and rebuilt is compared with what it last published (nothing is sent twice,
nothing is missed), and the hidden-units gauge counts each SKU once however often its views are
rebuilt."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import orjson

from oms_streams.adapters.availability import availability_record, encode, encode_running
from oms_streams.adapters.stock import decode_movement
from oms_streams.adapters.timestamps import utc_from_epoch_ms
from oms_streams.domain.visibility import LocationType
from tests.streaming.test_ledger_holds import SKU, T0, Ledger

OTHER = "SKU-STOVE"


def move(ledger: Ledger, event_id: str, quantity: int, sku: str = SKU, location: str = "DC-NORTH") -> None:
    body = {
        "event_id": event_id,
        "occurred_at": utc_from_epoch_ms(T0).isoformat(),
        "source": "erp",
        "sku": sku,
        "location_id": location,
        "kind": "receipt" if quantity > 0 else "adjustment",
        "quantity": quantity,
    }
    ledger.runtime.decoders["movements"] = decode_movement
    message = SimpleNamespace(
        topic="movements", key=sku.encode(), value=orjson.dumps(body), partition=0, offset=0, timestamp=0
    )
    asyncio.run(ledger.runtime.apply_batch([SimpleNamespace(message=message)]))


def published(ledger: Ledger, sku: str = SKU) -> list[dict[str, Any]]:
    return [r for r in ledger.on("availability") if r["sku"] == sku]


def evict(ledger: Ledger, sku: str) -> None:
    """Loads another SKU into a cache that holds one SKU's positions: ``sku`` is forgotten."""
    ledger.runtime.cache_positions = 1
    move(ledger, f"{OTHER}-{len(ledger.sent)}", 1, sku=OTHER)
    ledger.runtime._load(f"SKU-UNSEEN-{len(ledger.sent)}")  # over its bound at the next load
    assert sku not in ledger.runtime._positions and sku not in ledger.runtime._views


def test_the_running_record_is_the_record_of_a_full_copy_of_the_views():
    ledger = Ledger()
    move(ledger, "m-1", 7)
    move(ledger, "m-2", 3, location="STORE-UTRECHT")
    views = ledger.runtime._views[SKU]
    at = utc_from_epoch_ms(T0).isoformat()

    assert encode_running(views, "v9", at) == encode(availability_record(views.availability(), "v9", T0))


def test_a_movement_publishes_only_when_a_visible_quantity_moves():
    ledger = Ledger()
    move(ledger, "m-1", 7)
    move(ledger, "m-1", 7)  # the same movement again: a duplicate, nothing moved

    [record] = published(ledger)
    assert record["channels"]["webshop"]["locations"]["DC-NORTH"] == 7

    move(ledger, "m-2", 2)
    assert [r["channels"]["webshop"]["locations"]["DC-NORTH"] for r in published(ledger)] == [7, 9]


def test_a_sku_rebuilt_after_eviction_publishes_nothing_already_published_and_every_change():
    ledger = Ledger()
    move(ledger, "m-1", 7)
    evict(ledger, SKU)

    asyncio.run(ledger.runtime.resync())  # rebuilt from the store: the same as published
    assert len(published(ledger)) == 1

    evict(ledger, SKU)
    move(ledger, "m-2", 1)  # rebuilt by a change
    assert [r["channels"]["webshop"]["total"] for r in published(ledger)] == [7, 8]


def test_hidden_units_count_each_sku_once_however_often_its_views_are_rebuilt():
    ledger = Ledger()
    move(ledger, "m-1", 7)  # a DC: hidden from click & collect, which sees stores only
    assert ledger.runtime._hidden_totals[("click_and_collect", LocationType.DC, "exposure")] == 7

    for round_ in range(3):  # each eviction adds a unit of OTHER at DC-NORTH
        evict(ledger, SKU)
        move(ledger, f"m-{round_ + 2}", 1)

    key = ("click_and_collect", LocationType.DC, "exposure")
    assert ledger.runtime._hidden_by_sku[SKU][key] == 10 and ledger.runtime._hidden_by_sku[OTHER][key] == 3
    assert ledger.runtime._hidden_totals[key] == 13  # each SKU once, not once per rebuild
    each_sku: Counter[Any] = Counter()
    for hidden_here in ledger.runtime._hidden_by_sku.values():
        each_sku.update(hidden_here)
    assert +Counter(ledger.runtime._hidden_totals) == +each_sku


def test_with_thresholds_only_a_level_change_publishes_even_after_the_views_were_rebuilt():
    ledger = Ledger()
    rules = ledger.runtime.network.rules
    ledger.runtime.network.rules = replace(rules, thresholds_only=True)
    move(ledger, "m-1", 7)
    move(ledger, "m-2", 1)  # 8: still in stock everywhere, nothing to publish
    assert len(published(ledger)) == 1

    evict(ledger, SKU)
    move(ledger, "m-3", -6)  # 2: low stock for the webshop (3 or fewer)
    assert [r["channels"]["webshop"]["total"] for r in published(ledger)] == [7, 2]
