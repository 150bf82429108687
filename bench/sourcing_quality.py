"""``python -m bench.sourcing_quality``: what the sourcing engine saves against two simple rules.

A generated day of orders (5,000 by default, seeded) over the promise bench's real network (~300
Walmart sites: 13 DCs, ~120 ship-from-store stores): cart sizes of 1-6 lines (mostly small), SKUs
drawn from a Zipf-like popularity (the fast tier is the popular one), destinations within 20 km of
real store locations, orders spread over the day. Stock is the promise bench's three tiers, with part
of each store's stock protected for walk-in demand (not usable online).

Every strategy sources the SAME orders starting from the SAME stock, and each plan consumes its
units, so a strategy lives with the consequences of its own earlier choices:

- (a)  this engine, standard delivery from the DCs (``source_order``, default policy: at most 3
       shipments, fewest first, then distance/CO2e, workload and protection);
- (a+) this engine over the DCs and the ship-from-store stores together;
- (b)  "everything from the nearest DC": the nearest DC takes every line it holds whole, the next
       nearest the rest it holds, and so on (a line no DC holds whole is split nearest first);
- (c)  "each line from the nearest location with stock": DCs and ship-from-store stores, each line
       from the nearest location holding it whole (else split nearest first).

The baselines have no limit on parcels (that is how such rules behave); the engine stops at 3 and
backorders the rest. CO2e for the baselines is the standard service's 140 g per parcel-km, as the
engine's standard parcels. Open allocations (the engine's workload) are those of the last two
hours. Prints a table and the ratios; figures only, nothing here asserts.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import platform
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bench.promise_network import haversine_km, sku_tiers, stock_positions
from bench.sourcing_decision import (
    RealNetwork,
    destination_near,
    now_ms,
    real_network,
    store_protection,
    stores_also_ship,
)
from oms_streams.domain.network import Capability, DeliveryMethod, PromiseNetwork
from oms_streams.domain.promise_types import CartLine, Destination
from oms_streams.domain.sourcing import SourcingPolicy, SourcingRequest, StockSnapshot, source_order
from oms_streams.domain.transit import TransitModel

CO2E_G_PER_PARCEL_KM = 140.0
"""The bench network's standard service (PARCEL-GROUND)."""
WORKLOAD_WINDOW_MS = 2 * 3_600_000
"""An allocation counts as open for two hours (picked and packed by then)."""
CART_SIZES = (1, 2, 3, 4, 5, 6)
CART_WEIGHTS = (0.34, 0.24, 0.17, 0.12, 0.08, 0.05)


@dataclass(frozen=True)
class Order:
    order_id: str
    lines: tuple[CartLine, ...]
    destination: Destination
    at_ms: int


def a_day_of_orders(real: RealNetwork, n: int, n_skus: int, *, seed: int) -> list[Order]:
    rng = random.Random(seed)
    skus = [sku for tier in sku_tiers(n_skus).values() for sku in tier]
    # Zipf-like popularity over the SKU index (the fast tier first): weight 1 / rank^1.07.
    cumulative = list(itertools.accumulate(1.0 / (rank + 1) ** 1.07 for rank in range(len(skus))))
    start = now_ms("2024-06-04T00:00:00")
    orders = []
    for k in range(n):
        size = rng.choices(CART_SIZES, CART_WEIGHTS)[0]
        chosen: dict[str, int] = {}
        while len(chosen) < size:
            sku = skus[bisect.bisect_left(cumulative, rng.random() * cumulative[-1])]
            chosen.setdefault(sku, rng.choice((1, 1, 1, 1, 2, 3)))
        orders.append(
            Order(
                f"ORDER-{k:06d}",
                tuple(CartLine(sku, q) for sku, q in chosen.items()),
                destination_near(rng.choice(real.stores), rng, km=20.0),
                start + int((k + 0.5) * 86_400_000 / n),
            )
        )
    return orders


@dataclass
class Tally:
    name: str
    orders: int = 0
    full: int = 0
    allocated_orders: int = 0
    parcels: int = 0
    km: float = 0.0
    co2e_g: float = 0.0
    units_short: int = 0
    over_limit: int = 0
    elapsed_s: float = 0.0

    def add(self, order: Order, parcels: Sequence[tuple[str, float, float, tuple[CartLine, ...]]]) -> None:
        """One order's parcels: (location, km, CO2e g, lines)."""
        self.orders += 1
        ordered = sum(line.quantity for line in order.lines)
        taken = sum(line.quantity for _, _, _, lines in parcels for line in lines)
        self.units_short += ordered - taken
        self.full += taken == ordered
        self.allocated_orders += bool(parcels)
        self.parcels += len(parcels)
        self.over_limit += len(parcels) > SourcingPolicy().max_splits
        self.km += sum(km for _, km, _, _ in parcels)
        self.co2e_g += sum(g for _, _, g, _ in parcels)

    def row(self) -> str:
        n = max(1, self.orders)
        return (
            f"{self.name:44}{self.full:>7,} ({self.full / n:6.1%}){self.parcels / n:>9.3f}"
            f"{self.km / n:>10.1f}{self.co2e_g / n / 1000:>10.2f}{self.units_short:>8,}"
            f"{1000 * self.elapsed_s / n:>9.2f}"
        )


@dataclass
class Stock:
    """One strategy's evolving stock (SKU -> location -> usable units) and open allocations."""

    units: dict[str, dict[str, int]]
    protected: dict[str, dict[str, int]]
    open: deque[tuple[int, str]] = field(default_factory=deque)
    workload: dict[str, int] = field(default_factory=dict)

    def take(self, at_ms: int, location_id: str, lines: Sequence[CartLine]) -> None:
        for line in lines:
            left = self.units[line.sku][location_id] - line.quantity
            if left < 0:  # pragma: no cover - a strategy never takes what is not there
                raise AssertionError(f"{location_id} oversold {line.sku}")
            self.units[line.sku][location_id] = left
        self.open.append((at_ms, location_id))
        self.workload[location_id] = self.workload.get(location_id, 0) + 1

    def expire(self, now: int) -> None:
        while self.open and self.open[0][0] <= now - WORKLOAD_WINDOW_MS:
            _, location_id = self.open.popleft()
            self.workload[location_id] -= 1

    def snapshot(self) -> StockSnapshot:
        return StockSnapshot(self.units, self.protected, self.workload)


Parcels = list[tuple[str, float, float, tuple[CartLine, ...]]]


def engine(network: PromiseNetwork, policy: SourcingPolicy) -> Callable[[Order, Stock], Parcels]:
    transit = TransitModel()

    def plan(order: Order, stock: Stock) -> Parcels:
        request = SourcingRequest(
            order.order_id,
            order.lines,
            DeliveryMethod.STANDARD,
            order.destination,
            order.at_ms + 5 * 86_400_000,
            order.at_ms,
        )
        decision = source_order(request, stock.snapshot(), network, transit, policy)
        return [(s.location_id, s.distance_km, s.co2e_g, s.lines) for s in decision.shipments]

    return plan


def nearest_first(
    locations: Sequence[tuple[str, float, float]], *, by_location: bool
) -> Callable[[Order, Stock], Parcels]:
    """(b) with ``by_location`` (the nearest location takes all it holds, then the next), else (c)
    (each line from the nearest location holding it whole); a line no one holds whole is split
    nearest first."""

    def plan(order: Order, stock: Stock) -> Parcels:
        lat, lon = order.destination.lat, order.destination.lon
        assert lat is not None and lon is not None
        ranked = sorted((haversine_km(lat, lon, la, lo), loc) for loc, la, lo in locations)
        taken: dict[str, list[CartLine]] = {}
        rest: list[CartLine] = []
        if by_location:
            todo = list(order.lines)
            for _, loc in ranked:
                keep = []
                for line in todo:
                    if stock.units.get(line.sku, {}).get(loc, 0) >= line.quantity:
                        taken.setdefault(loc, []).append(line)
                    else:
                        keep.append(line)
                todo = keep
                if not todo:
                    break
            rest = todo
        else:
            for line in order.lines:
                at = stock.units.get(line.sku, {})
                loc = next((loc for _, loc in ranked if at.get(loc, 0) >= line.quantity), None)
                if loc is None:
                    rest.append(line)
                else:
                    taken.setdefault(loc, []).append(line)
        for line in rest:
            left = line.quantity
            at = stock.units.get(line.sku, {})
            for _, loc in ranked:
                units = min(left, at.get(loc, 0))
                if units > 0:
                    taken.setdefault(loc, []).append(CartLine(line.sku, units))
                    left -= units
                    if not left:
                        break
        km = dict((loc, d) for d, loc in ranked)
        return [(loc, km[loc], km[loc] * CO2E_G_PER_PARCEL_KM, tuple(lines)) for loc, lines in taken.items()]

    return plan


def run(
    name: str, strategy: Callable[[Order, Stock], Parcels], orders: Sequence[Order], stock: Stock
) -> Tally:
    tally = Tally(name)
    started = time.perf_counter()
    for order in orders:
        stock.expire(order.at_ms)
        parcels = strategy(order, stock)
        for location_id, _, _, lines in parcels:
            stock.take(order.at_ms, location_id, lines)
        tally.add(order, parcels)
    tally.elapsed_s = time.perf_counter() - started
    return tally


def ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}" if b else "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sourcing_quality", description=__doc__)
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--skus", type=int, default=500)
    parser.add_argument("--seed", type=int, default=61)
    parser.add_argument(
        "--stock-scale",
        type=float,
        default=1.0,
        help="multiply every position (rounded down) to make stock scarce, e.g. 0.05",
    )
    args = parser.parse_args(argv)

    real = real_network(300)
    positions = {
        sku: {loc: int(units * args.stock_scale) for loc, units in at.items()}
        for sku, at in stock_positions(real.file, args.skus).items()
    }
    usable, protected = store_protection(real, positions)
    orders = a_day_of_orders(real, args.orders, args.skus, seed=args.seed)
    network = real.network
    dcs = [(p.location_id, p.lat, p.lon) for p in real.dcs]
    shippers = dcs + [
        (p.location_id, p.lat, p.lon)
        for p in real.stores
        if Capability.SHIP_FROM_STORE in network.sites[p.location_id].capabilities
    ]
    policy = SourcingPolicy()

    def fresh() -> Stock:
        return Stock({sku: dict(at) for sku, at in usable.items()}, protected)

    lines = sum(len(o.lines) for o in orders)
    units = sum(line.quantity for o in orders for line in o.lines)
    print(
        f"sourcing quality bench: Python {platform.python_version()}; {len(network.sites)} sites "
        f"({len(dcs)} DCs, {len(shippers) - len(dcs)} ship-from-store stores); {args.orders:,} orders, "
        f"{lines:,} lines, {units:,} units over {args.skus} SKUs (seed {args.seed}, "
        f"stock x {args.stock_scale:g})"
    )
    tallies = [
        run("(a)  engine, DCs", engine(network, policy), orders, fresh()),
        run(
            "(a+) engine, DCs + ship-from-store stores",
            engine(stores_also_ship(network), policy),
            orders,
            fresh(),
        ),
        run("(b)  everything from the nearest DC", nearest_first(dcs, by_location=True), orders, fresh()),
        run(
            "(c)  each line from the nearest with stock",
            nearest_first(shippers, by_location=False),
            orders,
            fresh(),
        ),
    ]
    print(
        f"{'strategy':44}{'fully allocated':>17}{'parcels':>9}{'km':>10}{'CO2e kg':>10}{'short':>8}{'ms':>9}"
    )
    print(f"{'':44}{'':>17}{'/order':>9}{'/order':>10}{'/order':>10}{'units':>8}{'/order':>9}")
    for tally in tallies:
        print(tally.row())
    a, a_plus, b, c = tallies
    print()
    for left, right in ((a, b), (a_plus, c), (a_plus, b)):
        print(
            f"{left.name.split()[0]} vs {right.name.split()[0]}: fully allocated "
            f"{ratio(left.full, right.full)}, parcels {ratio(left.parcels, right.parcels)}, "
            f"km {ratio(left.km, right.km)}, CO2e {ratio(left.co2e_g, right.co2e_g)} "
            f"(per order; < 1 is better except fully allocated)"
        )
    print(
        f"orders with more than {policy.max_splits} parcels: "
        + ", ".join(f"{t.name.split()[0]} {t.over_limit:,}" for t in tallies)
        + f" (the baselines have no limit; the engine stops at {policy.max_splits} and backorders)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
