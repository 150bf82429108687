"""Store demand shaped on real daily sales: how busy a store is on a given day, relative to its mean.

The shape is derived once from the M5 file (``../shared/data/demand/m5_store_dept_daily.csv.gz``,
real Walmart daily unit sales per store x department) and committed as a small JSON file
(``deploy/demo/demand_shape.json``, a few KB), so the demo runs where the shared data is absent.
Per M5 store, summed over the departments closest to the demo's goods (HOBBIES_1 and HOBBIES_2):

- ``daily_units``: its mean units per open day over the file's last 52 weeks (the store's real rate);
- ``weekday``: ratio to the centred 7-day mean, averaged per weekday (Monday first), mean 1;
- ``month``: ratio to the centred 364-day mean (trend and weekdays removed), averaged per month, mean 1;
- ``closed``: month-days on which the file has no sales row in any of its years (Christmas).

Re-derive with ``python -m oms_streams.tools.demand_shape --data FILE.csv.gz --out FILE.json``.
``StoreDemand`` maps a network's stores onto these profiles (an M5 store of the same US state when
there is one, else all, in turn) and answers each store's relative rate for a local day.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from oms_streams.schemas.config import LocationRecord
from oms_streams.tools.demo_options import DEMAND_SHAPE

DEFAULT_SHAPE = DEMAND_SHAPE
DEFAULT_DEPARTMENTS = ("HOBBIES_1", "HOBBIES_2")
RATE_DAYS = 364
"""The store's rate is its mean over the last 52 weeks of the file."""
SEASON_WINDOW = 364


@dataclass(frozen=True, slots=True)
class StoreProfile:
    store_id: str
    state: str
    daily_units: float
    weekday: tuple[float, ...]
    """Seven factors, Monday first."""
    month: tuple[float, ...]
    """Twelve factors, January first."""
    closed: tuple[str, ...] = ()
    """Month-days (``MM-DD``) the store does not sell."""

    def units(self, day: date) -> float:
        """Expected units on ``day``: rate x weekday x month, 0 on a closed day."""
        if day.strftime("%m-%d") in self.closed:
            return 0.0
        return self.daily_units * self.weekday[day.weekday()] * self.month[day.month - 1]


@dataclass(frozen=True)
class DemandShape:
    profiles: tuple[StoreProfile, ...]
    source: str = ""

    def to_json(self, derived_by: str) -> str:
        """The committed file: one line per store, so a re-derivation diffs store by store."""
        stores = ",\n".join(
            f"  {json.dumps(p.store_id)}: "
            + json.dumps(
                {
                    "state": p.state,
                    "daily_units": p.daily_units,
                    "weekday": list(p.weekday),
                    "month": list(p.month),
                    "closed": list(p.closed),
                }
            )
            for p in self.profiles
        )
        head = f'{{\n "source": {json.dumps(self.source)},\n "derived_by": {json.dumps(derived_by)},\n'
        return f'{head} "stores": {{\n{stores}\n }}\n}}\n'


def load_shape(path: Path = DEFAULT_SHAPE) -> DemandShape:
    document = json.loads(path.read_text())
    profiles = tuple(
        StoreProfile(
            store_id=store_id,
            state=fields["state"],
            daily_units=float(fields["daily_units"]),
            weekday=tuple(float(x) for x in fields["weekday"]),
            month=tuple(float(x) for x in fields["month"]),
            closed=tuple(fields.get("closed", ())),
        )
        for store_id, fields in document["stores"].items()
    )
    if not profiles or any(len(p.weekday) != 7 or len(p.month) != 12 for p in profiles):
        raise ValueError(f"{path}: needs stores with 7 weekday and 12 month factors")
    return DemandShape(profiles, document.get("source", ""))


# --- derivation from the M5 file -------------------------------------------------------------------


def read_daily_units(path: Path, departments: Sequence[str]) -> dict[str, dict[date, float]]:
    """Store -> day -> units summed over ``departments`` (days without a row are absent)."""
    opener = gzip.open if path.suffix == ".gz" else open
    daily: dict[str, dict[date, float]] = defaultdict(dict)
    with opener(path, "rt", newline="") as f:
        for row in csv.DictReader(f):
            if row["dept_id"] in departments:
                day = date.fromisoformat(row["date"])
                by_day = daily[row["store_id"]]
                by_day[day] = by_day.get(day, 0.0) + float(row["sales"])
    return dict(daily)


def _centred_ratios(series: dict[date, float], window: int) -> Iterable[tuple[date, float]]:
    """(day, units / mean of the open days of the centred window) for days with a full window."""
    days = sorted(series)
    first, last = days[0], days[-1]
    half = window // 2
    for day in days:
        start, end = day - timedelta(days=half), day + timedelta(days=window - half - 1)
        if start < first or end > last:
            continue
        values = [series[d] for d in (start + timedelta(days=i) for i in range(window)) if d in series]
        mean = sum(values) / len(values)
        if mean > 0:
            yield day, series[day] / mean


def _factors(ratios: Iterable[tuple[date, float]], bucket_count: int, bucket: Any) -> tuple[float, ...]:
    sums, counts = [0.0] * bucket_count, [0] * bucket_count
    for day, ratio in ratios:
        sums[bucket(day)] += ratio
        counts[bucket(day)] += 1
    raw = [s / c if c else 1.0 for s, c in zip(sums, counts, strict=True)]
    mean = sum(raw) / len(raw)
    return tuple(round(x / mean, 3) for x in raw)


def _closed_days(series: dict[date, float]) -> tuple[str, ...]:
    """Month-days missing in every year the file covers in full around them."""
    first, last = min(series), max(series)
    missing: dict[str, int] = defaultdict(int)
    seen: dict[str, int] = defaultdict(int)
    day = first
    while day <= last:
        key = day.strftime("%m-%d")
        seen[key] += 1
        missing[key] += day not in series
        day += timedelta(days=1)
    return tuple(sorted(k for k, n in missing.items() if n == seen[k] and n >= 2))


def derive_profile(store_id: str, series: dict[date, float]) -> StoreProfile:
    last = max(series)
    recent = [v for d, v in series.items() if d > last - timedelta(days=RATE_DAYS)]
    return StoreProfile(
        store_id=store_id,
        state=store_id.split("_")[0],
        daily_units=round(sum(recent) / len(recent), 1),
        weekday=_factors(_centred_ratios(series, 7), 7, lambda d: d.weekday()),
        month=_factors(_centred_ratios(series, SEASON_WINDOW), 12, lambda d: d.month - 1),
        closed=_closed_days(series),
    )


def derive_shape(path: Path, departments: Sequence[str] = DEFAULT_DEPARTMENTS) -> DemandShape:
    daily = read_daily_units(path, departments)
    if not daily:
        raise ValueError(f"{path}: no rows of departments {', '.join(departments)}")
    profiles = tuple(derive_profile(store, daily[store]) for store in sorted(daily))
    return DemandShape(profiles, f"{path.name}, departments {'+'.join(departments)}")


# --- a network's stores on the profiles ------------------------------------------------------------


class StoreDemand:
    """Each store's relative sales rate on its local day: its profile's units over the mean rate
    of the profiles in use, so the stores average 1 on an average day."""

    def __init__(self, shape: DemandShape, stores: Sequence[LocationRecord]) -> None:
        self._zones = {s.location_id: ZoneInfo(s.timezone) for s in stores}
        self.assigned = assign_profiles(shape, stores)
        used = list(self.assigned.values())
        self._mean_rate = sum(p.daily_units for p in used) / len(used) if used else 1.0
        self._cache: dict[tuple[str, date], float] = {}

    def local_day(self, store_id: str, at: datetime) -> date:
        return at.astimezone(self._zones[store_id]).date()

    def factor(self, store_id: str, at: datetime) -> float:
        """Relative rate of the store at ``at`` (1: an average store on an average day)."""
        day = self.local_day(store_id, at)
        key = (store_id, day)
        if key not in self._cache:
            self._cache[key] = self.assigned[store_id].units(day) / self._mean_rate
        return self._cache[key]

    def network_factor(self, at: datetime) -> float:
        """Mean factor over the stores: how busy the network's tills are today."""
        return sum(self.factor(s, at) for s in self.assigned) / max(1, len(self.assigned))


def assign_profiles(shape: DemandShape, stores: Sequence[LocationRecord]) -> dict[str, StoreProfile]:
    """Stores in id order take the profiles of their own US state in turn, else all profiles."""
    by_state: dict[str, list[StoreProfile]] = defaultdict(list)
    for profile in shape.profiles:
        by_state[profile.state].append(profile)
    taken: dict[str, int] = defaultdict(int)
    assigned: dict[str, StoreProfile] = {}
    for store in sorted(stores, key=lambda s: s.location_id):
        state = store.subdivision if store.country == "US" and store.subdivision in by_state else ""
        pool = by_state[state] if state else list(shape.profiles)
        assigned[store.location_id] = pool[taken[state] % len(pool)]
        taken[state] += 1
    return assigned


def describe(shape: DemandShape, out: TextIO) -> None:
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    for p in shape.profiles:
        weekday = " ".join(f"{d} {f:.2f}" for d, f in zip(days, p.weekday, strict=True))
        print(
            f"{p.store_id:6} {p.daily_units:7.1f} units/day  {weekday}  closed {','.join(p.closed)}", file=out
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m oms_streams.tools.demand_shape", description=__doc__)
    parser.add_argument("--data", type=Path, required=True, metavar="M5.csv[.gz]")
    parser.add_argument("--out", type=Path, default=DEFAULT_SHAPE, metavar="SHAPE.json")
    parser.add_argument("--departments", default=",".join(DEFAULT_DEPARTMENTS))
    args = parser.parse_args(argv)
    shape = derive_shape(args.data, tuple(args.departments.split(",")))
    derived_by = f"python -m oms_streams.tools.demand_shape --data {args.data} --out {args.out}"
    if args.departments != ",".join(DEFAULT_DEPARTMENTS):
        derived_by += f" --departments {args.departments}"
    args.out.write_text(shape.to_json(derived_by))
    describe(shape, sys.stdout)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
