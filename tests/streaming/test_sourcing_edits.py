"""Order edits in the shell, without a broker: the sourcing saga withdraws and sources the difference
and answers on the outcomes topic; ``track_orders`` adopts a version once sourcing accepted it, and
its milestones follow the edited allocations.

Every record the runtimes produce is checked against its wire schema (the cancellation harness).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from oms_streams.adapters.allocated import shipments_view
from oms_streams.domain.placement import PlacementLimits
from oms_streams.streaming.orders_runtime import OrdersRuntime
from tests.streaming.test_cancellation_runtime import Harness as SagaHarness
from tests.streaming.test_orders_resourcing import TOPICS as ORDER_TOPICS
from tests.streaming.test_orders_runtime import FakeEvent
from tests.streaming.test_placement_tokens import KEYS, with_token


class Harness(SagaHarness):
    def edit(self, order_id: str, cart: dict[str, int], version: int, pickup: bool = False) -> FakeEvent:
        """A new version of the order (the same placement, another event id)."""
        event = self.shelf_pickup(order_id, cart) if pickup else self.placement(order_id, cart)
        body = json.loads(event.message.value)
        body["event_id"] = f"{order_id}-v{version}"
        return FakeEvent("placed", order_id.encode(), json.dumps(body).encode())

    def reserve_all(self) -> None:
        """The ledgers reserve every reserve sent since the last look."""
        reserves = self.commands("reserve")
        self.take_sent()
        self.run(*(self.answer(c, "reserved", 10) for c in reserves))

    def live(self, order_id: str) -> list[tuple[str, list[list[Any]]]]:
        row = self.saga.lookup(order_id)
        assert row is not None
        return [(a.location_id, a.lines) for a in row.allocations if a.state == "live"]

    def answered(self) -> dict[str, Any]:
        [answer] = [o for o in self.on("sourced") if o.get("edit")]
        return answer


def reserved(h: Harness) -> list[tuple[str, str, list[tuple[str, int]]]]:
    return sorted(
        (c["sku"], c["reservation_id"], [(line["location_id"], line["quantity"]) for line in c["lines"]])
        for c in h.commands("reserve")
    )


def released(h: Harness) -> list[tuple[str, str]]:
    return sorted((c["sku"], c["reservation_id"]) for c in h.commands("release"))


def test_a_reduced_line_releases_the_allocation_and_reserves_what_it_keeps_at_the_same_place():
    h = Harness()
    h.allocated("O-1", {"SKU-TENT": 3})
    h.run(h.edit("O-1", {"SKU-TENT": 2}, 2))
    assert released(h) == [("SKU-TENT", "O-1/1")]
    assert reserved(h) == [("SKU-TENT", "O-1/2", [("DC-NORTH", 2)])]
    [cancel] = [a for a in h.on("allocations") if a["kind"] == "cancel"]
    assert cancel["allocation_id"] == "O-1:1:0" and "version 2" in cancel["reason"]
    h.reserve_all()
    answer = h.answered()
    assert (answer["round"], answer["outcome"], answer["allocations"]) == (2, "allocated", ["O-1:2:0"])
    assert (answer["edit"]["status"], answer["edit"]["version"]) == ("accepted", 2)
    assert h.live("O-1") == [("DC-NORTH", [["SKU-TENT", 2]])]
    row = h.saga.lookup("O-1")
    assert row is not None and (row.version, row.ordered, row.placement) == (2, [["SKU-TENT", 2]], "O-1-v2")


def test_an_increased_line_is_sourced_for_the_difference_and_the_allocation_stays():
    h = Harness()
    h.allocated("O-1", {"SKU-TENT": 2})
    h.run(h.edit("O-1", {"SKU-TENT": 3}, 2))
    assert released(h) == [] and [a for a in h.on("allocations") if a["kind"] == "cancel"] == []
    assert reserved(h) == [("SKU-TENT", "O-1/2", [("DC-NORTH", 1)])]
    h.reserve_all()
    assert h.live("O-1") == [("DC-NORTH", [["SKU-TENT", 2]]), ("DC-NORTH", [["SKU-TENT", 1]])]
    assert h.answered()["edit"]["lines"][0] | {"reason": ""} == {
        "sku": "SKU-TENT",
        "before": 2,
        "after": 3,
        "change": "increased",
        "reason": "",
    }


def test_an_added_sku_is_sourced_and_one_without_stock_is_backordered_the_rest_allocated():
    h = Harness()
    h.allocated("O-1", {"SKU-TENT": 1})
    h.stock("SKU-STOVE", DC_NORTH=4)
    h.run(h.edit("O-1", {"SKU-TENT": 1, "SKU-STOVE": 2, "SKU-KAYAK": 1}, 2))
    assert reserved(h) == [("SKU-STOVE", "O-1/2", [("DC-NORTH", 2)])]
    h.reserve_all()
    answer = h.answered()
    assert answer["outcome"] == "partially_allocated"
    assert answer["backorder"] == [{"sku": "SKU-KAYAK", "quantity": 1}]
    assert sorted(lines[0][0] for _, lines in h.live("O-1")) == ["SKU-STOVE", "SKU-TENT"]


def test_a_removed_sku_is_released_and_the_other_lines_of_its_allocation_kept():
    h = Harness()
    h.allocated("O-1", {"SKU-TENT": 2, "SKU-BIKE-LIGHT": 1})
    h.run(h.edit("O-1", {"SKU-TENT": 2}, 2))
    assert released(h) == [("SKU-BIKE-LIGHT", "O-1/1"), ("SKU-TENT", "O-1/1")]
    assert reserved(h) == [("SKU-TENT", "O-1/2", [("DC-NORTH", 2)])]
    h.reserve_all()
    assert h.live("O-1") == [("DC-NORTH", [["SKU-TENT", 2]])]
    assert [c["change"] for c in h.answered()["edit"]["lines"]] == ["unchanged", "removed"]


def test_a_removal_that_keeps_nothing_to_reserve_ends_its_round_at_once():
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=5)
    h.stock("SKU-BIKE-LIGHT", DC_SOUTH=5)
    h.place("O-1", {"SKU-TENT": 2, "SKU-BIKE-LIGHT": 1})
    h.reserve_all()
    assert sorted(h.live("O-1")) == [("DC-NORTH", [["SKU-TENT", 2]]), ("DC-SOUTH", [["SKU-BIKE-LIGHT", 1]])]
    h.take_sent()
    h.run(h.edit("O-1", {"SKU-TENT": 2}, 2))
    assert reserved(h) == [] and released(h) == [("SKU-BIKE-LIGHT", "O-1/1")]
    answer = h.answered()
    assert (answer["round"], answer["outcome"], answer["allocations"]) == (2, "allocated", [])
    assert h.live("O-1") == [("DC-NORTH", [["SKU-TENT", 2]])]


def test_a_shipped_line_cannot_be_reduced_the_edit_is_refused_whole_and_nothing_moves():
    h = Harness()
    h.allocated("O-1", {"SKU-TENT": 2, "SKU-BIKE-LIGHT": 1})
    h.run(h.fulfilment("O-1", "handed_to_carrier", "DC-NORTH", "HANDOVER-1", "wms"))
    h.take_sent()
    h.run(h.edit("O-1", {"SKU-TENT": 1}, 2))
    answer = h.answered()
    assert answer["event_id"].startswith("edit-") and answer["round"] == 1
    assert answer["edit"]["status"] == "refused" and answer["outcome"] == "allocated"
    assert "SKU-TENT: 2 already shipped, cannot become 1" in answer["edit"]["reason"]
    assert h.commands() == [] and h.on("allocations") == []
    row = h.saga.lookup("O-1")
    assert row is not None and (row.version, row.round, row.placements) == (1, 1, ["O-1-placed", "O-1-v2"])


def test_another_delivery_withdraws_what_has_not_shipped_and_sources_it_for_the_new_one():
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=5, STORE_UTRECHT_01=4)
    h.place("O-1", {"SKU-TENT": 2})
    h.reserve_all()
    assert h.live("O-1") == [("DC-NORTH", [["SKU-TENT", 2]])]
    h.take_sent()
    h.run(h.edit("O-1", {"SKU-TENT": 2}, 2, pickup=True))  # collect it at the Utrecht store instead
    assert released(h) == [("SKU-TENT", "O-1/1")]
    [reserve] = h.commands("reserve")
    assert (reserve["channel"], reserve["lines"]) == (
        "click_and_collect",
        [{"location_id": "STORE-UTRECHT-01", "quantity": 2}],
    )
    h.reserve_all()
    answer = h.answered()
    assert answer["edit"]["status"] == "accepted" and "another delivery method" in answer["reason"]
    [allocation] = [a for a in h.on("allocations") if a["kind"] == "allocate"]
    assert (allocation["method"], allocation["pickup_store_id"]) == ("click_and_collect", "STORE-UTRECHT-01")
    assert h.live("O-1") == [("STORE-UTRECHT-01", [["SKU-TENT", 2]])]


def test_an_edit_during_a_live_round_waits_for_it_then_is_decided_on_what_it_allocated():
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=10)
    h.place("O-1", {"SKU-TENT": 3})
    first = h.commands("reserve")
    h.take_sent()
    h.run(h.edit("O-1", {"SKU-TENT": 1}, 2))  # the round still waits for the ledger
    assert h.sent == []
    row = h.saga.lookup("O-1")
    assert row is not None and [e["event_id"] for e in row.edits_waiting] == ["O-1-v2"]

    h.run(h.answer(first[0], "reserved", 7))  # round 1 allocates; the edit follows in the same batch
    assert [o["round"] for o in h.on("sourced")] == [1]
    assert released(h) == [("SKU-TENT", "O-1/1")]
    assert reserved(h) == [("SKU-TENT", "O-1/2", [("DC-NORTH", 1)])]
    h.reserve_all()
    assert h.live("O-1") == [("DC-NORTH", [["SKU-TENT", 1]])]


def test_two_edits_waiting_for_a_round_the_older_is_superseded_the_newest_decided():
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=10)
    h.place("O-1", {"SKU-TENT": 3})
    first = h.commands("reserve")
    h.run(h.edit("O-1", {"SKU-TENT": 1}, 2), h.edit("O-1", {"SKU-TENT": 2}, 3))
    h.take_sent()
    h.run(h.answer(first[0], "reserved", 7))
    [refusal] = [o for o in h.on("sourced") if o.get("edit")]
    assert refusal["edit"]["placement_event_id"] == "O-1-v2" and "superseded" in refusal["edit"]["reason"]
    assert reserved(h) == [("SKU-TENT", "O-1/2", [("DC-NORTH", 2)])]
    h.reserve_all()
    row = h.saga.lookup("O-1")
    assert row is not None and (row.version, row.placement) == (2, "O-1-v3")


def test_the_same_edit_read_twice_changes_nothing_and_answers_again_with_the_same_ids():
    h = Harness()
    h.allocated("O-1", {"SKU-TENT": 3})
    edit = h.edit("O-1", {"SKU-TENT": 2}, 2)
    h.run(edit)
    h.reserve_all()
    answer = h.answered()
    stored = h.sourcing_table["O-1"]
    h.take_sent()

    h.run(edit)  # read again (a crash before the offset was committed)
    assert h.commands() == [] and h.sourcing_table["O-1"] == stored
    again = [o for o in h.on("sourced") if o.get("edit")]
    assert [o["event_id"] for o in again] == [answer["event_id"]]
    assert {a["event_id"] for a in h.on("allocations")} == {"O-1:1:0:cancel", "O-1:2:0:allocate"}


def test_an_older_version_read_after_a_newer_one_is_stale_and_ignored():
    h = Harness()
    h.allocated("O-1", {"SKU-TENT": 3})
    v2, v3 = h.edit("O-1", {"SKU-TENT": 2}, 2), h.edit("O-1", {"SKU-TENT": 1}, 3)
    h.run(v2)
    h.reserve_all()
    h.run(v3)
    h.reserve_all()
    row = h.saga.lookup("O-1")
    assert row is not None and (row.version, row.round) == (3, 3)
    stored = h.sourcing_table["O-1"]
    h.take_sent()

    h.run(v2)  # version 2 again, after version 3
    assert h.commands() == [] and h.sourcing_table["O-1"] == stored
    assert h.live("O-1") == [("DC-NORTH", [["SKU-TENT", 1]])]
    assert h.metrics.edits.labels("stale")._value.get() == 1


def test_track_orders_follows_an_accepted_edit_and_ignores_a_refused_one():
    h = Harness()
    tracking = OrdersRuntime({}, h.network, ORDER_TOPICS, _collect(h), h.metrics)

    def follow(*events: FakeEvent) -> None:
        """The placements and what the saga published, read by ``track_orders``."""
        ours = ("allocations", "sourced")
        produced = [FakeEvent(t, k, v) for t, k, v in h.sent if t in ours]
        asyncio.run(tracking.apply_batch([*events, *produced]))
        h.sent[:] = [sent for sent in h.sent if sent[0] not in ours]

    h.stock("SKU-TENT", DC_NORTH=10)
    h.stock("SKU-STOVE", DC_NORTH=10)
    placed = h.placement("O-1", {"SKU-TENT": 2, "SKU-BIKE-LIGHT": 1})
    h.stock("SKU-BIKE-LIGHT", DC_NORTH=10)
    h.run(placed)
    h.reserve_all()
    follow(placed)

    v2 = h.edit("O-1", {"SKU-TENT": 1, "SKU-STOVE": 2}, 2)
    h.run(v2)
    follow(v2)  # the saga's cancel is read, its round is not over: the promise waits for it
    row, state = tracking.lookup("O-1")  # type: ignore[misc]
    assert row.version == 1 and list(row.pending_edits or {}) == ["O-1-v2"]

    h.reserve_all()
    follow()
    row, state = tracking.lookup("O-1")  # type: ignore[misc]
    assert row.version == 2 and not row.pending_edits and state is not None
    live = [s for s in shipments_view(row.plan, state.closed) if s["state"] == "current"]
    assert [(s["location_id"], s["lines"]) for s in live] == [
        ("DC-NORTH", [{"sku": "SKU-TENT", "quantity": 1}, {"sku": "SKU-STOVE", "quantity": 2}])
    ]
    assert state.record.milestones and {m.shipment for m in state.record.milestones} == {live[0]["shipment"]}

    h.saga.gate.limits = PlacementLimits(max_line_quantity=5)
    v3 = h.edit("O-1", {"SKU-TENT": 9}, 3)  # refused: beyond the limits
    h.run(v3)
    follow(v3)
    row, _ = tracking.lookup("O-1")  # type: ignore[misc]
    assert row.version == 2 and not row.pending_edits and row.edits["O-1-v3"] == ["refused", 2]


def test_track_orders_follows_a_delivery_change_to_the_pickup_store_s_allocation():
    h = Harness()
    tracking = OrdersRuntime({}, h.network, ORDER_TOPICS, _collect(h), h.metrics)

    def follow(*events: FakeEvent) -> None:
        ours = ("allocations", "sourced")
        produced = [FakeEvent(t, k, v) for t, k, v in h.sent if t in ours]
        asyncio.run(tracking.apply_batch([*events, *produced]))
        h.sent[:] = [sent for sent in h.sent if sent[0] not in ours]

    h.stock("SKU-TENT", DC_NORTH=5, STORE_UTRECHT_01=4)
    placed = h.placement("O-1", {"SKU-TENT": 2})
    h.run(placed)
    h.reserve_all()
    follow(placed)
    v2 = h.edit("O-1", {"SKU-TENT": 2}, 2, pickup=True)
    h.run(v2)
    follow(v2)
    h.reserve_all()
    follow()

    row, state = tracking.lookup("O-1")  # type: ignore[misc]
    assert row.version == 2 and state is not None
    live = [s for s in shipments_view(row.plan, state.closed) if s["state"] == "current"]
    assert [(s["location_id"], s["lines"]) for s in live] == [
        ("STORE-UTRECHT-01", [{"sku": "SKU-TENT", "quantity": 2}])
    ]
    assert state.record.milestones
    assert {m.location_id for m in state.record.milestones} == {"STORE-UTRECHT-01"}


def _collect(h: Harness) -> Any:
    async def produce(topic: str, key: bytes, value: bytes | None) -> None:
        return None

    return produce


def test_an_unreadable_edit_is_refused_with_the_reason_after_the_round_under_way():
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=10)
    h.place("O-1", {"SKU-TENT": 3})
    first = h.commands("reserve")
    bad = h.edit("O-1", {"SKU-TENT": 1}, 2)
    body = json.loads(bad.message.value)
    body["cart"] = [{"sku": "SKU-TENT", "quantity": 2}]  # the cart does not match its option
    bad.message.value = json.dumps(body).encode()
    h.run(bad)  # round 1 still waits for its ledger: the refusal waits too
    h.take_sent()
    h.run(h.answer(first[0], "reserved", 7))
    answer = h.answered()
    assert answer["edit"]["status"] == "refused" and "impossible option" in answer["edit"]["reason"]
    assert (answer["round"], answer["outcome"]) == (1, "allocated") and h.commands("release") == []


def test_a_worker_that_takes_an_edited_order_over_sends_what_a_crash_lost_again():
    h = Harness()
    h.allocated("O-1", {"SKU-TENT": 3, "SKU-BIKE-LIGHT": 1})
    edit = h.edit("O-1", {"SKU-TENT": 2}, 2)
    h.run(edit)
    lost = sorted((c["kind"], c["event_id"]) for c in h.commands())
    h.take_sent()  # the row was stored, then the worker died before its records left

    h.saga = h.new_worker()
    asyncio.run(h.saga.reload())  # the unanswered releases and reserve again, with the same ids
    assert sorted((c["kind"], c["event_id"]) for c in h.commands()) == lost
    reserves = h.commands("reserve")
    h.take_sent()
    h.run(edit)  # read again (its offset was never committed): the cancel it made, again
    assert [a["event_id"] for a in h.on("allocations")] == ["O-1:1:0:cancel"] and h.commands() == []
    h.take_sent()
    h.run(*(h.answer(c, "reserved", 7) for c in reserves))
    assert h.answered()["edit"]["version"] == 2
    assert h.live("O-1") == [("DC-NORTH", [["SKU-TENT", 2]])]


def test_with_signing_keys_an_edit_needs_its_own_token_like_any_placement():
    h = Harness()
    h.saga.gate.limits = PlacementLimits(promise_keys=KEYS)
    h.stock("SKU-TENT", DC_NORTH=10)
    h.run(with_token(h.placement("O-1", {"SKU-TENT": 2})))
    h.reserve_all()
    h.take_sent()
    h.run(h.edit("O-1", {"SKU-TENT": 9}, 2))  # an option nobody signed
    answer = h.answered()
    assert (answer["edit"]["status"], answer["edit"]["reason"]) == ("refused", "no promise token")
    assert h.commands() == []
    h.take_sent()
    h.run(with_token(h.edit("O-1", {"SKU-TENT": 3}, 3)))
    assert h.commands("reserve")[0]["lines"] == [{"location_id": "DC-NORTH", "quantity": 1}]


def test_a_round_that_ended_with_a_waiting_edit_sends_its_allocation_again_from_a_new_owner():
    # Found by the chaos run with edits (kill point replied@stored): round 1 allocated and the edit
    # that waited for it opened round 2 in the same batch; the row was stored, the worker died before
    # the batch's records left, and the new owner's row was in round 2: round 1's outcome came again
    # (``last_outcomes``) but its allocation never did (oms audit: missing_allocation).
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=10)
    h.stock("SKU-BIKE-LIGHT", DC_NORTH=10)
    h.place("O-1", {"SKU-TENT": 1})
    [first] = h.commands("reserve")
    h.take_sent()
    h.run(h.edit("O-1", {"SKU-TENT": 1, "SKU-BIKE-LIGHT": 2}, 2))  # waits for round 1
    last = h.answer(first, "reserved", 9)
    h.run(last)
    [allocated] = [a for a in h.on("allocations") if a["kind"] == "allocate"]
    assert allocated["allocation_id"] == "O-1:1:0"
    h.take_sent()  # the row was stored in round 2, then the worker died before its records left

    h.saga = h.new_worker()
    asyncio.run(h.saga.reload())
    h.take_sent()  # round 2's reserve again
    h.run(last)  # read again (its offset was never committed)

    [again] = [a for a in h.on("allocations") if a["kind"] == "allocate"]
    assert (again["event_id"], again["lines"]) == (allocated["event_id"], allocated["lines"])
    assert [o["round"] for o in h.on("sourced")] == [1]


def test_an_allocation_cancelled_since_is_not_sent_again_by_a_new_owner():
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=10)
    h.place("O-1", {"SKU-TENT": 1})
    [first] = h.commands("reserve")
    h.run(h.answer(first, "reserved", 9))
    h.run(h.cancellation("O-1", request_id="CANCEL-A"))
    h.take_sent()

    h.saga = h.new_worker()
    h.run(h.answer(first, "reserved", 9))  # an old reply read again by the new owner

    assert [a for a in h.on("allocations") if a["kind"] == "allocate"] == []


def test_an_allocation_an_edit_withdrew_in_the_batch_that_made_it_is_sent_again_with_its_cancel():
    # Found by the chaos run with edits (kill point stored@stored): the last reply of round 1 ended
    # it and the edit that waited for it withdrew round 1's allocation, in one batch; the row was
    # stored and the worker died before the records left. The new owner sent round 1's outcome
    # again (listing the allocation) but neither the allocation nor its cancel: the allocation was
    # cancelled in the row (oms audit: missing_allocation).
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=10)
    h.stock("SKU-BIKE-LIGHT", DC_NORTH=10)
    h.place("O-1", {"SKU-TENT": 1, "SKU-BIKE-LIGHT": 2})
    reserves = h.commands("reserve")
    h.take_sent()
    h.run(h.edit("O-1", {"SKU-TENT": 1}, 2))  # waits for round 1
    replies = [h.answer(c, "reserved", 8) for c in reserves]
    h.run(*replies)
    published = [(a["kind"], a["event_id"]) for a in h.on("allocations")]
    assert published == [("allocate", "O-1:1:0:allocate"), ("cancel", "O-1:1:0:cancel")]
    h.take_sent()  # the row was stored in round 2, then the worker died before its records left

    h.saga = h.new_worker()
    asyncio.run(h.saga.reload())
    h.take_sent()  # round 2's reserve and round 1's releases again
    h.run(*replies)  # read again (their offsets were never committed)

    assert [(a["kind"], a["event_id"]) for a in h.on("allocations")] == published
    assert [o["round"] for o in h.on("sourced")] == [1]


def test_a_cancellation_answered_after_the_round_is_answered_again_by_a_new_owner():
    # As above, for a cancellation that waited for the round: its request was committed when it was
    # parked, and the new owner reads only the reply that ended the round again.
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=5)
    h.place("O-1", {"SKU-TENT": 1})
    [reserve] = h.commands("reserve")
    h.take_sent()
    h.run(h.cancellation("O-1", request_id="CANCEL-A"))  # parked in the row
    last = h.answer(reserve, "reserved", 4)
    h.run(last)
    answer = h.answer_of("CANCEL-A")
    h.take_sent()  # lost with the worker

    h.saga = h.new_worker()
    asyncio.run(h.saga.reload())
    h.take_sent()
    h.run(last)

    assert h.answer_of("CANCEL-A") == answer
    assert [a["kind"] for a in h.on("allocations")] == ["allocate", "cancel"]


def test_a_round_published_again_after_a_refused_edit_keeps_the_content_it_was_published_with():
    # Found by the chaos run: a refused edit was the last record published for the order, so the
    # row kept only that; a new owner that read the round's reply again built the round's outcome
    # afresh from a row the cancellation had changed (oms audit: conflicting_outcomes).
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=10)
    h.place("O-1", {"SKU-TENT": 1})
    [reserve] = h.commands("reserve")
    reply = h.answer(reserve, "reserved", 9)
    h.run(reply)
    [first] = [o for o in h.on("sourced") if o["event_id"] == "O-1:sourced:1"]
    h.run(h.cancellation("O-1", request_id="CANCEL-A"))
    h.run(h.edit("O-1", {"SKU-TENT": 2}, 2))
    assert h.answered()["edit"]["status"] == "refused"
    h.take_sent()

    h.saga = h.new_worker()
    h.run(reply)  # read again by the new owner

    again = [o for o in h.on("sourced") if o["event_id"] == "O-1:sourced:1"]
    assert again and all(o == {**first, "trace": None} for o in again)


def test_a_worker_that_owned_the_order_before_sends_again_what_the_owner_meanwhile_lost():
    # Worker A answered an order (and once published its round again, for a reply read twice); the
    # order moves to B (a rebalance), B answers an edit, stores the row and dies before the answer
    # leaves; the order comes back to A, which reads B's last replies again. A "knew" the order and
    # had republished it: it sent nothing again, and the edit was never answered (found by the
    # chaos run with edits).
    a = Harness()
    a.stock("SKU-TENT", DC_NORTH=10)
    a.place("O-1", {"SKU-TENT": 1})
    [reserve] = a.commands("reserve")
    reply = a.answer(reserve, "reserved", 9)
    a.run(reply)
    a.run(reply)  # read twice: the round published again once
    owner_a = a.saga
    a.saga = a.new_worker()
    a.take_sent()
    a.run(a.edit("O-1", {"SKU-TENT": 2}, 2))
    reserves = a.commands("reserve")
    a.take_sent()
    replies = [a.answer(c, "reserved", 7) for c in reserves]
    a.run(*replies)
    [answer] = [o for o in a.on("sourced") if o.get("edit")]
    a.take_sent()  # B stored the row, then died before its records left

    a.saga = owner_a
    owner_a.forget_ownership()  # the rebalance that gives the order back to A
    a.run(*replies)  # read again: their offsets were never committed

    assert [o["event_id"] for o in a.on("sourced") if o.get("edit")] == [answer["event_id"]]
