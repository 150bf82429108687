"""A 300-location promise network from real Walmart sites, its stock, and carts to promise on.

The sites are cut from ``shared/data/network/walmart_openings_1962_2006.csv`` (read only, never
copied): every distribution centre of a few neighbouring states (Arkansas and around it), then their
stores by opening date until the count is reached. Each location gets what a promise needs: its
state's time zone, US public holidays of its state, opening hours by store format, pick and pack
minutes, capabilities (DCs ship; stores offer click & collect, some ship from store, some run a
courier). Two carrier services (standard with daily pickups, green three days a week) and one
replenishment route per DC to its nearest stores complete the network.

Stock is three tiers of SKUs: fast movers at every DC and most stores, a middle tier at half the
DCs and a quarter of the stores, a long tail at a few DCs and a few stores. So a 10-line cart has
several candidates per SKU and sometimes needs a split.

``python -m bench.promise_network OUT_DIR`` writes the network YAML, the stock as JSON lines of
movements and the cart bodies, for trying the endpoint by hand.
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import yaml

from bench.data import REPO_ROOT, WALMART_CSV
from bench.data import RULES as BENCH_RULES
from oms_streams.tools.demo_network import HOURS, STATE_TIMEZONES, NoAliases

_CANDIDATE_CSVS = (REPO_ROOT / "shared/data/network/walmart_openings_1962_2006.csv", WALMART_CSV)

DEFAULT_STATES = ("AR", "OK", "MO", "KS", "LA", "MS")
"""Bentonville's state and its neighbours (all on Central time)."""


RULES: dict[str, Any] = {**BENCH_RULES, "version": "bench-promise-1"}

CARRIER_SERVICES: list[dict[str, Any]] = [
    {
        "service_id": "PARCEL-GROUND",
        "carrier": "Ground Parcel Co",
        "method": "standard",
        "timezone": "America/Chicago",
        "country": "US",
        "pickups": {"daily": ["18:00"]},
        "cutoff_minutes": 60,
        "delivery_hours": {"weekdays": ["09:00-20:00"], "sat": ["09:00-14:00"]},
        "co2e_g_per_parcel_km": 140,
        "prior_transit_hours": [18, 22, 26, 40, 48, 64],
    },
    {
        "service_id": "GREEN-CONSOLIDATED",
        "carrier": "Green Freight",
        "method": "green",
        "timezone": "America/Chicago",
        "country": "US",
        "pickups": {"mon": ["16:00"], "wed": ["16:00"], "fri": ["16:00"]},
        "cutoff_minutes": 120,
        "delivery_hours": {"tue": ["09:00-18:00"], "thu": ["09:00-18:00"], "sat": ["09:00-14:00"]},
        "co2e_g_per_parcel_km": 35,
        "prior_transit_hours": [20, 26, 44, 52],
    },
]

POLICY: dict[str, Any] = {
    "quantile": 0.95,
    "min_lane_samples": 30,
    "max_parcels": 3,
    "click_and_collect_radius_km": 25,
    "click_and_collect_max_stores": 5,
    "store_receiving_minutes": 60,
    "horizon_days": 21,
}


ROUTE_STOPS = 8


@dataclass(frozen=True, slots=True)
class Place:
    location_id: str
    kind: str
    """'dc' or 'store'."""
    fmt: str
    """The CSV's type: DistributionCenter, SuperCenter, Wal-MartStore."""
    city: str
    state: str
    lat: float
    lon: float
    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class PromiseNetworkFile:
    places: list[Place]
    yaml_path: Path
    routes: dict[str, list[str]]
    """Route id -> the stores it serves, in stop order."""

    @property
    def dcs(self) -> list[Place]:
        return [p for p in self.places if p.kind == "dc"]

    @property
    def stores(self) -> list[Place]:
        return [p for p in self.places if p.kind == "store"]


def _rows(states: Sequence[str]) -> list[dict[str, str]]:
    for path in _CANDIDATE_CSVS:
        if path.exists():
            with path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if r["state"] in states]
            return sorted(rows, key=lambda r: (r["opendate"], r["state"], r["city"], r["st.address"]))
    raise FileNotFoundError(
        f"Walmart openings CSV not found (looked at {', '.join(map(str, _CANDIDATE_CSVS))})"
    )


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(a))


def pick_places(
    n_locations: int = 300, states: Sequence[str] = DEFAULT_STATES, *, max_dcs: int = 20, seed: int = 5
) -> list[Place]:
    """Every DC of ``states`` (at most ``max_dcs``), then stores by opening date up to ``n_locations``."""
    rng = random.Random(seed)
    rows = _rows(states)
    dcs = [r for r in rows if r["type"] == "DistributionCenter"][:max_dcs]
    stores = [r for r in rows if r["type"] != "DistributionCenter"][: max(0, n_locations - len(dcs))]
    places: list[Place] = []
    numbers: dict[str, int] = {}

    def number(prefix: str) -> int:
        numbers[prefix] = numbers.get(prefix, 0) + 1
        return numbers[prefix]

    for row in dcs:
        loc = f"DC-{row['state']}-{number('DC-' + row['state']):02d}"
        places.append(_place(loc, "dc", row, ("ships",)))
    for row in stores:
        capabilities = ["click_and_collect", "accepts_returns"]
        supercenter = row["type"] == "SuperCenter"
        # Supercenters have the back room for parcels and vans; older discount stores rarely.
        if rng.random() < (0.45 if supercenter else 0.15):
            capabilities.append("ship_from_store")
        if supercenter and rng.random() < 0.35:
            capabilities.append("courier")
        loc = f"ST-{row['state']}-{number('ST-' + row['state']):04d}"
        places.append(_place(loc, "store", row, tuple(capabilities)))
    return places


def _place(location_id: str, kind: str, row: dict[str, str], capabilities: tuple[str, ...]) -> Place:
    return Place(
        location_id,
        kind,
        row["type"],
        row["city"].title(),
        row["state"],
        float(row["lat"]),
        float(row["long"]),
        capabilities,
    )


def _location(place: Place) -> dict[str, Any]:
    dc = place.kind == "dc"
    record: dict[str, Any] = {
        "location_id": place.location_id,
        "type": place.kind,
        "name": f"{place.city}, {place.state} ({place.fmt})",
        "lat": place.lat,
        "lon": place.lon,
        "region": f"US-{place.state}",
        "timezone": STATE_TIMEZONES.get(place.state, "America/Chicago"),
        "country": "US",
        "subdivision": place.state,
        "opening_hours": HOURS.get(place.fmt, HOURS["SuperCenter"]),
        "pick_minutes": 45 if dc else 20,
        "pack_minutes": 15 if dc else 10,
        "capabilities": list(place.capabilities),
    }
    if "courier" in place.capabilities:
        record["courier"] = {"radius_km": 15, "slot_minutes": 120, "slot_capacity": 6, "ride_kmh": 35}
    return record


def _routes(places: Sequence[Place]) -> dict[str, tuple[str, list[tuple[str, int]]]]:
    """One route per DC: its ``ROUTE_STOPS`` nearest stores, driven nearest-next from the DC."""
    stores = [p for p in places if p.kind == "store"]
    routes: dict[str, tuple[str, list[tuple[str, int]]]] = {}
    for dc in (p for p in places if p.kind == "dc"):
        todo = sorted(stores, key=lambda s: haversine_km(dc.lat, dc.lon, s.lat, s.lon))[:ROUTE_STOPS]
        here, minutes, stops = dc, 0.0, []
        while todo:
            nxt = min(todo, key=lambda s: haversine_km(here.lat, here.lon, s.lat, s.lon))
            todo.remove(nxt)
            # 65 km/h on the road, 20 minutes unloading at each stop before.
            minutes += haversine_km(here.lat, here.lon, nxt.lat, nxt.lon) / 65 * 60 + (20 if stops else 0)
            stops.append((nxt.location_id, min(10_080, math.ceil(minutes))))
            here = nxt
        routes[f"ROUTE-{dc.location_id}"] = (dc.location_id, stops)
    return routes


def build_promise_network(
    out_dir: Path, n_locations: int = 300, states: Sequence[str] = DEFAULT_STATES
) -> PromiseNetworkFile:
    """Write the network as an ``oms config publish`` YAML in ``out_dir``."""
    places = pick_places(n_locations, states)
    routes = _routes(places)
    document = {
        "locations": [_location(p) for p in places],
        "visibility_rules": RULES,
        "carrier_services": CARRIER_SERVICES,
        "routes": [
            {
                "route_id": route_id,
                "origin_id": origin,
                "departures": {"weekdays": ["05:00", "13:00"], "sat": ["06:00"]},
                "stops": [{"location_id": loc, "travel_minutes": m} for loc, m in stops],
            }
            for route_id, (origin, stops) in routes.items()
        ],
        "promise_policy": POLICY,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"promise-network-{len(places)}.yaml"
    # The dumper quotes clock times such as "05:00" (YAML 1.1 would read them as numbers).
    path.write_text(yaml.dump(document, Dumper=NoAliases, sort_keys=False, width=120))
    return PromiseNetworkFile(
        places, path, {r: [loc for loc, _ in stops] for r, (_, stops) in routes.items()}
    )


# --- stock ---------------------------------------------------------------------------------------

Positions = dict[str, dict[str, int]]
"""SKU -> location id -> units on hand."""

TIERS = (
    # (name, share of SKUs, share of DCs holding, DC units, share of stores holding, store units)
    ("fast", 0.20, 1.00, (200, 2000), 0.85, (4, 30)),
    ("middle", 0.30, 0.50, (40, 400), 0.25, (3, 12)),
    ("tail", 0.50, 0.25, (5, 60), 0.04, (3, 6)),
)


def sku_tiers(n_skus: int = 500) -> dict[str, list[str]]:
    tiers: dict[str, list[str]] = {}
    start = 0
    for i, (name, share, *_rest) in enumerate(TIERS):
        end = n_skus if i == len(TIERS) - 1 else start + round(share * n_skus)
        tiers[name] = [f"SKU-{k + 1:05d}" for k in range(start, end)]
        start = end
    return tiers


def stock_positions(network: PromiseNetworkFile, n_skus: int = 500, *, seed: int = 17) -> Positions:
    """Units on hand per SKU and location, by tier (see ``TIERS``)."""
    rng = random.Random(seed)
    tiers = sku_tiers(n_skus)
    dcs = [p.location_id for p in network.dcs]
    stores = [p.location_id for p in network.stores]
    positions: Positions = {}
    for name, _share, dc_share, dc_units, store_share, store_units in TIERS:
        for sku in tiers[name]:
            at: dict[str, int] = {}
            for loc in rng.sample(dcs, max(1, round(dc_share * len(dcs)))):
                at[loc] = rng.randint(*dc_units)
            for loc in stores:
                if rng.random() < store_share:
                    at[loc] = rng.randint(*store_units)
            positions[sku] = at
    return positions


def receipts(positions: Positions, *, tag: str = "stock") -> Iterator[tuple[bytes, bytes]]:
    """One ``receipt`` movement per position (key = SKU), as the ERP books goods in."""
    occurred_at = datetime.now(UTC).isoformat(timespec="milliseconds")
    n = 0
    for sku, at in positions.items():
        for loc, units in at.items():
            n += 1
            yield (
                sku.encode(),
                orjson.dumps(
                    {
                        "event_id": f"{tag}-{n}",
                        "occurred_at": occurred_at,
                        "source": "erp",
                        "sku": sku,
                        "location_id": loc,
                        "kind": "receipt",
                        "quantity": units,
                    }
                ),
            )


# --- carts ---------------------------------------------------------------------------------------


def _offset(lat: float, lon: float, km_north: float, km_east: float) -> tuple[float, float]:
    return (round(lat + km_north / 111.2, 5), round(lon + km_east / (111.2 * math.cos(math.radians(lat))), 5))


POSTAL_CODES = {"AR": "72712", "OK": "74012", "MO": "65401", "KS": "66002", "LA": "70801", "MS": "39201"}
"""A real ZIP code of each default state (the lane statistics key on the region, not on it)."""


def _destination(place: Place, km_north: float, km_east: float) -> dict[str, Any]:
    lat, lon = _offset(place.lat, place.lon, km_north, km_east)
    postal_code = POSTAL_CODES.get(place.state, "")
    return {
        "lat": lat,
        "lon": lon,
        "postal_code": postal_code,
        "region": f"US-{place.state}",
        "timezone": STATE_TIMEZONES.get(place.state, "America/Chicago"),
    }


def carts(
    network: PromiseNetworkFile, positions: Positions, *, seed: int = 23
) -> list[tuple[str, dict[str, Any]]]:
    """Four 10-line ``POST /promise`` bodies, each a different shape of work:

    - ``city-basket``: fast movers a courier store 3 km away holds (courier, click & collect, 1 parcel);
    - ``suburb-mix``: 6 fast, 3 middle, 1 long-tail SKU next to a store on a DC's route;
    - ``rural-tail``: 4 fast, 3 middle, 3 long-tail SKUs, 40 km from the nearest store (splits);
    - ``bulk``: 10 fast movers in quantities of 2 to 6 in another state.
    """
    rng = random.Random(seed)
    tiers = sku_tiers(len(positions))
    stores = network.stores
    routed = {loc for stops in network.routes.values() for loc in stops}
    out: list[tuple[str, dict[str, Any]]] = []

    def lines(skus: Sequence[str], quantities: Sequence[int]) -> list[dict[str, Any]]:
        return [{"sku": s, "quantity": q} for s, q in zip(skus, quantities, strict=True)]

    # city-basket: a courier store that holds at least 10 fast movers with 2+ visible units.
    couriers = [p for p in stores if "courier" in p.capabilities]
    for store in couriers:
        held = [s for s in tiers["fast"] if positions[s].get(store.location_id, 0) >= 4]
        if len(held) >= 10:
            skus = rng.sample(held, 10)
            out.append(
                (
                    "city-basket",
                    {
                        "cart": lines(skus, [1] * 10),
                        "destination": _destination(store, 2.0, 2.0),
                    },
                )
            )
            break
    # suburb-mix: near a store that a route serves, in another state than the first cart.
    first_state = out[0][1]["destination"]["region"] if out else ""
    suburb = next(
        (p for p in stores if p.location_id in routed and f"US-{p.state}" != first_state), stores[0]
    )
    skus = rng.sample(tiers["fast"], 6) + rng.sample(tiers["middle"], 3) + rng.sample(tiers["tail"], 1)
    out.append(
        (
            "suburb-mix",
            {
                "cart": lines(skus, [rng.choice((1, 1, 2)) for _ in skus]),
                "destination": _destination(suburb, -4.0, 3.0),
            },
        )
    )
    # rural-tail: 40 km from a store towards the middle of the network (so still inside it), with
    # no store within 30 km of that point.
    mid_lat = sum(p.lat for p in stores) / len(stores)
    mid_lon = sum(p.lon for p in stores) / len(stores)
    rural, km_north, km_east = stores[-1], 0.0, 40.0
    for store in reversed(stores):
        north, east = (
            (mid_lat - store.lat) * 111.2,
            (mid_lon - store.lon) * 111.2 * math.cos(math.radians(store.lat)),
        )
        scale = 40.0 / max(math.hypot(north, east), 1e-9)
        lat, lon = _offset(store.lat, store.lon, north * scale, east * scale)
        if all(haversine_km(lat, lon, p.lat, p.lon) > 30 for p in stores):
            rural, km_north, km_east = store, north * scale, east * scale
            break
    skus = rng.sample(tiers["fast"], 4) + rng.sample(tiers["middle"], 3) + rng.sample(tiers["tail"], 3)
    out.append(
        (
            "rural-tail",
            {
                "cart": lines(skus, [1] * 10),
                "destination": _destination(rural, km_north, km_east),
            },
        )
    )
    # bulk: a store in yet another state.
    used = {c[1]["destination"]["region"] for c in out}
    bulk_store = next((p for p in stores if f"US-{p.state}" not in used), stores[len(stores) // 2])
    skus = rng.sample(tiers["fast"], 10)
    out.append(
        (
            "bulk",
            {
                "cart": lines(skus, [rng.randint(2, 6) for _ in skus]),
                "destination": _destination(bulk_store, 1.5, -2.5),
            },
        )
    )
    return out


def next_weekday_at(
    weekday: int = 1, hour: int = 10, timezone: str = "America/Chicago", now: datetime | None = None
) -> str:
    """ISO time of the next ``weekday`` (0 = Monday) at ``hour`` local, at least a day ahead: a fixed
    moment in the week, so every run promises the same work (stores open, pickups to come) whatever
    the hour it runs at."""
    zone = ZoneInfo(timezone)
    local = (now or datetime.now(UTC)).astimezone(zone)
    days = (weekday - local.weekday()) % 7 or 7
    day = (local + timedelta(days=days)).date()
    return datetime(day.year, day.month, day.day, hour, tzinfo=zone).isoformat()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.promise_network",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out_dir", type=Path)
    p.add_argument("--locations", type=int, default=300)
    p.add_argument("--skus", type=int, default=500)
    p.add_argument("--states", default=",".join(DEFAULT_STATES))
    args = p.parse_args(argv)
    network = build_promise_network(args.out_dir, args.locations, tuple(args.states.split(",")))
    positions = stock_positions(network, args.skus)
    with (args.out_dir / "stock-movements.jsonl").open("wb") as f:
        for _key, value in receipts(positions):
            f.write(value + b"\n")
    for name, body in carts(network, positions):
        (args.out_dir / f"cart-{name}.json").write_bytes(orjson.dumps(body))
    n_pos = sum(len(at) for at in positions.values())
    print(
        f"{network.yaml_path}: {len(network.dcs)} DCs, {len(network.stores)} stores, "
        f"{len(network.routes)} routes; {len(positions)} SKUs at {n_pos:,} positions"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
