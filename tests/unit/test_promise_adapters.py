"""The promise's shell: network config records to calendars, promise and order wire formats, rows."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest

from oms_streams.adapters.network import (
    NetworkConfigError,
    public_holidays,
    to_route,
    to_service,
    to_site,
    weekly_hours,
    weekly_times,
)
from oms_streams.adapters.orders import OrderRow, at_risk_record, decode_fulfilment, decode_placement
from oms_streams.adapters.promise import (
    decode_promise_request,
    option_from_wire,
    option_to_wire,
    parse_query,
    result_to_wire,
)
from oms_streams.adapters.stock import Failure
from oms_streams.adapters.timestamps import epoch_ms
from oms_streams.domain.network import Capability, DeliveryMethod
from oms_streams.domain.orders import Milestone, MilestoneKind, PromiseRecord
from oms_streams.domain.promise_types import CartLine, DeliveryOption, PromiseResult, Shipment, Unavailable
from oms_streams.domain.risk import FulfilmentKind, Risk, RiskReason, SuggestedAction
from oms_streams.metrics import Metrics
from oms_streams.schemas.config import CarrierServiceRecord, LocationRecord, RouteRecord
from oms_streams.schemas.orders import OrderAtRisk
from oms_streams.schemas.promise import DeliveryOptionModel, PromiseResponse
from oms_streams.streaming.config_publisher import load_network_config
from oms_streams.streaming.network import NetworkState

YEARS = (2026, 2027)
T0 = epoch_ms(datetime(2026, 11, 27, 10, 0, tzinfo=UTC))
HOUR = 3_600_000


def a_location_record(**fields: object) -> LocationRecord:
    defaults: dict[str, object] = {
        "location_id": "STORE-UTRECHT-01",
        "type": "store",
        "lat": 52.09,
        "lon": 5.12,
        "region": "NL-UT",
        "timezone": "Europe/Amsterdam",
    }
    return LocationRecord.model_validate({**defaults, **fields})


def an_option(**fields: object) -> DeliveryOption:
    defaults: dict[str, object] = {
        "option_id": "standard",
        "method": DeliveryMethod.STANDARD,
        "window_start_ms": T0 + 30 * HOUR,
        "window_end_ms": T0 + 35 * HOUR,
        "confidence": 0.95,
        "parcels": 1,
        "co2e_g": 1234.5,
        "shipments": (
            Shipment(
                location_id="DC-NORTH",
                lines=(CartLine("SKU-TENT", 1), CartLine("SKU-BIKE-LIGHT", 2)),
                ready_at_ms=T0 + HOUR,
                handover_at_ms=T0 + 8 * HOUR,
                arrives_at_ms=T0 + 30 * HOUR,
                service_id="POSTNL-STANDARD",
                distance_km=85.25,
                transit_source="prior",
            ),
        ),
    }
    return DeliveryOption(**{**defaults, **fields})  # type: ignore[arg-type]


# --- schedules and calendars ----------------------------------------------------------------------


def test_a_single_day_overrides_its_group_and_unnamed_days_are_closed() -> None:
    hours = weekly_hours(
        {"weekdays": ["09:00-21:00"], "fri": ["09:00-12:00", "13:00-22:00"], "sat": ["10:00-17:00"]}
    )
    assert hours[0] == ((540, 1260),)
    assert hours[4] == ((540, 720), (780, 1320))
    assert hours[5] == ((600, 1020),)
    assert hours[6] == ()


def test_daily_is_the_weakest_group() -> None:
    hours = weekly_hours({"sun": ["12:00-17:00"], "daily": ["08:00-20:00"]})
    assert hours[6] == ((720, 1020),) and hours[2] == ((480, 1200),)


def test_weekly_times_are_sorted_by_weekday_and_minute() -> None:
    assert weekly_times({"sat": ["12:00"], "weekdays": ["17:00", "09:30"]})[:3] == (
        (0, 570),
        (0, 1020),
        (1, 570),
    )


def test_an_interval_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="ends before it starts"):
        a_location_record(opening_hours={"mon": ["20:00-08:00"]})


def test_an_unknown_day_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown day"):
        a_location_record(opening_hours={"monday": ["08:00-20:00"]})


def test_public_holidays_come_from_the_holidays_library() -> None:
    site = to_site(a_location_record(country="NL"), YEARS)
    assert site is not None
    assert date(2027, 4, 27) in site.calendar.closed_dates  # King's Day
    assert date(2026, 12, 25) in site.calendar.closed_dates
    assert date(2026, 12, 24) not in site.calendar.closed_dates


def test_explicit_closures_add_to_public_holidays() -> None:
    site = to_site(a_location_record(country="NL", closed_dates=[date(2026, 12, 31)]), YEARS)
    assert site is not None and date(2026, 12, 31) in site.calendar.closed_dates


def test_a_subdivision_has_its_own_holidays() -> None:
    texas = public_holidays("US", "TX", (2027,))
    assert date(2027, 3, 2) in texas  # Texas Independence Day
    assert date(2027, 3, 2) not in public_holidays("US", "CA", (2027,))


def test_an_unknown_time_zone_or_holiday_country_is_a_config_error() -> None:
    with pytest.raises(NetworkConfigError, match="time zone"):
        to_site(a_location_record(timezone="Europe/Atlantis"), YEARS)
    with pytest.raises(NetworkConfigError, match="holiday"):
        to_site(a_location_record(country="XX"), YEARS)


def test_a_location_without_coordinates_or_inactive_cannot_fulfil() -> None:
    assert to_site(a_location_record(lat=None, lon=None), YEARS) is None
    assert to_site(a_location_record(active=False), YEARS) is None


def test_a_location_without_hours_is_always_open_with_its_capabilities() -> None:
    site = to_site(a_location_record(capabilities=["click_and_collect", "ships"]), YEARS)
    assert site is not None
    assert site.calendar.weekly == (((0, 1440),),) * 7
    assert site.capabilities == {Capability.CLICK_AND_COLLECT, Capability.SHIPS}


def test_courier_capability_needs_its_profile() -> None:
    with pytest.raises(ValueError, match="courier profile"):
        a_location_record(capabilities=["courier"])


def test_a_carrier_service_and_a_route_map_to_the_domain() -> None:
    service = to_service(
        CarrierServiceRecord.model_validate(
            {
                "service_id": "POSTNL",
                "carrier": "PostNL",
                "method": "green",
                "pickups": {"mon": ["16:00"], "fri": ["16:00"]},
                "origins": ["DC-NORTH"],
                "timezone": "Europe/Amsterdam",
            }
        ),
        YEARS,
    )
    assert service.method is DeliveryMethod.GREEN and service.pickups == ((0, 960), (4, 960))
    assert service.origins == {"DC-NORTH"} and service.delivery_calendar.weekly[6] == ()
    route = to_route(
        RouteRecord.model_validate(
            {
                "route_id": "R1",
                "origin_id": "DC-NORTH",
                "departures": {"weekdays": ["05:00"]},
                "stops": [{"location_id": "STORE-UTRECHT-01", "travel_minutes": 75}],
            }
        )
    )
    assert route.departures[0] == (0, 300) and route.stops == (("STORE-UTRECHT-01", 75),)


def test_yaml_clock_times_stay_text_even_unquoted(tmp_path: Path) -> None:
    # YAML 1.1 would read 17:00 as the sexagesimal number 1020.
    path = tmp_path / "network.yaml"
    path.write_text(
        "carrier_services:\n"
        "  - {service_id: S, carrier: C, method: standard, pickups: {weekdays: [17:00]},"
        " delivery_hours: {weekdays: [09:00-18:00]}}\n"
    )
    config = load_network_config(path)
    assert config.carrier_services[0].pickups == {"weekdays": ["17:00"]}


# --- the network as a worker follows it -------------------------------------------------------------


def config_record(topic: str, key: str, value: object | None, offset: int = 0) -> SimpleNamespace:
    raw = json.dumps(value).encode() if value is not None else None
    return SimpleNamespace(topic=topic, partition=0, offset=offset, key=key.encode(), value=raw)


TOPICS = {"location": "L", "rules": "R", "carrier_service": "C", "route": "T", "promise_policy": "P"}


def test_the_followed_network_builds_the_promise_network_and_dead_letters_what_it_cannot_use() -> None:
    letters: list[str] = []
    ledger_changes: list[int] = []
    state = NetworkState(
        TOPICS, Metrics(), lambda reason, _: letters.append(reason), lambda: ledger_changes.append(1)
    )
    state.on_records(
        [
            config_record(
                "L", "DC-NORTH", {"location_id": "DC-NORTH", "type": "dc", "lat": 52.5, "lon": 6.1}
            ),
            config_record(
                "L", "STORE-X", {"location_id": "STORE-X", "type": "store", "timezone": "Mars/Olympus"}
            ),
            config_record(
                "C",
                "S1",
                {"service_id": "S1", "carrier": "C", "method": "standard", "pickups": {"daily": ["18:00"]}},
            ),
            config_record(
                "C", "WRONG-KEY", {"service_id": "S2", "carrier": "C", "method": "standard", "pickups": {}}
            ),
            config_record("P", "default", {"quantile": 0.9}),
        ]
    )
    network = state.promise_network
    assert set(network.sites) == {"DC-NORTH"}
    assert [s.service_id for s in network.services] == ["S1"]
    assert network.policy.quantile == 0.9
    assert any("unknown time zone" in reason for reason in letters)
    assert any("is not the carrier_service id" in reason for reason in letters)
    assert ledger_changes == [1]  # a location changed: the ledger resyncs
    generation = state.generation
    state.on_records([config_record("C", "S1", None)])  # tombstone: a carrier service leaves
    assert state.promise_network.services == () and state.generation == generation + 1
    assert ledger_changes == [1]  # nothing the ledger depends on


# --- promise wire -------------------------------------------------------------------------------


def test_an_option_on_the_wire_is_a_valid_option_and_comes_back_the_same() -> None:
    option = an_option()
    wire = option_to_wire(option)
    model = DeliveryOptionModel.model_validate_json(orjson.dumps(wire))
    assert option_from_wire(model) == option


def test_a_promise_result_on_the_wire_is_a_valid_response() -> None:
    result = PromiseResult(
        "REQ-1",
        T0,
        (an_option(),),
        (Unavailable(DeliveryMethod.COURIER, "no courier store within reach"),),
    )
    response = PromiseResponse.model_validate_json(orjson.dumps(result_to_wire(result, 7)))
    assert response.network_generation == 7 and response.unavailable[0].method == "courier"


def request_event(**fields: object) -> dict[str, object]:
    return {
        "event_id": "ev-1",
        "occurred_at": "2026-11-27T10:00:00+01:00",
        "source": "webshop",
        "request_id": "REQ-1",
        "cart": [{"sku": "SKU-TENT", "quantity": 1}],
        "destination": {"lat": 52.09, "lon": 5.11, "region": "NL-UT"},
        **fields,
    }


def test_a_promise_request_is_asked_at_its_occurrence_unless_it_says_otherwise() -> None:
    request = decode_promise_request(b"REQ-1", json.dumps(request_event()).encode())
    assert not isinstance(request, Failure)
    assert request.asked_at_ms == T0 - HOUR and request.methods == frozenset(DeliveryMethod)
    later = decode_promise_request(
        b"REQ-1", json.dumps(request_event(asked_at="2026-11-27T12:00:00Z", methods=["courier"])).encode()
    )
    assert not isinstance(later, Failure)
    assert later.asked_at_ms == T0 + 2 * HOUR and later.methods == {DeliveryMethod.COURIER}


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"REQ-1", b"{", "malformed JSON"),
        (b"REQ-2", json.dumps(request_event()).encode(), "is not the request id"),
        (b"REQ-1", None, "empty message"),
        (b"REQ-1", json.dumps(request_event(cart=[])).encode(), "schema violation at cart"),
        (
            b"REQ-1",
            json.dumps(request_event(destination={"postal_code": "3511"})).encode(),
            "lat/lon or a pickup",
        ),
    ],
)
def test_a_bad_promise_request_is_a_reason(key: bytes, value: bytes | None, reason: str) -> None:
    failure = decode_promise_request(key, value)
    assert isinstance(failure, Failure) and reason in failure.reason


def test_a_cart_names_each_sku_once() -> None:
    body = {
        "cart": [{"sku": "A", "quantity": 1}, {"sku": "A", "quantity": 2}],
        "destination": {"lat": 1, "lon": 2},
    }
    failure = parse_query(json.dumps(body).encode())
    assert isinstance(failure, Failure) and "once" in failure.reason


# --- orders ----------------------------------------------------------------------------------------


def placement(option: dict[str, object] | None = None, cart: list[dict[str, object]] | None = None) -> bytes:
    return json.dumps(
        {
            "event_id": "ev-place",
            "occurred_at": "2026-11-27T10:00:00Z",
            "source": "webshop",
            "order_id": "ORDER-1",
            "cart": cart or [{"sku": "SKU-TENT", "quantity": 1}, {"sku": "SKU-BIKE-LIGHT", "quantity": 2}],
            "destination": {"lat": 52.09, "lon": 5.11, "region": "NL-UT"},
            "option": option or option_to_wire(an_option()),
        }
    ).encode()


def test_an_order_placement_keeps_the_option_verbatim() -> None:
    placed = decode_placement(b"ORDER-1", placement())
    assert not isinstance(placed, Failure)
    assert placed.placed_at_ms == T0 and placed.option_wire["option_id"] == "standard"


def test_an_option_that_does_not_carry_the_cart_is_impossible() -> None:
    failure = decode_placement(b"ORDER-1", placement(cart=[{"sku": "SKU-TENT", "quantity": 1}]))
    assert isinstance(failure, Failure) and failure.reason.startswith("impossible option")


def test_order_events_must_be_keyed_by_order_id() -> None:
    failure = decode_placement(b"SKU-TENT", placement())
    assert isinstance(failure, Failure) and "is not the order id" in failure.reason


def test_a_carrier_delay_needs_its_new_eta() -> None:
    event = {"event_id": "e", "occurred_at": "2026-11-27T10:00:00Z", "source": "carrier", "order_id": "O"}
    failure = decode_fulfilment(b"O", json.dumps({**event, "kind": "carrier_delay"}).encode())
    assert isinstance(failure, Failure) and "new ETA" in failure.reason
    delay = decode_fulfilment(
        b"O", json.dumps({**event, "kind": "carrier_delay", "new_eta": "2026-11-30T12:00:00Z"}).encode()
    )
    assert not isinstance(delay, Failure) and delay.event.kind is FulfilmentKind.CARRIER_DELAY


def a_record(version: int = 1) -> PromiseRecord:
    return PromiseRecord(
        "ORDER-1",
        version,
        T0,
        an_option(),
        (Milestone(MilestoneKind.PICK_START, "DC-NORTH", T0 + 5 * HOUR, 0),),
    )


def test_an_order_row_survives_the_table() -> None:
    row = OrderRow("ORDER-1", ["ev-place"], partition=2)
    placed = decode_placement(b"ORDER-1", placement())
    assert not isinstance(placed, Failure)
    row.set_promise(a_record(), placed.option_wire, placed.destination)
    fulfilment = decode_fulfilment(
        b"ORDER-1",
        json.dumps(
            {
                "event_id": "e1",
                "occurred_at": "2026-11-27T11:00:00Z",
                "source": "wms",
                "order_id": "ORDER-1",
                "kind": "picked",
                "location_id": "DC-NORTH",
            }
        ).encode(),
    )
    assert not isinstance(fulfilment, Failure)
    row.set_events((fulfilment.event,))
    again = OrderRow.decode(row.encode())
    assert again == row
    tracking = again.tracking()
    assert tracking is not None and tracking.record == a_record() and tracking.events == (fulfilment.event,)


def test_at_risk_and_cleared_records_are_valid_at_risk_events() -> None:
    risk = Risk(
        RiskReason.PICK_NOT_STARTED, SuggestedAction.EXPEDITE, 0, "DC-NORTH", MilestoneKind.PICK_START, 90_001
    )
    at_risk = OrderAtRisk.model_validate_json(at_risk_record("RISK-1", a_record(), risk, T0, "test"))
    assert at_risk.status == "at_risk" and at_risk.expected_delay_minutes == 2  # rounded up
    assert at_risk.suggested_action == "expedite" and at_risk.milestone == "pick_start"
    cleared = OrderAtRisk.model_validate_json(at_risk_record("RISK-2", a_record(), None, T0, "test"))
    assert cleared.status == "cleared" and cleared.reason is None
    assert cleared.promised_by == datetime(2026, 11, 28, 21, 0, tzinfo=UTC)
