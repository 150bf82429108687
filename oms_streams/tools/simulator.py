"""``oms simulate``: a small retail day on the stock topics, the way ERP, POS and a supplier send it.

The simulator keeps a local model of every (SKU, location) so what it sends is plausible: stores sell
what is on their shelves (a rare phantom sale, as real tills allow, sells a unit the store had
flagged as damaged, never one that is not there), DCs are replenished by ERP receipts before they
run dry, stores are topped up by DC→store transfers, customers return goods, some units are
damaged (``unsellable_in``), a store now and then recounts a SKU, and the supplier sends a stock
snapshot about every ten seconds. Every event is built with the wire models, so it is valid by
construction; keys are the SKU.

Web orders take stock too: the model follows the OMS's allocations and the locations' departures on
the public topics (``web_order_stock``), so a till never sells the units a web order put aside or
took away, and a DC never transfers them.

With a demand shape (``demand_shape.py``: real daily sales of M5 stores), till sales follow real
stores: each store sells at its own profile's rate, more on a Saturday than on a Tuesday and by
the month of the year (the store's local day), nothing on a day the store is closed; the other
actions keep their pace. ``rate`` is then the rate of an average day. With an hourly shape
(``hourly_shape.py``), a store's tills also follow the hour of its local day, inside its opening
hours only (nothing sells at a closed store, and customers bring returns only to an open one).

The sequence of events is a pure function of the seed, the network and (with a demand shape) the
days the clock goes through: the same seed plays the same day. Event ids carry a run id (by
default the start time) so a second run is not taken for redeliveries of the first.

Time: events are stamped with business time (``oms_streams.clock``: the wall clock, or the shared
simulated clock of ``OMS_CLOCK``) and ``rate`` is per second of business time, so at ``SPEED`` the
simulator sends ``SPEED`` times as many events per wall second. ``seconds`` (the run's length) and
the supplier's snapshots every ~10 s stay on the wall clock.
"""

from __future__ import annotations

import contextlib
import random
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from confluent_kafka import KafkaException, Producer
from pydantic import BaseModel

from oms_streams.clock import current as simulated_clock
from oms_streams.clock import now as business_now
from oms_streams.clock import speed
from oms_streams.config import Settings
from oms_streams.schemas.config import NetworkConfig
from oms_streams.schemas.inventory import (
    CountedPosition,
    MovementKindName,
    StockCount,
    StockMovement,
    SupplierStock,
)
from oms_streams.streaming.config_publisher import load_network_config
from oms_streams.streaming.topics import COUNTS, MOVEMENTS, SUPPLIER_STOCK
from oms_streams.tools.demand_shape import DemandShape, StoreDemand
from oms_streams.tools.demo_options import DEMO_NETWORK
from oms_streams.tools.hourly_shape import HourlyShape, StoreHours
from oms_streams.tools.web_order_stock import WebOrderFeed, WebOrderStock, wait_for

DEFAULT_NETWORK = DEMO_NETWORK

SKUS: tuple[tuple[str, int], ...] = (
    # (SKU, relative demand): bike lights and bells sell often, kayaks rarely.
    ("SKU-BIKE-LIGHT", 10),
    ("SKU-HELMET", 6),
    ("SKU-TENT", 3),
    ("SKU-KAYAK", 1),
    ("SKU-PUMP", 5),
    ("SKU-BELL", 8),
)
SKU_NAMES = tuple(sku for sku, _ in SKUS)

DC_TARGET = 200
"""Units of the best-selling SKU a DC aims to hold (less for slower ones); receipts top it up."""
STORE_TARGET = 24
"""Units of the best-selling SKU a store aims to hold (less for slower ones); transfers top it up."""
CASE_PACK = 12
SUPPLIER_EVERY_S = 10.0
SUMMARY_EVERY_S = 5.0

# Weights of the actions per tick (a transfer is two events, a supplier snapshot one per SKU).
ACTIONS: tuple[tuple[str, int], ...] = (
    ("sale", 60),
    ("receipt", 8),
    ("transfer", 12),
    ("return", 8),
    ("unsellable", 4),
    ("cycle_count", 2),
)


@dataclass
class Stock:
    on_hand: int = 0
    """Units in the building, damaged and put aside included (what a count finds)."""
    unsellable: int = 0
    set_aside: int = 0
    """Units web orders allocated here that have not left yet (``web_order_stock``)."""

    @property
    def sellable(self) -> int:
        """On the shelf for the till (or a DC's transfers): neither damaged nor put aside."""
        return self.on_hand - max(0, self.unsellable) - max(0, self.set_aside)

    @property
    def physical(self) -> int:
        """What a till can physically sell, damaged units included."""
        return self.on_hand - max(0, self.set_aside)


@dataclass
class SimulationSummary:
    events: int = 0
    """Records handed to the producer."""
    delivered: int = 0
    failed: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    skus: tuple[str, ...] = SKU_NAMES
    seconds: float = 0.0
    atp: dict[str, dict[str, int]] = field(default_factory=dict)
    """SKU -> location -> ATP in the simulator's own model at the end: what the workers should see."""
    web_orders: Counter[str] = field(default_factory=Counter)
    """Web orders' allocations followed: set_aside, left, put_back, repeated (``web_order_stock``)."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    """Topic name without the prefix."""
    sku: str
    model: BaseModel
    kind: str
    """Summary label."""


class RetailDay:
    """The deterministic part: picks what happens next and keeps the local stock model in step.

    Produces wire models with ``occurred_at`` from ``clock()``, strictly increasing per instance so
    no movement is taken for one already contained in the opening count.
    """

    def __init__(
        self,
        network: NetworkConfig,
        seed: int,
        run_id: str,
        clock: Any = None,
        demand: DemandShape | None = None,
        hours: HourlyShape | None = None,
    ) -> None:
        active = [loc for loc in network.locations if loc.active]
        self.dcs = [loc.location_id for loc in active if loc.type == "dc"]
        self.stores = [loc.location_id for loc in active if loc.type == "store"]
        self.suppliers = [loc.location_id for loc in active if loc.type == "third_party"]
        if not self.dcs or not self.stores:
            raise ValueError("the network needs at least one DC and one store to simulate a retail day")
        self.rng = random.Random(seed)
        self.run_id = run_id
        self._clock = clock or business_now
        self._last: datetime | None = None
        self._seq = 0
        self._transfer_seq = 0
        self.stock: dict[tuple[str, str], Stock] = {}
        self._demand = [weight for _, weight in SKUS]
        self._demand_of = dict(SKUS)
        self._action_names = [name for name, _ in ACTIONS]
        self._action_weights = [weight for _, weight in ACTIONS]
        self.events_until_supplier = 0
        stores = [loc for loc in active if loc.type == "store"]
        self.demand = StoreDemand(demand, stores) if demand is not None else None
        self.hours = StoreHours(hours, stores) if hours is not None else None

    # --- helpers --------------------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self._clock()
        if self._last is not None and now <= self._last:
            now = self._last + timedelta(milliseconds=1)
        self._last = now
        return now

    def _event_id(self) -> str:
        self._seq += 1
        return f"sim-{self.run_id}-{self._seq:09d}"

    def _at(self, sku: str, location: str) -> Stock:
        return self.stock.setdefault((sku, location), Stock())

    def _movement(
        self,
        sku: str,
        location: str,
        kind: MovementKindName,
        quantity: int,
        source: str,
        reference: str | None = None,
        label: str | None = None,
    ) -> Outgoing:
        model = StockMovement(
            event_id=self._event_id(),
            occurred_at=self._now(),
            source=source,
            sku=sku,
            location_id=location,
            kind=kind,
            quantity=quantity,
            reference=reference,
        )
        stock = self._at(sku, location)
        if kind in ("receipt", "transfer_in", "customer_return_restocked"):
            stock.on_hand += quantity
        elif kind in ("sale", "transfer_out"):
            stock.on_hand -= quantity
        elif kind == "adjustment":
            stock.on_hand += quantity
        elif kind == "unsellable_in":
            stock.unsellable += quantity
        elif kind == "unsellable_out":
            stock.unsellable -= quantity
        return Outgoing(MOVEMENTS.name, sku, model, label or kind)

    def _pick_sku(self) -> str:
        return self.rng.choices(SKU_NAMES, weights=self._demand)[0]

    def dc_target(self, sku: str) -> int:
        return max(2 * CASE_PACK, DC_TARGET * self._demand_of[sku] // 10)

    def store_target(self, sku: str) -> int:
        return max(4, STORE_TARGET * self._demand_of[sku] // 10)

    # --- the day --------------------------------------------------------------------------------

    def opening(self) -> list[Outgoing]:
        """ERP's full count of every SKU at every DC and store, and the suppliers' first snapshots."""
        out: list[Outgoing] = []
        for sku in SKU_NAMES:
            positions = []
            for dc in self.dcs:
                on_hand = self.rng.randint(self.dc_target(sku) // 2, self.dc_target(sku))
                positions.append(CountedPosition(location_id=dc, on_hand=on_hand, unsellable=0))
                self.stock[(sku, dc)] = Stock(on_hand, 0)
            for store in self.stores:
                on_hand = self.rng.randint(1, self.store_target(sku))
                positions.append(CountedPosition(location_id=store, on_hand=on_hand, unsellable=0))
                self.stock[(sku, store)] = Stock(on_hand, 0)
            count = StockCount(
                event_id=self._event_id(), occurred_at=self._now(), source="erp", sku=sku, positions=positions
            )
            out.append(Outgoing(COUNTS.name, sku, count, "count"))
        out.extend(self.supplier_snapshots())
        return out

    def supplier_snapshots(self) -> list[Outgoing]:
        out: list[Outgoing] = []
        for supplier in self.suppliers:
            for sku, demand in SKUS:
                quantity = self.rng.randint(0, 40) * demand if self.rng.random() > 0.05 else 0
                # Mostly two days; sometimes longer than the webshop shows (72 h).
                lead_time = self.rng.choice((24, 48, 48, 48, 72, 96))
                self.stock[(sku, supplier)] = Stock(quantity, 0)
                snapshot = SupplierStock(
                    event_id=self._event_id(),
                    occurred_at=self._now(),
                    source=f"supplier:{supplier.removeprefix('SUPPLIER-')}",
                    sku=sku,
                    location_id=supplier,
                    quantity=quantity,
                    lead_time_hours=lead_time,
                )
                out.append(Outgoing(SUPPLIER_STOCK.name, sku, snapshot, "supplier"))
        return out

    def now(self) -> datetime:
        """The simulation's clock (unlike the events' stamps, not forced to increase)."""
        now: datetime = self._clock()
        return now

    def store_factor(self, store: str, at: datetime) -> float:
        """How busy a store's tills are at ``at`` against an average store's average hour."""
        daily = 1.0 if self.demand is None else self.demand.factor(store, at)
        return daily if self.hours is None or not daily else daily * self.hours.factor(store, at)

    def sales_factor(self) -> float:
        """How busy the tills are now against an average day (1 without a demand or hourly shape)."""
        if self.demand is None and self.hours is None:
            return 1.0
        now = self._clock()
        return sum(self.store_factor(s, now) for s in self.stores) / len(self.stores)

    def pace_factor(self) -> float:
        """Events per second now against an average day: sales scale, the other actions do not."""
        sale, total = self._action_weights[0], sum(self._action_weights)
        return (sale * self.sales_factor() + total - sale) / total

    def step(self) -> list[Outgoing]:
        """The next thing that happens: one action, one to a few events."""
        weights: list[float] = list(self._action_weights)
        weights[0] *= self.sales_factor()  # ACTIONS starts with the sale
        action = self.rng.choices(self._action_names, weights=weights)[0]
        handler = getattr(self, f"_{action}")
        result: list[Outgoing] = handler()
        return result

    def _sale_store(self) -> str | None:
        """A store's till, each by its real rate today (None when every store is closed)."""
        if self.demand is None and self.hours is None:
            return self.rng.choice(self.stores)
        now = self._clock()
        weights = [self.store_factor(store, now) for store in self.stores]
        return self.rng.choices(self.stores, weights=weights)[0] if sum(weights) > 0 else None

    def _sale(self) -> list[Outgoing]:
        store = self._sale_store()
        if store is None:
            return self._transfer()
        sku = self._pick_sku()
        quantity = self.rng.choices((1, 2, 3), weights=(80, 15, 5))[0]
        stock = self._at(sku, store)
        if stock.sellable < quantity:
            # 2 %: a phantom sale the till allows, of a unit flagged as damaged; never one not there.
            on_shelf = stock.physical if self.rng.random() <= 0.02 else stock.sellable
            if on_shelf <= 0:
                return self._transfer_to(sku, store)
            quantity = min(quantity, on_shelf)
            stock.unsellable -= max(0, quantity - max(0, stock.sellable))  # the damaged units it sold
        return [
            self._movement(
                sku,
                store,
                "sale",
                quantity,
                f"pos:{store}",
                reference=f"till-{self.rng.randint(1, 6)}-{self._seq + 1}",
            )
        ]

    def _receipt(self) -> list[Outgoing]:
        sku = self._pick_sku()
        dc = min(self.dcs, key=lambda d: (self._at(sku, d).sellable, self.rng.random()))
        missing = self.dc_target(sku) - self._at(sku, dc).sellable
        if missing < CASE_PACK:
            return self._return()
        quantity = (missing // CASE_PACK) * CASE_PACK
        return [self._movement(sku, dc, "receipt", quantity, "erp", reference=f"GR-{self._seq + 1}")]

    def _transfer(self) -> list[Outgoing]:
        sku = self._pick_sku()
        store = min(self.stores, key=lambda s: (self._at(sku, s).sellable, self.rng.random()))
        return self._transfer_to(sku, store)

    def _transfer_to(self, sku: str, store: str) -> list[Outgoing]:
        dc = max(self.dcs, key=lambda d: self._at(sku, d).sellable)
        wanted = self.store_target(sku) - self._at(sku, store).sellable
        quantity = min(wanted, self._at(sku, dc).sellable)
        if quantity <= 0:
            return self._receipt_for(sku, dc)
        self._transfer_seq += 1
        reference = f"TO-{self.run_id}-{self._transfer_seq}"
        return [
            self._movement(sku, dc, "transfer_out", quantity, "erp", reference=reference, label="transfer"),
            self._movement(sku, store, "transfer_in", quantity, "erp", reference=reference, label="transfer"),
        ]

    def _receipt_for(self, sku: str, dc: str) -> list[Outgoing]:
        missing = self.dc_target(sku) - self._at(sku, dc).sellable
        quantity = max(CASE_PACK, (missing // CASE_PACK) * CASE_PACK)
        return [self._movement(sku, dc, "receipt", quantity, "erp", reference=f"GR-{self._seq + 1}")]

    def _return(self) -> list[Outgoing]:
        if self.hours is None:
            store = self.rng.choice(self.stores)
        else:  # brought back over the counter: only to a store that is open now
            now = self._clock()
            open_now = [s for s in self.stores if self.hours.factor(s, now) > 0]
            if not open_now:
                return self._transfer()
            store = self.rng.choice(open_now)
        sku = self._pick_sku()
        return [self._movement(sku, store, "customer_return_restocked", 1, f"pos:{store}", label="return")]

    def _unsellable(self) -> list[Outgoing]:
        location = self.rng.choice(self.stores + self.dcs)
        sku = self._pick_sku()
        if self._at(sku, location).sellable <= 0:
            return self._sale()
        source = f"pos:{location}" if location in self.stores else "erp"
        return [self._movement(sku, location, "unsellable_in", 1, source, label="unsellable")]

    def _cycle_count(self) -> list[Outgoing]:
        """A location counts one SKU: damaged units are written off, phantom sales corrected."""
        location = self.rng.choice(self.stores + self.dcs)
        sku = self._pick_sku()
        stock = self._at(sku, location)
        on_hand = max(0, stock.on_hand - max(0, stock.unsellable))
        self.stock[(sku, location)] = Stock(on_hand, 0, stock.set_aside)
        count = StockCount(
            event_id=self._event_id(),
            occurred_at=self._now(),
            source=f"pos:{location}" if location in self.stores else "erp",
            sku=sku,
            positions=[CountedPosition(location_id=location, on_hand=on_hand, unsellable=0)],
        )
        return [Outgoing(COUNTS.name, sku, count, "count")]

    def atp(self) -> dict[str, dict[str, int]]:
        atp: dict[str, dict[str, int]] = {sku: {} for sku in SKU_NAMES}
        for (sku, location), stock in sorted(self.stock.items()):
            atp[sku][location] = max(0, stock.sellable)
        return atp

    def network_units(self) -> int:
        return sum(s.sellable for (_, location), s in self.stock.items() if location not in self.suppliers)


def _check_topics(producer: Producer, settings: Settings) -> set[str]:
    """Refuse to run against missing topics: the producer would auto-create them with 1 partition.
    Returns the broker's topics."""
    try:
        metadata = producer.list_topics(timeout=15)
    except KafkaException as error:
        raise OSError(f"cannot reach Kafka at {settings.kafka_bootstrap}: {error}") from error
    missing = [
        settings.topic(spec.name)
        for spec in (MOVEMENTS, COUNTS, SUPPLIER_STOCK)
        if settings.topic(spec.name) not in metadata.topics
    ]
    if missing:
        raise OSError(f"topics missing: {', '.join(missing)} (run `oms topics create` first)")
    return set(metadata.topics)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM end the run between two events, so the summary adds up and all is flushed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[signal.Signals, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:  # ignored (a background job): keep it so
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _summary_line(summary: SimulationSummary, day: RetailDay, started: float) -> str:
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(summary.by_kind.items(), key=lambda kv: -kv[1]))
    at = f"{day.now():%Y-%m-%d %H:%M:%S} UTC" if simulated_clock() else time.strftime("%H:%M:%S")
    return (
        f"simulate {at}  +{time.monotonic() - started:5.0f}s  "
        f"sent {summary.events} ({kinds})  delivered {summary.delivered}  failed {summary.failed}  "
        f"sellable units in DCs+stores {day.network_units()}"
        + (f"  web orders {dict(summary.web_orders)}" if summary.web_orders else "")
    )


def _clock_line() -> str:
    return (
        f"business time on OMS_CLOCK={simulated_clock()} ({speed():g} x the wall clock; rates are per "
        "business second; the worker must run with the same OMS_CLOCK: docs/demo-clock.md)"
    )


def _demand_line(demand: StoreDemand, today: float) -> str:
    assigned = demand.assigned
    profiles = ", ".join(f"{store} {p.store_id}" for store, p in sorted(assigned.items())[:4])
    more = f" and {len(assigned) - 4} more" if len(assigned) > 4 else ""
    return (
        f"simulate: till sales shaped on real daily sales (M5 stores: {profiles}{more}); "
        f"today {today:.2f} x an average day"
    )


def run_simulation(
    settings: Settings,
    rate: float = 20.0,
    seconds: float = 0,
    seed: int = 7,
    *,
    network: Path | None = None,
    demand: DemandShape | None = None,
    hours: HourlyShape | None = None,
    run_id: str | None = None,
    out: TextIO | None = None,
) -> SimulationSummary:
    """Play a retail day at ``rate`` events/s for ``seconds`` (0: until Ctrl-C or SIGTERM); with a
    demand shape, ``rate`` is an average day's and till sales follow real stores; with an hourly
    shape, the stores' local hours and opening hours too."""
    if rate <= 0:
        raise ValueError(f"rate must be positive, not {rate}")
    out = out or sys.stdout
    config = load_network_config(network or DEFAULT_NETWORK)
    day = RetailDay(config, seed, run_id or format(int(time.time() * 1000), "x"), demand=demand, hours=hours)
    summary = SimulationSummary()

    def delivered(error: Any, message: Any) -> None:
        if error is None:
            summary.delivered += 1
        else:
            summary.failed += 1
            if summary.failed <= 5:
                print(f"simulate: delivery failed: {error}", file=sys.stderr, flush=True)

    producer = Producer(
        {
            **settings.confluent_config(),
            "enable.idempotence": True,
            "linger.ms": 10,
            "client.id": "oms-simulate",
            "partitioner": "murmur2_random",  # the partition of a key must match the worker's hash
        }
    )
    web_orders = WebOrderStock(day._at, SKU_NAMES)
    summary.web_orders = web_orders.counts
    feed = WebOrderFeed.open(settings, web_orders, _check_topics(producer, settings))

    def send(batch: list[Outgoing]) -> None:
        for item in batch:
            value = item.model.model_dump_json().encode()
            while True:
                try:
                    producer.produce(
                        settings.topic(item.topic), key=item.sku.encode(), value=value, on_delivery=delivered
                    )
                    break
                except BufferError:  # local queue full: let deliveries drain
                    producer.poll(0.1)
            summary.events += 1
            summary.by_kind[item.kind] += 1
        producer.poll(0)

    print(
        f"simulate: {len(SKU_NAMES)} SKUs over {len(day.dcs)} DCs, {len(day.stores)} stores and "
        f"{len(day.suppliers)} supplier(s) at {rate:g} events/s"
        f"{f' for {seconds:g} s' if seconds else ' (Ctrl-C stops)'}, seed {seed}",
        file=out,
        flush=True,
    )
    if simulated_clock() is not None:
        print(f"simulate: {_clock_line()}", file=out, flush=True)
    if day.demand is not None:
        print(_demand_line(day.demand, day.demand.network_factor(day.now())), file=out, flush=True)
    if day.hours is not None:
        print(
            f"simulate: till sales follow the hour of each store's local day, within its opening hours; "
            f"now {day.sales_factor():.2f} x an average hour",
            file=out,
            flush=True,
        )
    started = time.monotonic()
    next_summary = started + SUMMARY_EVERY_S
    stop = threading.Event()
    try:
        with _stop_on_signals(stop):
            send(day.opening())
            producer.flush(30)  # the opening count lands before the first movement is sent
            # Supplier snapshots come on their own clock, off the rate schedule: at a real store's rate
            # (a few events a minute) they would otherwise crowd out the sales.
            next_supplier = time.monotonic() + SUPPLIER_EVERY_S
            due = started  # when the next event on the rate schedule is due (the opening is sent at once)
            while not stop.is_set() and (not seconds or time.monotonic() - started < seconds):
                now = time.monotonic()
                if now >= next_supplier and day.suppliers:
                    send(day.supplier_snapshots())
                    next_supplier = now + SUPPLIER_EVERY_S
                if due > now:
                    wait_for(producer, feed, min(due - now, 0.5))
                    continue
                if feed is not None:
                    feed.poll(0)  # what web orders took since, before the next sale or transfer
                batch = day.step()
                send(batch)
                due += len(batch) / (rate * day.pace_factor() * speed())
                if time.monotonic() >= next_summary:
                    print(_summary_line(summary, day, started), file=out, flush=True)
                    next_summary += SUMMARY_EVERY_S
    except KeyboardInterrupt:
        pass
    finally:
        remaining = producer.flush(30)
        summary.failed += remaining
        summary.seconds = time.monotonic() - started
        summary.atp = day.atp()
        if feed is not None:
            feed.close()
        print(
            _summary_line(summary, day, started)
            + ("  (done)" if not remaining else f"  ({remaining} not acknowledged within 30 s)"),
            file=out,
            flush=True,
        )
    return summary
