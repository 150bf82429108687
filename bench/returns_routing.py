"""``python -m bench.returns_routing``: how long one return-routing decision takes, against 5 ms at p99.

The network is the promise bench's (``bench/promise_network.py``): ~300 real Walmart sites (every
DC of Arkansas and its neighbours, then their stores by opening date), built as the config YAML and
read back through the same adapters the workers use. That network lets every store accept returns
and no DC, so the bench redraws it: every DC accepts returns (unlimited, the catch-all), about half
of the stores do, and about four in ten of those receive at most 10-40 shipped returns a day.

Need is synthetic: per SKU of the bench's three tiers, a share of the stores (and a few DCs) are 1-6
units below target (fast movers often, the long tail rarely). Returns have 1-3 lines of 1-2 units
from customers within 15 km of a random store; the day's load carries over from one return to the
next, as it would in a worker, so capped stores fill up during the run.

Each return is routed once after a warm-up, timed one decision at a time. Prints p50/p90/p99/max/mean,
how often the chosen location needed the SKU, fallbacks and unroutable lines, and the mean km to
the chosen location against the mean km to the central returns DC (the nearest DC). Figures only:
nothing here asserts.
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace

from bench.promise_network import _offset, sku_tiers
from bench.sourcing_decision import now_ms, percentile, real_network
from oms_streams.domain.network import Capability, Site
from oms_streams.domain.returns import ReturnLine, ReturnNetwork, RoutingPolicy, km_avoided

TARGET_P99_MS = 5.0

NEED_SHARE = {"fast": 0.25, "middle": 0.08, "tail": 0.02}
"""Share of the stores below target, per SKU tier."""


def returns_sites(sites: Mapping[str, Site], *, seed: int = 7) -> dict[str, Site]:
    """Every DC accepts returns without a daily cap; about half the stores accept them, four in ten
    of those with a cap of 10-40 items a day."""
    rng = random.Random(seed)
    out: dict[str, Site] = {}
    for location_id, site in sites.items():
        capabilities = site.capabilities - {Capability.ACCEPTS_RETURNS}
        capacity = None
        if not site.is_store:
            capabilities |= {Capability.ACCEPTS_RETURNS}
        elif rng.random() < 0.5:
            capabilities |= {Capability.ACCEPTS_RETURNS}
            if rng.random() < 0.4:
                capacity = rng.randint(10, 40)
        out[location_id] = replace(site, capabilities=frozenset(capabilities), returns_per_day=capacity)
    return out


def synthetic_need(sites: Mapping[str, Site], *, seed: int = 11) -> dict[str, dict[str, int]]:
    """SKU -> location id -> units below target."""
    rng = random.Random(seed)
    stores = sorted(s.location_id for s in sites.values() if s.is_store)
    dcs = sorted(s.location_id for s in sites.values() if not s.is_store)
    need: dict[str, dict[str, int]] = {}
    for tier, skus in sku_tiers(500).items():
        for sku in skus:
            short = rng.sample(stores, round(NEED_SHARE[tier] * len(stores)))
            short += rng.sample(dcs, rng.randint(0, 2))
            need[sku] = {location_id: rng.randint(1, 6) for location_id in short}
    return need


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.returns_routing", description=__doc__)
    parser.add_argument("--returns", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--locations", type=int, default=300)
    parser.add_argument("--seed", type=int, default=43)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    real = real_network(args.locations)
    sites = returns_sites(real.network.sites)
    need_by_sku = synthetic_need(sites)
    tiers = sku_tiers(500)
    skus = tiers["fast"] * 3 + tiers["middle"] * 2 + tiers["tail"]
    rng = random.Random(args.seed)
    returns = []
    for n in range(args.warmup + args.returns):
        store = rng.choice(real.stores)
        lat, lon = _offset(store.lat, store.lon, rng.uniform(-15, 15), rng.uniform(-15, 15))
        lines = tuple(
            ReturnLine(f"R{n}-L{k}", rng.choice(skus), rng.choice((1, 1, 1, 2)))
            for k in range(1, rng.choice((1, 1, 2, 3)) + 1)
        )
        returns.append((lines, lat, lon))
    policy = RoutingPolicy()
    t_build = time.perf_counter()
    network = ReturnNetwork(sites, policy)
    build_ms = (time.perf_counter() - t_build) * 1000
    setup_s = time.perf_counter() - t0
    gc.collect()
    gc.freeze()

    now = now_ms()
    empty: dict[str, int] = {}

    def need(sku: str) -> Mapping[str, int]:
        return need_by_sku.get(sku, empty)

    load: dict[str, int] = {}
    timings: list[float] = []
    outcome: Counter[str] = Counter()
    lines_total = parcels_total = 0
    km_sum = central_sum = avoided_sum = 0.0
    km_lines = farther = 0
    for n, (lines, lat, lon) in enumerate(returns):
        started = time.perf_counter_ns()
        routed = network.route(lines, lat, lon, need, load, now)
        elapsed_ms = (time.perf_counter_ns() - started) / 1e6
        for line in routed:
            if line.location_id is not None:
                load[line.location_id] = load.get(line.location_id, 0) + line.quantity
        if n < args.warmup:
            continue
        timings.append(elapsed_ms)
        parcels_total += len({line.location_id for line in routed if line.location_id is not None})
        for line in routed:
            lines_total += 1
            if line.location_id is None:
                outcome["nowhere"] += 1
                continue
            outcome["fallback" if line.fallback else ("needy" if line.need_covered else "not needy")] += 1
            if line.km is not None and line.central_km is not None:
                km_lines += 1
                km_sum += line.km
                central_sum += line.central_km
                avoided_sum += km_avoided(line.central_km, line.km)
                farther += line.km > line.central_km

    timings.sort()
    accepting = sum(1 for s in sites.values() if Capability.ACCEPTS_RETURNS in s.capabilities)
    capped = sum(1 for s in sites.values() if s.returns_per_day is not None)
    p99 = percentile(timings, 0.99)
    print(
        f"returns routing bench: Python {platform.python_version()}, {platform.machine()}; "
        f"{len(sites)} sites ({accepting} accept returns, {capped} with a daily cap), "
        f"{len(need_by_sku)} SKUs; {args.returns} returns (+{args.warmup} warm-up), {lines_total} lines; "
        f"setup {setup_s:.1f} s, ReturnNetwork built in {build_ms:.2f} ms"
    )
    print(
        f"policy: max_km {policy.max_km:g}, need_weight {policy.need_weight:g}, load_weight "
        f"{policy.load_weight:g}, parcel_weight {policy.parcel_weight:g}, horizon {policy.horizon_days} days"
    )
    columns = "".join(f"{name:>8}" for name in ("p50", "p90", "p99", "max", "mean"))
    print(f"{'per return':18}{columns}  (ms)")
    print(
        f"{'route':18}{percentile(timings, 0.5):8.3f}{percentile(timings, 0.9):8.3f}{p99:8.3f}"
        f"{timings[-1]:8.3f}{sum(timings) / len(timings):8.3f}"
    )
    print(f"target p99 <= {TARGET_P99_MS:g} ms: {'met' if p99 <= TARGET_P99_MS else 'not met'}")
    shares = ", ".join(
        f"{name} {outcome[name] / lines_total:.1%}" for name in ("needy", "not needy", "fallback", "nowhere")
    )
    print(f"chosen location: {shares} (needy: it was below target for the SKU)")
    print(f"parcels per return: {parcels_total / len(timings):.2f}")
    if km_lines:
        print(
            f"km per line: chosen {km_sum / km_lines:.1f}, central returns DC {central_sum / km_lines:.1f}; "
            f"net saving {(central_sum - km_sum) / km_lines:.1f} per line; avoided where nearer "
            f"{avoided_sum / km_lines:.1f} per line, {avoided_sum:,.0f} in all (oms_returns_km_avoided); "
            f"{farther / km_lines:.1%} of lines travel farther than to the central DC"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
