"""``oms promise history``: synthetic but realistic delivered shipments over a real site network.

The network is the Walmart openings file (``shared/data/network/walmart_openings_1962_2006.csv``,
read where it lies, never copied): its 78 distribution centres ship, and customers live around its
stores (store coordinates jittered by a few km). Region = US state. For each order:

- ``placed_at``: a day of the year (December and late November busier), an hour of the customer's
  local day (evenings busiest); written with the customer's UTC offset, as a webshop would.
- origin: the destination's nearest DC most of the time, its 2nd or 3rd nearest otherwise.
- handling (placed → handed to the carrier): the DC hands parcels over at 18:00 local every day, with
  a 16:00 cut-off, so an order placed at 15:59 waits ~2 h and one at 16:01 ~26 h; some pickup jitter
  and, now and then (more in December), a backlog that costs a day.
- transit (handover → delivery): line haul of a few hours plus ~1 day per 500 road km, log-normal
  noise, 30 % slower from 1 to 24 December; a parcel at the destination depot by 08:00 local goes
  out for delivery that day (09:00-19:00), else the next; no delivery on Sunday; a heavy tail of
  parcels that lose one or more days (3 %, 8 % in December).
- ``estimated_delivery``: what a naive business rule promised: the UTC placement date + 2 days,
  + 3 beyond 800 km (straight line), ignoring Sundays, cut-offs and peaks.

Local time is solar time (UTC offset = longitude / 15, rounded): good enough for cut-offs and
delivery hours, and free of time-zone data. The output is a pure function of the network and the
seed.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

from oms_streams.domain.visibility import haversine_km
from oms_streams.tools.backtest import ESTIMATED, REQUIRED_COLUMNS

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_NETWORK = REPO_ROOT.parent / "shared" / "data" / "network" / "walmart_openings_1962_2006.csv"
DEFAULT_START = date(2024, 1, 1)

COLUMNS = (*REQUIRED_COLUMNS, ESTIMATED)
"""What ``oms promise backtest`` reads, with the business's own promise."""

ROAD_FACTOR = 1.25
"""Road km per great-circle km."""
PICKUP_HOUR = 18
CUTOFF_HOUR = 16
DEPOT_CUTOFF_HOUR = 8
"""A parcel at the destination depot before this local hour is delivered the same day."""
DELIVERY_START_HOUR = 9
DELIVERY_HOURS = 10
NAIVE_FAR_KM = 800.0

_HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 3, 5, 7, 8, 9, 10, 11, 10, 9, 9, 9, 10, 12, 14, 15, 13, 8, 3)
"""Orders per local hour of the day, relative: a webshop's evening peak."""


@dataclass(frozen=True, slots=True)
class Site:
    location_id: str
    city: str
    state: str
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class SiteNetwork:
    dcs: tuple[Site, ...]
    stores: tuple[Site, ...]


def _slug(text: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in text.upper()).split())


def load_network(path: Path = DEFAULT_NETWORK) -> SiteNetwork:
    """DCs and stores of the openings file (columns opendate, st.address, city, state, long, lat, type)."""
    dcs: list[Site] = []
    stores: list[Site] = []
    seen: dict[str, int] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            is_dc = row["type"] == "DistributionCenter"
            base = f"{'DC' if is_dc else 'STORE'}-{row['state']}-{_slug(row['city'])}"
            seen[base] = seen.get(base, 0) + 1
            site = Site(
                location_id=f"{base}-{seen[base]:02d}",
                city=row["city"],
                state=row["state"],
                lat=float(row["lat"]),
                lon=float(row["long"]),
            )
            (dcs if is_dc else stores).append(site)
    if not dcs or not stores:
        raise ValueError(f"{path}: needs DistributionCenter rows and store rows")
    return SiteNetwork(tuple(dcs), tuple(stores))


def _offset_hours(lon: float) -> int:
    return round(lon / 15.0)


def _local_midnight(instant: datetime, offset_h: int) -> datetime:
    """The UTC instant of local midnight starting the local day that holds ``instant``."""
    local = instant + timedelta(hours=offset_h)
    return datetime(local.year, local.month, local.day, tzinfo=UTC) - timedelta(hours=offset_h)


def _is_peak(instant: datetime) -> bool:
    return instant.month == 12 and instant.day <= 24


def _iso(instant: datetime, offset_h: int = 0) -> str:
    if offset_h == 0:
        return instant.strftime("%Y-%m-%dT%H:%M:%SZ")
    return instant.astimezone(timezone(timedelta(hours=offset_h))).isoformat(timespec="seconds")


class _Generator:
    def __init__(self, network: SiteNetwork, seed: int, start: date, days: int) -> None:
        self.rng = random.Random(seed)
        self.network = network
        self.start = datetime(start.year, start.month, start.day, tzinfo=UTC)
        self.days = days
        self.day_weights = [self._day_weight(self.start + timedelta(days=d)) for d in range(days)]
        self.nearest: dict[int, tuple[tuple[Site, float], ...]] = {}

    @staticmethod
    def _day_weight(day: datetime) -> float:
        if day.month == 12 and day.day <= 24:
            return 2.0
        if day.month == 11 and day.day >= 20:
            return 1.6
        return 1.0

    def _nearest_dcs(self, store_index: int) -> tuple[tuple[Site, float], ...]:
        found = self.nearest.get(store_index)
        if found is None:
            store = self.network.stores[store_index]
            ranked = sorted(
                ((dc, haversine_km(store.lat, store.lon, dc.lat, dc.lon)) for dc in self.network.dcs),
                key=lambda pair: pair[1],
            )
            found = self.nearest[store_index] = tuple(ranked[:3])
        return found

    def placements(self, orders: int) -> list[tuple[datetime, int]]:
        """(placed instant, destination store index), in time order."""
        rng = self.rng
        days = rng.choices(range(self.days), weights=self.day_weights, k=orders)
        hours = rng.choices(range(24), weights=_HOUR_WEIGHTS, k=orders)
        placed = []
        for day, hour in zip(days, hours, strict=True):
            store_index = rng.randrange(len(self.network.stores))
            offset = _offset_hours(self.network.stores[store_index].lon)
            local_seconds = hour * 3600 + rng.randrange(3600)
            instant = self.start + timedelta(days=day, seconds=local_seconds - offset * 3600)
            placed.append((instant, store_index))
        placed.sort(key=lambda pair: pair[0])
        return placed

    def handover(self, placed: datetime, dc: Site) -> datetime:
        rng = self.rng
        offset = _offset_hours(dc.lon)
        midnight = _local_midnight(placed, offset)
        local_hours = (placed - midnight).total_seconds() / 3600
        pickup = midnight + timedelta(hours=PICKUP_HOUR, minutes=rng.uniform(0, 90))
        if local_hours >= CUTOFF_HOUR:
            pickup += timedelta(days=1)
        if rng.random() < (0.06 if _is_peak(placed) else 0.02):
            pickup += timedelta(days=1)
        return pickup

    def delivery(self, handover: datetime, road_km: float, dest_lon: float) -> datetime:
        rng = self.rng
        haul_hours = (3.0 + road_km / 500.0 * 24.0) * rng.lognormvariate(0.0, 0.15)
        if _is_peak(handover):
            haul_hours *= 1.3
        at_depot = handover + timedelta(hours=haul_hours)
        offset = _offset_hours(dest_lon)
        day = _local_midnight(at_depot, offset)
        if (at_depot - day).total_seconds() >= DEPOT_CUTOFF_HOUR * 3600:
            day += timedelta(days=1)
        if rng.random() < (0.08 if _is_peak(handover) else 0.03):
            day += timedelta(days=1 + int(rng.expovariate(1 / 1.5)))
        if (day + timedelta(hours=12 + offset)).weekday() == 6:
            day += timedelta(days=1)  # no delivery on Sunday
        return day + timedelta(hours=DELIVERY_START_HOUR + rng.uniform(0, DELIVERY_HOURS))

    def rows(self, orders: int) -> Iterator[dict[str, str]]:
        rng = self.rng
        stores = self.network.stores
        for number, (placed, store_index) in enumerate(self.placements(orders), start=1):
            store = stores[store_index]
            nearest = self._nearest_dcs(store_index)
            pick = rng.random()
            dc = nearest[0 if pick < 0.8 else 1 if pick < 0.95 else 2][0]
            dest_lat = store.lat + rng.gauss(0.0, 0.06)
            dest_lon = store.lon + rng.gauss(0.0, 0.08)
            km = haversine_km(dc.lat, dc.lon, dest_lat, dest_lon)
            handed = self.handover(placed, dc)
            delivered = self.delivery(handed, km * ROAD_FACTOR, dest_lon)
            promised = placed.date() + timedelta(days=3 if km > NAIVE_FAR_KM else 2)
            yield {
                "order_id": f"ORD-{number:07d}",
                "placed_at": _iso(placed, _offset_hours(store.lon)),
                "origin_id": dc.location_id,
                "origin_lat": f"{dc.lat:.6f}",
                "origin_lon": f"{dc.lon:.6f}",
                "origin_region": dc.state,
                "dest_postal": f"{(store_index * 7919) % 90000 + 10000:05d}",
                "dest_lat": f"{dest_lat:.5f}",
                "dest_lon": f"{dest_lon:.5f}",
                "dest_region": store.state,
                "handed_to_carrier_at": _iso(handed),
                "delivered_at": _iso(delivered),
                "estimated_delivery": promised.isoformat(),
            }


def generate_history(
    network: SiteNetwork, orders: int, *, seed: int = 7, start: date = DEFAULT_START, days: int = 365
) -> Iterator[dict[str, str]]:
    """``orders`` delivered shipments placed over ``days`` days from ``start``, in placement order."""
    if orders < 0 or days < 1:
        raise ValueError("orders must be >= 0 and days >= 1")
    return _Generator(network, seed, start, days).rows(orders)


def write_history(
    out: Path,
    orders: int,
    *,
    seed: int = 7,
    network_path: Path = DEFAULT_NETWORK,
    start: date = DEFAULT_START,
    days: int = 365,
) -> int:
    """Write the shipments CSV (columns ``COLUMNS``); returns the number of rows written."""
    network = load_network(network_path)
    written = 0
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in generate_history(network, orders, seed=seed, start=start, days=days):
            writer.writerow(row)
            written += 1
    return written
