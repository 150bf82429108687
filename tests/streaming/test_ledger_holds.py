"""Cart holds in the ledger without a broker: in-memory stores, hand-made reservation records, a set
clock. What it checks is the shell around the domain: the row of each live hold written with the
positions, no answer to sourcing for a cart, the hold's records, availability at once, expiry by the
ledger's clock (after a restart too, from the table alone), and a takeover by an order."""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import SimpleNamespace
from typing import Any

import orjson

from oms_streams.adapters.holds import hold_view
from oms_streams.adapters.reservations import decode_reservations
from oms_streams.adapters.timestamps import utc_from_epoch_ms
from oms_streams.domain.inventory import StockPosition
from oms_streams.streaming.holds import HoldBook
from oms_streams.streaming.ledger_runtime import AvailabilityView, LedgerRuntime
from oms_streams.streaming.ledger_store import LedgerStore, MemoryDb, _Partition
from tests.streaming.test_orders_runtime import Harness as OrdersHarness

T0 = int(time.time() * 1000) + 86_400_000  # ahead of the clock: holds are not expired on arrival
SKU = "SKU-TENT"
HOLD = "hold-0a1b2c"


class Follower:
    async def caught_up(self, timeout_s: float = 10.0) -> bool:
        return True


class Ledger:
    def __init__(self, dbs: dict[int, MemoryDb] | None = None) -> None:
        network = OrdersHarness().network
        self.store = LedgerStore("test", 1, None, {})
        self.dbs = dbs or {0: MemoryDb()}
        self.store._owned = {p: _Partition(db, None) for p, db in self.dbs.items()}
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []

        async def send_many(records: list[tuple[str, bytes | None, bytes | None, int | None]]) -> None:
            self.sent.extend((t, k, v) for t, k, v, _ in records)

        async def produce(topic: str, key: bytes, value: bytes | None) -> None:
            self.sent.append((topic, key, value))

        self.runtime = LedgerRuntime(
            store=self.store,
            send_many=send_many,
            network=network,
            config_follower=Follower(),  # type: ignore[arg-type]
            view=AvailabilityView(),
            view_follower=Follower(),  # type: ignore[arg-type]
            decoders={"reservations": decode_reservations},
            availability_topic="availability",
            replies_topic="replies",
            dlq_topic="dlq",
            produce=produce,
            metrics=network._metrics,
            holds_topic="holds",
        )

    def stock(self, **units: int) -> None:
        positions = self.runtime._load(SKU)
        self.runtime._store(
            SKU, positions, {k.replace("_", "-"): StockPosition(on_hand=v) for k, v in units.items()}
        )
        asyncio.run(self.store.commit(self.runtime._send_many))

    def command(self, kind: str, rid: str, lines: dict[str, int], **extra: Any) -> None:
        command = {
            "event_id": f"{rid}:{kind}",
            "occurred_at": utc_from_epoch_ms(T0).isoformat(),
            "source": "test",
            "kind": kind,
            "reservation_id": rid,
            "order_id": rid.split("/")[0],
            "sku": SKU,
            "lines": [{"location_id": loc, "quantity": q} for loc, q in lines.items()],
            **extra,
        }
        body = {"event_id": "b", "occurred_at": command["occurred_at"], "source": "test", "schema_version": 2}
        value = orjson.dumps({**body, "commands": [command]})
        message = SimpleNamespace(
            topic="reservations", key=SKU.encode(), value=value, partition=0, offset=0, timestamp=0
        )
        asyncio.run(self.runtime.apply_batch([SimpleNamespace(message=message)]))

    def hold(self, lines: dict[str, int], expires_at: int = T0 + 60_000) -> None:
        self.command("reserve", HOLD, lines, expires_at=utc_from_epoch_ms(expires_at).isoformat())

    def on(self, topic: str) -> list[Any]:
        return [orjson.loads(v) for t, _, v in self.sent if t == topic and v is not None]

    def visible(self, location: str = "DC-NORTH") -> int:
        latest = self.on("availability")[-1]
        return int(latest["channels"]["webshop"]["locations"].get(location, 0))

    def live_holds(self) -> list[bytes]:
        return list(self.store.stock_holds.keys())


def test_a_hold_is_held_at_once_with_its_row_and_no_answer_to_sourcing():
    ledger = Ledger()
    ledger.stock(DC_NORTH=10)
    ledger.hold({"DC-NORTH": 4})

    [record] = ledger.on("holds")
    assert (record["hold_id"], record["sku"], record["status"]) == (HOLD, SKU, "held")
    assert record["lines"] == [{"sku": SKU, "location_id": "DC-NORTH", "quantity": 4}]
    assert ledger.on("replies") == []
    assert ledger.live_holds() == [f"{SKU}|{HOLD}".encode()]
    assert ledger.runtime._positions[SKU]["DC-NORTH"].reserved == 4
    assert ledger.visible() == 6  # published with the hold taken off
    assert any(t == "test-stock_holds-changelog" for t, _, _ in ledger.sent)


def test_the_ledger_releases_a_hold_at_its_expiry_and_not_before():
    ledger = Ledger()
    ledger.stock(DC_NORTH=10)
    ledger.hold({"DC-NORTH": 4}, expires_at=T0 + 60_000)

    assert asyncio.run(ledger.runtime.expire_holds(T0 + 59_999)) == 0
    assert asyncio.run(ledger.runtime.expire_holds(T0 + 60_000)) == 1

    assert ledger.runtime._positions[SKU]["DC-NORTH"].reserved == 0
    assert ledger.on("holds")[-1]["status"] == "expired" and ledger.live_holds() == []
    assert ledger.visible() == 10
    ledger.hold({"DC-NORTH": 4}, expires_at=T0 + 60_000)  # a late resend: nothing changes
    assert (
        ledger.on("holds")[-1]["status"] == "expired"
        and ledger.runtime._positions[SKU]["DC-NORTH"].reserved == 0
    )


def test_a_hold_outlives_a_restart_and_still_expires():
    ledger = Ledger()
    ledger.stock(DC_NORTH=10)
    ledger.hold({"DC-NORTH": 4}, expires_at=T0 + 60_000)

    restarted = Ledger(ledger.dbs)  # the same stores, nothing in memory: as after a restore
    assert asyncio.run(restarted.runtime.expire_holds(T0 + 60_000)) == 1

    assert restarted.runtime._positions[SKU]["DC-NORTH"].reserved == 0
    assert restarted.on("holds")[-1]["status"] == "expired"


def test_an_expiry_is_said_on_the_holds_topic_before_the_state_stores_it():
    # A timer has no input offset to read again: had the state gone first, a crash before the
    # record would leave oms.holds.v1 saying "held" for good.
    ledger = Ledger()
    ledger.stock(DC_NORTH=10)
    ledger.hold({"DC-NORTH": 4}, expires_at=T0 + 60_000)
    before = len(ledger.sent)

    class DiesOnWrite:  # the process ends before the state is stored (a crash: the stores come
        # back from their changelogs, which have the hold); a stand-in store, not a patched
        # method, so that it also holds with the ledger compiled (docs/compiled.md)
        def __init__(self, db: MemoryDb) -> None:
            self.db = db

        def __getattr__(self, name: str) -> Any:
            return getattr(self.db, name)

        def write(self, writes: Any) -> None:
            raise SystemExit(137)

    ledger.store._owned[0].db = DiesOnWrite(ledger.dbs[0])  # type: ignore[assignment]
    with contextlib.suppress(SystemExit):
        asyncio.run(ledger.runtime.expire_holds(T0 + 60_000))
    assert [t for t, _, _ in ledger.sent[before:]] == ["availability", "holds"]
    assert ledger.on("holds")[-1]["status"] == "expired"

    restarted = Ledger(ledger.dbs)  # the hold is still in the stores: it expires again
    assert asyncio.run(restarted.runtime.expire_holds(T0 + 60_000)) == 1
    assert restarted.on("holds")[-1]["status"] == "expired"
    assert restarted.runtime._positions[SKU]["DC-NORTH"].reserved == 0


def test_an_order_takes_the_hold_over_and_sourcing_hears_of_its_order_only():
    ledger = Ledger()
    ledger.stock(DC_NORTH=4)
    ledger.hold({"DC-NORTH": 4})

    ledger.command("reserve", "O-1/1", {"DC-NORTH": 4}, takes_over=HOLD)

    [reply] = ledger.on("replies")[0]["replies"]
    assert (reply["order_id"], reply["status"]) == ("O-1", "reserved")
    taken = ledger.on("holds")[-1]
    assert (taken["status"], taken["order_id"]) == ("taken_over", "O-1")
    assert ledger.live_holds() == []
    assert ledger.runtime._positions[SKU]["DC-NORTH"].holds == (("O-1/1", 4),)
    assert asyncio.run(ledger.runtime.expire_holds(T0 + 3_600_000)) == 0


def test_a_hold_released_early_says_so_and_a_refused_one_too():
    ledger = Ledger()
    ledger.stock(DC_NORTH=3)
    ledger.hold({"DC-NORTH": 2})
    ledger.command("release", HOLD, {"DC-NORTH": 2})

    assert ledger.on("holds")[-1]["status"] == "released" and ledger.live_holds() == []
    ledger.command(
        "reserve", "hold-other", {"DC-NORTH": 5}, expires_at=utc_from_epoch_ms(T0 + 60_000).isoformat()
    )
    refused = ledger.on("holds")[-1]
    assert refused["status"] == "refused" and "DC-NORTH has" in refused["reason"]
    assert ledger.on("replies") == []


def test_every_worker_puts_a_hold_together_from_the_topic():
    ledger = Ledger()
    ledger.stock(DC_NORTH=10)
    ledger.hold({"DC-NORTH": 4})
    book = HoldBook()

    book.on_records([SimpleNamespace(key=k, value=v) for t, k, v in ledger.sent if t == "holds"])

    assert hold_view(book.get(HOLD))["status"] == "held"  # type: ignore[index]
    assert book.held_units(HOLD) == {SKU: {"DC-NORTH": 4}}
    book.on_records([SimpleNamespace(key=f"{HOLD}|{SKU}".encode(), value=None)])
    assert book.get(HOLD) == {} and book.held_units(HOLD) == {}
