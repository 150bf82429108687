"""What a worker decided, stored and died before producing, comes back when its input is read again.

The saga's outputs leave only once the batch's rows are durable (``Outbox``); a worker killed in
between (``tests/faults/kill_points.py``, moment ``stored``) leaves rows ahead of Kafka. The reload
re-sends the commands the rows wait on; everything else has to come back from the inputs read again
(their offsets were not committed). Both cases here were found by the chaos run (``bench.chaos``).
"""

from __future__ import annotations

from tests.streaming.test_cancellation_runtime import Harness, released


def test_a_short_pick_read_again_after_its_outputs_were_lost_cancels_the_allocation_again():
    # Kill point fulfil@stored: fulfilment never got the cancel, and the allocation stayed live
    # next to the one that replaced it (oms audit: over_allocated, unheld_allocation).
    h = Harness()
    h.stock("SKU-STOVE", DC_NORTH=1, DC_SOUTH=1)
    h.place("ORDER-1", {"SKU-STOVE": 1})
    h.run(*(h.answer(c, "reserved", 5) for c in h.commands("reserve")))
    [first] = h.on("allocations")
    short_pick = h.fulfilment("ORDER-1", "short_pick", first["location_id"], "sp-1", "wms")
    h.run(short_pick)
    [cancel] = [a for a in h.on("allocations") if a["kind"] == "cancel"]
    h.take_sent()  # lost with the worker

    h.run(short_pick)  # read again by the restarted worker

    [again] = h.on("allocations")
    assert (again["kind"], again["event_id"]) == ("cancel", cancel["event_id"])
    assert again["reason"] == cancel["reason"]
    assert h.commands() == []  # its release and the new round's reserve come from the reload
    h.take_sent()
    h.run(h.fulfilment("ORDER-1", "store_rejected", "STORE-UTRECHT-01", "r-1", "store-app"))
    assert h.sent == []  # nothing withdrawn there: nothing to say again


def test_a_cancellation_parked_during_the_round_is_answered_again_when_its_last_reply_is_read_again():
    # Kill point replied@stored: the request had been committed when it was parked, so only the
    # reply that ended the round is read again; the customer never got an answer.
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=5)
    h.place("ORDER-1", {"SKU-TENT": 1})
    [reserve] = h.commands("reserve")
    h.take_sent()
    h.run(h.cancellation("ORDER-1", request_id="CANCEL-A"))  # parked in the row
    last = h.answer(reserve, "reserved", 4)
    h.run(last)
    answer = h.answer_of("CANCEL-A")
    h.take_sent()  # lost with the worker

    h.run(last)  # read again by the restarted worker

    assert h.answer_of("CANCEL-A") == answer
    assert [a["kind"] for a in h.on("allocations")] == ["cancel"]  # never announced, withdrawn
    assert released(h) == [("SKU-TENT", "ORDER-1/1", "DC-NORTH")]
    assert [o["round"] for o in h.on("sourced")] == [1]
