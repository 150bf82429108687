"""``oms report``'s figures on small hand-made records (no broker), and the page they render."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from pydantic import BaseModel

from oms_streams.cli import build_parser
from oms_streams.domain.visibility import Location, LocationType, haversine_km
from oms_streams.schemas.availability import AvailabilityRecord
from oms_streams.schemas.cancellations import OrderCancellationOutcome
from oms_streams.schemas.dlq import DeadLetter
from oms_streams.schemas.orders import FulfilmentEvent, OrderAtRisk, OrderPlaced
from oms_streams.schemas.returns import ReturnProcessed
from oms_streams.schemas.sourcing import Allocation, OrderSourced
from oms_streams.tools.report import Window, compute, nearest_first, parse_instant
from oms_streams.tools.report_reader import ReportInput
from oms_streams.tools.report_render import render_html

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
HOME = {"lat": 52.09, "lon": 5.11, "region": "NL-UT"}
_seq = iter(range(1_000_000))
M = TypeVar("M", bound=BaseModel)


def _wire(model: type[M], fields: dict[str, Any]) -> M:
    """As a consumer decodes it: from JSON (the wire models are strict about Python objects)."""
    return model.model_validate_json(json.dumps(fields))


def _id() -> str:
    return f"ev-{next(_seq)}"


def _at(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).isoformat()


def placed(
    order_id: str, *, at: float = 0, window_end: float = 48, method: str = "standard", **extra: Any
) -> OrderPlaced:
    return _wire(
        OrderPlaced,
        {
            "event_id": _id(),
            "occurred_at": _at(at),
            "source": "webshop",
            "order_id": order_id,
            "cart": [{"sku": "SKU-A", "quantity": 1}],
            "destination": HOME,
            "option": {
                "option_id": method,
                "method": method,
                "window_start": _at(window_end - 12),
                "window_end": _at(window_end),
                "confidence": extra.pop("confidence", 0.9),
                "parcels": 1,
                "co2e_g": 100.0,
                "shipments": [
                    {
                        "location_id": "DC-A",
                        "lines": [{"sku": "SKU-A", "quantity": 1}],
                        "ready_at": _at(at),
                        "handover_at": _at(at),
                        "arrives_at": _at(window_end),
                    }
                ],
            },
            **extra,
        },
    )


def trace(
    *candidates: tuple[str, dict[str, int], float | None, str | None], total: int | None = None
) -> dict[str, Any]:
    return {
        "search": "exact",
        "candidates": [
            {"location_id": loc, "held": held, "distance_km": km, "filtered": filtered, "cost": None}
            for loc, held, km, filtered in candidates
        ],
        "candidates_total": total if total is not None else len(candidates),
        "filtered_counts": {},
        "plans_evaluated": 1,
        "splits": 1,
        "splits_lower_bound": 1,
        "cost": 1.0,
        "cost_lower_bound": 1.0,
        "gap": 0.0,
        "winning": "x",
    }


def allocation(
    order_id: str,
    location: str,
    lines: dict[str, int],
    *,
    round: int = 1,
    shipment: int = 0,
    km: float = 10.0,
    co2e_g: float = 1400.0,
    kind: str = "allocate",
    method: str = "standard",
    at: float = 0.01,
    trace: dict[str, Any] | None = None,
) -> Allocation:
    return _wire(
        Allocation,
        {
            "event_id": _id(),
            "occurred_at": _at(at),
            "source": "oms",
            "kind": kind,
            "allocation_id": f"{order_id}:{round}:{shipment}",
            "order_id": order_id,
            "round": round,
            "shipment": shipment,
            "location_id": location,
            "lines": [{"sku": s, "quantity": q} for s, q in lines.items()],
            "method": method,
            "destination": HOME,
            "distance_km": km,
            "co2e_g": co2e_g,
            "trace": trace,
        },
    )


def sourced(
    order_id: str, outcome: str = "allocated", *, round: int = 1, trace: dict[str, Any] | None = None
) -> OrderSourced:
    return _wire(
        OrderSourced,
        {
            "event_id": _id(),
            "occurred_at": _at(0.01),
            "source": "oms",
            "order_id": order_id,
            "round": round,
            "outcome": outcome,
            "allocations": [],
            "attempts": 1,
            "trace": trace,
        },
    )


def fulfilment(order_id: str, kind: str, at: float, **fields: Any) -> FulfilmentEvent:
    return _wire(
        FulfilmentEvent,
        {
            "event_id": _id(),
            "occurred_at": _at(at),
            "source": "carrier",
            "order_id": order_id,
            "kind": kind,
            **fields,
        },
    )


def at_risk(order_id: str, status: str, reason: str | None, at: float = 1, **fields: Any) -> OrderAtRisk:
    return _wire(
        OrderAtRisk,
        {
            "event_id": _id(),
            "occurred_at": _at(at),
            "source": "oms",
            "order_id": order_id,
            "status": status,
            "reason": reason,
            "promised_by": _at(48),
            "promise_version": 1,
            **fields,
        },
    )


def cancellation(
    order_id: str, outcome: str, cancelled: int, refused: int = 0, whole: bool = False
) -> OrderCancellationOutcome:
    return _wire(
        OrderCancellationOutcome,
        {
            "event_id": _id(),
            "occurred_at": _at(2),
            "source": "oms",
            "order_id": order_id,
            "request_id": _id(),
            "outcome": outcome,
            "lines": [
                {
                    "sku": "SKU-A",
                    "status": "cancelled" if cancelled else "shipped",
                    "cancelled_quantity": cancelled,
                    "refused_quantity": refused,
                }
            ],
            "withdrawn_allocations": [],
            "open_lines": [],
            "order_cancelled": whole,
            "requested_at": _at(2),
        },
    )


def returned(handling: str, km_avoided: float, units: dict[str, int]) -> ReturnProcessed:
    return _wire(
        ReturnProcessed,
        {
            "event_id": _id(),
            "return_id": _id(),
            "order_id": None,
            "location_id": "STORE-X",
            "handling": handling,
            "processed_at": _at(3),
            "items": [
                {
                    "item_key": disposition,
                    "sku": "SKU-A",
                    "quantity": q,
                    "grade": "as_new",
                    "disposition": disposition,
                    "rule": "default",
                    "movement_event_id": None,
                    "routed_to": None,
                }
                for disposition, q in units.items()
            ],
            "km_avoided": km_avoided,
        },
    )


def availability(sku: str, at: float, protected: dict[str, int]) -> AvailabilityRecord:
    return _wire(
        AvailabilityRecord,
        {
            "sku": sku,
            "published_at": _at(at),
            "rules_version": "1",
            "network_atp": 10,
            "channels": {},
            "protected": protected,
        },
    )


def dead_letter(reason: str, topic: str) -> DeadLetter:
    return _wire(
        DeadLetter,
        {
            "reason": reason,
            "source_topic": topic,
            "source_partition": 0,
            "source_offset": 1,
            "key": None,
            "key_encoding": "utf-8",
            "payload": "{}",
            "payload_encoding": "utf-8",
            "failed_at": _at(1),
        },
    )


LOCATIONS = {
    "DC-A": Location("DC-A", LocationType.DC, lat=52.5, lon=6.0),
    "DC-B": Location("DC-B", LocationType.DC, lat=51.5, lon=5.0),
    "STORE-X": Location("STORE-X", LocationType.STORE, lat=52.1, lon=5.12),
    "STORE-Y": Location("STORE-Y", LocationType.STORE, lat=52.0, lon=5.0),
    "STORE-Z": Location("STORE-Z", LocationType.STORE, lat=52.09, lon=5.11),
}


# --- parcels per order ------------------------------------------------------------------------------


def test_parcels_per_order_are_allocations_net_of_cancels() -> None:
    data = ReportInput(
        placed=[placed("A"), placed("B"), placed("C"), placed("D")],
        allocations=[
            allocation("A", "DC-A", {"SKU-A": 1}, km=100, co2e_g=14_000),
            allocation("B", "DC-A", {"SKU-A": 1}, km=100, co2e_g=14_000),
            allocation("B", "DC-B", {"SKU-B": 1}, shipment=1, km=50, co2e_g=7_000),
            allocation("C", "DC-A", {"SKU-A": 1}),
            allocation("C", "DC-A", {"SKU-A": 1}, kind="cancel"),
            allocation("D", "DC-A", {"SKU-A": 1}, km=100),
            allocation("D", "DC-A", {"SKU-A": 1}, kind="cancel"),  # short pick: sourced again
            allocation("D", "DC-B", {"SKU-A": 1}, round=2, km=40, co2e_g=5_600),
        ],
        sourced=[sourced("A"), sourced("B"), sourced("C"), sourced("D"), sourced("D", round=2)],
    )
    # A redelivered allocation changes nothing.
    data.allocations.append(data.allocations[0])

    orders = compute(data).orders

    assert orders.orders == 4 and orders.shipped_orders == 3 and orders.fully_cancelled == 1
    assert orders.parcels == {1: 2, 2: 1}
    assert orders.parcels_per_order == pytest.approx(4 / 3)
    assert sorted(orders.km) == [40, 100, 150]
    assert sorted(orders.co2e_g) == [5_600, 14_000, 21_000]
    assert orders.resourced == 1 and orders.outcomes == {"allocated": 4}
    assert orders.methods == {"standard": 4}


def test_the_window_takes_orders_by_their_first_placement_and_all_their_later_records() -> None:
    data = ReportInput(
        placed=[placed("EARLY", at=-30), placed("IN", at=1)],
        allocations=[allocation("EARLY", "DC-A", {"SKU-A": 1}), allocation("IN", "DC-A", {"SKU-A": 1})],
        fulfilment=[fulfilment("IN", "delivered", at=200, location_id="DC-A")],  # after until: still counts
    )
    report = compute(data, Window(since=T0, until=T0 + timedelta(hours=24)))
    assert report.orders.orders == 1 and report.promise.completed == 1


def test_parse_instant_reads_naive_times_as_utc() -> None:
    assert parse_instant("2025-03-03T09:00") == T0
    assert parse_instant("2025-03-03T10:00+01:00") == T0


# --- baselines --------------------------------------------------------------------------------------


def test_nearest_first_follows_the_bench_rules() -> None:
    cart = [("S1", 2), ("S2", 1)]
    ranked = [(10.0, "NEAR"), (20.0, "MID"), (30.0, "FAR")]
    held = {"NEAR": {"S1": 1}, "MID": {"S1": 2}, "FAR": {"S1": 1, "S2": 1}}
    # By location: NEAR holds no line whole, MID takes S1, FAR takes S2.
    assert nearest_first(cart, ranked, held, by_location=True) == {"MID": [("S1", 2)], "FAR": [("S2", 1)]}
    # Per line: the same here; a line no one holds whole is split nearest first.
    assert nearest_first([("S1", 3)], ranked, held, by_location=False) == {
        "NEAR": [("S1", 1)],
        "MID": [("S1", 2)],
    }
    assert nearest_first([("S2", 2)], ranked, held, by_location=False) is None


def test_baselines_come_from_the_decision_trace() -> None:
    dest_to_dc_a = haversine_km(52.5, 6.0, HOME["lat"], HOME["lon"])
    decision = trace(
        ("DC-B", {"S1": 5, "S2": 5}, 150.0, None),
        ("DC-A", {"S1": 5}, None, None),  # no km in the trace: from the locations topic
        ("STORE-X", {"S1": 5}, 10.0, None),
        ("STORE-Y", {"S2": 5}, 20.0, "cannot deliver by 2025-03-05"),  # late only: naive rules use it
        ("STORE-Z", {"S1": 5, "S2": 5}, 1.0, "no carrier service collects here"),  # never
        total=30,
    )
    data = ReportInput(
        placed=[placed("O")],
        allocations=[allocation("O", "DC-B", {"S1": 1, "S2": 1}, km=150, co2e_g=21_000, trace=decision)],
        sourced=[sourced("O", trace=decision)],
        locations=LOCATIONS,
    )

    b = compute(data).baselines

    assert b.skipped == {} and b.truncated_traces == 1
    assert (b.engine.orders, b.engine.parcels, b.engine.km, b.engine.co2e_g) == (1, 1, 150, 21_000)
    # Nearest DC: DC-A (nearer) takes S1, DC-B the rest.
    assert b.nearest_dc.parcels == 2
    assert b.nearest_dc.km == pytest.approx(dest_to_dc_a + 150)
    assert b.nearest_dc.co2e_g == pytest.approx(b.nearest_dc.km * 140)  # the order's own g per km
    # Per line: S1 from STORE-X, S2 from STORE-Y.
    assert (b.per_line.parcels, b.per_line.km) == (2, 30)


def test_orders_that_cannot_be_compared_are_counted_with_the_reason() -> None:
    decision = trace(("STORE-X", {"SKU-A": 5}, 10.0, None))
    data = ReportInput(
        placed=[placed(o) for o in ("CC", "PART", "NOTRACE", "NODC")],
        allocations=[
            allocation("CC", "STORE-X", {"SKU-A": 1}, method="click_and_collect"),
            allocation("PART", "DC-A", {"SKU-A": 1}, trace=decision),
            allocation("NOTRACE", "DC-A", {"SKU-A": 1}),
            allocation("NODC", "STORE-X", {"SKU-A": 1}, method="ship_from_store", trace=decision),
        ],
        sourced=[sourced("CC"), sourced("PART", "partially_allocated"), sourced("NOTRACE"), sourced("NODC")],
        locations=LOCATIONS,
    )
    b = compute(data).baselines
    assert b.engine.orders == 0
    assert b.skipped == {
        "click_and_collect (not a home delivery)": 1,
        "not allocated whole in round 1": 1,
        "no decision trace": 1,
        "its DC candidates do not hold the cart": 1,
    }


# --- promise ----------------------------------------------------------------------------------------


def test_on_time_is_the_last_parcel_delivered_or_the_collection_by_the_window_end() -> None:
    data = ReportInput(
        placed=[
            placed("ON", window_end=48),
            placed("LATE", window_end=24),
            placed("TWO", window_end=48),
            placed("OPEN", window_end=10),
            placed("CC", window_end=30, method="click_and_collect", confidence=None),
            placed("GONE", window_end=48),
            placed("NONE", window_end=48),
        ],
        allocations=[
            allocation("ON", "DC-A", {"SKU-A": 1}),
            allocation("LATE", "DC-A", {"SKU-A": 1}),
            allocation("TWO", "DC-A", {"SKU-A": 1}),
            allocation("TWO", "DC-B", {"SKU-A": 1}, shipment=1),
            allocation("OPEN", "DC-A", {"SKU-A": 1}),
            allocation("CC", "DC-A", {"SKU-A": 1}, method="click_and_collect"),
            allocation("GONE", "DC-A", {"SKU-A": 1}),
            allocation("GONE", "DC-A", {"SKU-A": 1}, kind="cancel"),
        ],
        fulfilment=[
            fulfilment("ON", "handed_to_carrier", 5, location_id="DC-A"),
            fulfilment("ON", "delivered", 30, location_id="DC-A"),
            fulfilment("LATE", "delivered", 30, location_id="DC-A"),
            fulfilment("TWO", "delivered", 20, location_id="DC-A"),  # one of two parcels
            fulfilment("CC", "collected", 26),
        ],
        sourced=[sourced("NONE", "rejected")],
    )
    p = compute(data).promise
    assert (p.promised, p.completed, p.on_time, p.not_shipping) == (7, 3, 2, 2)
    assert p.on_time_rate == pytest.approx(2 / 3)
    assert (p.open_orders, p.open_past_window) == (2, 1)  # TWO and OPEN; OPEN's window (10 h) is past
    assert sorted(p.lead_hours) == [26, 30, 30]
    assert sorted(p.promised_hours) == [10, 24, 30, 48, 48, 48, 48]
    assert p.confidences == [0.9] * 6
    assert dict(p.by_method) == {"standard": [2, 1], "click_and_collect": [1, 1]}


# --- the rest ---------------------------------------------------------------------------------------


def test_risk_cancellations_returns_protection_and_dead_letters() -> None:
    risk = at_risk(
        "A", "at_risk", "pick_not_started", suggested_action="re-source", expected_delay_minutes=30
    )
    data = ReportInput(
        at_risk=[
            risk,
            risk,  # a state republished after a restart: same event id
            at_risk("A", "cleared", None),
            at_risk("B", "at_risk", "not_delivered", suggested_action="inform_customer"),
            at_risk("C", "at_risk", "pick_not_started", at=-5),  # before the window
        ],
        cancellations=[
            cancellation("A", "cancelled", 2, whole=True),
            cancellation("B", "partially_cancelled", 1, refused=1),
            cancellation("C", "refused", 0, refused=3),
        ],
        returns=[
            returned("in_store", 12.5, {"restock": 2}),
            returned("shipped", 30.0, {"restock": 1, "unsellable": 1}),
        ],
        availability=[
            availability("S1", 1, {"STORE-X": 3}),
            availability("S2", 2, {"STORE-X": 1, "STORE-Y": 4}),
            availability("S1", 3, {"STORE-X": 1}),
            availability("S2", 30, {"STORE-Y": 9}),  # after the window
        ],
        dead_letters=[
            dead_letter("unknown location: STORE-Q", "t-oms.inventory.movements.v1"),
            dead_letter("unknown location: STORE-R", "t-oms.inventory.movements.v1"),
            dead_letter("malformed JSON", "t-oms.orders.placed.v1"),
        ],
    )
    report = compute(data, Window(since=T0, until=T0 + timedelta(hours=24)), prefix="t-")

    assert report.risk.events == {"pick_not_started": 1, "not_delivered": 1}
    assert (report.risk.orders, report.risk.cleared) == (2, 1)
    assert report.risk.actions == {"re-source": 1, "inform_customer": 1}
    assert report.risk.delays_minutes == [30]

    c = report.cancellations
    assert c.outcomes == {"cancelled": 1, "partially_cancelled": 1, "refused": 1}
    assert (c.units_cancelled, c.units_refused, c.orders_cancelled) == (3, 4, 1)

    r = report.returns
    assert r.receipts == 2 and r.km_avoided == pytest.approx(42.5)
    assert dict(r.by_handling) == {"in_store": [1, 12.5], "shipped": [1, 30.0]}
    assert r.units == {"restock": 3, "unsellable": 1}

    p = report.protection
    assert [units for _, units in p.series] == [3, 8, 6]
    assert p.per_store == {"STORE-X": 2, "STORE-Y": 4} and p.skus == 2 and p.peak == 8

    d = report.dead_letters
    assert d.reasons == {"unknown location": 2, "malformed JSON": 1}
    assert d.topics == {"oms.inventory.movements.v1": 2, "oms.orders.placed.v1": 1}


# --- the page ---------------------------------------------------------------------------------------


def test_the_page_has_every_section_with_its_figures_and_says_when_there_is_no_data() -> None:
    pytest.importorskip("matplotlib")
    decision = trace(("DC-A", {"SKU-A": 5}, 100.0, None), ("STORE-X", {"SKU-A": 5}, 10.0, None))
    data = ReportInput(
        placed=[placed("A")],
        allocations=[allocation("A", "DC-A", {"SKU-A": 1}, km=100, co2e_g=14_000, trace=decision)],
        sourced=[sourced("A", trace=decision)],
        fulfilment=[fulfilment("A", "delivered", 20, location_id="DC-A")],
        locations=LOCATIONS,
        records={"oms.fulfilment.allocations.v1": 1},
    )
    page = render_html(compute(data))

    for anchor in (
        "parcels",
        "baselines",
        "promise",
        "risk",
        "cancellations",
        "returns",
        "protection",
        "dlq",
    ):
        assert f"id='{anchor}'" in page
    assert "id='fact-parcels-per-order'>1.00<" in page
    assert "id='fact-on-time-rate'>100.0 %<" in page
    assert "id='fact-km-vs-per-line'>-900.0 %<" in page  # the engine went 100 km, STORE-X was 10 km
    assert "No order was at risk in this window." in page
    assert "No return was received in this window." in page
    assert page.count("data:image/png;base64,") >= 3

    empty = render_html(compute(ReportInput()))
    assert "No orders were placed or allocated in this window." in empty
    assert "data:image/png" not in empty


def test_the_cli_has_a_report_subcommand() -> None:
    args = build_parser().parse_args(
        ["report", "--bootstrap", "b:9092", "--prefix", "p-", "--since", "2025-03-03", "--out", "r.html"]
    )
    assert (args.bootstrap, args.prefix, args.since, args.out) == ("b:9092", "p-", "2025-03-03", "r.html")
