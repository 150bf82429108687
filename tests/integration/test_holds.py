"""Cart holds end to end on a real broker: held at once, refused whole, released early, taken over by
an order, and released by the owning ledger at expiry, across a restart of the worker too."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import NETWORK_YAML
from tests.integration.test_promise_and_risk import UTRECHT_HOME, records_for, stock_up
from tests.integration.test_sourcing import RESERVATIONS, an_option, atp_at, outcome_of
from tests.worker_process import Events, WorkerProcess, read_topic, wait_until

TENT = "SKU-TENT"
LIGHT = "SKU-BIKE-LIGHT"


@pytest.fixture
def worker(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, events: Events
) -> Iterator[WorkerProcess]:
    """A worker that checks for expired holds twice a second (the default is every 5 s)."""
    process = WorkerProcess(
        kafka_bootstrap, topic_prefix, tmp_path / "worker", extra_env={"OMS_HOLD_EXPIRY_CHECK_S": "0.5"}
    )
    process.start()
    events.config(NETWORK_YAML)
    try:
        yield process
    finally:
        process.stop()


def post_hold(worker: WorkerProcess, lines: dict[tuple[str, str], int], **extra: Any) -> tuple[int, Any]:
    body = {
        "lines": [{"sku": s, "location_id": loc, "quantity": q} for (s, loc), q in lines.items()],
        **extra,
    }
    return worker.post("/holds", json.dumps(body).encode())


def delete_hold(worker: WorkerProcess, hold_id: str) -> tuple[int, Any]:
    request = urllib.request.Request(worker.url(f"/holds/{hold_id}"), method="DELETE")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def status_of(worker: WorkerProcess, hold_id: str) -> str:
    return str(worker.get(f"/holds/{hold_id}")[1].get("status"))


def test_a_hold_is_held_at_once_refused_whole_released_early_taken_over_and_expires(
    worker: WorkerProcess, events: Events
) -> None:
    stock_up(worker, events, (TENT, "DC-NORTH", 10), (LIGHT, "DC-NORTH", 2))
    assert post_hold(worker, {})[0] == 400
    assert post_hold(worker, {(TENT, "DC-NORTH"): 1}, channel="nowhere")[0] == 400
    assert post_hold(worker, {(TENT, "DC-NORTH"): 1}, ttl_s=0)[0] == 400
    # The placement limits bound a hold too (OMS_MAX_LINE_QUANTITY, 1,000 units of a SKU).
    status, absurd = post_hold(worker, {(TENT, "DC-NORTH"): 600, (TENT, "DC-SOUTH"): 600})
    assert (status, absurd["error"]) == (
        400,
        "quantity over the limit of 1000 units per line: SKU-TENT x 1200",
    )

    # All or nothing: the light cannot be held whole, so the tent goes back too.
    status, refused = post_hold(worker, {(TENT, "DC-NORTH"): 2, (LIGHT, "DC-NORTH"): 3})
    assert status == 409 and refused["status"] == "refused" and "DC-NORTH has 2 of 3" in refused["error"]
    wait_until(lambda: status_of(worker, refused["hold_id"]) == "refused", 10, "the refusal")
    wait_until(lambda: atp_at(worker, TENT, "DC-NORTH") == 10, 10, "the tent given back")

    status, held = post_hold(worker, {(TENT, "DC-NORTH"): 4}, ttl_s=3)
    assert status == 201 and held["status"] == "held", held
    assert held["hold_id"].startswith("hold-") and held["skus"][0]["lines"] == [
        {"location_id": "DC-NORTH", "quantity": 4}
    ]
    wait_until(lambda: atp_at(worker, TENT, "DC-NORTH") == 6, 5, "availability without the held units")
    wait_until(lambda: status_of(worker, held["hold_id"]) == "expired", 15, "the hold expired")
    wait_until(lambda: atp_at(worker, TENT, "DC-NORTH") == 10, 10, "the expired units back")
    assert datetime.fromisoformat(held["expires_at"]) <= datetime.now(UTC)

    status, early = post_hold(worker, {(TENT, "DC-NORTH"): 5})
    assert status == 201 and atp_at(worker, TENT, "DC-NORTH") in (5, 10)
    status, released = delete_hold(worker, early["hold_id"])
    assert status == 200 and released["status"] == "released", released
    wait_until(lambda: atp_at(worker, TENT, "DC-NORTH") == 10, 10, "the released units back")

    status, cart = post_hold(worker, {(LIGHT, "DC-NORTH"): 2})
    assert status == 201
    take_over(events, cart["hold_id"], "ORDER-HOLD-1", LIGHT, 2)
    wait_until(lambda: status_of(worker, cart["hold_id"]) == "taken_over", 15, "the hold taken over")
    assert worker.get(f"/holds/{cart['hold_id']}")[1]["order_id"] == "ORDER-HOLD-1"
    replies = records_for(worker, "oms.orders.reservation-replies.v2", "ORDER-HOLD-1")
    # Reserved; then sourcing gives the units back, as it does for any order it does not know (this
    # command was made by hand, not by a placement).
    statuses = [r["status"] for batch in replies for r in batch["replies"]]
    assert statuses[0] == "reserved", statuses
    assert all(not k.startswith(b"hold-") for k, _ in _reply_keys(worker))  # carts get no sourcing answers


def test_a_hold_outlives_a_restart_of_its_ledger_and_still_expires(
    worker: WorkerProcess, events: Events
) -> None:
    stock_up(worker, events, (TENT, "DC-NORTH", 10))
    status, held = post_hold(worker, {(TENT, "DC-NORTH"): 3}, ttl_s=25)
    assert status == 201, held
    wait_until(lambda: atp_at(worker, TENT, "DC-NORTH") == 7, 5, "availability without the held units")

    worker.stop()
    worker.start()

    assert status_of(worker, held["hold_id"]) == "held"
    assert atp_at(worker, TENT, "DC-NORTH") == 7
    wait_until(
        lambda: status_of(worker, held["hold_id"]) == "expired", 40, "the hold expired after the restart"
    )
    wait_until(lambda: atp_at(worker, TENT, "DC-NORTH") == 10, 10, "the expired units back")


def test_an_order_placed_with_a_hold_gets_the_held_units_even_the_last_ones(
    worker: WorkerProcess, events: Events
) -> None:
    stock_up(worker, events, (LIGHT, "DC-NORTH", 2))
    status, cart = post_hold(worker, {(LIGHT, "DC-NORTH"): 2})
    assert status == 201, cart
    wait_until(lambda: atp_at(worker, LIGHT, "DC-NORTH") == 0, 5, "the last lights held by the cart")

    # Availability shows none left, but the order placed with the hold plans on the held units.
    events.order_placed(
        "ORDER-HELD", an_option("standard", {LIGHT: 2}), UTRECHT_HOME, hold_id=cart["hold_id"]
    )
    events.flush()
    outcome = outcome_of(worker, "ORDER-HELD")
    assert outcome["outcome"] == "allocated", outcome
    wait_until(lambda: status_of(worker, cart["hold_id"]) == "taken_over", 15, "the hold taken over")
    assert worker.get(f"/holds/{cart['hold_id']}")[1]["order_id"] == "ORDER-HELD"
    assert atp_at(worker, LIGHT, "DC-NORTH") == 0  # held once: by the order now, not by both

    # An order placed without the hold finds nothing and is not allocated.
    events.order_placed("ORDER-NO-HOLD", an_option("standard", {LIGHT: 1}), UTRECHT_HOME)
    events.flush()
    assert outcome_of(worker, "ORDER-NO-HOLD")["outcome"] != "allocated"


def take_over(events: Events, hold_id: str, order_id: str, sku: str, units: int) -> None:
    """The reserve sourcing sends for an order placed with the hold (``takes_over``)."""
    now = datetime.now(UTC).isoformat()
    command = {
        "event_id": f"{order_id}/1:{sku}:reserve:DC-NORTH",
        "occurred_at": now,
        "source": "test",
        "kind": "reserve",
        "reservation_id": f"{order_id}/1",
        "order_id": order_id,
        "sku": sku,
        "channel": "webshop",
        "lines": [{"location_id": "DC-NORTH", "quantity": units}],
        "takes_over": hold_id,
    }
    batch = {"event_id": "batch-" + order_id, "occurred_at": now, "source": "test", "schema_version": 2}
    events.send(RESERVATIONS, sku.encode(), json.dumps({**batch, "commands": [command]}).encode())
    events.flush()


def _reply_keys(worker: WorkerProcess) -> list[tuple[bytes, Any]]:
    return [
        (k or b"", v)
        for k, v in read_topic(worker.bootstrap, worker.prefix + "oms.orders.reservation-replies.v2")
    ]
