"""What the chaos run (``bench.chaos``) counts at the end: ``oms audit`` and what the audit does not
see, read from the topics and the workers.

``oms audit`` reports oversold stock (``over_reserved``, ``negative``), holds without a live owner
(``orphan_hold``, ``unowned_hold``, ``expired_hold``, ``unowned_preorder``) and allocations made twice
(``over_allocated``, ``conflicting_allocation``, ``conflicting_outcomes``), but an order's end only
for its first round (``missing_outcome``). So the run also counts, per order placed:

- from the topics: no outcome at all, or a withdrawal (a ``cancel`` allocation record of a short
  pick, a store rejection or a shed, which starts a new round) newer than its latest outcome;
- from its owner (``GET /orders/{id}``): a saga still ``reserving`` (a live round) or unknown;

and the cancellation requests without an answer, and the cart holds whose record still says held
or pending well after their expiry (the ledger releases them; ``GET /holds`` would say otherwise).

Two audit findings are counted apart, as what they are (not as failures): ``missing_allocation`` of
an allocation whose ``cancel`` was published (a round republished after a restart leaves out what
was cancelled since), and ``unheld_allocation`` of an allocation answered ``fulfilled`` after a
count shed its hold (the audit still expects the hold of what has left).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from bench.chaos_load import ChaosLoad
from tests.integration.test_cancellation import OUTCOMES
from tests.integration.test_sourcing import ALLOCATIONS, SOURCED
from tests.worker_process import REPO_ROOT, WorkerProcess

REPLIES = "oms.orders.reservation-replies.v2"
OVERSOLD = ("over_reserved", "negative")
UNOWNED = ("orphan_hold", "unowned_hold", "expired_hold", "unowned_preorder")
DUPLICATED = ("over_allocated", "conflicting_allocation", "conflicting_outcomes")
HELD_LATE_S = 15
"""A hold's record may say 'held' this long after its expiry (the ledger checks every 0.5 s here)."""


@dataclass
class EndCounts:
    oversold_units: int = 0
    oversold_positions: int = 0
    holds_without_live_owner: int = 0
    orders_without_end_state: int = 0
    duplicate_allocations: int = 0
    cancellations_unanswered: int = 0
    edits_unanswered: int = 0
    """Edits with no answer (accepted in a round's outcome, or refused) on oms.orders.sourced.v1."""
    other_audit_findings: dict[str, int] = field(default_factory=dict)
    holds_shown_held_after_expiry: int = 0
    listed_cancelled_unpublished: int = 0
    """``missing_allocation`` of an allocation whose ``cancel`` was published: a round republished
    after a restart leaves out its allocations cancelled since (fulfilment gets their cancel only)."""
    fulfilled_after_shed: int = 0
    """``unheld_allocation`` of an allocation whose fulfil was answered ``fulfilled`` after a count
    shed its hold (the count already excluded the shipped units): it needs no hold any more."""
    audit_counts: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (
            self.oversold_units
            or self.oversold_positions
            or self.holds_without_live_owner
            or self.orders_without_end_state
            or self.duplicate_allocations
            or self.cancellations_unanswered
            or self.edits_unanswered
            or self.other_audit_findings
        )


def end_counts(bootstrap: str, prefix: str, load: ChaosLoad, workers: list[WorkerProcess]) -> EndCounts:
    counts = EndCounts()
    report = audit_report(bootstrap, prefix)
    findings: dict[str, list[dict[str, str]]] = report.get("findings", {})
    counts.audit_counts = {k: v for k, v in report.get("counts", {}).items() if v}
    cancelled = cancelled_allocations(bootstrap, prefix)
    shipped = fulfilled(bootstrap, prefix)
    for kind, items in findings.items():
        if kind == "missing_allocation":
            benign = [item for item in items if item["key"] in cancelled]
            counts.listed_cancelled_unpublished = len(benign)
            items = [item for item in items if item["key"] not in cancelled]
        if kind == "unheld_allocation":
            benign = [item for item in items if _order_and_sku(item) in shipped]
            counts.fulfilled_after_shed = len(benign)
            items = [item for item in items if _order_and_sku(item) not in shipped]
        if not items:
            continue
        if kind in OVERSOLD:
            counts.oversold_positions += len(items)
            counts.oversold_units += sum(_oversold_units(kind, item["detail"]) for item in items)
        elif kind in UNOWNED:
            counts.holds_without_live_owner += len(items)
        elif kind in DUPLICATED:
            counts.duplicate_allocations += len(items)
        elif kind != "missing_outcome":  # counted with the orders without an end state
            counts.other_audit_findings[kind] = len(items)
        counts.examples += [f"{kind} {item['key']}: {item['detail']}" for item in items[:3]]
    stuck = orders_without_end_state(bootstrap, prefix, load.placed, workers)
    counts.orders_without_end_state = len(stuck)
    counts.examples += [f"no end state {order}: {why}" for order, why in sorted(stuck.items())[:5]]
    unanswered = set(load.requests) - answered_requests(bootstrap, prefix)
    counts.cancellations_unanswered = len(unanswered)
    counts.examples += [f"unanswered cancellation {r}" for r in sorted(unanswered)[:3]]
    unanswered = set(load.edits) - answered_edits(bootstrap, prefix)
    counts.edits_unanswered = len(unanswered)
    counts.examples += [f"unanswered edit {e} of {load.edits[e]}" for e in sorted(unanswered)[:3]]
    counts.holds_shown_held_after_expiry = len(holds_shown_held(load, workers))
    return counts


def audit_report(bootstrap: str, prefix: str) -> dict[str, Any]:
    """``oms audit --json`` with nothing counted as in flight (the run has settled)."""
    env = {**os.environ, "OMS_KAFKA_BOOTSTRAP": bootstrap, "OMS_TOPIC_PREFIX": prefix}
    env["OMS_APP_ID"] = f"{prefix}oms"
    result = subprocess.run(
        [sys.executable, "-m", "oms_streams.cli", "audit", "--json", "--settle-s", "0"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if result.returncode not in (0, 1):
        raise RuntimeError(f"oms audit failed ({result.returncode}): {result.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _oversold_units(kind: str, detail: str) -> int:
    """'reserved 19 > on hand 3' -> 16; 'on hand -2, reserved 0' -> 2."""
    numbers = [int(n) for n in re.findall(r"-?\d+", detail)]
    if kind == "over_reserved":
        return max(0, numbers[0] - numbers[1])
    on_hand, reserved = numbers[0], numbers[1]
    return max(0, reserved - on_hand, -on_hand)


def orders_without_end_state(
    bootstrap: str, prefix: str, placed: list[str], workers: list[WorkerProcess]
) -> dict[str, str]:
    """Order id -> why it has no end state: from the topics, then from its saga's owner."""
    latest: dict[str, int] = {}  # order -> its latest round with an outcome
    for _, value, _ in read_timed(bootstrap, prefix + SOURCED):
        outcome = json.loads(value)
        if outcome["outcome"] == "preordered":
            continue  # a preorder's interim answer: its round's outcome comes at the arrival
        latest[outcome["order_id"]] = max(outcome["round"], latest.get(outcome["order_id"], -1))
    withdrawn: dict[str, int] = {}  # order -> the latest round an allocation was withdrawn from
    for _, value, _ in read_timed(bootstrap, prefix + ALLOCATIONS):
        record = json.loads(value)
        if record["kind"] == "cancel" and not str(record.get("reason", "")).startswith("cancelled"):
            # A withdrawal starts a later round; rounds only grow, so comparing them does not
            # depend on the log order (a cancel re-sent after a crash comes after later outcomes).
            order = record["order_id"]
            withdrawn[order] = max(record["round"], withdrawn.get(order, -1))
    stuck = {}
    for order in placed:
        if order not in latest:
            stuck[order] = "no outcome on oms.orders.sourced.v1"
        elif withdrawn.get(order, -1) >= latest[order]:
            stuck[order] = f"round {withdrawn[order]} withdrawn, no outcome of a later round (never answered)"
    for order in placed:
        if order not in stuck and (why := _saga_not_ended(order, workers)) is not None:
            stuck[order] = why
    return stuck


def _saga_not_ended(order: str, workers: list[WorkerProcess]) -> str | None:
    for worker in workers:  # any worker proxies to the owner; another one if it is down
        try:
            status, view = worker.get(f"/orders/{order}")
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            continue
        if status == 404:
            return "unknown to its owner"
        if status != 200:
            continue
        saga = view.get("sourcing") or {}
        if saga.get("status") in (None, "reserving"):
            return f"saga {saga.get('status')} in round {saga.get('round')}"
        return None
    return None  # nobody answered: the topics' word stands


def cancelled_allocations(bootstrap: str, prefix: str) -> set[str]:
    records = (json.loads(value) for _, value, _ in read_timed(bootstrap, prefix + ALLOCATIONS))
    return {record["allocation_id"] for record in records if record["kind"] == "cancel"}


def fulfilled(bootstrap: str, prefix: str) -> set[tuple[str, str]]:
    """(order, SKU) of every fulfil answered ``fulfilled`` (with or without units)."""
    found = set()
    for _, value, _ in read_timed(bootstrap, prefix + REPLIES):
        for reply in json.loads(value)["replies"]:
            if reply["kind"] == "fulfil" and reply["status"] == "fulfilled":
                found.add((reply["order_id"], reply["sku"]))
    return found


def _order_and_sku(item: dict[str, str]) -> tuple[str, str]:
    """An unheld_allocation finding: key 'ORDER:round:shipment,...', detail 'SKU at LOCATION: ...'."""
    return item["key"].split(":", 1)[0], item["detail"].split(" ", 1)[0]


def answered_requests(bootstrap: str, prefix: str) -> set[str]:
    return {json.loads(value)["request_id"] for _, value, _ in read_timed(bootstrap, prefix + OUTCOMES)}


def answered_edits(bootstrap: str, prefix: str) -> set[str]:
    """Placement event ids of the edits answered, accepted (a round's outcome) or refused."""
    answers = (json.loads(value).get("edit") for _, value, _ in read_timed(bootstrap, prefix + SOURCED))
    return {edit["placement_event_id"] for edit in answers if edit}


def holds_shown_held(load: ChaosLoad, workers: list[WorkerProcess]) -> list[str]:
    """Cart holds whose record on ``oms.holds.v1`` still says held or pending well after expiry."""
    late = []
    now = time.time()
    for hold in load.holds:
        if hold.expires_at + HELD_LATE_S > now:
            continue
        for worker in workers:
            try:
                status, view = worker.get(f"/holds/{hold.hold_id}")
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                continue
            if status == 200 and view.get("status") in ("held", "pending"):
                late.append(hold.hold_id)
            break
    return late


def read_timed(bootstrap: str, topic: str, timeout_s: float = 30) -> list[tuple[bytes, bytes, int]]:
    """(key, value, timestamp ms) of every keyed record of a topic up to its current end."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        if metadata.error is not None:
            return []  # never created: nothing was ever sent to it
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in metadata.partitions
        }
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        pending = {p for p, end in ends.items() if end > 0}
        records = []
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            if message.key() is not None and message.value() is not None:
                records.append((message.key(), message.value(), message.timestamp()[1]))
            if message.offset() + 1 >= ends[message.partition()]:
                pending.discard(message.partition())
        if pending:
            raise TimeoutError(f"could not read {topic} to its end within {timeout_s}s")
        return records
    finally:
        consumer.close()
