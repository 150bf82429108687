"""The load of the chaos run (``bench.chaos``): a webshop, customer service, a WMS and an ERP that
keep working while workers die.

- Orders race for a few SKUs with little stock at two DCs, so they compete and some are refused.
- Cart holds (``POST /holds`` to any live worker) with a TTL of a few seconds: some are taken over
  by an order placed with the hold id (some of those after the hold expired), the rest expire.
- Edits: an order placed again under its id with a new event id and another cart (a line more or
  less, a quantity changed, another DC), at any point of its life.
- Cancellations of whole orders or of one line, on ``oms.orders.cancellations.v1``, at any point
  of an order's life (before it is sourced, allocated, after a shipment left).
- A WMS that follows ``oms.fulfilment.allocations.v1`` and answers each allocation once: handed to
  the carrier (fulfil), a short pick (release and re-source), or nothing.
- Receipts that refill the DCs, and now and then a count that may leave fewer units than are held
  (the ledger sheds holds and their orders are sourced again).
- With ``preorder_share`` > 0 (``--preorders``, off by default), that share of the orders are
  preorders: an ERP announces the cart as inbound with an ETA a few seconds ahead at one DC, and the
  order is placed with a ``preorder`` option there (docs/preorders.md). The receipts above are
  arrivals that convert preorders; one whose goods do not come is given up at
  ``OMS_PREORDER_GRACE_H`` (seconds here); another preorder may take the announced units first
  (refused: sourced from stock on hand); a count may shed what arrived for one.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from tests.integration.test_promise_and_risk import UTRECHT_HOME
from tests.integration.test_sourcing import ALLOCATIONS, an_option
from tests.worker_process import Events, WorkerProcess

SKUS = [f"SKU-CHAOS-{i}" for i in range(1, 7)]
"""Few SKUs, spread over the three partitions of every topic (murmur2: 1, 0, 2, 1, 1, 2)."""
DCS = ("DC-NORTH", "DC-SOUTH")
CANCELLATIONS = "oms.orders.cancellations.v1"
MOVEMENTS = "oms.inventory.movements.v1"


@dataclass
class LoadFigures:
    orders: int = 0
    orders_with_hold: int = 0
    cancellations: int = 0
    edits: int = 0
    holds: Counter[str] = field(default_factory=Counter)
    """POST /holds answers: held, refused, pending (202), failed (no worker answered)."""
    wms: Counter[str] = field(default_factory=Counter)
    """handed_to_carrier, short_pick, left alone."""
    receipts: int = 0
    counts: int = 0
    preorders: int = 0
    announced: int = 0
    """Inbound announcements (with an ETA) made for preorders."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "orders": self.orders,
            "orders_with_hold": self.orders_with_hold,
            "cancellations": self.cancellations,
            "edits": self.edits,
            "holds": dict(self.holds),
            "wms": dict(self.wms),
            "receipts": self.receipts,
            "counts": self.counts,
            "preorders": self.preorders,
            "announced": self.announced,
        }


@dataclass
class Hold:
    hold_id: str
    lines: dict[str, tuple[str, int]]
    """SKU -> (location, units)."""
    expires_at: float
    """time.time() of its expiry, as asked."""


class ChaosLoad:
    """Three threads (orders and stock, holds, the WMS) until ``stop``."""

    def __init__(
        self,
        events: Events,
        live_workers: Callable[[], list[WorkerProcess]],
        seed: int,
        orders_per_s: float = 2.0,
        holds_per_s: float = 0.7,
        preorder_share: float = 0.0,
        edit_share: float = 0.15,
    ) -> None:
        self.events = events
        self.live_workers = live_workers
        self.rng = random.Random(seed)
        self.orders_per_s = orders_per_s
        self.holds_per_s = holds_per_s
        self.preorder_share = preorder_share
        self.edit_share = edit_share
        self.figures = LoadFigures()
        self.placed: list[str] = []
        self.carts: dict[str, dict[str, int]] = {}
        """Order id -> its cart as last placed (or edited)."""
        self.requests: dict[str, str] = {}
        """Cancellation request id -> order id."""
        self.edits: dict[str, str] = {}
        """Edit placement event id -> order id."""
        self.holds: list[Hold] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the producer is shared by the three threads
        self._threads: list[threading.Thread] = []

    # --- running ----------------------------------------------------------------------------------

    def stock_up(self, units: int) -> None:
        for sku in SKUS:
            for dc in DCS:
                self.events.movement(sku, dc, "receipt", units)
        self.events.flush()

    def start(self) -> None:
        for target in (self._orders_and_stock, self._cart_holds, self._wms):
            thread = threading.Thread(target=target, daemon=True, name=target.__name__)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        with self._lock:
            self.events.flush()

    # --- orders, cancellations, stock ---------------------------------------------------------------

    def _orders_and_stock(self) -> None:
        tick = 0
        while not self._stop.wait(1 / self.orders_per_s):
            tick += 1
            if self.preorder_share and self.rng.random() < self.preorder_share:
                self._preorder(f"CHAOS-P{len(self.placed):05d}", self._cart())
            else:
                self._place(f"CHAOS-{len(self.placed):05d}", self._cart())
            if self.rng.random() < 0.2 and self.placed:
                self._cancel(self.rng.choice(self.placed[-40:]))
            if self.edit_share and self.rng.random() < self.edit_share and self.placed:
                self._edit(self.rng.choice(self.placed[-40:]))
            if tick % 3 == 0:
                with self._lock:
                    self.events.movement(self.rng.choice(SKUS), self.rng.choice(DCS), "receipt", 4)
                self.figures.receipts += 1
            if tick % 25 == 0:
                with self._lock:
                    self.events.count(self.rng.choice(SKUS), {self.rng.choice(DCS): self.rng.randint(0, 6)})
                self.figures.counts += 1
            with self._lock:
                self.events.flush()

    def _cart(self) -> dict[str, int]:
        return {sku: self.rng.randint(1, 2) for sku in self.rng.sample(SKUS, self.rng.randint(1, 2))}

    def _place(self, order_id: str, cart: dict[str, int], hold_id: str | None = None) -> None:
        option = an_option("standard", cart, location=self.rng.choice(DCS))
        with self._lock:
            self.events.order_placed(order_id, option, UTRECHT_HOME, hold_id=hold_id)
        self.placed.append(order_id)
        self.carts[order_id] = cart
        self.figures.orders += 1
        self.figures.orders_with_hold += hold_id is not None

    def _edit(self, order_id: str) -> None:
        """The order placed again with one change to its cart: a quantity, a line more or less."""
        if order_id not in self.carts:
            return  # a preorder: its edits are not part of this load
        cart = dict(self.carts[order_id])
        sku = self.rng.choice(SKUS)
        if sku in cart and (len(cart) > 1 or self.rng.random() < 0.5):
            cart[sku] = self.rng.choice([q for q in (1, 2, 3) if q != cart[sku]] + [0] * (len(cart) > 1))
        else:
            cart[sku] = self.rng.randint(1, 2)
        cart = {s: q for s, q in cart.items() if q}
        event_id = f"{order_id}-edit-{len(self.edits)}"
        option = an_option("standard", cart, location=self.rng.choice(DCS))
        with self._lock:
            self.events.order_placed(order_id, option, UTRECHT_HOME, event_id=event_id)
        self.carts[order_id] = cart
        self.edits[event_id] = order_id
        self.figures.edits += 1

    def _preorder(self, order_id: str, cart: dict[str, int]) -> None:
        """The cart announced as inbound at one DC with an ETA 3 to 15 s ahead, then ordered with a
        ``preorder`` option there (no promise token: the chaos workers have no signing key)."""
        dc = self.rng.choice(DCS)
        eta = datetime.now(UTC) + timedelta(seconds=self.rng.uniform(3, 15))
        with self._lock:
            for sku, units in cart.items():
                self.figures.announced += 1
                announcement = {
                    "event_id": f"{self.events.prefix}asn-{order_id}-{sku}",
                    "occurred_at": datetime.now(UTC).isoformat(),
                    "source": "erp",
                    "sku": sku,
                    "location_id": dc,
                    "kind": "inbound_announced",
                    "quantity": units,
                    "expected_at": eta.isoformat(),
                }
                self.events.send(MOVEMENTS, sku.encode(), json.dumps(announcement).encode())
            option = an_option("standard", cart, location=dc, preorder=True)
            option["option_id"] = f"preorder:{dc}"
            self.events.order_placed(order_id, option, UTRECHT_HOME)
        self.placed.append(order_id)
        self.figures.orders += 1
        self.figures.preorders += 1

    def _cancel(self, order_id: str) -> None:
        request_id = f"{order_id}-cancel-{len(self.requests)}"
        body: dict[str, Any] = {
            "event_id": request_id,
            "occurred_at": datetime.now(UTC).isoformat(),
            "source": "customer-service",
            "order_id": order_id,
            "reason": "chaos",
        }
        if self.rng.random() < 0.4:
            body["lines"] = [{"sku": self.rng.choice(SKUS)}]  # a line the order may not even have
        with self._lock:
            self.events.send(CANCELLATIONS, order_id.encode(), json.dumps(body).encode())
        self.requests[request_id] = order_id
        self.figures.cancellations += 1

    # --- cart holds -------------------------------------------------------------------------------

    def _cart_holds(self) -> None:
        taking: list[tuple[float, Hold]] = []  # (when to place its order, hold)
        while not self._stop.wait(1 / self.holds_per_s):
            now = time.time()
            for due in [t for t in taking if t[0] <= now]:
                taking.remove(due)
                hold = due[1]
                cart = {sku: units for sku, (_, units) in hold.lines.items()}
                self._place(f"CHAOS-H{len(self.placed):05d}", cart, hold_id=hold.hold_id)
            hold = self._post_hold()
            if hold is not None and self.rng.random() < 0.5:
                # Mostly within the TTL; now and then just after it (the hold has expired by then).
                taking.append((now + self.rng.uniform(0.2, (hold.expires_at - now) * 1.3), hold))

    def _post_hold(self) -> Hold | None:
        sku, dc = self.rng.choice(SKUS), self.rng.choice(DCS)
        ttl = self.rng.randint(2, 6)
        body = {
            "channel": "webshop",
            "lines": [{"sku": sku, "location_id": dc, "quantity": self.rng.randint(1, 2)}],
            "ttl_s": ttl,
        }
        workers = self.live_workers()
        if not workers:
            self.figures.holds["failed"] += 1
            return None
        try:
            status, answer = self.rng.choice(workers).post("/holds", json.dumps(body).encode())
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            self.figures.holds["failed"] += 1  # the worker died under the call
            return None
        kind = {201: "held", 202: "pending", 409: "refused"}.get(status, f"http_{status}")
        self.figures.holds[kind] += 1
        if status not in (201, 202):
            return None
        hold = Hold(answer["hold_id"], {sku: (dc, body["lines"][0]["quantity"])}, time.time() + ttl)
        self.holds.append(hold)
        return hold

    # --- the WMS ----------------------------------------------------------------------------------

    def _wms(self) -> None:
        topic = self.events.prefix + ALLOCATIONS
        consumer = Consumer(
            {"bootstrap.servers": self.events.bootstrap, "group.id": "unused", "enable.auto.commit": False}
        )
        try:
            partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
            answered: set[str] = set()
            while not self._stop.is_set():
                message = consumer.poll(0.2)
                if message is None or message.error() or message.value() is None:
                    continue
                allocation = json.loads(message.value())
                if allocation["kind"] != "allocate" or allocation["allocation_id"] in answered:
                    continue
                answered.add(allocation["allocation_id"])
                self._answer(allocation)
        finally:
            consumer.close()

    def _answer(self, allocation: dict[str, Any]) -> None:
        order_id, location = allocation["order_id"], allocation["location_id"]
        roll = self.rng.random()
        if roll < 0.5:
            kind, extra = "handed_to_carrier", {}
        elif roll < 0.7:
            kind, extra = "short_pick", {"reason": "not on the shelf"}
        else:
            self.figures.wms["left"] += 1
            return
        with self._lock:
            self.events.fulfilment(order_id, kind, location_id=location, **extra)
        self.figures.wms[kind] += 1
