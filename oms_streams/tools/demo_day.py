"""The demo's order day: webshop orders, their fulfilment and delivery, cancellations and returns.

``python -m oms_streams.tools.demo_day`` runs next to ``oms simulate`` (which plays the stock side).
It talks to the worker only as the retailer's other systems would: ``POST /promise`` and
``POST /orders/{id}/cancellations`` over HTTP; ``oms.orders.placed.v1``, ``oms.fulfilment.events.v1``,
``oms.returns.*`` out; ``oms.fulfilment.allocations.v1`` and ``oms.returns.routed.v1`` in, and
``oms.orders.at-risk.v1`` to count (and print) the orders the worker puts at risk. One thread, one
scheduler: placing, fulfilment steps and customers' later actions are timed events on a heap.
Events are stamped with business time (``oms_streams.clock``); the heap runs on the monotonic
clock: customers' gaps are business time (a day's orders in a simulated day), the fulfilment
steps' compressed delays and customers' later actions wall seconds.
With an hourly shape (``hourly_shape.py``) customers come by the hour of day of real webshop
orders (local time of the network's stores): ``orders_per_minute`` is the day's mean.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TextIO

from confluent_kafka import Consumer, Producer
from pydantic import BaseModel, ValidationError

from oms_streams.clock import current as simulated_clock
from oms_streams.clock import now as business_now
from oms_streams.clock import wall_seconds
from oms_streams.config import Settings
from oms_streams.schemas.orders import FulfilmentEvent, OrderAtRisk
from oms_streams.schemas.returns import Origin, ReturnReceived, ReturnRequested, ReturnRouted
from oms_streams.schemas.sourcing import Allocation
from oms_streams.streaming.config_publisher import load_network_config
from oms_streams.streaming.topics import (
    ALLOCATIONS,
    FULFILMENT_EVENTS,
    ORDERS_AT_RISK,
    ORDERS_PLACED,
    RETURNS_RECEIVED,
    RETURNS_REQUESTED,
    RETURNS_ROUTED,
)
from oms_streams.tools.demo_options import add_arguments
from oms_streams.tools.fulfilment_sim import FaultRates, FulfilmentPlanner, FulfilmentTimes, Step, occurred_at
from oms_streams.tools.hourly_shape import HourlyShape, WebArrivals, load_hours, web_zone
from oms_streams.tools.simulator import DEFAULT_NETWORK, SKUS, _stop_on_signals
from oms_streams.tools.webshop_sim import ApiError, PlacedOrder, Webshop

SUMMARY_EVERY_S = 10.0


@dataclass
class DemoDayOptions:
    orders_per_minute: float = 4.0
    seconds: float = 0.0
    """0: until Ctrl-C or SIGTERM."""
    seed: int = 7
    order_prefix: str = "ORDER-"
    cancel_rate: float = 0.06
    store_return_rate: float = 0.12
    parcel_return_rate: float = 0.06
    times: FulfilmentTimes = field(default_factory=FulfilmentTimes)
    faults: FaultRates = field(default_factory=FaultRates)
    tell: int = 3
    """Print this many order ids to try (to ``tell_to``) once they are allocated."""
    web_url: str = "http://127.0.0.1:6066"
    hours: HourlyShape | None = None
    """Customers by the hour of day (None: the same rate at every hour)."""


@dataclass
class DemoDaySummary:
    placed: int = 0
    no_option: int = 0
    by_method: Counter[str] = field(default_factory=Counter)
    allocations: int = 0
    withdrawn: int = 0
    reported: Counter[str] = field(default_factory=Counter)
    cancellations: Counter[int] = field(default_factory=Counter)
    """HTTP status -> requests."""
    returns: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    allocated_orders: set[str] = field(default_factory=set)
    delivered_orders: set[str] = field(default_factory=set)
    at_risk: dict[str, str] = field(default_factory=dict)
    """Order -> the reason it was first put at risk (from ``oms.orders.at-risk.v1``)."""
    late_picks: set[str] = field(default_factory=set)
    """Orders whose pick this run's WMS starts after the latest pick start."""


class DemoDay:
    def __init__(
        self, settings: Settings, options: DemoDayOptions, network: Path, out: TextIO, tell_to: TextIO
    ) -> None:
        self.settings, self.options, self.out, self.tell_to = settings, options, out, tell_to
        config = load_network_config(network)
        self.rng = random.Random(options.seed)
        self.webshop = Webshop(config, SKUS, options.web_url, self.rng)
        self.planner = FulfilmentPlanner(config, self.rng, options.times, options.faults)
        stores = [loc for loc in config.locations if loc.type == "store"]
        self.arrivals = WebArrivals(options.orders_per_minute, options.hours, web_zone(stores), self.rng)
        self.run_id = format(int(time.time() * 1000), "x")
        self.summary = DemoDaySummary()
        self.orders: dict[str, PlacedOrder] = {}
        self.withdrawn: set[str] = set()
        self.handed: dict[str, datetime] = {}
        self.told: list[str] = []
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self.producer = Producer({**settings.confluent_config(), "linger.ms": 5, "client.id": "oms-demo-day"})
        self.consumer = Consumer(
            {
                **settings.confluent_config(),
                "group.id": f"oms-demo-day-{self.run_id}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        self.consumer.subscribe(
            [settings.topic(t.name) for t in (ALLOCATIONS, RETURNS_ROUTED, ORDERS_AT_RISK)]
        )

    # --- plumbing ---------------------------------------------------------------------------------

    def at(self, delay_s: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay_s), next(self._seq), action))

    def _event_id(self) -> str:
        return f"demo-{self.run_id}-{next(self._ids)}"

    def send(self, topic: str, key: str, model: BaseModel) -> None:
        self.producer.produce(
            self.settings.topic(topic), key=key.encode(), value=model.model_dump_json().encode()
        )
        self.producer.poll(0)

    # --- the webshop ------------------------------------------------------------------------------

    def place_next(self) -> None:
        """Place one order, then schedule the next (exponential gaps: customers do not queue; by
        the hour of day with an hourly shape)."""
        self.at(wall_seconds(self.arrivals.next_gap_s()), self.place_next)
        if not self.arrivals.stays(business_now()):
            return
        cart, home = self.webshop.cart(), self.webshop.home()
        try:
            options = self.webshop.promise(cart, home)
        except ApiError as error:
            self._error(f"promise: {error}")
            return
        option = self.webshop.choose(options)
        if option is None:
            self.summary.no_option += 1
            return
        order_id = f"{self.options.order_prefix}{self.summary.placed + 1}"
        event = self.webshop.placement(order_id, self._event_id(), option, home)
        self.send(ORDERS_PLACED.name, order_id, event)
        cart_units = {line.sku: line.quantity for line in event.cart}
        self.orders[order_id] = PlacedOrder(
            order_id,
            option["method"],
            Origin(lat=home["lat"], lon=home["lon"]),
            event.occurred_at,
            cart_units,
        )
        self.summary.placed += 1
        self.summary.by_method[option["method"]] += 1
        if self.rng.random() < self.options.cancel_rate:
            self.at(self.rng.uniform(3, 10), lambda: self._cancel(order_id))

    def _cancel(self, order_id: str) -> None:
        try:
            status, _ = self.webshop.cancel(self.orders[order_id], self._event_id())
        except ApiError as error:
            self._error(f"cancel {order_id}: {error}")
            return
        self.summary.cancellations[status] += 1

    def _after_delivery(self, allocation: Allocation) -> None:
        order = self.orders[allocation.order_id]
        roll = self.rng.random()
        if roll < self.options.store_return_rate:
            lines = self.webshop.returned_lines(allocation.lines)
            received = self.webshop.store_return(order, lines, self._event_id())
            self.at(self.rng.uniform(5, 15), lambda: self._send_return("in_store", received))
        elif roll < self.options.store_return_rate + self.options.parcel_return_rate:
            lines = self.webshop.returned_lines(allocation.lines)
            requested = self.webshop.parcel_return(order, lines, self._event_id())
            self.at(self.rng.uniform(5, 15), lambda: self._send_return("parcel_requested", requested))

    def _send_return(self, label: str, model: ReturnReceived | ReturnRequested) -> None:
        topic = RETURNS_RECEIVED.name if label != "parcel_requested" else RETURNS_REQUESTED.name
        self.send(topic, model.return_id, model)
        self.summary.returns[label] += 1

    def _routed(self, routed: ReturnRouted) -> None:
        """A parcel return arrives where the worker routed it (a few seconds later: the post)."""
        order = self.orders.get(routed.order_id or "")
        if order is None:
            return
        by_location: dict[str, dict[str, int]] = {}
        for line in routed.lines:
            if line.location_id is not None:
                by_location.setdefault(line.location_id, {})[line.sku] = line.quantity
        for i, (location, lines) in enumerate(sorted(by_location.items())):
            return_id = routed.return_id if i == 0 else f"{routed.return_id}-{i}"
            received = self.webshop.parcel_received(order, return_id, location, lines, self._event_id())
            self.at(self.rng.uniform(5, 15), lambda r=received: self._send_return("parcel_received", r))  # type: ignore[misc]

    # --- the warehouse, stores and carriers -------------------------------------------------------

    def _allocation(self, allocation: Allocation) -> None:
        if allocation.order_id not in self.orders:
            return  # not one of this run's orders (another system's, or an earlier run's)
        if allocation.kind == "cancel":
            self.withdrawn.add(allocation.allocation_id)
            self.summary.withdrawn += 1
            return
        self.summary.allocations += 1
        self.summary.allocated_orders.add(allocation.order_id)
        self._tell(allocation.order_id)
        delay = 0.0
        for step in self.planner.plan(allocation):
            delay += step.after_s
            if step.not_before is not None:
                self._late_pick(allocation, step.not_before)
                delay = max(delay, wall_seconds((step.not_before - business_now()).total_seconds()))
            self.at(delay, lambda s=step: self._report(allocation, s))  # type: ignore[misc]

    def _report(self, allocation: Allocation, step: Step) -> None:
        if allocation.allocation_id in self.withdrawn:
            return  # cancelled, or re-sourced after a fault: the location stops working on it
        now = business_now()
        event = FulfilmentEvent(
            event_id=self._event_id(),
            occurred_at=occurred_at(step, self.handed.get(allocation.allocation_id), now),
            source="carrier" if step.kind in ("delivered", "carrier_delay") else f"wms:{step.location_id}",
            order_id=allocation.order_id,
            kind=step.kind,
            location_id=step.location_id,
            new_eta=step.new_eta,
            reason=step.reason,
        )
        self.send(FULFILMENT_EVENTS.name, allocation.order_id, event)
        self.summary.reported[step.kind] += 1
        if step.kind == "handed_to_carrier":
            self.handed[allocation.allocation_id] = now
        if step.kind in ("short_pick", "store_rejected"):
            self.withdrawn.add(allocation.allocation_id)
        if step.kind in ("delivered", "collected"):
            self.summary.delivered_orders.add(allocation.order_id)
            self._after_delivery(allocation)

    def _late_pick(self, allocation: Allocation, starts: datetime) -> None:
        self.summary.late_picks.add(allocation.order_id)
        if len(self.summary.late_picks) == 1:
            print(
                f"demo: {allocation.location_id} is behind: it starts picking {allocation.order_id} at "
                f"{starts:%H:%M:%S} UTC, after its latest pick start, so the order is at risk until "
                f"then: curl {self._local}/orders/{allocation.order_id}",
                file=self.tell_to,
                flush=True,
            )

    def _tell(self, order_id: str) -> None:
        if len(self.told) >= self.options.tell or order_id in self.told:
            return
        self.told.append(order_id)
        print(f"demo: an order to try: curl {self._local}/orders/{order_id}", file=self.tell_to, flush=True)

    @property
    def _local(self) -> str:
        """The worker as the README's curls name it."""
        return "localhost:" + self.options.web_url.rsplit(":", 1)[-1].rstrip("/")

    def _risk(self, record: OrderAtRisk) -> None:
        """Count the run's orders the worker put at risk; print the first few with their reason."""
        if record.order_id not in self.orders or record.status != "at_risk":
            return
        if record.order_id in self.summary.at_risk:
            return
        reason = record.reason or "unknown"
        self.summary.at_risk[record.order_id] = reason
        if len(self.summary.at_risk) <= self.options.tell:
            where = f" at {record.location_id}" if record.location_id else ""
            print(
                f"demo: an order at risk, {reason}{where}: curl {self._local}/orders/{record.order_id}"
                f"  (all: http://{self._local}/console/at-risk)",
                file=self.tell_to,
                flush=True,
            )

    def _error(self, what: str) -> None:
        self.summary.errors += 1
        if self.summary.errors <= 5:
            print(f"demo-day: {what}", file=sys.stderr, flush=True)

    # --- the loop -----------------------------------------------------------------------------------

    def _consume(self, timeout_s: float) -> None:
        for message in self.consumer.consume(100, timeout=timeout_s):
            value = message.value()
            if message.error() is not None or value is None:
                continue
            try:
                if message.topic() == self.settings.topic(ALLOCATIONS.name):
                    self._allocation(Allocation.model_validate_json(value))
                elif message.topic() == self.settings.topic(ORDERS_AT_RISK.name):
                    self._risk(OrderAtRisk.model_validate_json(value))
                else:
                    self._routed(ReturnRouted.model_validate_json(value))
            except ValidationError as error:
                self._error(f"unreadable record on {message.topic()}: {error.errors()[:1]}")

    def run(self, stop: threading.Event) -> DemoDaySummary:
        started = time.monotonic()
        if simulated_clock() is not None:
            print(
                f"demo-day: business time on OMS_CLOCK={simulated_clock()}: customers come per business "
                "minute, fulfilment steps take wall seconds; the worker must run with the same OMS_CLOCK "
                "(docs/demo-clock.md)",
                file=self.tell_to,
                flush=True,
            )
        next_summary = started + SUMMARY_EVERY_S
        self.at(1.0, self.place_next)
        seconds = self.options.seconds
        while not stop.is_set() and (not seconds or time.monotonic() - started < seconds):
            while self._heap and self._heap[0][0] <= time.monotonic():
                heapq.heappop(self._heap)[2]()
            wait = min(0.2, max(0.0, self._heap[0][0] - time.monotonic())) if self._heap else 0.2
            self._consume(wait)
            self.producer.poll(0)
            if time.monotonic() >= next_summary:
                print(self.line(started), file=self.out, flush=True)
                next_summary += SUMMARY_EVERY_S
        self.producer.flush(30)
        self.consumer.close()
        print(self.line(started) + "  (done)", file=self.out, flush=True)
        return self.summary

    def line(self, started: float) -> str:
        s = self.summary
        methods = ", ".join(f"{m} {n}" for m, n in s.by_method.most_common())
        reported = ", ".join(f"{k} {n}" for k, n in s.reported.most_common())
        risks = ", ".join(f"{r} {n}" for r, n in Counter(s.at_risk.values()).most_common())
        return (
            f"demo-day +{time.monotonic() - started:4.0f}s  placed {s.placed} ({methods})  "
            f"no option {s.no_option}  "
            f"allocations {s.allocations} (withdrawn {s.withdrawn})  reported: {reported}  "
            f"delivered or collected {len(s.delivered_orders)}  at risk {len(s.at_risk)} ({risks})  "
            f"cancellations {dict(s.cancellations)}  returns {dict(s.returns)}  errors {s.errors}"
        )


def run_demo_day(
    settings: Settings,
    options: DemoDayOptions,
    *,
    network: Path | None = None,
    out: TextIO | None = None,
    tell_to: TextIO | None = None,
    stop: threading.Event | None = None,
) -> DemoDaySummary:
    day = DemoDay(settings, options, network or DEFAULT_NETWORK, out or sys.stdout, tell_to or sys.stderr)
    stop = stop or threading.Event()
    with _stop_on_signals(stop):
        return day.run(stop)


def options_from(args: argparse.Namespace) -> DemoDayOptions:
    scaled = ("pick_wait_s", "pick_s", "pack_s", "handover_s", "transit_s", "collect_s")
    defaults = FulfilmentTimes()
    times = replace(defaults, **{name: getattr(defaults, name) * args.time_scale for name in scaled})
    faults = replace(
        FaultRates(), late_pick=args.late_picks, first_late_pick_within_s=args.first_late_pick_within_s
    )
    return DemoDayOptions(
        orders_per_minute=args.orders_per_minute,
        seconds=args.seconds,
        seed=args.seed,
        order_prefix=args.order_prefix,
        web_url=args.web_url,
        hours=None if args.hours == "flat" else load_hours(Path(args.hours)),
        times=times,
        faults=faults,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m oms_streams.tools.demo_day", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    run_demo_day(Settings(), options_from(args), network=args.network)
    return 0


if __name__ == "__main__":
    sys.exit(main())
