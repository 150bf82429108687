"""When in the day customers buy: an hour-of-day curve for webshop orders and one for store tills.

``daily x hourly``: the daily shapes (``demand_shape.py``) say how much a store sells on a local
day; this module says how that day's sales (and the webshop's orders) spread over its hours, each
curve averaging 1 over the day so the daily totals are unchanged.

- **Webshop** (``web``): the hour of day of real e-commerce orders, derived from the purchase
  timestamps of the Olist sample (``../shared/data/deliveries/olist_dev.csv.gz``, 5,723 orders).
  Time zones: Olist publishes local Brazilian wall-clock times without a zone; we read them as the
  platform's clock (São Paulo, ``America/Sao_Paulo``, with its daylight saving of the time) and
  convert each to the customer's own state zone (``dest_region``) before taking its hour, so an
  order from Mato Grosso at 21:00 São Paulo time counts at 20:00. The conversion moves 6.2 % of
  the orders to another hour (2 % are in states off Brasília time, the rest placed in São Paulo's
  summer time from states without it); reading the file as the customers' own clocks instead
  would move no hour's factor by more than 0.09. The demo applies the curve on the local time of
  the network's stores.
- **Stores** (``store``): no hourly store data is in the shared data (M5 is daily), so the store
  curve is a documented shape, not a derivation: a morning ramp, a lunchtime peak (12-14 h), an
  afternoon plateau and an after-work peak (17-19 h), tailing off in the evening. Those peaks are
  the ones retail foot-traffic counts report (e.g. Zenreach's 2020 WiFi walk-in counts across US
  stores: "busiest between noon and 2pm and again between 5pm and 7pm", quiet before 10 h and
  after 21 h). A store sells only while its calendar (the network's ``opening_hours``, public
  holidays and ``closed_dates``) has it open: the curve is restricted to the store's opening
  intervals of its local day and rescaled so the day still averages 1 (factor 0 while closed).

Re-derive with ``python -m oms_streams.tools.hourly_shape --data OLIST.csv.gz --out FILE.json``.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from oms_streams.adapters.network import calendar
from oms_streams.domain.calendar import zone
from oms_streams.domain.network import Calendar
from oms_streams.schemas.config import LocationRecord
from oms_streams.tools.demo_options import HOURLY_SHAPE

HOURS = 24
OLIST_CLOCK = "America/Sao_Paulo"
"""The zone Olist's timestamps are read in (the platform's clock)."""
STATE_ZONES = {
    "AC": "America/Rio_Branco",
    "AL": "America/Maceio",
    "AM": "America/Manaus",
    "AP": "America/Belem",
    "BA": "America/Bahia",
    "CE": "America/Fortaleza",
    "MA": "America/Fortaleza",
    "MS": "America/Campo_Grande",
    "MT": "America/Cuiaba",
    "PA": "America/Belem",
    "PB": "America/Fortaleza",
    "PE": "America/Recife",
    "PI": "America/Fortaleza",
    "RN": "America/Fortaleza",
    "RO": "America/Porto_Velho",
    "RR": "America/Boa_Vista",
    "SE": "America/Maceio",
    "TO": "America/Araguaina",
}
"""Brazilian states off São Paulo's zone rules (the others, DF, ES, GO, MG, PR, RJ, RS, SC and SP,
keep São Paulo's)."""

STORE_CURVE: tuple[float, ...] = (
    # Relative till activity by local clock hour (0 h first), used only inside opening hours.
    0.2, 0.2, 0.2, 0.2, 0.2, 0.25,  # 00-06: the odd 24-hour store
    0.35, 0.45, 0.6, 0.75, 0.9, 1.05,  # 06-12: the morning ramp
    1.25, 1.2, 1.05, 1.0, 1.1, 1.25,  # 12-18: lunchtime peak, afternoon, after-work rise
    1.25, 1.0, 0.8, 0.6, 0.4, 0.3,  # 18-24: after-work peak, the evening tail
)  # fmt: skip
STORE_SOURCE = (
    "documented shape, not data (no hourly store sales in ../shared/data): lunchtime peak 12-14 h and "
    "after-work peak 17-19 h as reported by retail foot-traffic counts (Zenreach 2020 WiFi walk-ins), "
    "restricted to each store's opening hours"
)


@dataclass(frozen=True)
class HourlyShape:
    web: tuple[float, ...]
    """Webshop orders by the customers' local hour, 0 h first, mean 1."""
    store: tuple[float, ...] = STORE_CURVE
    """Till activity by the store's local hour, 0 h first (rescaled to its opening hours per day)."""
    web_source: str = ""
    store_source: str = STORE_SOURCE

    def web_factor(self, local: datetime) -> float:
        """Webshop orders at this local time against the day's mean rate."""
        return self.web[local.hour]

    def to_json(self, derived_by: str) -> str:
        """The committed file: one line per curve, so a re-derivation diffs curve by curve."""
        web = json.dumps({"source": self.web_source, "hour": list(self.web)}, ensure_ascii=False)
        store = json.dumps({"source": self.store_source, "hour": list(self.store)}, ensure_ascii=False)
        head = f'{{\n "derived_by": {json.dumps(derived_by)},\n'
        return f'{head} "web": {web},\n "store": {store}\n}}\n'


def load_hours(path: Path = HOURLY_SHAPE) -> HourlyShape:
    document = json.loads(path.read_text())
    web = tuple(float(x) for x in document["web"]["hour"])
    store = tuple(float(x) for x in document["store"]["hour"])
    if len(web) != HOURS or len(store) != HOURS or min(web + store) < 0 or not sum(web) or not sum(store):
        raise ValueError(f"{path}: needs 24 non-negative web and store factors, not all 0")
    return HourlyShape(web, store, document["web"].get("source", ""), document["store"].get("source", ""))


# --- the webshop curve from Olist -----------------------------------------------------------------


def customer_hour(placed_at: str, dest_region: str) -> int:
    """The customer's local hour of an Olist timestamp (São Paulo wall clock, no zone)."""
    placed = datetime.fromisoformat(placed_at).replace(tzinfo=zone(OLIST_CLOCK))
    state = dest_region.removeprefix("BR-")
    return placed.astimezone(zone(STATE_ZONES.get(state, OLIST_CLOCK))).hour


def derive_web_hours(path: Path) -> tuple[float, ...]:
    """Orders per local hour over the mean hour (mean 1), from an Olist deliveries file."""
    counts = [0] * HOURS
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as f:
        for row in csv.DictReader(f):
            counts[customer_hour(row["placed_at"], row["dest_region"])] += 1
    total = sum(counts)
    if not total:
        raise ValueError(f"{path}: no orders")
    return tuple(round(n * HOURS / total, 3) for n in counts)


def derive_hours(path: Path) -> HourlyShape:
    source = (
        f"{path.name}: hour of day of the orders' placed_at, read as São Paulo time and converted to "
        "the customer's state zone"
    )
    return HourlyShape(derive_web_hours(path), STORE_CURVE, source, STORE_SOURCE)


# --- stores: the curve inside their opening hours ------------------------------------------------


def _open_minutes(cal: Calendar, local: datetime) -> tuple[tuple[int, int], ...]:
    day = local.date()
    return () if day in cal.closed_dates else cal.weekly[day.weekday()]


class StoreHours:
    """Each store's till activity at an instant against its local day's mean (0 while closed)."""

    def __init__(self, shape: HourlyShape, stores: Sequence[LocationRecord]) -> None:
        self.curve = shape.store
        self._stores = {s.location_id: s for s in stores}
        self._calendars: dict[tuple[str, int], Calendar] = {}
        self._day_mean: dict[tuple[str, date], float] = {}

    def _calendar(self, store_id: str, year: int) -> Calendar:
        """The store's calendar with the public holidays of ``year`` (and its neighbours)."""
        key = (store_id, year)
        if key not in self._calendars:
            s = self._stores[store_id]
            years = (year - 1, year, year + 1)
            self._calendars[key] = calendar(
                s.timezone, s.opening_hours, s.country, s.subdivision, s.closed_dates, years
            )
        return self._calendars[key]

    def factor(self, store_id: str, at: datetime) -> float:
        local = at.astimezone(zone(self._stores[store_id].timezone))
        intervals = _open_minutes(self._calendar(store_id, local.year), local)
        minute = local.hour * 60 + local.minute
        if not any(start <= minute < end for start, end in intervals):
            return 0.0
        key = (store_id, local.date())
        if key not in self._day_mean:
            self._day_mean[key] = self._open_mean(intervals)
        return self.curve[local.hour] / self._day_mean[key]

    def _open_mean(self, intervals: tuple[tuple[int, int], ...]) -> float:
        """The curve's integral over the open minutes, over the whole day's 1440 minutes: so the
        factor, integrated over the 24 hours, averages 1."""
        weighted = sum(self.curve[m // 60] for start, end in intervals for m in range(start, min(end, 1440)))
        return weighted / (HOURS * 60)


class WebArrivals:
    """When webshop customers come: a Poisson process whose rate follows the web curve on the
    webshop's local time (flat without a shape). Thinning: candidates arrive at the busiest hour's
    rate, and each stays with the chance of its hour's rate over that."""

    def __init__(
        self, orders_per_minute: float, shape: HourlyShape | None, tz: str, rng: random.Random
    ) -> None:
        self.shape, self.zone, self.rng = shape, zone(tz), rng
        self.peak = max(shape.web) if shape is not None else 1.0
        self.rate_per_s = orders_per_minute * self.peak / 60.0

    def next_gap_s(self) -> float:
        """Seconds to the next candidate."""
        return self.rng.expovariate(self.rate_per_s)

    def stays(self, at: datetime) -> bool:
        """Whether the candidate arriving at ``at`` is a customer (always, without a shape)."""
        if self.shape is None:
            return True
        return self.rng.random() * self.peak < self.shape.web_factor(at.astimezone(self.zone))


def web_zone(stores: Sequence[LocationRecord]) -> str:
    """The webshop's local time: the zone most of the network's stores are in."""
    zones = [s.timezone for s in stores]
    return max(sorted(set(zones)), key=zones.count) if zones else "UTC"


def describe(shape: HourlyShape) -> str:
    lines = ["hour  web    store"]
    lines += [f"{h:02d}    {shape.web[h]:.3f}  {shape.store[h]:.2f}" for h in range(HOURS)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m oms_streams.tools.hourly_shape", description=__doc__)
    parser.add_argument("--data", type=Path, required=True, metavar="OLIST.csv[.gz]")
    parser.add_argument("--out", type=Path, default=HOURLY_SHAPE, metavar="HOURS.json")
    args = parser.parse_args(argv)
    shape = derive_hours(args.data)
    args.out.write_text(
        shape.to_json(f"python -m oms_streams.tools.hourly_shape --data {args.data} --out {args.out}")
    )
    print(describe(shape))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
