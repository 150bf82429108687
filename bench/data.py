"""Synthetic but realistic bench input: a network from real Walmart sites, movements and full counts.

The network is cut from ``shared/data/network/walmart_openings_1962_2006.csv`` (read only): the first
DCs and stores of one state by opening date. Movements come from a stateful generator that keeps every
position's stock positive, so in the latency phase every event changes a visible quantity (and hence
produces exactly one availability record).
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
WALMART_CSV = Path("/work/shared/data/network/walmart_openings_1962_2006.csv")
_CANDIDATE_CSVS = (REPO_ROOT / "shared/data/network/walmart_openings_1962_2006.csv", WALMART_CSV)

RULES = {
    "version": "bench-1",
    "channels": [
        {"channel": "webshop", "location_types": ["dc", "store"], "store_cap_applies": True, "low_stock": 3},
        {"channel": "marketplace", "location_types": ["dc"], "low_stock": 3},
        {"channel": "click_and_collect", "location_types": ["store"], "low_stock": 1},
    ],
    "default_safety_stock": 0,
    "safety_stock": [{"location_type": "store", "units": 1}],
    "store_online_cap_pct": 80,
    "thresholds_only": False,
}


@dataclass(frozen=True)
class Network:
    dcs: list[str]
    stores: list[str]
    yaml_path: Path

    @property
    def locations(self) -> list[str]:
        return self.dcs + self.stores


def _sites(state: str) -> list[dict[str, str]]:
    for path in _CANDIDATE_CSVS:
        if path.exists():
            with path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if r["state"] == state]
                return sorted(rows, key=lambda r: r["opendate"])
    return []


def build_network(n_locations: int, out_dir: Path, *, state: str = "TX", n_dcs: int | None = None) -> Network:
    """``n_locations`` sites of ``state`` (a few DCs, the rest stores), written as an ``oms config`` YAML."""
    n_dcs = n_dcs if n_dcs is not None else max(2, min(9, n_locations // 20))
    sites = _sites(state)
    dcs_src = [r for r in sites if r["type"] == "DistributionCenter"]
    stores_src = [r for r in sites if r["type"] != "DistributionCenter"]
    records, dcs, stores = [], [], []
    for i in range(n_dcs):
        site = dcs_src[i] if i < len(dcs_src) else None
        loc = f"DC-{state}-{i + 1:02d}"
        dcs.append(loc)
        records.append(_location(loc, "dc", site, state))
    for i in range(n_locations - n_dcs):
        site = stores_src[i] if i < len(stores_src) else None
        loc = f"ST-{state}-{i + 1:04d}"
        stores.append(loc)
        records.append(_location(loc, "store", site, state))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"network-{n_locations}.yaml"
    path.write_text(yaml.safe_dump({"locations": records, "visibility_rules": RULES}, sort_keys=False))
    return Network(dcs, stores, path)


def _location(loc: str, kind: str, site: dict[str, str] | None, state: str) -> dict[str, object]:
    record: dict[str, object] = {"location_id": loc, "type": kind, "region": f"US-{state}"}
    if site is not None:
        record.update(name=f"{site['city']} ({site['type']})", lat=float(site["lat"]),
                      lon=float(site["long"]))
    return record


# --- movements ----------------------------------------------------------------------------------

# (kind, weight): a retail day — mostly till sales, receipts and transfers restocking them.
MIX = (
    ("sale", 0.50),
    ("receipt", 0.16),
    ("transfer_out", 0.10),
    ("transfer_in", 0.10),
    ("customer_return_restocked", 0.06),
    ("adjustment", 0.05),
    ("unsellable_in", 0.03),
)


class MovementGenerator:
    """Movements over ``skus`` x ``network`` that keep every position's ATP ≥ 3 (see module doc)."""

    def __init__(self, network: Network, n_skus: int, *, seed: int = 7, tag: str = "m") -> None:
        self.rng = random.Random(seed)
        self.network = network
        self.skus = [f"SKU-{i:06d}" for i in range(n_skus)]
        self.tag = tag
        self.seq = 0
        self.atp: dict[tuple[str, str], int] = {}
        self._kinds = [k for k, _ in MIX]
        self._weights = [w for _, w in MIX]

    def movement(self, sku: str | None = None) -> tuple[bytes, bytes]:
        rng = self.rng
        sku = sku if sku is not None else rng.choice(self.skus)
        kind = rng.choices(self._kinds, self._weights)[0]
        if kind in ("receipt", "transfer_out"):
            loc = rng.choice(self.network.dcs) if rng.random() < 0.7 else rng.choice(self.network.stores)
        else:
            loc = rng.choice(self.network.stores) if rng.random() < 0.9 else rng.choice(self.network.dcs)
        atp = self.atp.get((sku, loc), 0)
        quantity = {"sale": rng.randint(1, 3), "receipt": rng.randint(12, 120),
                    "transfer_out": rng.randint(6, 24), "transfer_in": rng.randint(6, 48),
                    "customer_return_restocked": 1, "adjustment": rng.choice((-2, -1, 1, 2, 3)),
                    "unsellable_in": 1}[kind]
        delta = -quantity if kind in ("sale", "transfer_out", "unsellable_in") else quantity
        if atp + delta < 3:  # would run the position dry: replenish instead
            kind, quantity, delta = "receipt", rng.randint(24, 120), 0
            delta = quantity
        self.atp[(sku, loc)] = atp + delta
        self.seq += 1
        source = "erp" if kind in ("receipt", "transfer_out", "transfer_in", "adjustment") else f"pos:{loc}"
        value = orjson.dumps({
            "event_id": f"{self.tag}-{self.seq}", "occurred_at": _now_iso(), "source": source,
            "sku": sku, "location_id": loc, "kind": kind, "quantity": quantity,
        })
        return sku.encode(), value

    def many(self, n: int) -> Iterator[tuple[bytes, bytes]]:
        for _ in range(n):
            yield self.movement()


_iso_cache: tuple[int, str] = (0, "")


def _now_iso() -> str:
    """ISO time with zone, refreshed every millisecond (isoformat is the generator's hot spot)."""
    global _iso_cache
    now = datetime.now(UTC)
    ms = int(now.timestamp() * 1000)
    if ms != _iso_cache[0]:
        _iso_cache = (ms, now.isoformat(timespec="milliseconds"))
    return _iso_cache[1]


# --- full counts --------------------------------------------------------------------------------

def count_messages(
    network: Network, n_skus: int, *, seed: int = 11, tag: str = "c"
) -> Iterator[tuple[bytes, bytes]]:
    """One StockCount per SKU with a position at every location of ``network``."""
    rng = random.Random(seed)
    occurred_at = _now_iso()
    dcs = set(network.dcs)
    for i in range(n_skus):
        sku = f"CSKU-{i:06d}"
        positions = []
        for loc in network.locations:
            on_hand = rng.randint(50, 5000) if loc in dcs else rng.choice((0, 0, 1, 2, 3, 5, 8, 12, 20, 40))
            position: dict[str, object] = {"location_id": loc, "on_hand": on_hand}
            if rng.random() < 0.05:  # counted unsellable must lie within 0..on_hand
                position["unsellable"] = rng.randint(0, min(2, on_hand))
            positions.append(position)
        yield sku.encode(), orjson.dumps({
            "event_id": f"{tag}-{i}", "occurred_at": occurred_at, "source": "erp", "sku": sku,
            "positions": positions,
        })
