"""One SKU's batch of stock events across its locations: one verdict per command, in order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from oms_streams.domain.inventory import JOURNAL_WINDOW, StockPosition, Verdict
from oms_streams.domain.ledger import StockCommand, apply_commands
from tests.unit.builders import (
    a_count,
    a_dc,
    a_position,
    a_receipt,
    a_sale,
    a_store,
    a_supplier,
    a_supplier_feed,
    minutes,
    network,
)

NETWORK = network(a_dc("DC-NORTH"), a_store("STORE-UTRECHT-01"), a_supplier("SUPPLIER-ACME"))


def at(location_id: str, event: object) -> StockCommand:
    return StockCommand(location_id, event)  # type: ignore[arg-type]


def test_stock_at_an_unknown_location_is_rejected_with_a_reason():
    result = apply_commands({}, [at("STORE-GHOST-99", a_receipt(qty=5))], NETWORK)

    assert result.verdicts == [
        (
            Verdict.REJECTED,
            "unknown location 'STORE-GHOST-99': publish it on the locations config topic first",
        )
    ]
    assert result.changed == {}


def test_a_supplier_feed_for_a_store_or_dc_is_rejected_with_a_reason():
    result = apply_commands(
        {},
        [at("STORE-UTRECHT-01", a_supplier_feed(qty=100)), at("DC-NORTH", a_supplier_feed(qty=100))],
        NETWORK,
    )

    [(store_verdict, store_reason), (dc_verdict, dc_reason)] = result.verdicts
    assert store_verdict is dc_verdict is Verdict.REJECTED
    assert store_reason == "supplier feed for 'STORE-UTRECHT-01', which is a store, not third_party"
    assert dc_reason == "supplier feed for 'DC-NORTH', which is a dc, not third_party"
    assert result.changed == {}


def test_a_supplier_feed_for_a_third_party_location_is_applied():
    result = apply_commands({}, [at("SUPPLIER-ACME", a_supplier_feed(qty=100, lead_time_hours=48))], NETWORK)

    assert result.verdicts == [(Verdict.APPLIED, "")]
    assert result.changed["SUPPLIER-ACME"].on_hand == 100
    assert result.changed["SUPPLIER-ACME"].lead_time_hours == 48


def test_there_is_one_verdict_per_command_in_command_order():
    receipt = a_receipt(qty=5, at=minutes(1))
    commands = [
        at("DC-NORTH", receipt),
        at("DC-NORTH", receipt),
        at("STORE-GHOST-99", a_sale(qty=1)),
        at("STORE-UTRECHT-01", a_sale(qty=0)),
        at("STORE-UTRECHT-01", a_count(on_hand=12, as_of=minutes(2))),
        at("STORE-UTRECHT-01", a_sale(qty=1, at=minutes(1))),
    ]

    result = apply_commands({}, commands, NETWORK)

    assert [verdict for verdict, _ in result.verdicts] == [
        Verdict.APPLIED,
        Verdict.DUPLICATE,
        Verdict.REJECTED,
        Verdict.REJECTED,
        Verdict.APPLIED,
        Verdict.SUPERSEDED,
    ]
    assert [bool(reason) for _, reason in result.verdicts] == [False, False, True, True, False, False]


def test_only_positions_that_changed_are_returned():
    receipt = a_receipt(qty=5, event_id="ERP-RCPT-1")
    already_applied = apply_commands({}, [at("STORE-UTRECHT-01", receipt)], NETWORK).changed
    positions = {
        **already_applied,
        "DC-NORTH": a_position(on_hand=20),
        "SUPPLIER-ACME": a_position(on_hand=1),
    }

    result = apply_commands(
        positions,
        [at("DC-NORTH", a_sale(qty=2)), at("STORE-UTRECHT-01", receipt), at("SUPPLIER-ACME", a_sale(qty=0))],
        NETWORK,
    )

    assert set(result.changed) == {"DC-NORTH"}
    assert result.changed["DC-NORTH"].on_hand == 18
    assert positions["DC-NORTH"].on_hand == 20, "the input positions are not modified"


def test_later_commands_in_a_batch_see_the_effect_of_earlier_ones():
    result = apply_commands(
        {"DC-NORTH": a_position(on_hand=10)},
        [at("DC-NORTH", a_sale(qty=3)), at("DC-NORTH", a_receipt(qty=5)), at("DC-NORTH", a_sale(qty=1))],
        NETWORK,
    )

    assert result.changed["DC-NORTH"].on_hand == 11
    assert len(result.changed["DC-NORTH"].journal) == 3


@given(
    commands=st.lists(
        st.builds(
            StockCommand,
            location_id=st.sampled_from(["DC-NORTH", "STORE-UTRECHT-01", "SUPPLIER-ACME", "STORE-GHOST-99"]),
            event=st.one_of(
                st.builds(a_receipt, qty=st.integers(-2, 10), at=st.integers(-5, 5).map(minutes)),
                st.builds(a_sale, qty=st.integers(-2, 10), at=st.integers(-5, 5).map(minutes)),
                st.builds(a_count, on_hand=st.integers(-2, 50), as_of=st.integers(-5, 5).map(minutes)),
                st.builds(a_supplier_feed, qty=st.integers(-2, 50), as_of=st.integers(-5, 5).map(minutes)),
            ),
        ),
        max_size=30,
    )
)
def test_every_command_gets_a_verdict_and_rejections_always_say_why(commands):
    result = apply_commands({}, commands, NETWORK)

    assert len(result.verdicts) == len(commands)
    for verdict, reason in result.verdicts:
        assert bool(reason) is (verdict is Verdict.REJECTED)
    assert set(result.changed) <= {c.location_id for c in commands} - {"STORE-GHOST-99"}
    assert all(isinstance(p, StockPosition) for p in result.changed.values())


class RememberedIds:
    """What the worker's id store does for the domain: remember every applied movement."""

    def __init__(self) -> None:
        self.ids: set[tuple[str, str]] = set()

    def apply(self, positions: dict[str, StockPosition], commands: list[StockCommand]) -> list[Verdict]:
        result = apply_commands(positions, commands, NETWORK, seen=self.ids)
        positions.update(result.changed)
        self.ids.update((location, event_id) for location, event_id, _ in result.applied_ids)
        return [verdict for verdict, _ in result.verdicts]


def test_a_till_resending_a_day_of_sales_after_an_outage_applies_none_of_them_twice():
    sales = [at("STORE-UTRECHT-01", a_sale(qty=1, at=minutes(i))) for i in range(300)]  # >> the journal
    store, positions = RememberedIds(), {"STORE-UTRECHT-01": a_position(on_hand=1000)}
    for start in range(0, 300, 50):
        store.apply(positions, sales[start : start + 50])
    assert positions["STORE-UTRECHT-01"].on_hand == 700

    verdicts = store.apply(positions, sales)  # the whole day again, in one batch

    assert set(verdicts) == {Verdict.DUPLICATE}
    assert positions["STORE-UTRECHT-01"].on_hand == 700


def test_a_movement_repeated_within_one_batch_far_beyond_the_journal_is_applied_once():
    first = at("DC-NORTH", a_receipt(qty=7, event_id="ERP-RCPT-FIRST"))
    others = [at("DC-NORTH", a_receipt(qty=1, at=minutes(i))) for i in range(100)]

    result = apply_commands({}, [first, *others, first], NETWORK)

    assert result.changed["DC-NORTH"].on_hand == 107
    assert result.verdicts[-1][0] is Verdict.DUPLICATE
    assert result.applied_ids[0] == ("DC-NORTH", "ERP-RCPT-FIRST", 1) and len(result.applied_ids) == 101
    assert result.applied_ids[-1][2] == result.changed["DC-NORTH"].applied == 101


def test_the_same_event_id_at_another_location_is_another_movement():
    # A till may give every line of one receipt the receipt's id: ids are remembered per position.
    result = apply_commands(
        {},
        [
            at("DC-NORTH", a_receipt(qty=2, event_id="R-1")),
            at("STORE-UTRECHT-01", a_receipt(qty=3, event_id="R-1")),
        ],
        NETWORK,
        seen={("STORE-UTRECHT-02", "R-1")},
    )

    assert {loc: p.on_hand for loc, p in result.changed.items()} == {"DC-NORTH": 2, "STORE-UTRECHT-01": 3}


@given(
    quantities=st.lists(st.integers(1, 9), min_size=1, max_size=200),
    data=st.data(),
)
def test_resends_in_any_batches_change_nothing_whatever_the_journal_forgot(quantities, data):
    movements = [at("DC-NORTH", a_receipt(qty=q, at=minutes(i))) for i, q in enumerate(quantities)]
    resent = data.draw(st.lists(st.sampled_from(movements), max_size=100))
    stream = data.draw(st.permutations(movements + resent))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    store, positions = RememberedIds(), {}
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        store.apply(positions, stream[start:end])

    assert positions["DC-NORTH"].on_hand == sum(quantities)
    assert len(store.ids) == len(movements)


def test_a_resend_of_what_the_journal_held_is_a_duplicate_after_new_movements_pushed_it_out():
    earlier = [at("DC-NORTH", a_receipt(qty=1, at=minutes(i))) for i in range(JOURNAL_WINDOW)]
    positions: dict[str, StockPosition] = {}
    positions.update(apply_commands({}, earlier, NETWORK).changed)

    # New receipts first: each pushes the oldest journal entry out before its re-send comes.
    news = [at("DC-NORTH", a_receipt(qty=10, at=minutes(100 + i))) for i in range(3)]
    result = apply_commands(positions, [*news, *earlier], NETWORK)

    assert [v for v, _ in result.verdicts] == [Verdict.APPLIED] * 3 + [Verdict.DUPLICATE] * JOURNAL_WINDOW
    assert result.changed["DC-NORTH"].on_hand == JOURNAL_WINDOW + 30


def test_only_movements_are_remembered_counts_and_feeds_are_not():
    result = apply_commands(
        {},
        [
            at("DC-NORTH", a_count(on_hand=5, as_of=minutes(-1))),
            at("DC-NORTH", a_receipt(qty=2, event_id="R-1")),
            at("SUPPLIER-ACME", a_supplier_feed(qty=10, lead_time_hours=24)),
        ],
        NETWORK,
    )

    assert [v for v, _ in result.verdicts] == [Verdict.APPLIED] * 3
    assert result.applied_ids == [("DC-NORTH", "R-1", 1)]
