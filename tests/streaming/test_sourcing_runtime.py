"""The sourcing saga without a broker: a dict for the table, hand-made events and ledger answers.

What it checks is the order owner's bookkeeping: one reservation command per SKU, a refusal releases
what was held and re-plans with what the ledger said is left, answers to attempts that are over give
their units back, redelivered answers change nothing, unfinished attempts are re-sent after a
rebalance, and a pickup store's rejection is left to the at-risk flow.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from oms_streams.domain.placement import PlacementLimits
from oms_streams.domain.transit import TransitModel
from oms_streams.streaming.ledger_runtime import AvailabilityView
from oms_streams.streaming.partitioning import partition_for
from oms_streams.streaming.sourcing_runtime import MAX_ATTEMPTS, SourcingRuntime, SourcingTopics
from tests.streaming.test_orders_runtime import UTRECHT_HOME, FakeEvent
from tests.streaming.test_orders_runtime import Harness as OrdersHarness

TOPICS = SourcingTopics("placed", "fulfilment", "replies", "reservations", "allocations", "sourced", "dlq")


class Harness(OrdersHarness):
    def __init__(self) -> None:
        super().__init__()
        self.view = AvailabilityView()
        self.sourcing_table: dict[str, bytes] = {}
        self.saga = SourcingRuntime(
            self.sourcing_table, self.network, self.view, TransitModel(), TOPICS, self._produce, self.metrics
        )
        self._seq = 0

    def stock(self, sku: str, **units: int) -> None:
        record = {
            "sku": sku,
            "published_at": datetime.now(UTC).isoformat(),
            "rules_version": "test",
            "network_atp": sum(units.values()),
            "channels": {
                "webshop": {
                    "total": sum(units.values()),
                    "locations": {k.replace("_", "-"): v for k, v in units.items()},
                }
            },
        }
        self.view.on_records([SimpleNamespace(key=sku.encode(), value=json.dumps(record).encode())])

    def run(self, *events: FakeEvent) -> None:
        asyncio.run(self.saga.apply_batch(list(events)))

    def place(self, order_id: str, cart: dict[str, int]) -> None:
        self.run(self.placement(order_id, cart))

    @staticmethod
    def fulfilment(order_id: str, kind: str, location_id: str, event_id: str, source: str) -> FakeEvent:
        """A fulfilment system's ``kind`` event (short_pick, store_rejected, ...) for the order."""
        body = {
            "event_id": event_id,
            "occurred_at": datetime.now(UTC).isoformat(),
            "source": source,
            "order_id": order_id,
            "kind": kind,
            "location_id": location_id,
        }
        return FakeEvent("fulfilment", order_id.encode(), json.dumps(body).encode())

    def shelf_pickup(self, order_id: str, cart: dict[str, int]) -> FakeEvent:
        """A click & collect placement from STORE-UTRECHT-01's own shelf, ready in two days."""
        end = datetime.now(UTC) + timedelta(days=2)
        lines = [{"sku": sku, "quantity": q} for sku, q in cart.items()]
        option = {
            "option_id": "click_and_collect:STORE-UTRECHT-01",
            "method": "click_and_collect",
            "window_start": end.isoformat(),
            "window_end": (end + timedelta(hours=3)).isoformat(),
            "confidence": 0.95,
            "parcels": 1,
            "co2e_g": 0.0,
            "pickup_store_id": "STORE-UTRECHT-01",
            "shipments": [
                {
                    "location_id": "STORE-UTRECHT-01",
                    "lines": lines,
                    "ready_at": end.isoformat(),
                    "handover_at": end.isoformat(),
                    "arrives_at": end.isoformat(),
                }
            ],
        }
        return self._placed(order_id, lines, option, {"pickup_store_id": "STORE-UTRECHT-01"})

    def placement(self, order_id: str, cart: dict[str, int]) -> FakeEvent:
        """The webshop's placement of ``cart`` (standard delivery from DC-NORTH in six days)."""
        end = datetime.now(UTC) + timedelta(days=6)
        lines = [{"sku": sku, "quantity": q} for sku, q in cart.items()]
        option = {
            "option_id": "standard",
            "method": "standard",
            "window_start": (end - timedelta(hours=9)).isoformat(),
            "window_end": end.isoformat(),
            "confidence": 0.95,
            "parcels": 1,
            "co2e_g": 0.0,
            "shipments": [
                {
                    "location_id": "DC-NORTH",
                    "lines": lines,
                    "ready_at": end.isoformat(),
                    "handover_at": end.isoformat(),
                    "arrives_at": end.isoformat(),
                }
            ],
        }
        return self._placed(order_id, lines, option, UTRECHT_HOME)

    @staticmethod
    def _placed(
        order_id: str, lines: list[dict[str, Any]], option: dict[str, Any], destination: dict[str, Any]
    ) -> FakeEvent:
        body = {
            "event_id": f"{order_id}-placed",
            "occurred_at": datetime.now(UTC).isoformat(),
            "source": "webshop",
            "order_id": order_id,
            "cart": lines,
            "destination": destination,
            "option": option,
        }
        return FakeEvent("placed", order_id.encode(), json.dumps(body).encode())

    def answer(self, command: dict[str, Any], status: str, available_after: int = 0) -> FakeEvent:
        """A reply record answering one command (the ledger batches answers per partition)."""
        return self.answers([command], status, available_after)

    def answers(
        self, commands: list[dict[str, Any]], status: str, available_after: int = 0, partition: int = 0
    ) -> FakeEvent:
        """One reply record answering every command, keyed by the first one's order."""
        replies = [self._reply(command, status, available_after) for command in commands]
        body = {
            "event_id": f"{replies[0]['event_id']}+{len(replies) - 1}",
            "occurred_at": replies[0]["occurred_at"],
            "source": "ledger",
            "schema_version": 2,
            "replies": replies,
        }
        key = commands[0]["order_id"].encode()
        return FakeEvent("replies", key, json.dumps(body).encode(), partition=partition)

    def _reply(self, command: dict[str, Any], status: str, available_after: int) -> dict[str, Any]:
        return {
            "event_id": f"{command['reservation_id']}:{command['sku']}:{command['kind']}",
            "occurred_at": datetime.now(UTC).isoformat(),
            "source": "ledger",
            "kind": command["kind"],
            "reservation_id": command["reservation_id"],
            "order_id": command["order_id"],
            "sku": command["sku"],
            "status": status,
            "lines": [
                {
                    "location_id": line["location_id"],
                    "quantity": line["quantity"],
                    "available_after": available_after,
                }
                for line in command["lines"]
            ],
        }

    def commands(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Every command sent, out of the batch records they travel in."""
        return [
            c
            for batch in self.on("reservations")
            for c in batch["commands"]
            if kind is None or c["kind"] == kind
        ]

    def take_sent(self) -> None:
        self.sent.clear()


def test_each_sku_of_the_plan_is_asked_of_its_ledger_owner_and_all_reserved_allocates():
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=5)
    h.stock("SKU-BIKE-LIGHT", DC_NORTH=5)
    h.place("ORDER-1", {"SKU-TENT": 2, "SKU-BIKE-LIGHT": 1})

    asked = h.commands("reserve")
    assert sorted((c["sku"], c["reservation_id"]) for c in asked) == [
        ("SKU-BIKE-LIGHT", "ORDER-1/1"),
        ("SKU-TENT", "ORDER-1/1"),
    ]
    # One record for the batch's commands (no partition count here: one partition), keyed by the
    # first command's SKU so it lands where that SKU's ledger lives.
    [(_, key, value)] = [s for s in h.sent if s[0] == "reservations"]
    assert key == json.loads(value)["commands"][0]["sku"].encode()
    h.take_sent()

    h.run(*(h.answer(c, "reserved", 3) for c in asked))

    [outcome] = h.on("sourced")
    assert outcome["outcome"] == "allocated" and outcome["attempts"] == 1
    [allocation] = h.on("allocations")
    assert allocation["location_id"] == "DC-NORTH" and allocation["allocation_id"] == "ORDER-1:1:0"


def test_a_refusal_releases_what_was_held_and_plans_again_with_what_the_ledger_said_is_left():
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=2, DC_SOUTH=2)
    h.stock("SKU-BIKE-LIGHT", DC_NORTH=5)
    h.place("ORDER-1", {"SKU-TENT": 2, "SKU-BIKE-LIGHT": 1})
    first = {c["sku"]: c for c in h.commands("reserve")}
    assert {line["location_id"] for c in first.values() for line in c["lines"]} == {"DC-NORTH"}
    h.take_sent()

    # Another order took the tents at DC-NORTH first: the ledger says none are left there.
    h.run(h.answer(first["SKU-BIKE-LIGHT"], "reserved", 4), h.answer(first["SKU-TENT"], "refused", 0))

    [release] = h.commands("release")
    assert (release["sku"], release["reservation_id"]) == ("SKU-BIKE-LIGHT", "ORDER-1/1")
    again = {c["sku"]: c for c in h.commands("reserve")}
    assert {c["reservation_id"] for c in again.values()} == {"ORDER-1/2"}
    assert [line["location_id"] for line in again["SKU-TENT"]["lines"]] == ["DC-SOUTH"]
    assert h.on("sourced") == []


def test_one_reply_record_answers_the_orders_of_its_partition_and_one_holding_a_stray_is_refused():
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=5)
    h.stock("SKU-STOVE", DC_NORTH=5)
    orders = [f"ORDER-{n}" for n in range(12)]
    for order_id in orders:
        h.place(order_id, {"SKU-TENT": 1, "SKU-STOVE": 1})
    h.saga.partitions = 4  # from here on, records are checked against their partition
    by_partition: dict[int, list[dict[str, Any]]] = {}
    for command in h.commands("reserve"):
        by_partition.setdefault(partition_for(command["order_id"].encode(), 4), []).append(command)
    [(home, mine), (_, theirs), *_] = sorted(by_partition.items())
    h.take_sent()

    # A record holding an answer for an order of another partition is dead-lettered whole.
    h.run(h.answers(mine + theirs[:1], "reserved", 3, partition=home))
    [letter] = h.on("dlq")
    assert repr(theirs[0]["order_id"]) in letter["reason"] and not h.on("sourced")
    h.take_sent()

    # The partition's answers in one record: every order of it is allocated.
    h.run(h.answers(mine, "reserved", 3, partition=home))
    outcomes = h.on("sourced")
    assert sorted(o["order_id"] for o in outcomes) == sorted({c["order_id"] for c in mine})
    assert {o["outcome"] for o in outcomes} == {"allocated"}


def test_an_answer_to_an_attempt_that_is_over_gives_its_units_back():
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=2, DC_SOUTH=2)
    h.place("ORDER-1", {"SKU-TENT": 1})
    [first] = h.commands("reserve")
    h.run(h.answer(first, "refused", 0))
    h.take_sent()

    h.run(h.answer(first, "reserved", 1))  # e.g. a resend of attempt 1 that a ledger did hold

    [release] = h.commands("release")
    assert release["reservation_id"] == "ORDER-1/1"
    assert h.metrics.sourcing_events.labels("reply", "released_stray")._value.get() == 1


def test_a_redelivered_answer_releases_nothing_and_publishes_the_same_round_again():
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=2)
    h.place("ORDER-1", {"SKU-TENT": 1})
    [command] = h.commands("reserve")
    h.run(h.answer(command, "reserved", 1))
    first = ([a["event_id"] for a in h.on("allocations")], [o["event_id"] for o in h.on("sourced")])
    h.take_sent()

    # After a crash the local row can be ahead of what reached Kafka: the redelivered input
    # publishes the finished round again, with the same ids, so nothing is lost.
    h.run(h.answer(command, "reserved", 1), h.answer(command, "reserved", 1))

    assert h.commands() == []
    assert ([a["event_id"] for a in h.on("allocations")], [o["event_id"] for o in h.on("sourced")]) == first


def test_an_order_rejected_when_stock_keeps_being_taken_gives_up_after_the_last_attempt():
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=50)
    h.place("ORDER-1", {"SKU-TENT": 1})
    for _ in range(MAX_ATTEMPTS):
        [command] = h.commands("reserve")
        h.take_sent()
        # Each time another order is faster: refused, though units keep arriving behind it.
        h.run(h.answer(command, "refused", 50))

    [outcome] = h.on("sourced")
    assert outcome["outcome"] == "rejected" and "gave up" in outcome["reason"]
    assert outcome["attempts"] == MAX_ATTEMPTS


def test_a_rejection_whose_outcome_was_lost_is_published_again_when_its_answer_is_read_again():
    # The batch of the last refusal stored the row rejected and died before the outcome left (the
    # chaos run's kill point "stored"); its input, not committed, is read again by the restarted
    # owner, which finds the round over. The answer is stray for the saga, not for the webshop.
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=50)
    h.place("ORDER-1", {"SKU-TENT": 1})
    for _ in range(MAX_ATTEMPTS):
        [command] = h.commands("reserve")
        h.take_sent()
        last = h.answer(command, "refused", 50)
        h.run(last)
    assert [o["outcome"] for o in h.on("sourced")] == ["rejected"]
    h.take_sent()  # lost with the process
    restarted = SourcingRuntime(
        h.sourcing_table, h.network, h.view, TransitModel(), TOPICS, h._produce, h.metrics
    )

    asyncio.run(restarted.apply_batch([last]))

    [again] = h.on("sourced")
    assert (again["event_id"], again["outcome"]) == ("ORDER-1:sourced:1", "rejected")
    asyncio.run(restarted.apply_batch([last]))
    assert len(h.on("sourced")) == 1  # once per order and worker, not per redelivery


def test_after_a_rebalance_the_commands_of_unfinished_attempts_are_sent_again():
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=2)
    h.place("ORDER-1", {"SKU-TENT": 1})
    [command] = h.commands("reserve")
    h.take_sent()
    fresh = SourcingRuntime(
        h.sourcing_table, h.network, h.view, TransitModel(), TOPICS, h._produce, h.metrics
    )

    assert asyncio.run(fresh.reload()) == 1

    assert h.commands("reserve") == [{**command, "occurred_at": h.commands("reserve")[0]["occurred_at"]}]


def test_a_pickup_store_rejection_is_left_to_the_at_risk_flow():
    h = Harness()
    h.view.on_records(
        [
            SimpleNamespace(
                key=b"SKU-TENT",
                value=json.dumps(
                    {
                        "sku": "SKU-TENT",
                        "published_at": datetime.now(UTC).isoformat(),
                        "rules_version": "t",
                        "network_atp": 3,
                        "channels": {"click_and_collect": {"total": 3, "locations": {"STORE-UTRECHT-01": 3}}},
                    }
                ).encode(),
            )
        ]
    )
    h.run(h.shelf_pickup("ORDER-9", {"SKU-TENT": 1}))
    [command] = h.commands("reserve")
    h.run(h.answer(command, "reserved", 2))
    h.take_sent()

    h.run(h.fulfilment("ORDER-9", "store_rejected", "STORE-UTRECHT-01", "r", "store-app"))

    assert h.sent == []


def test_a_short_pick_reported_while_a_re_sourcing_is_under_way_is_withdrawn_after_it():
    h = Harness()
    # No DC holds both lines: the tents come from DC-NORTH, the stove from DC-SOUTH.
    h.stock("SKU-TENT", DC_NORTH=2, DC_SOUTH=1)
    h.stock("SKU-STOVE", DC_SOUTH=1)
    h.place("ORDER-1", {"SKU-TENT": 2, "SKU-STOVE": 1})
    h.run(*(h.answer(c, "reserved", 5) for c in h.commands("reserve")))
    at = {a["location_id"]: a for a in h.on("allocations")}
    assert set(at) == {"DC-NORTH", "DC-SOUTH"}
    h.take_sent()

    def short_pick(location: str) -> FakeEvent:
        return h.fulfilment("ORDER-1", "short_pick", location, f"sp-{location}", "wms")

    h.run(short_pick("DC-NORTH"))
    round_two = h.commands("reserve")
    assert {c["reservation_id"] for c in round_two} == {"ORDER-1/2"}
    h.take_sent()
    h.run(short_pick("DC-SOUTH"))  # while round 2 is reserving: parked, not lost
    assert h.sent == []

    h.run(*(h.answer(c, "reserved", 5) for c in round_two))

    # Round 2 closes, then the parked short pick withdraws DC-SOUTH's shipment: round 3 (the stove
    # is nowhere else, so it ends at once, rejected with the reason).
    outcomes = h.on("sourced")
    assert [o["round"] for o in outcomes] == [2, 3]
    assert outcomes[1]["outcome"] == "rejected" and "SKU-STOVE" in outcomes[1]["reason"]
    cancelled = [a["allocation_id"] for a in h.on("allocations") if a["kind"] == "cancel"]
    assert cancelled == [at["DC-SOUTH"]["allocation_id"]]


# --- every placement is answered -------------------------------------------------------------------


def test_a_placement_over_a_limit_is_answered_rejected_in_round_0_and_reserves_nothing():
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=5)
    h.place("ORDER-U", {"SKU-TENT": 1_001})

    assert h.commands() == []
    [answer] = h.on("sourced")
    assert answer["event_id"] == "ORDER-U:sourced:0"
    assert (answer["round"], answer["outcome"]) == (0, "rejected")
    assert answer["reason"] == "quantity over the limit of 1000 units per line: SKU-TENT x 1001"
    assert answer["allocations"] == [] and answer["attempts"] == 0
    row = h.saga.lookup("ORDER-U")
    assert row is not None and (row.status, row.round) == ("rejected", 0)


def test_a_redelivered_refused_placement_gets_the_same_answer_and_a_new_one_a_refused_edit():
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=5)
    h.place("ORDER-U", {"SKU-TENT": 1_001})
    [first] = h.on("sourced")
    h.take_sent()

    h.place("ORDER-U", {"SKU-TENT": 1_001})  # the same placement again (same event id)
    assert [_but_when(a) for a in h.on("sourced")] == [_but_when(first)]
    h.take_sent()

    placement = h.placement("ORDER-U", {"SKU-TENT": 1})  # the order id again, a new event id
    placement.message.value = placement.message.value.replace(b"ORDER-U-placed", b"ORDER-U-again")
    h.run(placement)
    # An edit of a refused order: answered refused, with the order as it stands (round 0, rejected).
    [answer] = h.on("sourced")
    assert (answer["round"], answer["outcome"], answer["edit"]["status"]) == (0, "rejected", "refused")
    assert "refused at placement" in answer["edit"]["reason"] and h.commands() == []


def test_limits_on_lines_and_units_are_checked_at_placement():
    h = Harness()
    h.saga.gate.limits = PlacementLimits(max_lines=1, max_line_quantity=3)
    h.stock("SKU-TENT", DC_NORTH=50)
    h.stock("SKU-BIKE-LIGHT", DC_NORTH=50)
    h.place("ORDER-LINES", {"SKU-TENT": 1, "SKU-BIKE-LIGHT": 1})
    h.place("ORDER-UNITS", {"SKU-TENT": 4})
    h.place("ORDER-OK", {"SKU-TENT": 3})

    reasons = {a["order_id"]: a["reason"] for a in h.on("sourced")}
    assert reasons == {
        "ORDER-LINES": "too many lines: 2 (at most 1 per order)",
        "ORDER-UNITS": "quantity over the limit of 3 units per line: SKU-TENT x 4",
    }
    assert [c["order_id"] for c in h.commands("reserve")] == ["ORDER-OK"]


def test_an_unreadable_placement_is_answered_rejected_once_with_the_dead_letter_reason():
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=5)
    placement = h.placement("ORDER-X", {"SKU-TENT": 1})
    body = json.loads(placement.message.value)
    body["cart"] = [{"sku": "SKU-TENT", "quantity": 2}]  # the cart does not match its option
    placement.message.value = json.dumps(body).encode()
    h.run(placement)
    h.run(placement)

    answers = h.on("sourced")
    assert len(answers) == 2 and _but_when(answers[0]) == _but_when(answers[1])  # the same answer
    assert answers[0]["outcome"] == "rejected" and answers[0]["round"] == 0
    assert "impossible option" in answers[0]["reason"]
    assert h.commands() == []


def _but_when(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "occurred_at"}
