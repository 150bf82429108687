"""The demo's WMS: late picks that genuinely miss the latest pick start, and the webshop's first
click & collect customer (``fulfilment_sim``, ``webshop_sim``)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from oms_streams.schemas.promise import CartLineModel
from oms_streams.schemas.sourcing import Allocation, MilestoneModel
from oms_streams.streaming.config_publisher import load_network_config
from oms_streams.tools.fulfilment_sim import FaultRates, FulfilmentPlanner, FulfilmentTimes
from oms_streams.tools.webshop_sim import HOMES, Webshop, homes_for

NETWORK = load_network_config(Path(__file__).resolve().parent.parent / "fixtures" / "network.yaml")
NOW = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
NO_FAULTS = FaultRates(late_pick=0.0, short_pick=0.0, store_rejected=0.0, carrier_delay=0.0)


def allocation(order_id: str, pick_due: datetime, method: str = "click_and_collect") -> Allocation:
    return Allocation(
        event_id=f"e-{order_id}",
        occurred_at=NOW,
        source="oms",
        kind="allocate",
        allocation_id=f"{order_id}:1:0",
        order_id=order_id,
        round=1,
        shipment=0,
        location_id="STORE-UTRECHT-01",
        lines=[CartLineModel(sku="SKU-BELL", quantity=1)],
        method=method,  # type: ignore[arg-type]
        pickup_store_id="STORE-UTRECHT-01" if method == "click_and_collect" else None,
        milestones=[MilestoneModel(kind="pick_start", due=pick_due)],
    )


def planner(faults: FaultRates = NO_FAULTS) -> FulfilmentPlanner:
    return FulfilmentPlanner(NETWORK, random.Random(1), FulfilmentTimes(), faults)


def test_the_first_pick_due_now_starts_after_its_milestone() -> None:
    wms = planner(FaultRates(late_pick=0.0, short_pick=0.0, store_rejected=0.0, carrier_delay=0.0))
    due_now = NOW - timedelta(seconds=1)  # click & collect from the shelf: due when placed

    first = wms.plan(allocation("O-1", due_now), now=NOW)[0]
    assert first.kind == "pick_started" and first.not_before == NOW + timedelta(seconds=90)
    assert "late" in first.reason
    # Only the first: the next one starts in seconds, as the store normally does.
    second = wms.plan(allocation("O-2", due_now), now=NOW)[0]
    assert second.not_before is None and second.reason == ""


def test_a_pick_due_hours_ahead_is_not_the_first_late_one() -> None:
    wms = planner()
    far = wms.plan(allocation("O-1", NOW + timedelta(hours=3), "standard"), now=NOW)[0]
    assert far.not_before is None
    near = wms.plan(allocation("O-2", NOW + timedelta(seconds=200)), now=NOW)[0]
    assert near.not_before == NOW + timedelta(seconds=200 + 90)  # within 300 s: this one


def test_a_late_pick_by_share_waits_for_its_own_milestone() -> None:
    wms = planner(FaultRates(late_pick=1.0, first_late_pick_within_s=0, short_pick=0.0, store_rejected=0.0))
    due = NOW + timedelta(hours=3)
    step = wms.plan(allocation("O-1", due, "standard"), now=NOW)[0]
    assert step.not_before == due + timedelta(seconds=90)


def test_no_late_pick_when_switched_off() -> None:
    wms = planner(FaultRates(late_pick=0.0, first_late_pick_within_s=0, short_pick=0.0, store_rejected=0.0))
    assert all(step.not_before is None for step in wms.plan(allocation("O-1", NOW), now=NOW))


def options(*methods_and_starts: tuple[str, str]) -> list[dict[str, Any]]:
    return [
        {"method": m, "window_start": start, "option_id": f"{m}:{i}"}
        for i, (m, start) in enumerate(methods_and_starts)
    ]


def test_the_first_customer_offered_click_and_collect_takes_the_soonest_store() -> None:
    shop = Webshop(NETWORK, (("SKU-BELL", 1),), "http://x", random.Random(5))
    first = shop.choose(
        options(
            ("standard", "2026-03-05T08:00:00+00:00"),
            ("click_and_collect", "2026-03-03T16:00:00+00:00"),
            ("click_and_collect", "2026-03-03T14:20:00+00:00"),
        )
    )
    assert first is not None and first["option_id"] == "click_and_collect:2"
    # Then customers choose by popularity again: standard is chosen about half of the time.
    chosen = [
        shop.choose(
            options(
                ("standard", "2026-03-05T08:00:00+00:00"), ("click_and_collect", "2026-03-03T16:00:00+00:00")
            )
        )
        for _ in range(200)
    ]
    assert 80 < sum(1 for c in chosen if c and c["method"] == "standard") < 190


def test_dutch_homes_for_the_dutch_network() -> None:
    assert homes_for(NETWORK) == HOMES  # Zwolle and Eindhoven too: home delivery from the DCs
