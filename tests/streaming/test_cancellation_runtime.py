"""Cancellation in the shell, without a broker: the sourcing saga releases, withdraws, replaces and
answers; ``track_orders`` closes what was cancelled (risk cleared, courier slot freed).

Every record the runtimes produce is checked against its wire schema, as a consumer would read it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from oms_streams.adapters.timestamps import epoch_ms
from oms_streams.domain.transit import TransitModel
from oms_streams.schemas.cancellations import OrderCancellationOutcome
from oms_streams.schemas.orders import OrderAtRisk
from oms_streams.schemas.sourcing import Allocation, OrderSourced, ReservationBatch
from oms_streams.streaming.orders_runtime import OrdersRuntime, OrderTopics
from oms_streams.streaming.sourcing_runtime import SourcingRuntime, SourcingTopics
from tests.streaming.test_orders_runtime import T0, FakeEvent, click_and_collect
from tests.streaming.test_orders_runtime import Harness as OrdersHarness
from tests.streaming.test_sourcing_runtime import Harness as SagaHarness

TOPICS = SourcingTopics(
    "placed",
    "fulfilment",
    "replies",
    "reservations",
    "allocations",
    "sourced",
    "dlq",
    cancellations="cancellations",
    cancellation_outcomes="cancellation-outcomes",
)
SCHEMAS = {
    "cancellation-outcomes": OrderCancellationOutcome,
    "allocations": Allocation,
    "sourced": OrderSourced,
    "reservations": ReservationBatch,
}


class Harness(SagaHarness):
    def __init__(self) -> None:
        super().__init__()
        self.saga = self.new_worker()
        self._requests = 0

    def new_worker(self) -> SourcingRuntime:
        """A sourcing runtime over the same tables: a restarted worker, or a new owner."""
        return SourcingRuntime(
            self.sourcing_table, self.network, self.view, TransitModel(), TOPICS, self._produce, self.metrics
        )

    async def _produce(self, topic: str, key: bytes, value: bytes | None) -> None:
        if topic in SCHEMAS and value is not None:
            SCHEMAS[topic].model_validate_json(value)  # what a consumer of the topic reads
        self.sent.append((topic, key, value))

    def allocated(self, order_id: str, cart: dict[str, int]) -> None:
        for sku, units in cart.items():
            self.stock(sku, DC_NORTH=units + 5)
        self.place(order_id, cart)
        self.run(*(self.answer(c, "reserved", 5) for c in self.commands("reserve")))
        assert [o["outcome"] for o in self.on("sourced")] == ["allocated"]
        self.take_sent()

    def cancellation(self, order_id: str, *skus: str, request_id: str | None = None) -> FakeEvent:
        self._requests += 1
        body: dict[str, Any] = {
            "event_id": request_id or f"CANCEL-{self._requests}",
            "occurred_at": datetime.now(UTC).isoformat(),
            "source": "customer-service",
            "order_id": order_id,
            "reason": "changed my mind",
        }
        if skus:
            body["lines"] = [{"sku": sku} for sku in skus]
        return FakeEvent("cancellations", order_id.encode(), json.dumps(body).encode())

    def answer_of(self, request_id: str) -> dict[str, Any]:
        [answer] = [a for a in self.on("cancellation-outcomes") if a["request_id"] == request_id]
        return answer


def released(h: Harness) -> list[tuple[str, str, str]]:
    return sorted(
        (c["sku"], c["reservation_id"], line["location_id"])
        for c in h.commands("release")
        for line in c["lines"]
    )


def test_cancelling_a_whole_order_releases_its_holds_withdraws_its_allocation_and_answers():
    h = Harness()
    h.allocated("ORDER-1", {"SKU-TENT": 2, "SKU-BIKE-LIGHT": 3})

    h.run(h.cancellation("ORDER-1", request_id="CANCEL-A"))

    assert released(h) == [
        ("SKU-BIKE-LIGHT", "ORDER-1/1", "DC-NORTH"),
        ("SKU-TENT", "ORDER-1/1", "DC-NORTH"),
    ]
    [cancel] = h.on("allocations")
    assert (cancel["kind"], cancel["allocation_id"]) == ("cancel", "ORDER-1:1:0")
    assert cancel["reason"] == "cancelled: changed my mind"
    answer = h.answer_of("CANCEL-A")
    assert answer["outcome"] == "cancelled" and answer["order_cancelled"] is True
    assert answer["withdrawn_allocations"] == ["ORDER-1:1:0"] and answer["open_lines"] == []
    assert h.saga.lookup("ORDER-1").allocations[0].state == "cancelled"  # type: ignore[union-attr]


def test_cancelling_a_line_replaces_its_allocation_with_one_of_the_rest_in_a_new_round():
    h = Harness()
    h.allocated("ORDER-1", {"SKU-TENT": 2, "SKU-BIKE-LIGHT": 3})

    h.run(h.cancellation("ORDER-1", "SKU-TENT", request_id="CANCEL-A"))

    assert released(h) == [("SKU-TENT", "ORDER-1/1", "DC-NORTH")]  # the lights stay held
    cancel, replacement = h.on("allocations")
    assert (cancel["kind"], cancel["allocation_id"]) == ("cancel", "ORDER-1:1:0")
    assert (replacement["kind"], replacement["allocation_id"]) == ("allocate", "ORDER-1:2:0")
    assert replacement["lines"] == [{"sku": "SKU-BIKE-LIGHT", "quantity": 3}]
    assert replacement["service_id"] == "POSTNL-STANDARD" and replacement["milestones"]
    [round_two] = h.on("sourced")
    assert (round_two["round"], round_two["outcome"], round_two["allocations"]) == (
        2,
        "allocated",
        ["ORDER-1:2:0"],
    )
    answer = h.answer_of("CANCEL-A")
    assert answer["replacement_allocations"] == ["ORDER-1:2:0"]
    assert answer["open_lines"] == [{"sku": "SKU-BIKE-LIGHT", "quantity": 3}]
    assert answer["order_cancelled"] is False
    h.take_sent()

    # The last line goes too: the replacement (holding under the first reservation) is withdrawn.
    h.run(h.cancellation("ORDER-1", "SKU-BIKE-LIGHT", request_id="CANCEL-B"))
    assert released(h) == [("SKU-BIKE-LIGHT", "ORDER-1/1", "DC-NORTH")]
    assert h.answer_of("CANCEL-B")["order_cancelled"] is True


def test_a_shipped_line_is_refused_with_the_reason_and_nothing_is_released():
    h = Harness()
    h.allocated("ORDER-1", {"SKU-TENT": 1})
    handed = {
        "event_id": "handover-1",
        "occurred_at": datetime.now(UTC).isoformat(),
        "source": "wms",
        "order_id": "ORDER-1",
        "kind": "handed_to_carrier",
        "location_id": "DC-NORTH",
    }
    h.run(FakeEvent("fulfilment", b"ORDER-1", json.dumps(handed).encode()))
    h.take_sent()

    h.run(h.cancellation("ORDER-1", request_id="CANCEL-A"))

    answer = h.answer_of("CANCEL-A")
    assert answer["outcome"] == "refused"
    assert answer["reason"] == "SKU-TENT: all 1 already shipped from DC-NORTH"
    assert answer["lines"][0]["status"] == "shipped"
    assert h.commands() == [] and h.on("allocations") == []


def test_a_request_read_again_changes_nothing_and_is_answered_again_with_the_same_ids():
    h = Harness()
    h.allocated("ORDER-1", {"SKU-TENT": 2, "SKU-BIKE-LIGHT": 3})
    request = h.cancellation("ORDER-1", "SKU-TENT", request_id="CANCEL-A")
    h.run(request)
    first = {topic: [v for t, _, v in h.sent if t == topic] for topic in SCHEMAS}
    row_after = h.sourcing_table["ORDER-1"]
    h.take_sent()

    h.run(request)  # redelivered after a crash

    assert h.sourcing_table["ORDER-1"] == row_after
    again = {topic: [v for t, _, v in h.sent if t == topic] for topic in SCHEMAS}
    ids = {topic: [json.loads(v)["event_id"] for v in values] for topic, values in first.items()}
    assert {topic: [json.loads(v)["event_id"] for v in values] for topic, values in again.items()} == ids
    assert h.metrics.cancellations.labels("duplicate")._value.get() == 1


def test_a_new_request_for_a_cancelled_order_is_answered_already_cancelled():
    h = Harness()
    h.allocated("ORDER-1", {"SKU-TENT": 1})
    h.run(h.cancellation("ORDER-1", request_id="CANCEL-A"))
    h.take_sent()

    h.run(h.cancellation("ORDER-1", request_id="CANCEL-B"))

    assert h.answer_of("CANCEL-B")["outcome"] == "already_cancelled"
    assert h.commands() == [] and h.on("allocations") == []


def test_a_request_during_the_sourcing_round_waits_for_it_then_withdraws_what_it_allocated():
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=5)
    h.place("ORDER-1", {"SKU-TENT": 1})
    asked = h.commands("reserve")
    h.take_sent()

    h.run(h.cancellation("ORDER-1", request_id="CANCEL-A"))
    assert h.on("cancellation-outcomes") == []  # parked in the row

    h.run(*(h.answer(c, "reserved", 4) for c in asked))

    kinds = [a["kind"] for a in h.on("allocations")]
    assert kinds == ["allocate", "cancel"]
    assert h.answer_of("CANCEL-A")["outcome"] == "cancelled"
    assert released(h) == [("SKU-TENT", "ORDER-1/1", "DC-NORTH")]


def test_a_cancellation_placed_in_the_same_batch_as_its_order_waits_for_the_round_instead_of_failing():
    h = Harness()
    h.stock("SKU-TENT", DC_NORTH=5)
    request = h.cancellation("ORDER-1", request_id="CANCEL-A")
    # Placed and cancelled at once, the cancellation read first: it is applied after the placement.
    h.run(request, h.placement("ORDER-1", {"SKU-TENT": 1}))

    assert h.on("cancellation-outcomes") == []
    h.run(*(h.answer(c, "reserved", 4) for c in h.commands("reserve")))
    assert h.answer_of("CANCEL-A")["outcome"] == "cancelled"


def test_an_unknown_order_is_refused_and_a_bad_request_is_dead_lettered():
    h = Harness()

    h.run(h.cancellation("ORDER-404", request_id="CANCEL-A"), FakeEvent("cancellations", b"ORDER-5", b"{"))

    answer = h.answer_of("CANCEL-A")
    assert answer["outcome"] == "refused" and "not known" in answer["reason"]
    [letter] = h.on("dlq")
    assert letter["reason"] == "malformed JSON" and letter["source_topic"] == "cancellations"
    assert h.metrics.cancellations.labels("dead_lettered")._value.get() == 1


# --- track_orders: risk and courier slots ---------------------------------------------------------

ORDER_TOPICS = OrderTopics(
    "placed",
    "fulfilment",
    "at-risk",
    "observations",
    "bookings",
    "dlq",
    cancellations="cancellations",
    cancellation_outcomes="cancellation-outcomes",
)


class Tracking(OrdersHarness):
    def __init__(self) -> None:
        super().__init__()
        self.runtime = OrdersRuntime(self.table, self.network, ORDER_TOPICS, self._produce, self.metrics)

    def cancelled(self, order_id: str, *skus: str, everything: bool = True) -> FakeEvent:
        answer = {
            "event_id": f"cancellation-{order_id}",
            "occurred_at": self.now.isoformat(),
            "source": "oms-streams:source_orders",
            "schema_version": 1,
            "order_id": order_id,
            "request_id": "CANCEL-1",
            "outcome": "cancelled",
            "lines": [
                {
                    "sku": sku,
                    "status": "cancelled",
                    "cancelled_quantity": 1,
                    "refused_quantity": 0,
                    "reason": "",
                }
                for sku in skus
            ],
            "withdrawn_allocations": [],
            "open_lines": [],
            "order_cancelled": everything,
            "requested_at": self.now.isoformat(),
        }
        OrderCancellationOutcome.model_validate_json(json.dumps(answer))
        return FakeEvent("cancellation-outcomes", order_id.encode(), json.dumps(answer).encode(), partition=2)


def test_a_cancelled_order_at_risk_is_cleared_and_no_longer_watched(monkeypatch: Any) -> None:
    import oms_streams.streaming.orders_runtime as orders_runtime

    t = Tracking()
    monkeypatch.setattr(orders_runtime, "now_ms", lambda: epoch_ms(t.now))
    t.apply(t.placement("O-1", click_and_collect(T0 + timedelta(minutes=30))))
    t.now = T0 + timedelta(minutes=29, seconds=30)  # pick start was due at 29:00
    t.check()
    [at_risk] = t.on("at-risk")
    assert at_risk["status"] == "at_risk"

    t.apply(t.cancelled("O-1", "SKU-TENT"))

    cleared = t.on("at-risk")[-1]
    assert cleared["status"] == "cleared" and cleared["event_id"] != at_risk["event_id"]
    OrderAtRisk.model_validate_json(json.dumps(cleared))
    t.runtime.export_gauges()
    assert t.metrics.open_orders._value.get() == 0
    t.now = T0 + timedelta(days=3)
    assert t.check() == 0  # nothing more to check: nothing published
    assert t.on("at-risk")[-1] == cleared


def test_a_line_cancelled_leaves_the_other_shipments_watched(monkeypatch: Any) -> None:
    import oms_streams.streaming.orders_runtime as orders_runtime

    t = Tracking()
    monkeypatch.setattr(orders_runtime, "now_ms", lambda: epoch_ms(t.now))
    option = click_and_collect(T0 + timedelta(minutes=30))
    option["shipments"][0]["lines"].append({"sku": "SKU-STOVE", "quantity": 1})
    t.apply(t.placement("O-1", option))

    t.apply(t.cancelled("O-1", "SKU-TENT", everything=False))  # the stove still ships

    row, tracking = t.runtime.lookup("O-1")  # type: ignore[misc]
    assert row.cancelled == ["SKU-TENT"] and tracking is not None and tracking.closed == frozenset()
    t.now = T0 + timedelta(minutes=29, seconds=30)
    t.check()
    assert t.on("at-risk")[-1]["status"] == "at_risk"
