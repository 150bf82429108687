"""A US state of the Walmart openings file as the demo's network (``oms_streams.tools.demo_network``).

Runs on ``tests/fixtures/walmart_sample.csv`` (the 9 DCs and first 80 stores of AR, OK, MO and KS
of the shared file, rows unchanged), so it needs no ``../shared`` checkout.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from oms_streams.domain.visibility import haversine_km
from oms_streams.schemas.config import NetworkConfig
from oms_streams.tools import demo_network
from oms_streams.tools.demo_network import (
    NO_SITES_EXIT,
    SiteRow,
    SitesMissing,
    find_sites_file,
    pick_region,
    read_sites,
    region_document,
    write_region_network,
)
from oms_streams.tools.simulator import RetailDay
from oms_streams.tools.webshop_sim import HOMES, homes_for

SAMPLE = Path(__file__).resolve().parent.parent / "fixtures" / "walmart_sample.csv"
IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@#+-]*$")


@pytest.fixture(scope="module")
def sites() -> list[SiteRow]:
    return read_sites(SAMPLE)


def network(sites: list[SiteRow], tmp_path: Path, region: str = "MO", **kw: int) -> NetworkConfig:
    return write_region_network(region_document(sites, region, **kw), tmp_path / "net.yaml", region)


def test_a_state_becomes_a_network_the_worker_accepts(sites: list[SiteRow], tmp_path: Path) -> None:
    config = network(sites, tmp_path, "MO", dcs=2, stores=8)

    by_type = {kind: [loc for loc in config.locations if loc.type == kind] for kind in ("dc", "store")}
    assert len(by_type["dc"]) == 2 and len(by_type["store"]) == 8
    assert [loc.location_id for loc in config.locations if loc.type == "third_party"] == ["SUPPLIER-ACME"]
    ids = [loc.location_id for loc in config.locations]
    assert len(set(ids)) == len(ids) and all(IDENTIFIER.match(i) for i in ids)
    assert all(i.startswith("DC-MO-") for i in (loc.location_id for loc in by_type["dc"]))
    for loc in by_type["dc"] + by_type["store"]:
        assert (loc.region, loc.country, loc.subdivision, loc.timezone) == (
            "US-MO",
            "US",
            "MO",
            "America/Chicago",
        )
        assert loc.opening_hours and loc.lat is not None
    for store in by_type["store"]:
        assert {"click_and_collect", "accepts_returns"} <= set(store.capabilities)
        assert ("courier" in store.capabilities) == (store.courier is not None)
    assert any("courier" in s.capabilities for s in by_type["store"])
    assert any("ship_from_store" in s.capabilities for s in by_type["store"])
    assert {s.method for s in config.carrier_services} == {"standard", "green"}
    assert config.visibility_rules is not None and config.promise_policy is not None


def test_every_store_is_on_its_dcs_route_in_driving_order(sites: list[SiteRow], tmp_path: Path) -> None:
    config = network(sites, tmp_path, "AR", dcs=2, stores=6)
    stores = {loc.location_id for loc in config.locations if loc.type == "store"}
    dcs = {loc.location_id for loc in config.locations if loc.type == "dc"}

    assert {route.origin_id for route in config.routes} == dcs
    served = [stop.location_id for route in config.routes for stop in route.stops]
    assert sorted(served) == sorted(stores)  # each store once
    for route in config.routes:
        minutes = [stop.travel_minutes for stop in route.stops]
        assert minutes == sorted(minutes) and minutes[0] >= 0


def test_dcs_take_their_nearest_stores_in_turn(sites: list[SiteRow]) -> None:
    clusters = pick_region(sites, "MO", dcs=2, stores=6)
    in_state = [s for s in sites if s.state == "MO" and not s.is_dc]
    assert [len(c) for c in clusters.values()] == [3, 3]
    first_dc = next(iter(clusters))
    nearest = min(in_state, key=lambda s: haversine_km(first_dc.lat, first_dc.lon, s.lat, s.lon))
    assert clusters[first_dc][0] == nearest
    assert all(dc.state == "MO" and dc.is_dc for dc in clusters)


def test_a_state_without_a_dc_is_served_by_the_nearest_ones() -> None:
    near = SiteRow("DistributionCenter", "Near", "AA", 40.0, -90.0, "1990-01-01")
    far = SiteRow("DistributionCenter", "Far", "AA", 30.0, -80.0, "1980-01-01")
    store = SiteRow("SuperCenter", "Town", "BB", 40.1, -90.1, "2000-01-01")
    clusters = pick_region([far, near, store], "BB", dcs=1, stores=3)
    assert clusters == {near: [store]}


def test_an_unknown_state_is_refused(sites: list[SiteRow]) -> None:
    with pytest.raises(ValueError, match="no stores in state 'ZZ'"):
        region_document(sites, "ZZ")


def test_without_the_shared_file_the_tool_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SitesMissing):
        find_sites_file(tmp_path / "missing.csv")
    monkeypatch.setattr(demo_network, "CANDIDATE_SITES", (tmp_path / "a.csv", tmp_path / "b.csv"))
    code = demo_network.main(["--region", "TX", "--out", str(tmp_path / "net.yaml")])
    assert code == NO_SITES_EXIT and not (tmp_path / "net.yaml").exists()


def test_the_tool_writes_the_file_and_the_store_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ok.yaml"
    assert (
        demo_network.main(["--region", "OK", "--out", str(out), "--sites", str(SAMPLE), "--stores", "5"]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "stores 5"
    assert lines[-2].startswith("try ") and lines[-2].endswith(" US-OK")
    assert out.read_text().startswith("# The demo network of OK")


def test_the_simulators_run_on_a_state_network(sites: list[SiteRow], tmp_path: Path) -> None:
    config = network(sites, tmp_path, "MO", dcs=2, stores=8)
    clock = iter(datetime(2026, 3, 2, 12, 0, i, tzinfo=UTC) for i in range(10_000))
    day = RetailDay(config, seed=1, run_id="t", clock=lambda: next(clock))
    counted = {p.location_id for item in day.opening() if item.kind == "count" for p in item.model.positions}  # type: ignore[attr-defined]
    assert counted == {loc.location_id for loc in config.locations if loc.type in ("dc", "store")}

    homes = homes_for(config)
    assert homes and not set(homes) & set(HOMES)  # Dutch homes are no customers of Missouri stores
    stores = [loc for loc in config.locations if loc.type == "store"]
    for _, lat, lon, region in homes:
        assert region == "US-MO"
        assert min(haversine_km(lat, lon, s.lat or 0, s.lon or 0) for s in stores) <= 8.5
