"""Behaviour of the stock ledger, reservations and visibility that mutation testing found unpinned.

Each test names, in the comment above it, the mutant it kills (module, function, mutation).
"""

from __future__ import annotations

import pytest

from oms_streams.domain.inventory import (
    MAX_QUANTITY,
    MovementKind,
    StockPosition,
    Verdict,
    apply_count,
    apply_movement,
    apply_supplier_feed,
)
from oms_streams.domain.reservations import (
    ReservationCommand,
    ReservationKind,
    ReservationStatus,
    apply_reservation,
)
from oms_streams.domain.visibility import (
    LocationType,
    RunningAvailability,
    SafetyStock,
    combine,
    distances_within,
    location_view,
    publication_signature,
    sku_availability,
)
from tests.unit.builders import (
    SKU,
    T0,
    a_channel,
    a_count,
    a_dc,
    a_movement,
    a_position,
    a_store,
    a_supplier,
    a_supplier_feed,
    an_inbound_announcement,
    minutes,
    network,
    some_rules,
)

DC, STORE = LocationType.DC, LocationType.STORE
UTRECHT = (52.0907, 5.1214)

# --- inventory: the journal a count leaves behind ---------------------------------------------------


# Kills inventory.apply_count: `kept.unsellable_delta or kept.inbound_delta` -> `and` (or dropping the
# `inbound_delta` operand): the absorbed announcement leaves the journal and its resend is applied again.
def test_an_inbound_announcement_resent_after_a_count_is_a_duplicate():
    announcement = an_inbound_announcement(qty=20, at=minutes(-5), event_id="ASN-1")
    announced = apply_movement(StockPosition(), announcement).position
    counted = apply_count(announced, a_count(on_hand=10, as_of=minutes(0))).position

    resent = apply_movement(counted, announcement)

    assert resent.verdict is Verdict.DUPLICATE
    assert resent.position.inbound == 20


# Kills inventory.apply_count: `kept.unsellable_delta or kept.inbound_delta` -> `and` (or dropping the
# `unsellable_delta` operand): a count without unsellable keeps the movement, so its resend is a duplicate.
def test_an_unsellable_movement_resent_after_a_count_without_unsellable_is_a_duplicate():
    damaged = a_movement(kind=MovementKind.UNSELLABLE_IN, qty=2, at=minutes(-5), event_id="DMG-1")
    before = apply_movement(StockPosition(), damaged).position
    counted = apply_count(before, a_count(on_hand=10, unsellable=None, as_of=minutes(0))).position

    resent = apply_movement(counted, damaged)

    assert resent.verdict is Verdict.DUPLICATE
    assert resent.position.unsellable == 2


# --- inventory: supplier feeds --------------------------------------------------------------------


# Kills inventory.apply_supplier_feed: `0 <= feed.quantity` -> `0 < feed.quantity`.
def test_a_supplier_reporting_zero_units_is_out_of_stock_not_rejected():
    stocked = apply_supplier_feed(StockPosition(), a_supplier_feed(qty=100, as_of=minutes(0))).position

    sold_out = apply_supplier_feed(stocked, a_supplier_feed(qty=0, as_of=minutes(60)))

    assert sold_out.verdict is Verdict.APPLIED
    assert sold_out.position.on_hand == 0


# Kills inventory.apply_supplier_feed: `feed.quantity <= MAX_QUANTITY` -> `<`.
def test_a_supplier_feed_of_the_largest_plausible_quantity_is_accepted():
    outcome = apply_supplier_feed(StockPosition(), a_supplier_feed(qty=MAX_QUANTITY))

    assert outcome.verdict is Verdict.APPLIED
    assert outcome.position.on_hand == MAX_QUANTITY


# Kills inventory.apply_supplier_feed: `0 <= feed.lead_time_hours` -> `0 <`, `lead_time_hours <= 24 * 365`
# -> `<`, and the constants 24 / 365 lowered (a lead time of exactly a year is still plausible).
@pytest.mark.parametrize("lead_time_hours", [0, 24 * 365], ids=["ships-now", "a-year"])
def test_supplier_lead_times_from_zero_to_a_year_are_accepted(lead_time_hours):
    outcome = apply_supplier_feed(StockPosition(), a_supplier_feed(lead_time_hours=lead_time_hours))

    assert outcome.verdict is Verdict.APPLIED
    assert outcome.position.lead_time_hours == lead_time_hours


# --- reservations ---------------------------------------------------------------------------------


# Kills reservations._settle: `if named and rid not in position.settled` -> `named or ...` / dropping
# `named and`: a release naming no location would write every position it never held at as settled.
def test_a_release_with_no_lines_touches_only_the_positions_it_held_at():
    positions = {"DC-NORTH": StockPosition(on_hand=5), "DC-SOUTH": StockPosition(on_hand=5)}
    reserve = ReservationCommand(ReservationKind.RESERVE, "O-1/1", (("DC-NORTH", 3),), T0)
    positions = {**positions, **apply_reservation(positions, reserve, lambda _, p: p.on_hand).changed}

    release = ReservationCommand(ReservationKind.RELEASE, "O-1/1", (), T0)
    result = apply_reservation(positions, release, lambda _, p: p.on_hand)

    assert result.status is ReservationStatus.RELEASED
    assert result.lines == (("DC-NORTH", 3),)
    assert set(result.changed) == {"DC-NORTH"}
    assert result.changed["DC-NORTH"].reserved == 0
    assert result.changed["DC-NORTH"].settled == ("O-1/1",)


# --- visibility: the running availability ---------------------------------------------------------


# Kills visibility.RunningAvailability.put / combine: `if qty > 0` -> `qty > 1`, `if view.short` negated or
# dropped; RunningAvailability.remove: dropping `self.short.pop(...)` (a stale shortfall survives a put).
def test_running_availability_equals_combine_with_a_single_visible_unit_and_a_shortfall():
    rules = some_rules(channels=[a_channel("webshop", sees=[DC, STORE])])
    dc, store = a_dc("DC-NORTH"), a_store("STORE-UTRECHT-01")
    one_unit = location_view(SKU, dc, a_position(on_hand=1), rules)
    store_short = location_view(SKU, store, a_position(on_hand=2), rules, protection=4)
    store_stocked = location_view(SKU, store, a_position(on_hand=10), rules, protection=4)
    running = RunningAvailability(SKU, rules)

    running.put(one_unit)
    running.put(store_short)
    both = running.availability()

    assert both == combine(SKU, [one_unit, store_short], rules)
    webshop = both.channel("webshop")
    assert webshop is not None
    assert (webshop.total, dict(webshop.by_location)) == (1, {"DC-NORTH": 1})
    assert both.short == {"STORE-UTRECHT-01": 2}

    running.put(store_stocked)
    restocked = running.availability()

    assert restocked == combine(SKU, [one_unit, store_stocked], rules)
    assert restocked.short == {}

    running.put(store_short)
    running.remove("STORE-UTRECHT-01")

    assert running.availability() == combine(SKU, [one_unit], rules)
    assert running.availability().short == {}


# --- visibility: protection -----------------------------------------------------------------------


# Kills visibility.location_view: `... if protection > 0 else 0` -> `else 1` (and `protection > 0` -> `> 1`).
@pytest.mark.parametrize(("protection", "protected"), [(-2, 0), (0, 0), (1, 1)])
def test_only_a_positive_protection_is_reported_as_protected(protection, protected):
    rules = some_rules(channels=[a_channel()])
    store = a_store("STORE-UTRECHT-01")
    position = a_position(on_hand=10)

    view = location_view(SKU, store, position, rules, protection=protection)
    availability = sku_availability(
        SKU, {store.location_id: position}, network(store), rules, {store.location_id: protection}
    )

    assert view.protected == protected
    assert availability.protected == ({store.location_id: protected} if protected else {})


# --- visibility: publication with thresholds only -------------------------------------------------


# Kills visibility._level: `quantity <= 0` -> `quantity <= 1` (one unit left would read as out of stock,
# so going from two units to one would be published although both are low stock).
def test_with_thresholds_only_one_unit_left_is_still_low_stock():
    rules = some_rules(channels=[a_channel("webshop", sees=[DC], low_stock=3)], thresholds_only=True)

    def signature(on_hand: int) -> tuple[object, ...]:
        positions = {"DC-NORTH": a_position(on_hand=on_hand)}
        return publication_signature(sku_availability(SKU, positions, network(a_dc()), rules), rules)

    assert signature(2) == signature(1)
    assert signature(1) != signature(0)


# --- visibility: geography ------------------------------------------------------------------------


# Kills visibility.distances_within: `loc.lat is not None and loc.lon is not None` -> `or` (or dropping
# either operand): a location with only one coordinate is skipped, not measured with None.
def test_a_location_with_only_a_latitude_or_only_a_longitude_is_skipped():
    stores = [
        a_store("STORE-UTRECHT-01", lat=UTRECHT[0], lon=UTRECHT[1]),
        a_store("STORE-LAT-ONLY-05", lat=UTRECHT[0]),
        a_store("STORE-LON-ONLY-06", lon=UTRECHT[1]),
    ]

    assert set(distances_within(stores, *UTRECHT, radius_km=10_000)) == {"STORE-UTRECHT-01"}


# --- visibility: a location's view, worked out once for every channel -------------------------------


# Kills visibility.SafetyStock.for_position: the shortcut for "no SKU-specific safety stock" taken
# when only one of the two SKU-specific maps is empty (`and` -> `or`, or either operand dropped).
@pytest.mark.parametrize(
    "safety",
    [
        SafetyStock(default=1, by_sku_location={(SKU, "DC-NORTH"): 4}),
        SafetyStock(default=1, by_sku_location_channel={(SKU, "DC-NORTH", "webshop"): 4}),
    ],
)
def test_a_sku_specific_safety_stock_applies_when_it_is_the_only_kind_configured(safety):
    assert safety.for_position(SKU, a_dc("DC-NORTH"), "webshop") == 4
    assert safety.for_position(SKU, a_dc("DC-SOUTH"), "webshop") == 1


# Kills visibility.location_view: `largest_safety = max(largest_safety, safety)` -> `= safety` (the
# last channel's safety stock instead of the largest).
def test_a_shortfall_counts_the_largest_safety_stock_of_any_channel_not_the_last():
    safety = SafetyStock(by_sku_location_channel={(SKU, "DC-NORTH", "webshop"): 6})
    rules = some_rules(channels=[a_channel("webshop"), a_channel("marketplace")], safety_stock=safety)

    view = location_view(SKU, a_dc("DC-NORTH"), a_position(on_hand=4), rules)

    assert view.short == 2


# Kills visibility.location_view: `max(0, protection)` -> `protection` in the shortfall (a negative
# protection is no protection: it never lowers the target stock).
def test_a_negative_protection_does_not_lower_the_target_stock():
    rules = some_rules(channels=[a_channel()], safety_stock=SafetyStock(default=3))

    view = location_view(SKU, a_store("STORE-UTRECHT-01"), a_position(on_hand=2), rules, protection=-2)

    assert view.short == 1


# Kills visibility.location_view: `position.lead_time_hours if is_third_party else None` -> always the
# position's lead time (a DC's or store's stock has no supplier lead time to publish).
def test_only_third_party_stock_carries_a_lead_time_in_its_view():
    rules = some_rules(channels=[a_channel(sees=[DC, LocationType.THIRD_PARTY])])
    position = a_position(on_hand=5, lead_time_hours=48)

    assert location_view(SKU, a_dc("DC-NORTH"), position, rules).lead_time_hours is None
    assert location_view(SKU, a_supplier("SUPPLIER-ACME"), position, rules).lead_time_hours == 48
