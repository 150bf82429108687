"""The promise backtest: replays shipment history without looking ahead and scores the promises.

``tests/fixtures/deliveries_small.csv`` (2,000 shipments, about 320 KB) was made by the history
generator of this repo, from the repository root::

    .venv/bin/oms promise history --out tests/fixtures/deliveries_small.csv --orders 2000 --seed 11

over the network ``../shared/data/network/walmart_openings_1962_2006.csv`` (78 DCs, customers around
its stores). It is committed so the test does not depend on that file; regenerating it with the same
command, network and seed gives the same bytes.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from oms_streams.cli import main
from oms_streams.tools.backtest import (
    REQUIRED_COLUMNS,
    BacktestConfig,
    BacktestReport,
    backtest_file,
    end_of_utc_day_ms,
    origin_timezone,
    parse_instant_ms,
    parse_promise_ms,
    read_history,
)
from oms_streams.tools.history import generate_history, load_network

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "deliveries_small.csv"
COLUMNS = (*REQUIRED_COLUMNS, "estimated_delivery")
ONLY_THE_PRIOR = BacktestConfig(quantile=0.95, min_samples=1_000)
"""No lane or origin ever has 1,000 shipments here: every promise is 24 h handling + 72 h transit."""


def a_row(**overrides: str) -> dict[str, str]:
    """A shipment from DC-UTRECHT to a customer in Amsterdam (~35 km); keyword overrides by column."""
    row = {
        "order_id": "ORDER-0001",
        "placed_at": "2024-05-01T10:00:00Z",
        "origin_id": "DC-UTRECHT",
        "origin_lat": "52.0907",
        "origin_lon": "5.1214",
        "origin_region": "NL-UT",
        "dest_postal": "1012AB",
        "dest_lat": "52.3676",
        "dest_lon": "4.9041",
        "dest_region": "NL-NH",
        "handed_to_carrier_at": "2024-05-01T16:00:00Z",
        "delivered_at": "2024-05-02T12:00:00Z",
        "estimated_delivery": "",
    }
    row.update(overrides)
    return row


def deliveries_csv(tmp_path: Path, rows: Iterable[dict[str, str]], columns: Iterable[str] = COLUMNS) -> Path:
    path = tmp_path / "deliveries.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def backtest(
    tmp_path: Path, rows: Iterable[dict[str, str]], config: BacktestConfig = ONLY_THE_PRIOR
) -> BacktestReport:
    return backtest_file(deliveries_csv(tmp_path, rows), config)


def hours(ms: int) -> float:
    return ms / 3_600_000


# --- learning only from the past ------------------------------------------------------------------


def test_order_placed_before_any_delivery_is_promised_from_the_prior(tmp_path: Path) -> None:
    first = a_row(
        order_id="ORDER-0001", placed_at="2024-05-01T10:00:00Z", delivered_at="2024-05-02T12:00:00Z"
    )
    second = a_row(
        order_id="ORDER-0002", placed_at="2024-05-01T11:00:00Z", delivered_at="2024-05-02T13:00:00Z"
    )

    report = backtest(tmp_path, [first, second], BacktestConfig(min_samples=1))

    assert report.transit_sources == {"prior": 2}
    assert report.handling_sources == {"prior": 2}
    # 24 h handling + 72 h (q95 of the prior 24/48/72 h) from 10:00 on 1 May: end of 5 May
    expected = end_of_utc_day_ms(parse_instant_ms("2024-05-05T10:00:00Z"))
    assert report.model.lead_ms[0] == expected - parse_instant_ms("2024-05-01T10:00:00Z")


def test_an_order_learns_from_shipments_delivered_before_it_was_placed(tmp_path: Path) -> None:
    first = a_row(
        order_id="ORDER-0001", placed_at="2024-05-01T10:00:00Z", delivered_at="2024-05-02T12:00:00Z"
    )
    later = a_row(
        order_id="ORDER-0002",
        placed_at="2024-05-03T09:00:00Z",
        handed_to_carrier_at="2024-05-03T15:00:00Z",
        delivered_at="2024-05-04T12:00:00Z",
    )

    report = backtest(tmp_path, [later, first], BacktestConfig(min_samples=1, method="sum"))

    assert report.transit_sources == {"prior": 1, "lane": 1}
    assert report.handling_sources == {"prior": 1, "origin": 1}
    # the first shipment took 6 h handling and 20 h transit (a bucket's upper edge is capped at the
    # exact maximum): 3 May 09:00 + 26 h = 4 May 11:00, so promised by the end of 4 May
    promised = end_of_utc_day_ms(parse_instant_ms("2024-05-04T11:00:00Z"))
    assert report.model.lead_ms[1] == promised - parse_instant_ms("2024-05-03T09:00:00Z")


def test_a_delivery_at_the_very_moment_of_placing_is_not_yet_known(tmp_path: Path) -> None:
    first = a_row(order_id="ORDER-0001", delivered_at="2024-05-02T12:00:00Z")
    same_moment = a_row(
        order_id="ORDER-0002",
        placed_at="2024-05-02T12:00:00Z",
        handed_to_carrier_at="2024-05-02T18:00:00Z",
        delivered_at="2024-05-03T12:00:00Z",
    )

    report = backtest(tmp_path, [first, same_moment], BacktestConfig(min_samples=1))

    assert report.transit_sources == {"prior": 2}


# --- scoring --------------------------------------------------------------------------------------


def five_orders() -> list[dict[str, str]]:
    """All placed 1 May 10:00 UTC, so (prior only) all promised by the end of 5 May."""
    delivered = [
        ("ORDER-0001", "2024-05-03T12:00:00Z"),  # on time, 60 h to spare
        ("ORDER-0002", "2024-05-05T18:00:00Z"),  # on time, 6 h to spare
        ("ORDER-0003", "2024-05-05T23:00:00Z"),  # on time, 1 h to spare
        ("ORDER-0004", "2024-05-06T00:00:00Z"),  # late: the first instant of 6 May
        ("ORDER-0005", "2024-05-07T12:00:00Z"),  # late by 36 h
    ]
    return [a_row(order_id=order_id, delivered_at=at) for order_id, at in delivered]


def test_on_time_rate_lead_time_and_slack_of_five_orders(tmp_path: Path) -> None:
    report = backtest(tmp_path, five_orders()).to_dict()

    model = report["model"]
    assert (model["orders"], model["on_time"], model["on_time_rate"]) == (5, 3, 0.6)
    assert model["slack_hours_median"] == 1.0  # slacks -36, -0.0, 1, 6, 60 h
    assert model["lead_time"] == {
        "median_hours": 110.0,
        "mean_hours": 110.0,
        "median_days": 4.583,
        "mean_days": 4.583,
    }
    assert model["transit_source"] == {"lane": 0.0, "band": 0.0, "service": 0.0, "prior": 1.0}


def test_estimated_delivery_is_scored_as_a_date_or_an_instant(tmp_path: Path) -> None:
    rows = five_orders()
    rows[0]["estimated_delivery"] = "2024-05-03"  # end of 3 May: on time (delivered 3 May 12:00)
    rows[1]["estimated_delivery"] = "2024-05-05T20:00:00+02:00"  # 18:00 UTC: delivered at 18:00, on time
    rows[2]["estimated_delivery"] = "2024-05-04"  # late by 23 h
    rows[3]["estimated_delivery"] = "the day after tomorrow"
    rows[4]["estimated_delivery"] = ""

    report = backtest(tmp_path, rows).to_dict()

    business = report["estimated_delivery"]
    assert (business["orders"], business["on_time"]) == (3, 2)
    assert business["skipped"] == {"bad estimated_delivery": 1, "no estimated_delivery": 1}
    assert business["slack_hours_median"] == 0.0  # slacks -23, 0, 12 h
    assert report["model"]["orders"] == 5  # a bad business promise does not remove the order


def test_without_the_estimated_delivery_column_there_are_no_business_figures(tmp_path: Path) -> None:
    path = deliveries_csv(tmp_path, five_orders(), columns=REQUIRED_COLUMNS)

    report = backtest_file(path, ONLY_THE_PRIOR).to_dict()

    assert report["estimated_delivery"] is None
    assert report["model"]["orders"] == 5


def test_warm_up_orders_teach_but_are_not_scored(tmp_path: Path) -> None:
    early = a_row(order_id="ORDER-0001", placed_at="2024-05-01T10:00:00Z")
    late = a_row(
        order_id="ORDER-0002",
        placed_at="2024-05-20T10:00:00Z",
        handed_to_carrier_at="2024-05-20T16:00:00Z",
        delivered_at="2024-05-21T12:00:00Z",
    )

    report = backtest(tmp_path, [early, late], BacktestConfig(min_samples=1, warmup_days=7))

    assert (report.warmup_orders, report.orders_evaluated) == (1, 1)
    assert report.transit_sources == {"lane": 1}


# --- bad input ------------------------------------------------------------------------------------


def test_bad_rows_are_counted_by_reason_and_the_rest_is_scored(tmp_path: Path) -> None:
    rows = [
        a_row(order_id="ORDER-GOOD"),
        a_row(order_id="ORDER-GOOD"),
        a_row(order_id="ORDER-NO-TIME", placed_at="yesterday"),
        a_row(order_id="ORDER-IN-TRANSIT", delivered_at=""),
        a_row(order_id="ORDER-TIME-TRAVEL", delivered_at="2024-05-01T12:00:00Z"),
        a_row(order_id="ORDER-PRESCIENT", handed_to_carrier_at="2024-05-01T09:00:00Z"),
        a_row(order_id="ORDER-NOWHERE", dest_lat="north"),
        a_row(order_id="ORDER-OFF-THE-MAP", dest_lat="95.0"),
    ]
    path = deliveries_csv(tmp_path, rows)
    with path.open("a") as f:
        f.write("ORDER-SHORT,2024-05-01T10:00:00Z\n")

    report = backtest_file(path, ONLY_THE_PRIOR).to_dict()

    assert report["rows"] == 9
    assert report["orders_evaluated"] == 1
    assert report["skipped"] == {
        "total": 8,
        "by_reason": {
            "bad coordinates": 2,
            "bad timestamp placed_at": 1,
            "delivered before handed to carrier": 1,
            "duplicate order_id": 1,
            "handed to carrier before placed": 1,
            "missing delivered_at": 1,
            "wrong number of fields": 1,
        },
    }


def test_a_file_without_a_required_column_is_refused(tmp_path: Path) -> None:
    path = deliveries_csv(tmp_path, [a_row()], columns=[c for c in COLUMNS if c != "delivered_at"])

    with pytest.raises(ValueError, match="missing columns: delivered_at"):
        backtest_file(path)


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00+00:00"),
        ("2024-05-01T10:00:00", "2024-05-01T10:00:00+00:00"),
        ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00+00:00"),
        ("2024-05-01T10:00:00.250Z", "2024-05-01T10:00:00.250000+00:00"),
    ],
)
def test_timestamps_with_or_without_offset_naive_meaning_utc(text: str, iso: str) -> None:
    assert parse_instant_ms(text) == round(datetime.fromisoformat(iso).timestamp() * 1000)


def test_a_promised_date_means_the_end_of_that_utc_day() -> None:
    end_of_may_first = datetime(2024, 5, 2, tzinfo=UTC).timestamp() * 1000 - 1

    assert parse_promise_ms("2024-05-01") == end_of_may_first


# --- the command ----------------------------------------------------------------------------------


def test_the_command_writes_a_table_and_a_json_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = deliveries_csv(tmp_path, five_orders())
    out = tmp_path / "report.json"

    assert main(["promise", "backtest", "--deliveries", str(path), "--json", str(out)]) == 0

    table = capsys.readouterr().out
    assert "on-time rate" in table and "60.0 %" in table
    report = json.loads(out.read_text())
    assert set(report) == {
        "file",
        "config",
        "rows",
        "orders_evaluated",
        "warmup_orders",
        "skipped",
        "model",
        "estimated_delivery",
        "quarters",
        "reliability",
        "elapsed_s",
    }
    assert set(report["model"]) == {
        "orders",
        "on_time",
        "on_time_rate",
        "lead_time",
        "slack_hours_median",
        "transit_source",
        "handling_source",
        "on_time_rate_by_transit_source",
    }
    assert report["config"] == {
        "quantile": 0.95,
        "min_samples": 30,
        "prior_transit_hours": [24.0, 48.0, 72.0],
        "prior_handling_hours": 24.0,
        "warmup_days": 0.0,
        "method": "lead",
        "half_life_days": 60.0,
        "pooling": 10.0,
        "calibration_rate": 0.0,
        "in_transit": True,
        "reliability_levels": [],
    }
    assert report["quarters"] == [
        {
            "quarter": "2024-Q2",
            "orders": 5,
            "nominal": 0.95,
            "on_time_rate": 0.6,
            "median_days": 4.583,
            "estimated_delivery_on_time_rate": None,
            "estimated_delivery_median_days": None,
        }
    ]


def test_json_to_stdout_leaves_stdout_pure_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = deliveries_csv(tmp_path, five_orders())

    assert main(["promise", "backtest", "--deliveries", str(path), "--json", "-", "--quantile", "0.5"]) == 0

    captured = capsys.readouterr()
    assert json.loads(captured.out)["config"]["quantile"] == 0.5
    assert "on-time rate" in captured.err


def test_a_missing_file_is_reported_not_raised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["promise", "backtest", "--deliveries", str(tmp_path / "nothing.csv")]) == 2
    assert "oms promise" in capsys.readouterr().err


# --- the committed fixture and the generator ------------------------------------------------------


def test_generated_history_is_on_time_at_q95_once_warmed_up() -> None:
    """Loose on purpose: the promise adds two 95 % quantiles (handling and transit) and rounds up to
    the end of the day, so it is more conservative than 95 % (about 99 % on this file); the December
    peak, learned only as it happens, and lanes still on the prior pull it down a little. 0.9 leaves
    room for a regenerated fixture; the first 30 days (prior, thin bands) are not scored."""
    report = backtest_file(FIXTURE, BacktestConfig(quantile=0.95, min_samples=30, warmup_days=30)).to_dict()

    assert report["skipped"]["total"] == 0
    assert report["orders_evaluated"] > 1_500
    assert report["model"]["on_time_rate"] >= 0.9
    assert report["model"]["transit_source"]["prior"] < 0.1
    # the naive business rule (2 or 3 days) promises sooner and is late more often
    business = report["estimated_delivery"]
    assert business["on_time_rate"] < report["model"]["on_time_rate"]
    assert business["lead_time"]["median_hours"] < report["model"]["lead_time"]["median_hours"]


NETWORK_SAMPLE = Path(__file__).resolve().parent.parent / "fixtures" / "walmart_sample.csv"
"""The 9 distribution centres and the first 80 stores in AR, OK, MO and KS of the shared Walmart
network file, rows copied unchanged (so the test runs wherever the shared data is not checked out)."""


def test_history_generator_is_deterministic_and_never_delivers_on_sunday() -> None:
    network = load_network(NETWORK_SAMPLE)

    first = list(generate_history(network, 300, seed=3))
    again = list(generate_history(network, 300, seed=3))
    other = list(generate_history(network, 300, seed=4))

    assert first == again
    assert first != other
    assert len(network.dcs) == 9
    assert first[0]["order_id"] == "ORD-0000001"
    for row in first:
        placed, handed, delivered = (
            parse_instant_ms(row[column]) for column in ("placed_at", "handed_to_carrier_at", "delivered_at")
        )
        assert placed < handed < delivered
        local_solar_s = delivered / 1000 + round(float(row["dest_lon"]) / 15) * 3600
        assert datetime.fromtimestamp(local_solar_s, tz=UTC).weekday() != 6


def test_the_fixture_has_the_documented_shape() -> None:
    with FIXTURE.open(newline="") as f:
        rows = list(csv.DictReader(f))

    assert len(rows) == 2_000
    assert tuple(rows[0]) == COLUMNS


def test_the_lead_method_promises_whole_days_at_its_quantile_and_is_closer_to_it_than_the_sum() -> None:
    """Summing two 95 % quantiles and rounding up to the end of the day over-delivers on 95 %; the
    quantile of whole days from the order's day to the delivery day, per lane, lands nearer to it."""
    warm = {"min_samples": 30, "warmup_days": 30}
    summed = backtest_file(FIXTURE, BacktestConfig(quantile=0.95, method="sum", **warm)).to_dict()["model"]
    lead = backtest_file(FIXTURE, BacktestConfig(quantile=0.95, method="lead", **warm)).to_dict()["model"]
    assert 0.93 <= lead["on_time_rate"] < summed["on_time_rate"]
    assert lead["lead_time"]["median_hours"] < summed["lead_time"]["median_hours"]


def test_a_lead_promise_ends_a_whole_number_of_days_after_the_order_day(tmp_path: Path) -> None:
    report = backtest(tmp_path, [a_row()], BacktestConfig(quantile=0.95, min_samples=1_000, method="lead"))
    model = report.to_dict()["model"]
    placed = parse_instant_ms(a_row()["placed_at"])
    promised_ms = placed + round(model["lead_time"]["median_hours"] * 3_600_000)
    assert (promised_ms - end_of_utc_day_ms(placed)) % 86_400_000 in (0, 86_400_000 - 1, 1)


def test_an_unknown_method_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="method"):
        backtest(tmp_path, [a_row()], BacktestConfig(method="magic"))


# --- real deliveries: a slice of the Olist dev file --------------------------------------------------

OLIST_SLICE = Path(__file__).resolve().parents[1] / "fixtures" / "olist_slice.csv"
"""563 real Olist orders, cut from ``../shared/data/deliveries/olist_dev.csv.gz`` (README beside it)
with the header and every order placed from 1 January to 30 April 2017, from the repository root::

    zcat ../shared/data/deliveries/olist_dev.csv.gz \\
      | awk -F, 'NR==1 || ($2 >= "2017-01-01" && $2 < "2017-05-01")' > tests/fixtures/olist_slice.csv
"""


def test_the_command_on_real_deliveries_reports_quarters_reliability_and_a_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "report.html"
    argv = ["promise", "backtest", "--deliveries", str(OLIST_SLICE), "--warmup-days", "30"]

    assert main([*argv, "--json", "-", "--plot", str(plot)]) == 0

    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["rows"] == 563 and report["skipped"]["total"] == 0
    for side in ("model", "estimated_delivery"):
        assert 0.5 < report[side]["on_time_rate"] <= 1.0
        assert report[side]["lead_time"]["median_days"] > 1.0
    assert [q["quarter"] for q in report["quarters"]] == ["2017-Q1", "2017-Q2"]
    assert sum(q["orders"] for q in report["quarters"]) == report["orders_evaluated"]
    realised = [r["realised"] for r in report["reliability"]]
    medians = [r["median_days"] for r in report["reliability"]]
    nominal = [0.5, 0.6, 0.7, 0.8, 0.9, 0.92, 0.93, 0.95, 0.97, 0.98]
    assert [r["nominal"] for r in report["reliability"]] == nominal
    assert realised == sorted(realised) and medians == sorted(medians)  # higher: never sooner
    assert all(r["quarters_within_2_points"].endswith("/2") for r in report["reliability"])
    assert "2017-Q1" in captured.err and "reliability" in captured.err
    assert plot.read_text().startswith("<!doctype html>") and "data:image/png;base64," in plot.read_text()


def test_a_gzip_file_is_read_like_the_plain_one(tmp_path: Path) -> None:
    packed = tmp_path / "slice.csv.gz"
    packed.write_bytes(gzip.compress(OLIST_SLICE.read_bytes()))

    assert read_history(packed).shipments == read_history(OLIST_SLICE).shipments


def test_dest_postal_is_text_with_its_leading_zeros() -> None:
    postal = {s.order_id: s.dest_postal for s in read_history(OLIST_SLICE).shipments}
    with OLIST_SLICE.open() as f:
        expected = {row["order_id"]: row["dest_postal"] for row in csv.DictReader(f)}

    assert postal == expected
    assert any(code.startswith("0") for code in postal.values())


def test_naive_times_are_read_in_the_origins_zone(tmp_path: Path) -> None:
    row = a_row(
        origin_region="BR-SP",
        placed_at="2017-07-03 10:00:00",  # Sao Paulo, UTC-3 (no daylight saving in July)
        handed_to_carrier_at="2017-07-04 10:00:00",
        delivered_at="2017-07-06 23:30:00",
        estimated_delivery="2017-07-06",
    )
    [shipment] = read_history(deliveries_csv(tmp_path, [row])).shipments

    assert shipment.timezone == "America/Sao_Paulo"
    assert shipment.placed_ms == parse_instant_ms("2017-07-03T13:00:00Z")
    # A promised date ends at local midnight: 03:00 UTC the next day, after the 02:30 UTC delivery.
    assert shipment.estimated_ms == parse_instant_ms("2017-07-07T03:00:00Z") - 1
    assert origin_timezone("NL-UT", "Europe/Amsterdam") == "Europe/Amsterdam"


def test_an_origin_timezone_column_wins_and_an_unknown_zone_is_counted(tmp_path: Path) -> None:
    rows = [
        a_row(order_id="A", placed_at="2024-05-01 10:00:00", origin_timezone="Europe/Amsterdam"),
        a_row(order_id="B", origin_timezone="Mars/Olympus_Mons"),
    ]
    path = deliveries_csv(tmp_path, rows, columns=(*COLUMNS, "origin_timezone"))

    history = read_history(path)

    assert [s.placed_ms for s in history.shipments] == [parse_instant_ms("2024-05-01T08:00:00Z")]
    assert history.skipped == {"unknown origin_timezone": 1}
