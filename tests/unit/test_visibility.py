"""What each sales channel may see of the physical stock, and what the rules cost."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oms_streams.domain.inventory import StockPosition, available_to_promise
from oms_streams.domain.visibility import (
    DEFAULT_RULES,
    ChannelRule,
    HiddenBy,
    Location,
    LocationType,
    RunningAvailability,
    SafetyStock,
    VisibilityRules,
    combine,
    distances_within,
    haversine_km,
    location_view,
    publication_signature,
    sku_availability,
    visible_quantity,
)
from tests.unit.builders import (
    SKU,
    a_channel,
    a_dc,
    a_position,
    a_store,
    a_supplier,
    network,
    some_rules,
)

DC, STORE, THIRD_PARTY = LocationType.DC, LocationType.STORE, LocationType.THIRD_PARTY
UTRECHT = (52.0907, 5.1214)
AMSTERDAM = (52.3676, 4.9041)
ROTTERDAM = (51.9244, 4.4777)

# --- strategies: random networks with readable ids ------------------------------------------------

LOCATION_IDS = {
    "DC-NORTH": DC,
    "DC-SOUTH": DC,
    "STORE-UTRECHT-01": STORE,
    "STORE-AMSTERDAM-02": STORE,
    "STORE-ROTTERDAM-03": STORE,
    "SUPPLIER-ACME": THIRD_PARTY,
    "SUPPLIER-BOLT": THIRD_PARTY,
}
SKUS = ["SKU-BIKE-LIGHT", "SKU-PUMP"]
CHANNELS = ["webshop", "marketplace", "click_and_collect", "b2b"]
units = st.integers(-3, 30)
percent = st.floats(-20, 150, allow_nan=False)


@st.composite
def locations(draw: st.DrawFn, location_id: str | None = None) -> Location:
    location_id = location_id or draw(st.sampled_from(sorted(LOCATION_IDS)))
    return Location(
        location_id=location_id,
        type=LOCATION_IDS[location_id],
        active=draw(st.booleans() | st.just(True)),
        online_cap_pct=draw(st.none() | percent),
    )


stock_positions = st.builds(
    StockPosition,
    on_hand=st.integers(-20, 500),
    reserved=st.integers(-5, 200),
    unsellable=st.integers(-5, 300),
    inbound=st.integers(0, 100),
    lead_time_hours=st.none() | st.integers(0, 300),
)
channel_rules = st.builds(
    ChannelRule,
    channel=st.sampled_from(CHANNELS),
    location_types=st.frozensets(st.sampled_from(list(LocationType))),
    store_cap_applies=st.booleans(),
    max_lead_time_hours=st.none() | st.integers(0, 200),
    low_stock=st.integers(0, 10),
)
safety_stocks = st.builds(
    SafetyStock,
    default=units,
    by_location_type=st.dictionaries(st.sampled_from(list(LocationType)), units),
    by_sku_location=st.dictionaries(
        st.tuples(st.sampled_from(SKUS), st.sampled_from(sorted(LOCATION_IDS))), units
    ),
    by_sku_location_channel=st.dictionaries(
        st.tuples(st.sampled_from(SKUS), st.sampled_from(sorted(LOCATION_IDS)), st.sampled_from(CHANNELS)),
        units,
    ),
)


def visibility_rules(extra: tuple[ChannelRule, ...] = ()) -> st.SearchStrategy[VisibilityRules]:
    return st.builds(
        VisibilityRules,
        channels=st.lists(channel_rules, max_size=3, unique_by=lambda r: r.channel).map(
            lambda cs: (*extra, *(c for c in cs if c.channel not in {e.channel for e in extra}))
        ),
        safety_stock=safety_stocks,
        store_online_cap_pct=percent,
        thresholds_only=st.booleans(),
    )


@st.composite
def networks(draw: st.DrawFn) -> tuple[dict[str, Location], dict[str, StockPosition], dict[str, int]]:
    """Locations, positions (some at locations nobody published) and per-location protection."""
    ids = draw(st.sets(st.sampled_from(sorted(LOCATION_IDS)), min_size=1))
    known = {i: draw(locations(i)) for i in sorted(ids)}
    stocked = draw(st.sets(st.sampled_from([*sorted(ids), "STORE-GHOST-99"])))
    positions = {i: draw(stock_positions) for i in sorted(stocked)}
    protection = draw(st.dictionaries(st.sampled_from(sorted(ids)), st.integers(-2, 20), max_size=3))
    return known, positions, protection


MARKETPLACE_DCS_ONLY = ChannelRule("marketplace", frozenset({DC}), low_stock=3)

# --- properties -----------------------------------------------------------------------------------


@given(
    sku=st.sampled_from(SKUS),
    location=locations(),
    position=stock_positions,
    rule=channel_rules,
    rules=visibility_rules(),
    protection=st.integers(-5, 50),
)
def test_a_channel_never_sees_less_than_nothing_nor_more_than_atp(
    sku, location, position, rule, rules, protection
):
    atp = available_to_promise(position, protection)

    visible, hidden = visible_quantity(sku, location, position, rule, rules, protection)

    assert 0 <= visible <= atp
    assert all(units >= 0 for units in hidden.values())
    # Every unit of ATP is either visible or hidden by exactly one rule (protection is one).
    assert visible + sum(hidden.values()) == available_to_promise(position)


@given(net=networks(), rules=visibility_rules(extra=(MARKETPLACE_DCS_ONLY,)), sku=st.sampled_from(SKUS))
def test_the_marketplace_never_sees_store_stock(net, rules, sku):
    locations_, positions, protection = net

    marketplace = sku_availability(sku, positions, locations_, rules, protection).channel("marketplace")

    assert marketplace is not None
    assert all(locations_[loc].type is DC for loc in marketplace.by_location)
    assert marketplace.total == sum(marketplace.by_location.values())


@given(
    sku=st.sampled_from(SKUS),
    location=locations(),
    position=stock_positions,
    rule=channel_rules,
    rules=visibility_rules(),
    more_unsellable=st.integers(0, 100),
)
def test_unsellable_stock_is_never_visible(sku, location, position, rule, rules, more_unsellable):
    visible, _ = visible_quantity(sku, location, position, rule, rules)
    damaged = replace(position, unsellable=max(0, position.unsellable) + more_unsellable)
    visible_when_damaged, _ = visible_quantity(sku, location, damaged, rule, rules)

    sellable = position.on_hand - max(0, position.reserved) - max(0, position.unsellable)
    assert visible <= max(0, sellable)
    assert visible_when_damaged <= visible
    all_damaged = replace(position, unsellable=max(0, position.on_hand))
    assert visible_quantity(sku, location, all_damaged, rule, rules)[0] == 0


@given(net=networks(), rules=visibility_rules(), sku=st.sampled_from(SKUS))
def test_every_unit_of_atp_is_either_visible_or_accounted_to_a_rule_in_every_channel(net, rules, sku):
    locations_, positions, protection = net
    known_atp = sum(
        available_to_promise(p, protection.get(loc, 0)) for loc, p in positions.items() if loc in locations_
    )

    unprotected_atp = sum(available_to_promise(p) for loc, p in positions.items() if loc in locations_)

    availability = sku_availability(sku, positions, locations_, rules, protection)

    assert availability.network_atp == known_atp
    for view in availability.channels:
        hidden_here = sum(n for (channel, _, _), n in availability.hidden.items() if channel == view.channel)
        # Protection is one of the rules: what it keeps for walk-in shoppers is accounted to it.
        assert view.total + hidden_here == unprotected_atp, view.channel
        assert all(q > 0 for q in view.by_location.values())
        assert "STORE-GHOST-99" not in view.by_location


@given(
    a=st.tuples(st.floats(-89, 89), st.floats(-180, 180)),
    b=st.tuples(st.floats(-89, 89), st.floats(-180, 180)),
)
def test_great_circle_distance_is_symmetric_non_negative_and_at_most_half_the_globe(a, b):
    d = haversine_km(*a, *b)

    assert d == pytest.approx(haversine_km(*b, *a), abs=1e-6)
    assert 0 <= d <= 20_016
    assert haversine_km(*a, *a) == 0


# --- safety stock ---------------------------------------------------------------------------------

LAYERED_SAFETY_STOCK = SafetyStock(
    default=1,
    by_location_type={STORE: 2},
    by_sku_location={(SKU, "STORE-UTRECHT-01"): 3},
    by_sku_location_channel={(SKU, "STORE-UTRECHT-01", "click_and_collect"): 4},
)


@pytest.mark.parametrize(
    ("sku", "location", "channel", "held_back"),
    [
        (SKU, a_store("STORE-UTRECHT-01"), "click_and_collect", 4),
        (SKU, a_store("STORE-UTRECHT-01"), "webshop", 3),
        ("SKU-PUMP", a_store("STORE-UTRECHT-01"), "click_and_collect", 2),
        (SKU, a_store("STORE-AMSTERDAM-02"), "click_and_collect", 2),
        (SKU, a_dc("DC-NORTH"), "webshop", 1),
    ],
    ids=[
        "sku-location-channel",
        "sku-location",
        "location-type-for-another-sku",
        "location-type",
        "global-default",
    ],
)
def test_the_most_specific_safety_stock_wins(sku, location, channel, held_back):
    assert LAYERED_SAFETY_STOCK.for_position(sku, location, channel) == held_back

    rules = some_rules(channels=[a_channel(channel, sees=[DC, STORE])], safety_stock=LAYERED_SAFETY_STOCK)
    visible, hidden = visible_quantity(sku, location, a_position(on_hand=10), rules.channels[0], rules)
    assert visible == 10 - held_back
    assert hidden[HiddenBy.SAFETY_STOCK] == held_back


def test_safety_stock_larger_than_atp_hides_everything_but_never_goes_negative():
    rules = some_rules(safety_stock=SafetyStock(default=50))

    visible, hidden = visible_quantity(SKU, a_dc(), a_position(on_hand=10), rules.channels[0], rules)

    assert (visible, hidden[HiddenBy.SAFETY_STOCK]) == (0, 10)


# --- store cap ------------------------------------------------------------------------------------


def test_a_store_exposes_at_most_the_rules_cap_online():
    webshop = a_channel("webshop", sees=[STORE], store_cap_applies=True)
    rules = some_rules(channels=[webshop], store_online_cap_pct=30)

    visible, hidden = visible_quantity(SKU, a_store(), a_position(on_hand=10), webshop, rules)

    assert visible == 3
    assert hidden[HiddenBy.STORE_CAP] == 7


def test_a_stores_own_online_cap_overrides_the_rules_default():
    webshop = a_channel("webshop", sees=[STORE], store_cap_applies=True)
    rules = some_rules(channels=[webshop], store_online_cap_pct=30)
    generous = a_store("STORE-AMSTERDAM-02", online_cap_pct=50)
    closed_online = a_store("STORE-ROTTERDAM-03", online_cap_pct=0)

    assert visible_quantity(SKU, generous, a_position(on_hand=10), webshop, rules)[0] == 5
    assert visible_quantity(SKU, generous, a_position(on_hand=7), webshop, rules)[0] == 3  # rounds down
    assert visible_quantity(SKU, closed_online, a_position(on_hand=10), webshop, rules)[0] == 0


def test_the_store_cap_limits_only_channels_it_applies_to_and_only_stores():
    click_and_collect = a_channel("click_and_collect", sees=[STORE], store_cap_applies=False)
    webshop = a_channel("webshop", sees=[DC, STORE], store_cap_applies=True)
    rules = some_rules(channels=[click_and_collect, webshop], store_online_cap_pct=30)

    assert visible_quantity(SKU, a_store(), a_position(on_hand=10), click_and_collect, rules)[0] == 10
    assert visible_quantity(SKU, a_dc(), a_position(on_hand=10), webshop, rules)[0] == 10


def test_safety_stock_and_store_cap_each_account_for_the_units_they_hide():
    webshop = a_channel("webshop", sees=[STORE], store_cap_applies=True)
    rules = some_rules(channels=[webshop], safety_stock=SafetyStock(default=2), store_online_cap_pct=50)

    visible, hidden = visible_quantity(SKU, a_store(), a_position(on_hand=10), webshop, rules)

    assert visible == 5
    assert hidden == {HiddenBy.SAFETY_STOCK: 2, HiddenBy.STORE_CAP: 3}


# --- third-party stock, inactive and unknown locations ---------------------------------------------


def test_third_party_stock_beyond_the_channels_lead_time_is_hidden():
    slow = a_supplier("SUPPLIER-ACME")
    positions = {"SUPPLIER-ACME": a_position(on_hand=100, lead_time_hours=96)}

    availability = sku_availability(SKU, positions, network(slow), DEFAULT_RULES)

    assert availability.channel("webshop").total == 0
    assert availability.hidden[("webshop", THIRD_PARTY, HiddenBy.LEAD_TIME)] == 100


@pytest.mark.parametrize("lead_time_hours", [0, 48, 72])
def test_third_party_stock_within_the_lead_time_is_shown_with_its_lead_time(lead_time_hours):
    positions = {"SUPPLIER-ACME": a_position(on_hand=100, lead_time_hours=lead_time_hours)}

    availability = sku_availability(SKU, positions, network(a_supplier("SUPPLIER-ACME")), DEFAULT_RULES)

    assert availability.channel("webshop").by_location == {"SUPPLIER-ACME": 100}
    assert availability.lead_time_hours == {"SUPPLIER-ACME": lead_time_hours}
    assert availability.channel("marketplace").total == 0


def test_lead_time_is_published_only_for_third_party_stock_some_channel_can_see():
    """``SkuAvailability.lead_time_hours`` (and the wire field) is documented as 'per visible
    third-party location'; a supplier every channel hides must not appear there."""
    locations_ = network(a_supplier("SUPPLIER-ACME"), a_supplier("SUPPLIER-BOLT"))
    positions = {
        "SUPPLIER-ACME": a_position(on_hand=100, lead_time_hours=24),
        "SUPPLIER-BOLT": a_position(on_hand=100, lead_time_hours=200),
    }

    availability = sku_availability(SKU, positions, locations_, DEFAULT_RULES)

    assert availability.channel("webshop").by_location == {"SUPPLIER-ACME": 100}
    assert availability.lead_time_hours == {"SUPPLIER-ACME": 24}


def test_an_inactive_location_is_hidden_from_every_channel():
    closed = a_store("STORE-UTRECHT-01", active=False)

    availability = sku_availability(
        SKU, {"STORE-UTRECHT-01": a_position(on_hand=10)}, network(closed), DEFAULT_RULES
    )

    assert all(view.total == 0 and not view.by_location for view in availability.channels)
    assert availability.hidden[("click_and_collect", STORE, HiddenBy.EXPOSURE)] == 10


def test_stock_at_a_location_nobody_published_is_never_visible_nor_counted():
    positions = {"DC-NORTH": a_position(on_hand=10), "DC-GHOST": a_position(on_hand=999)}

    availability = sku_availability(SKU, positions, network(a_dc("DC-NORTH")), DEFAULT_RULES)

    assert availability.network_atp == 10
    assert availability.channel("marketplace").by_location == {"DC-NORTH": 10}


def test_hidden_units_add_up_per_channel_for_a_typical_network():
    locations_ = network(a_dc("DC-NORTH"), a_store("STORE-UTRECHT-01"), a_supplier("SUPPLIER-ACME"))
    positions = {
        "DC-NORTH": a_position(on_hand=20, reserved=5),
        "STORE-UTRECHT-01": a_position(on_hand=10, unsellable=2),
        "SUPPLIER-ACME": a_position(on_hand=50, lead_time_hours=100),
    }
    rules = some_rules(safety_stock=SafetyStock(by_location_type={STORE: 1}), store_online_cap_pct=50)

    availability = sku_availability(SKU, positions, locations_, rules)

    assert availability.network_atp == 15 + 8 + 50
    assert availability.channel("webshop").by_location == {"DC-NORTH": 15, "STORE-UTRECHT-01": 4}
    assert availability.channel("marketplace").by_location == {"DC-NORTH": 15}
    assert availability.channel("click_and_collect").by_location == {"STORE-UTRECHT-01": 7}
    assert availability.hidden == {
        ("webshop", STORE, HiddenBy.SAFETY_STOCK): 1,
        ("webshop", STORE, HiddenBy.STORE_CAP): 3,
        ("webshop", THIRD_PARTY, HiddenBy.LEAD_TIME): 50,
        ("marketplace", STORE, HiddenBy.EXPOSURE): 8,
        ("marketplace", THIRD_PARTY, HiddenBy.EXPOSURE): 50,
        ("click_and_collect", DC, HiddenBy.EXPOSURE): 15,
        ("click_and_collect", STORE, HiddenBy.SAFETY_STOCK): 1,
        ("click_and_collect", THIRD_PARTY, HiddenBy.EXPOSURE): 50,
    }
    for view in availability.channels:
        hidden = sum(n for (channel, _, _), n in availability.hidden.items() if channel == view.channel)
        assert view.total + hidden == availability.network_atp


# --- publication ------------------------------------------------------------------------------------


def signature_at(on_hand: int, *, thresholds_only: bool) -> tuple[object, ...]:
    rules = some_rules(
        channels=[a_channel("webshop", sees=[DC], low_stock=3)], thresholds_only=thresholds_only
    )
    availability = sku_availability(SKU, {"DC-NORTH": a_position(on_hand=on_hand)}, network(a_dc()), rules)
    return publication_signature(availability, rules)


def test_every_change_of_a_visible_quantity_is_published_by_default():
    assert signature_at(10, thresholds_only=False) != signature_at(9, thresholds_only=False)
    assert signature_at(10, thresholds_only=False) == signature_at(10, thresholds_only=False)


@pytest.mark.parametrize(
    ("before", "after", "published"),
    [
        (10, 9, False),
        (5, 4, False),
        (4, 3, True),
        (3, 2, False),
        (1, 0, True),
        (0, 1, True),
        (0, 0, False),
        (3, 4, True),
    ],
    ids=lambda v: str(v),
)
def test_with_thresholds_only_a_change_is_published_only_when_it_crosses_zero_or_low_stock(
    before, after, published
):
    changed = signature_at(before, thresholds_only=True) != signature_at(after, thresholds_only=True)

    assert changed is published


# --- target stock (what return routing reads) ------------------------------------------------------


def test_a_location_is_short_by_its_forecast_demand_plus_safety_stock_minus_what_it_holds():
    rules = some_rules(safety_stock=SafetyStock(default=2))
    store = a_store()

    view = location_view(SKU, store, a_position(on_hand=5, reserved=1, unsellable=1), rules, protection=4)

    assert view.short == (4 + 2) - (5 - 1 - 1)


def test_a_location_at_or_above_target_and_an_inactive_one_are_not_short():
    rules = some_rules(safety_stock=SafetyStock(default=2))

    assert location_view(SKU, a_store(), a_position(on_hand=9), rules, protection=4).short == 0
    assert location_view(SKU, a_store(active=False), a_position(on_hand=0), rules, protection=4).short == 0


def test_a_location_running_short_is_published_even_when_no_channel_sees_a_change():
    # Nothing is visible before or after (protection hides it all), but return routing must learn
    # that the store now lacks units.
    rules = some_rules()
    store = a_store()
    before = sku_availability(
        SKU,
        {store.location_id: a_position(on_hand=3)},
        {store.location_id: store},
        rules,
        {store.location_id: 3},
    )
    after = sku_availability(
        SKU,
        {store.location_id: a_position(on_hand=2)},
        {store.location_id: store},
        rules,
        {store.location_id: 3},
    )

    assert all(view.total == 0 for view in before.channels + after.channels)
    assert after.short == {store.location_id: 1}
    assert publication_signature(before, rules) != publication_signature(after, rules)


# --- geography ------------------------------------------------------------------------------------


def test_utrecht_to_amsterdam_is_about_35_km():
    assert haversine_km(*UTRECHT, *AMSTERDAM) == pytest.approx(35, abs=2)


def test_distances_within_finds_the_stores_close_enough_and_skips_those_without_coordinates():
    stores = [
        a_store("STORE-UTRECHT-01", lat=UTRECHT[0], lon=UTRECHT[1]),
        a_store("STORE-AMSTERDAM-02", lat=AMSTERDAM[0], lon=AMSTERDAM[1]),
        a_store("STORE-ROTTERDAM-03", lat=ROTTERDAM[0], lon=ROTTERDAM[1]),
        a_store("STORE-NOWHERE-04"),
    ]

    assert set(distances_within(stores, *UTRECHT, radius_km=40)) == {"STORE-UTRECHT-01", "STORE-AMSTERDAM-02"}
    assert set(distances_within(stores, *UTRECHT, radius_km=1)) == {"STORE-UTRECHT-01"}
    assert set(distances_within(stores, *UTRECHT, radius_km=60)) == {
        "STORE-UTRECHT-01",
        "STORE-AMSTERDAM-02",
        "STORE-ROTTERDAM-03",
    }


@given(net=networks(), rules=visibility_rules(), sku=st.sampled_from(SKUS), data=st.data())
def test_availability_kept_location_by_location_equals_the_whole_combination(net, rules, sku, data):
    locations_, positions, _ = net  # protection is drawn per put here
    running = RunningAvailability(sku, rules)
    views = {}
    known = [loc for loc in positions if loc in locations_]
    # Views put, replaced and removed in any order end where a fresh combination of the survivors is.
    for loc in data.draw(st.lists(st.sampled_from(known), max_size=12)) if known else []:
        if data.draw(st.booleans()):
            # A location's view replaced by one of other figures, as a movement or a hold makes it.
            position = replace(
                positions[loc],
                on_hand=data.draw(st.integers(0, 60)),
                reserved=data.draw(st.integers(0, 5)),
                unsellable=data.draw(st.integers(0, 3)),
            )
            view = location_view(sku, locations_[loc], position, rules, data.draw(st.integers(0, 8)))
            running.put(view)
            views[loc] = view
        else:
            running.remove(loc)
            views.pop(loc, None)

    expected = combine(sku, views.values(), rules)
    got = running.availability()

    assert got.network_atp == expected.network_atp
    assert [(c.channel, c.total, dict(c.by_location)) for c in got.channels] == [
        (c.channel, c.total, dict(c.by_location)) for c in expected.channels
    ]
    assert got.hidden == {k: v for k, v in expected.hidden.items() if v}
    assert got.lead_time_hours == expected.lead_time_hours and got.protected == expected.protected
    assert got.short == expected.short and got.inbound == expected.inbound
