"""The demo on a real network: a US state of the Walmart openings file as an ``oms config publish`` YAML.

The sites come from ``../shared/data/network/walmart_openings_1962_2006.csv`` (real Walmart
distribution centres and stores with their coordinates; read where it lies, never copied into the
package). A region is a US state: its distribution centres (the oldest ``dcs`` of them; a state
without one is served by the DCs nearest its stores) and, taken in turn, each DC's nearest stores
until there are ``stores``. Each location gets what the worker needs: the state's time zone and
public holidays, opening hours by store format, pick and pack minutes, capabilities (every store
offers click & collect and takes returns; every other supercenter ships from store; the first
supercenter of each DC's stores runs a bike courier). Two carrier services, one replenishment route
per DC through its stores (nearest next, 65 km/h and 20 minutes a stop), the NL demo's visibility
rules and promise policy complete it, and the result is validated as the worker would read it.

``python -m oms_streams.tools.demo_network --region TX --out FILE.yaml`` writes it and prints
``stores N`` last; exit status 3 when the openings file is not there (the demo then runs on NL).
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from oms_streams.domain.visibility import haversine_km
from oms_streams.schemas.config import NetworkConfig
from oms_streams.streaming.config_publisher import load_network_config

REPO_ROOT = Path(__file__).resolve().parents[2]
SITES_FILE = "shared/data/network/walmart_openings_1962_2006.csv"
CANDIDATE_SITES = (REPO_ROOT.parent / SITES_FILE, REPO_ROOT / SITES_FILE)
"""Where the openings file lies next to a checkout (``../shared``), or inside it."""
NO_SITES_EXIT = 3

STATE_TIMEZONES = {
    **dict.fromkeys(
        ("AL", "AR", "IA", "IL", "KS", "LA", "MN", "MO", "MS", "ND", "NE", "OK", "SD", "TN", "TX", "WI"),
        "America/Chicago",
    ),
    **dict.fromkeys(
        (
            "CT",
            "DE",
            "FL",
            "GA",
            "IN",
            "KY",
            "MA",
            "MD",
            "ME",
            "MI",
            "NC",
            "NH",
            "NJ",
            "NY",
            "OH",
            "PA",
            "RI",
            "SC",
            "VA",
            "VT",
            "WV",
        ),
        "America/New_York",
    ),
    **dict.fromkeys(("CO", "ID", "MT", "NM", "UT", "WY"), "America/Denver"),
    "AZ": "America/Phoenix",
    **dict.fromkeys(("CA", "NV", "OR", "WA"), "America/Los_Angeles"),
}
"""Each state's main time zone (a few states straddle two; the larger part wins)."""

HOURS = {
    "DistributionCenter": {"weekdays": ["05:00-23:00"], "sat": ["06:00-14:00"]},
    "SuperCenter": {"daily": ["06:00-23:00"]},
    "Wal-MartStore": {"weekdays": ["07:00-22:00"], "sat": ["07:00-22:00"], "sun": ["10:00-20:00"]},
}
ROAD_KMH = 65.0
STOP_MINUTES = 20


@dataclass(frozen=True, slots=True)
class SiteRow:
    kind: str
    """The file's type: DistributionCenter, SuperCenter or Wal-MartStore."""
    city: str
    state: str
    lat: float
    lon: float
    opened: str

    @property
    def is_dc(self) -> bool:
        return self.kind == "DistributionCenter"


class SitesMissing(FileNotFoundError):
    """The openings file is not where a checkout keeps the shared data."""


def find_sites_file(explicit: Path | None = None) -> Path:
    for path in (explicit,) if explicit else CANDIDATE_SITES:
        if path is not None and path.exists():
            return path
    looked = str(explicit) if explicit else " or ".join(map(str, CANDIDATE_SITES))
    raise SitesMissing(f"no Walmart openings file at {looked}")


def read_sites(path: Path) -> list[SiteRow]:
    with path.open(newline="") as f:
        return [
            SiteRow(r["type"], r["city"], r["state"], float(r["lat"]), float(r["long"]), r["opendate"])
            for r in csv.DictReader(f)
        ]


def _km(a: SiteRow, b: SiteRow) -> float:
    return haversine_km(a.lat, a.lon, b.lat, b.lon)


def pick_region(sites: Sequence[SiteRow], state: str, dcs: int, stores: int) -> dict[SiteRow, list[SiteRow]]:
    """DC -> its stores (nearest first): the state's oldest DCs, each taking its next nearest store in
    turn. A state without a DC is served by the DCs nearest its first store."""
    in_state = sorted((s for s in sites if s.state == state), key=lambda s: (s.opened, s.city, s.lat))
    candidates = [s for s in in_state if not s.is_dc]
    if not candidates:
        raise ValueError(f"no stores in state {state!r} of the openings file")
    chosen_dcs = [s for s in in_state if s.is_dc][:dcs]
    if not chosen_dcs:
        everywhere = sorted((s for s in sites if s.is_dc), key=lambda s: _km(s, candidates[0]))
        chosen_dcs = everywhere[:dcs]
    clusters: dict[SiteRow, list[SiteRow]] = {dc: [] for dc in chosen_dcs}
    left = list(candidates)
    while left and sum(map(len, clusters.values())) < stores:
        for dc in chosen_dcs:
            if not left or sum(map(len, clusters.values())) >= stores:
                break
            nearest = min(left, key=lambda s, d=dc: (_km(d, s), s.opened))  # type: ignore[misc]
            left.remove(nearest)
            clusters[dc].append(nearest)
    return clusters


def _slug(text: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in text.upper()).split())


class _Ids:
    """Readable, unique ids: DC-TX-PALESTINE, STORE-TX-TYLER-02."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def __call__(self, prefix: str, site: SiteRow) -> str:
        base = f"{prefix}-{site.state}-{_slug(site.city)}"
        self.seen[base] = self.seen.get(base, 0) + 1
        return f"{base}-{self.seen[base]:02d}"


def _location(location_id: str, site: SiteRow, capabilities: list[str]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "location_id": location_id,
        "type": "dc" if site.is_dc else "store",
        "name": f"{site.city.title()}, {site.state} ({site.kind})",
        "lat": site.lat,
        "lon": site.lon,
        "region": f"US-{site.state}",
        "timezone": STATE_TIMEZONES.get(site.state, "America/Chicago"),
        "country": "US",
        "subdivision": site.state,
        "opening_hours": HOURS.get(site.kind, HOURS["SuperCenter"]),
        "pick_minutes": 45 if site.is_dc else 20,
        "pack_minutes": 15 if site.is_dc else 10,
        "capabilities": capabilities,
    }
    if "courier" in capabilities:
        record["courier"] = {"radius_km": 15, "slot_minutes": 120, "slot_capacity": 4, "ride_kmh": 30}
    return record


def _store_capabilities(site: SiteRow, supercenters_before: int, first_in_cluster: bool) -> list[str]:
    capabilities = ["click_and_collect", "accepts_returns"]
    if site.kind == "SuperCenter":
        if supercenters_before % 2 == 0:  # every other supercenter has the back room to ship parcels
            capabilities.append("ship_from_store")
        if first_in_cluster:
            capabilities.append("courier")
    return capabilities


def _route(route_id: str, dc_id: str, dc: SiteRow, stops: list[tuple[str, SiteRow]]) -> dict[str, Any]:
    here, minutes, todo = dc, 0.0, list(stops)
    out: list[dict[str, Any]] = []
    while todo:
        location_id, nxt = min(todo, key=lambda item: _km(here, item[1]))
        todo.remove((location_id, nxt))
        minutes += _km(here, nxt) * 1.25 / ROAD_KMH * 60 + (STOP_MINUTES if out else 0)
        out.append({"location_id": location_id, "travel_minutes": min(10_080, math.ceil(minutes))})
        here = nxt
    return {
        "route_id": route_id,
        "origin_id": dc_id,
        "departures": {"weekdays": ["05:00"], "sat": ["06:00"]},
        "stops": out,
    }


def _carrier_services(timezone: str, dc_ids: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "service_id": "GROUND-STANDARD",
            "carrier": "Ground Parcel Co",
            "method": "standard",
            "timezone": timezone,
            "country": "US",
            "pickups": {"daily": ["18:00"]},
            "cutoff_minutes": 60,
            "delivery_hours": {"weekdays": ["09:00-20:00"], "sat": ["09:00-14:00"]},
            "co2e_g_per_parcel_km": 140,
            "prior_transit_hours": [18, 22, 26, 40, 48],
            "regions": ["US"],
            "max_km": 1500,
        },
        {
            "service_id": "GREEN-CONSOLIDATED",
            "carrier": "Green Freight",
            "method": "green",
            "timezone": timezone,
            "country": "US",
            "pickups": {"mon": ["16:00"], "wed": ["16:00"], "fri": ["16:00"]},
            "cutoff_minutes": 120,
            "delivery_hours": {"tue": ["09:00-18:00"], "thu": ["09:00-18:00"], "sat": ["09:00-14:00"]},
            "co2e_g_per_parcel_km": 35,
            "origins": dc_ids,
            "prior_transit_hours": [20, 26, 44, 52],
            "regions": ["US"],
            "max_km": 1500,
        },
    ]


def _rules(region: str) -> dict[str, Any]:
    """The NL demo's rules: the webshop sees DCs, stores (capped) and the supplier within 72 h."""
    return {
        "version": f"demo-{region.lower()}-1",
        "channels": [
            {
                "channel": "webshop",
                "location_types": ["dc", "store", "third_party"],
                "store_cap_applies": True,
                "max_lead_time_hours": 72,
                "low_stock": 3,
            },
            {"channel": "marketplace", "location_types": ["dc"], "low_stock": 3},
            {"channel": "click_and_collect", "location_types": ["store"], "low_stock": 1},
        ],
        "default_safety_stock": 0,
        "safety_stock": [{"location_type": "store", "units": 1}],
        "store_online_cap_pct": 80,
        "thresholds_only": False,
    }


POLICY = {
    "quantile": 0.95,
    "min_lane_samples": 30,
    "max_parcels": 3,
    "click_and_collect_radius_km": 25,
    # Shelf click & collect ready 2 minutes after the 20-minute pick: the demo's late pick shows at once.
    "store_ready_minutes": 22,
}


def region_document(sites: Sequence[SiteRow], region: str, dcs: int = 2, stores: int = 8) -> dict[str, Any]:
    """The network of ``region`` (a US state code) as the ``oms config publish`` document."""
    state = region.upper()
    clusters = pick_region(sites, state, dcs, stores)
    ids = _Ids()
    locations: list[dict[str, Any]] = []
    routes: list[dict[str, Any]] = []
    supercenters = 0
    for dc, cluster in clusters.items():
        dc_id = ids("DC", dc)
        locations.append(_location(dc_id, dc, ["ships"]))
        stops: list[tuple[str, SiteRow]] = []
        for i, store in enumerate(cluster):
            store_id = ids("STORE", store)
            capabilities = _store_capabilities(store, supercenters, first_in_cluster=i == 0)
            supercenters += store.kind == "SuperCenter"
            locations.append(_location(store_id, store, capabilities))
            stops.append((store_id, store))
        if stops:
            routes.append(_route(f"ROUTE-{dc_id}", dc_id, dc, stops))
    dc_ids = [loc["location_id"] for loc in locations if loc["type"] == "dc"]
    locations.append(
        {"location_id": "SUPPLIER-ACME", "type": "third_party", "name": "ACME dropship", "region": "US"}
    )
    timezone = STATE_TIMEZONES.get(state, "America/Chicago")
    return {
        "locations": locations,
        "visibility_rules": _rules(state),
        "carrier_services": _carrier_services(timezone, dc_ids),
        "routes": routes,
        "promise_policy": POLICY,
    }


class NoAliases(yaml.SafeDumper):
    """Writes shared opening hours out in full at every location instead of as YAML anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def write_region_network(document: dict[str, Any], out: Path, region: str) -> NetworkConfig:
    """Write the document (clock times quoted, as YAML 1.1 would read 05:00 as a number) and read it
    back as the worker's config, so a file that would not publish is never left behind."""
    header = (
        f"# The demo network of {region.upper()}: real Walmart sites from {SITES_FILE}\n"
        f"# (generated by python -m oms_streams.tools.demo_network --region {region}; publish with\n"
        "# oms config publish FILE)\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(header + yaml.dump(document, Dumper=NoAliases, sort_keys=False, width=120))
    try:
        return load_network_config(out)
    except Exception:
        out.unlink()
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m oms_streams.tools.demo_network", description=__doc__)
    parser.add_argument("--region", required=True, help="a US state code, e.g. TX")
    parser.add_argument("--out", type=Path, required=True, metavar="NETWORK.yaml")
    parser.add_argument("--stores", type=int, default=8)
    parser.add_argument("--dcs", type=int, default=2)
    parser.add_argument("--sites", type=Path, help=f"the openings CSV (default: ../{SITES_FILE})")
    args = parser.parse_args(argv)
    try:
        sites = read_sites(find_sites_file(args.sites))
    except SitesMissing as error:
        print(f"demo_network: {error}", file=sys.stderr)
        return NO_SITES_EXIT
    try:
        document = region_document(sites, args.region, args.dcs, args.stores)
    except ValueError as error:
        print(f"demo_network: {error}", file=sys.stderr)
        return 1
    config = write_region_network(document, args.out, args.region)
    counts = {kind: sum(loc.type == kind for loc in config.locations) for kind in ("dc", "store")}
    print(f"wrote {args.out}: {counts['dc']} DCs, {counts['store']} stores, {len(config.routes)} routes")
    first = next(loc for loc in config.locations if loc.type == "store")
    # A customer 3 km north of the first store, for the banner's promise example.
    print(f"try {round((first.lat or 0) + 0.027, 4)} {first.lon} {first.region}")
    print(f"stores {counts['store']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
