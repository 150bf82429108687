"""Builders for the sourcing tests: the promise tests' Dutch network, stock snapshots, requests and
random split problems.

Stock is written as tests think of it, ``{location id: {sku: units}}``, and turned into the engine's
SKU -> location view. The reference moment is Monday 2024-05-06 10:00 in Amsterdam; by default the
order is promised by Friday 21:00, which every site of the default network makes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from hypothesis import strategies as st

from oms_streams.domain.network import DeliveryMethod, PromiseNetwork
from oms_streams.domain.promise_types import Destination
from oms_streams.domain.sourcing import (
    SourcingPolicy,
    SourcingRequest,
    StockSnapshot,
)
from oms_streams.domain.split_search import SplitCandidate, SplitProblem
from tests.unit.promise_builders import FixedTransit, a_cart, a_network, at, home

NOW = "2024-05-06 10:00"
PROMISED_BY = "2024-05-10 21:00"


def by_sku(by_location: Mapping[str, Mapping[str, int]] | None) -> dict[str, dict[str, int]]:
    view: dict[str, dict[str, int]] = {}
    for location_id, units in (by_location or {}).items():
        for sku, quantity in units.items():
            view.setdefault(sku, {})[location_id] = quantity
    return view


def a_snapshot(
    units: Mapping[str, Mapping[str, int]] | None = None,
    *,
    protected: Mapping[str, Mapping[str, int]] | None = None,
    workload: Mapping[str, int] | None = None,
) -> StockSnapshot:
    """``units`` and ``protected`` per location: ``{"DC-NORTH": {BIKE: 5}}``."""
    return StockSnapshot(
        units=by_sku(units),
        protected=by_sku(protected),
        workload=dict(workload or {}),
    )


def an_order(
    *lines: tuple[str, int],
    method: DeliveryMethod = DeliveryMethod.STANDARD,
    destination: Destination | None = None,
    now: int | str = NOW,
    promised_by: int | str = PROMISED_BY,
    courier_store_id: str | None = None,
    excluded: Iterable[tuple[str, str]] = (),
    excluded_locations: Iterable[str] = (),
    order_id: str = "ORDER-0001",
) -> SourcingRequest:
    return SourcingRequest(
        order_id=order_id,
        lines=a_cart(*lines),
        method=method,
        destination=destination or home(),
        promised_by_ms=at(promised_by) if isinstance(promised_by, str) else promised_by,
        now_ms=at(now) if isinstance(now, str) else now,
        courier_store_id=courier_store_id,
        excluded=frozenset(excluded),
        excluded_locations=frozenset(excluded_locations),
    )


def pickup_at(store_id: str = "STORE-UTRECHT-01") -> Destination:
    return Destination(pickup_store_id=store_id)


@dataclass(frozen=True)
class World:
    """What a decision depends on besides the request."""

    network: PromiseNetwork
    transit: FixedTransit
    policy: SourcingPolicy


def a_world(
    *,
    network: PromiseNetwork | None = None,
    transit: FixedTransit | None = None,
    policy: SourcingPolicy | None = None,
) -> World:
    return World(network or a_network(), transit or FixedTransit(), policy or SourcingPolicy())


# --- random split problems --------------------------------------------------------------------------


def a_problem(
    quantities: Iterable[int],
    held: Mapping[str, Iterable[int]],
    *,
    parcel_costs: Mapping[str, float] | None = None,
    unit_costs: Mapping[str, Iterable[float]] | None = None,
    max_splits: int = 3,
) -> SplitProblem:
    """``held``: location id -> units per line; parcel cost 10.0 unless given."""
    return SplitProblem(
        tuple(quantities),
        [
            SplitCandidate(
                location_id,
                (parcel_costs or {}).get(location_id, 10.0),
                tuple(units),
                tuple((unit_costs or {}).get(location_id, ())),
            )
            for location_id, units in held.items()
        ],
        max_splits,
    )


@st.composite
def split_problems(
    draw: st.DrawFn, *, max_lines: int = 6, max_candidates: int = 12, max_splits: int = 3
) -> SplitProblem:
    """Small instances: sparse stock (so splits and partial plans happen), parcel costs with ties,
    protection costs on some locations."""
    lines = draw(st.integers(1, max_lines))
    quantities = draw(st.lists(st.integers(1, 4), min_size=lines, max_size=lines))
    n = draw(st.integers(1, max_candidates))
    candidates: list[SplitCandidate] = []
    for index in range(n):
        units = draw(
            st.lists(st.sampled_from((0, 0, 0, 1, 2, 3, 5)), min_size=lines, max_size=lines).filter(any)
        )
        cost = draw(st.sampled_from((5.0, 10.0, 10.0, 12.5)) | st.floats(0.0, 500.0))
        protection = draw(
            st.none() | st.lists(st.sampled_from((0.0, 0.0, 7.5, 30.0)), min_size=lines, max_size=lines)
        )
        candidates.append(SplitCandidate(f"LOC-{index:02d}", cost, tuple(units), tuple(protection or ())))
    return SplitProblem(quantities, candidates, draw(st.integers(1, max_splits)))
