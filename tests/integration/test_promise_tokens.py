"""End to end on a real broker with a signing key: POST /promise signs each option, a placement with
its real token is sourced, and a forged one (5,000 units, an option the OMS did not promise, no
token) is answered rejected with the reason and reserves nothing."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.test_promise_and_risk import RESPONSES, UTRECHT_HOME, records_for, stock_up
from tests.integration.test_sourcing import RESERVATIONS, allocations_of, an_option, atp_at, outcome_of
from tests.worker_process import Events, WorkerProcess, read_topic, wait_until

TOKEN = re.compile(r"p1\.it-1\.[0-9]+\.[A-Za-z0-9_-]{43}")


@pytest.fixture
def worker_env() -> dict[str, str]:
    return {"OMS_PROMISE_SIGNING_KEYS": "it-1=integration-test-secret-0123"}


def promise(worker: WorkerProcess, cart: dict[str, int]) -> dict[str, dict[str, Any]]:
    body = {"cart": [{"sku": s, "quantity": q} for s, q in cart.items()], "destination": UTRECHT_HOME}
    status, answer = worker.post("/promise", json.dumps(body).encode())
    assert status == 200, answer
    return {option["option_id"]: option for option in answer["options"]}


def test_post_promise_and_the_responses_topic_sign_every_option_with_its_expiry(
    worker: WorkerProcess, events: Events
) -> None:
    stock_up(worker, events, ("SKU-TENT", "DC-NORTH", 5), ("SKU-TENT", "STORE-UTRECHT-01", 2))
    options = promise(worker, {"SKU-TENT": 1})

    assert {"standard", "click_and_collect:STORE-UTRECHT-01"} <= set(options), options
    in_30_minutes = datetime.now(UTC) + timedelta(minutes=30)
    for option in options.values():
        assert TOKEN.fullmatch(option["promise_token"]), option
        expires = datetime.fromisoformat(option["token_expires_at"])
        assert abs(expires - in_30_minutes) < timedelta(seconds=30), option

    events.promise_request("REQ-SIGNED", {"SKU-TENT": 1}, UTRECHT_HOME)
    events.flush()
    response = wait_until(lambda: records_for(worker, RESPONSES, "REQ-SIGNED"), 20, "a response")[0]
    assert all(TOKEN.fullmatch(option["promise_token"]) for option in response["options"]), response


def test_only_a_placement_with_the_token_of_its_option_reserves_stock(
    worker: WorkerProcess, events: Events
) -> None:
    stock_up(worker, events, ("SKU-TENT", "DC-NORTH", 5))
    real = promise(worker, {"SKU-TENT": 1})["standard"]
    bare = {k: v for k, v in real.items() if k not in ("promise_token", "token_expires_at")}
    greedy = copy.deepcopy(real)  # the signed option, token and all, for 5,000 tents
    greedy["shipments"][0]["lines"][0]["quantity"] = 5_000
    elsewhere = copy.deepcopy(bare)
    elsewhere["shipments"][0]["location_id"] = "DC-SOUTH"

    events.order_placed("ORDER-REAL", bare, UTRECHT_HOME, promise_token=real["promise_token"])
    events.order_placed("ORDER-ECHO", real, UTRECHT_HOME)  # the token left in the option as returned
    events.order_placed("ORDER-GREEDY", greedy, UTRECHT_HOME)
    events.order_placed("ORDER-MOVED", elsewhere, UTRECHT_HOME, promise_token=real["promise_token"])
    events.order_placed("ORDER-UNSIGNED", an_option("standard", {"SKU-TENT": 5_000}), UTRECHT_HOME)
    events.flush()

    assert outcome_of(worker, "ORDER-REAL")["outcome"] == "allocated"
    assert outcome_of(worker, "ORDER-ECHO")["outcome"] == "allocated"
    refused = {
        order_id: outcome_of(worker, order_id, round=0)
        for order_id in ("ORDER-GREEDY", "ORDER-MOVED", "ORDER-UNSIGNED")
    }
    assert {order_id: (a["outcome"], a["reason"]) for order_id, a in refused.items()} == {
        "ORDER-GREEDY": ("rejected", "option does not match its promise token"),
        "ORDER-MOVED": ("rejected", "option does not match its promise token"),
        "ORDER-UNSIGNED": ("rejected", "no promise token"),
    }
    # Nothing was asked of a ledger for them: two tents are held, by the two real orders.
    commands = [value for _, value in read_topic(worker.bootstrap, worker.prefix + RESERVATIONS)]
    assert not [value for value in commands if value and re.search(rb"ORDER-(GREEDY|MOVED|UNSIGNED)", value)]
    assert all(allocations_of(worker, order_id) == [] for order_id in refused)
    wait_until(lambda: atp_at(worker, "SKU-TENT", "DC-NORTH") == 3, 20, "two tents reserved")
    assert worker.metric("oms_promise_tokens_total", verdict="valid") == 2
    assert worker.metric("oms_promise_tokens_total", verdict="mismatch") == 2
    assert worker.metric("oms_promise_tokens_total", verdict="missing") == 1


def test_a_cart_hold_holds_only_an_option_the_oms_promised_with_its_token(
    worker: WorkerProcess, events: Events
) -> None:
    stock_up(worker, events, ("SKU-TENT", "DC-NORTH", 5))
    real = promise(worker, {"SKU-TENT": 1})["standard"]
    greedy = copy.deepcopy(real)
    greedy["shipments"][0]["lines"][0]["quantity"] = 5_000

    def hold(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        status, answer = worker.post("/holds", json.dumps(body).encode())
        return status, answer

    lines_only = {"lines": [{"sku": "SKU-TENT", "location_id": "DC-NORTH", "quantity": 5}]}
    status, answer = hold(lines_only)
    assert status == 403 and "promise_token" in answer["error"], answer
    status, answer = hold({"option": greedy, "destination": UTRECHT_HOME})
    assert (status, answer["error"]) == (
        403,
        "option does not match its promise token: the hold reserves nothing",
    )
    status, answer = hold({"option": real, "destination": UTRECHT_HOME, "lines": lines_only["lines"]})
    assert status == 400 and "either its option" in answer["error"], answer

    status, held = hold({"option": real, "destination": UTRECHT_HOME})
    assert status == 201 and held["status"] == "held", held
    assert [(s["sku"], s["lines"]) for s in held["skus"]] == [
        ("SKU-TENT", [{"location_id": "DC-NORTH", "quantity": 1}])
    ]
    wait_until(lambda: atp_at(worker, "SKU-TENT", "DC-NORTH") == 4, 20, "one tent held, no more")
