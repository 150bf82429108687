"""Behaviour of visibility that a mutmut run of ``oms_streams/domain/visibility.py`` found unpinned.

Each test names, in the comment above it, the mutants it kills (function or field, mutation).
"""

from __future__ import annotations

import pytest

from oms_streams.domain.visibility import (
    DEFAULT_RULES,
    ChannelRule,
    HiddenBy,
    Location,
    LocationType,
    LocationView,
    RunningAvailability,
    SafetyStock,
    SkuAvailability,
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


# Kills HiddenBy's values `"XXlead_timeXX"`, `"XXsafety_stockXX"`, `"XXstore_capXX"`, `"XXprotectionXX"`:
# they are the `rule` label of the hidden-units gauge that the dashboards query.
def test_the_rules_that_hide_units_keep_their_published_names() -> None:
    assert [rule.value for rule in HiddenBy] == [
        "exposure",
        "lead_time",
        "safety_stock",
        "store_cap",
        "protection",
    ]


# --- defaults of the rules' data -------------------------------------------------------------------


# Kills Location's defaults: `active = False` / `None`, `online_cap_pct = ""`, `lat` / `lon = ""`,
# `name`/`region = "XXXX"` / `None`.
def test_a_location_given_only_its_id_and_type_is_active_unnamed_uncapped_and_off_the_map() -> None:
    store = Location("STORE-UTRECHT-01", STORE)
    rules = some_rules(channels=[a_channel(store_cap_applies=True)], store_online_cap_pct=50.0)

    assert (store.name, store.region, store.lat, store.lon) == ("", "", None, None)
    assert visible_quantity(SKU, store, a_position(on_hand=10), rules.channels[0], rules)[0] == 5
    assert distances_within([store], *UTRECHT, radius_km=20_000) == {}


# Kills ChannelRule's default `max_lead_time_hours = ""` (a comparison with a string).
def test_a_channel_without_a_maximum_lead_time_sees_third_party_stock_of_any_lead_time() -> None:
    rules = some_rules(channels=[ChannelRule("b2b", frozenset({THIRD_PARTY}))])
    supplier = a_supplier()

    visible, _ = visible_quantity(
        SKU, supplier, a_position(on_hand=4, lead_time_hours=10_000), rules.channels[0], rules
    )

    assert visible == 4


# Kills ChannelRule's default `low_stock = 1` / `None`: without a low-stock level, one unit is in stock.
def test_with_thresholds_only_and_no_low_stock_level_one_unit_is_as_in_stock_as_five() -> None:
    rules = some_rules(channels=[ChannelRule("webshop", frozenset({DC}))], thresholds_only=True)

    def signature(on_hand: int) -> tuple[object, ...]:
        positions = {"DC-NORTH": a_position(on_hand=on_hand)}
        return publication_signature(sku_availability(SKU, positions, network(a_dc()), rules), rules)

    assert signature(1) == signature(5)
    assert signature(1) != signature(0)


# Kills VisibilityRules' defaults: `thresholds_only = True` (every change is published unless asked
# otherwise), `store_online_cap_pct = None` (no cap at all by default) and `version = "XXbuiltinXX"` /
# `None` (the version the HTTP API and console report for rules without one).
def test_bare_rules_publish_every_change_cap_no_store_and_are_the_builtin_version() -> None:
    rules = VisibilityRules(channels=(a_channel("webshop", sees=[DC, STORE], store_cap_applies=True),))
    stores = network(a_store())

    def signature(on_hand: int) -> tuple[object, ...]:
        positions = {"STORE-UTRECHT-01": a_position(on_hand=on_hand)}
        return publication_signature(sku_availability(SKU, positions, stores, rules), rules)

    assert signature(5) != signature(6)
    assert sku_availability(SKU, {"STORE-UTRECHT-01": a_position(on_hand=7)}, stores, rules).hidden == {}
    assert rules.version == "builtin"


# Kills DEFAULT_RULES: the webshop's `max_lead_time_hours=72` -> 73.
def test_the_builtin_webshop_shows_supplier_stock_up_to_three_days_away() -> None:
    suppliers = network(a_supplier())

    def webshop_sees(lead_time_hours: int) -> int:
        positions = {"SUPPLIER-ACME": a_position(on_hand=8, lead_time_hours=lead_time_hours)}
        webshop = sku_availability(SKU, positions, suppliers, DEFAULT_RULES).channel("webshop")
        assert webshop is not None
        return webshop.total

    assert (webshop_sees(72), webshop_sees(73)) == (8, 0)


# Kills DEFAULT_RULES: each channel's `low_stock` +1.
def test_the_builtin_low_stock_levels_are_three_units_online_and_one_for_pickup() -> None:
    assert {rule.channel: rule.low_stock for rule in DEFAULT_RULES.channels} == {
        "webshop": 3,
        "marketplace": 3,
        "click_and_collect": 1,
    }


# Kills SkuAvailability's defaults `protected = None` / `short = None`.
def test_an_availability_built_without_protection_or_shortfalls_reports_none() -> None:
    availability = SkuAvailability(SKU, network_atp=0, channels=(), lead_time_hours={}, hidden={})

    assert (availability.protected, availability.short) == ({}, {})


# Kills LocationView's defaults `protected = 1` / `None` and `short = 1` / `None`.
def test_a_view_built_without_protection_or_shortfall_adds_none_to_the_availability() -> None:
    rules = some_rules(channels=[a_channel()])
    view = LocationView("DC-NORTH", DC, atp=5, visible=(5,), hidden=(), lead_time_hours=None)

    availability = combine(SKU, [view], rules)

    assert (view.protected, view.short) == (0, 0)
    assert (availability.protected, availability.short) == ({}, {})


# --- the rules at one position ---------------------------------------------------------------------


# Kills _seen: `(position.lead_time_hours or 0)` -> `or 1` (stock without a known lead time is on hand).
def test_third_party_stock_without_a_lead_time_is_shown_to_a_channel_that_allows_none() -> None:
    rules = some_rules(channels=[a_channel(sees=[THIRD_PARTY], max_lead_time_hours=0)])

    visible, hidden = visible_quantity(SKU, a_supplier(), a_position(on_hand=6), rules.channels[0], rules)

    assert (visible, hidden) == (6, {HiddenBy.SAFETY_STOCK: 0})


# Kills _seen: `max(pct, 0.0)` -> `max(pct, 1.0)` (a store closed online would still show 1 in 100).
def test_a_store_closed_online_shows_none_of_a_large_stock() -> None:
    rules = some_rules(channels=[a_channel(store_cap_applies=True)])
    closed_online = a_store(online_cap_pct=0.0)

    visible, hidden = visible_quantity(SKU, closed_online, a_position(on_hand=250), rules.channels[0], rules)

    assert (visible, hidden[HiddenBy.STORE_CAP]) == (0, 250)


# Kills _seen: `if visible > cap` -> `>=` (the cap charged with 0 units it did not hide).
def test_the_store_cap_is_not_charged_when_safety_stock_already_keeps_the_view_within_it() -> None:
    rules = some_rules(
        channels=[a_channel(store_cap_applies=True)],
        safety_stock=SafetyStock(default=5),
        store_online_cap_pct=50.0,
    )

    visible, hidden = visible_quantity(SKU, a_store(), a_position(on_hand=10), rules.channels[0], rules)

    assert (visible, hidden) == (5, {HiddenBy.SAFETY_STOCK: 5})


# --- the running availability, through put / remove / availability() against combine() ------------


# Kills RunningAvailability: `if qty > 0` -> `qty > 1` where a view is taken out (a one-unit location
# replaced by an empty one stays shown) and `lead_times[location_id] = None` in put. Single units,
# shortfalls, protection, lead times, a view put twice and an unknown id removed: after every step the
# running figures equal combine() over the views then current.
def test_running_availability_equals_combine_after_every_put_replace_and_remove() -> None:
    rules = some_rules(
        channels=[
            a_channel(
                "webshop", sees=[DC, STORE, THIRD_PARTY], store_cap_applies=True, max_lead_time_hours=72
            ),
            a_channel("click_and_collect", sees=[STORE], low_stock=1),
        ],
        safety_stock=SafetyStock(by_location_type={STORE: 1}),
        store_online_cap_pct=50.0,
    )
    dc, store, supplier = a_dc("DC-NORTH"), a_store("STORE-UTRECHT-01"), a_supplier("SUPPLIER-ACME")
    steps: list[tuple[str, LocationView | str]] = [
        ("put", location_view(SKU, dc, a_position(on_hand=1), rules)),
        ("put", location_view(SKU, store, a_position(on_hand=2), rules, protection=3)),
        ("put", location_view(SKU, supplier, a_position(on_hand=9, lead_time_hours=48), rules)),
        ("put", location_view(SKU, store, a_position(on_hand=12), rules, protection=3)),
        ("put", location_view(SKU, store, a_position(on_hand=12), rules, protection=3)),
        ("put", location_view(SKU, supplier, a_position(on_hand=9, lead_time_hours=96), rules)),
        ("put", location_view(SKU, dc, a_position(on_hand=0), rules)),
        ("remove", "STORE-UTRECHT-01"),
        ("remove", "STORE-NOBODY-KNOWS"),
        ("put", location_view(SKU, store, a_position(on_hand=1), rules, protection=1)),
        ("remove", "SUPPLIER-ACME"),
    ]
    running = RunningAvailability(SKU, rules)
    current: dict[str, LocationView] = {}

    for step, (action, subject) in enumerate(steps):
        if isinstance(subject, LocationView):
            running.put(subject)
            current[subject.location_id] = subject
        else:
            running.remove(subject)
            current.pop(subject, None)
        assert running.availability() == combine(SKU, current.values(), rules), f"after step {step}: {action}"


# --- geography ---------------------------------------------------------------------------------------


# Kills distances_within: `km <= radius_km` -> `km < radius_km`.
def test_a_store_exactly_at_the_radius_is_within_it() -> None:
    stores = [a_store("STORE-AMSTERDAM-02", lat=AMSTERDAM[0], lon=AMSTERDAM[1])]
    radius_km = haversine_km(*UTRECHT, *AMSTERDAM)

    assert distances_within(stores, *UTRECHT, radius_km=radius_km) == {"STORE-AMSTERDAM-02": radius_km}


# Kills haversine_km: the Earth's mean radius 6371.0088 km -> 6372.0088 (off by 1.6 km at this range).
def test_the_equator_is_a_quarter_of_a_great_circle_from_the_pole() -> None:
    assert haversine_km(0.0, 0.0, 90.0, 0.0) == pytest.approx(10_007.557, abs=0.01)


# Kills RunningAvailability.__init__/put/remove/published: `changed` starting False, a put that
# never sets it, or sets it on an equal view, a remove of an unknown location that sets it, and
# published() that leaves it set. The ledger publishes a SKU only when `changed` says so.
def test_running_availability_says_whether_what_a_publication_shows_moved_since_published() -> None:
    rules = some_rules(
        channels=[a_channel("webshop", sees=[LocationType.STORE])], safety_stock=SafetyStock(default=1)
    )
    store = a_store("STORE-UTRECHT-01")
    running = RunningAvailability(SKU, rules)
    assert running.changed is True  # never published

    running.put(location_view(SKU, store, a_position(on_hand=5), rules, protection=4))
    running.published()
    assert running.changed is False

    running.put(location_view(SKU, store, a_position(on_hand=5), rules, protection=4))
    assert running.changed is False  # the same view again

    running.put(location_view(SKU, store, a_position(on_hand=5), rules, protection=5))
    assert running.changed is True  # nothing visible moved, but the store is now 1 short

    running.published()
    running.remove("STORE-NOBODY-KNOWS")
    assert running.changed is False
    running.remove("STORE-UTRECHT-01")
    assert running.changed is True
