"""The imperative shell around returns: decode, load the return's row, decide (domain), store, emit.

``apply_batch`` is called by the ``handle_returns`` agent with announced returns (routed to the
location that needs them) and received returns (graded: restocked, unsellable or back to the
vendor). Both are keyed by return id, so a return's whole story is one row of the ``returns`` table
in its own partition.

Stock never changes here: a received item becomes a stock movement on ``oms.inventory.movements.v1``
with an id derived from the return and the item, which the SKU's ledger applies (so the webshop sees
a store return at once) and recognises when it comes again. The outcome per receipt goes to
``oms.returns.processed.v1`` keyed by order id, where the order tracker links it to the order.

When the order is known (``streaming.returnable``: what it shipped, what its other returns brought
back), only units it can take back are routed or disposed of; the rest is refused with the reason and
moves no stock (``domain.returnable``). A return without a known order follows the return policy.

At least once: after a crash the local row can be ahead of what reached Kafka, so a repeated input
re-sends its outputs with the same ids (consumers and the ledger recognise them) while it is recent;
a repeat days later only counts as a duplicate (the ledger's journal no longer remembers it).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from oms_streams import clock
from oms_streams.adapters.returnable import REFUSED, accepted_units
from oms_streams.adapters.returns import (
    Received,
    Requested,
    days_since_sale,
    decode_received,
    decode_requested,
    disposition_rules,
    movement_record,
    refused_line_wire,
    routed_line_wire,
    routed_record,
    routing_policy,
)
from oms_streams.adapters.stock import Failure
from oms_streams.adapters.timestamps import epoch_ms_from_iso, utc_from_epoch_ms
from oms_streams.domain.protection import day_index
from oms_streams.domain.retention import Finished, RetentionPolicy, return_finished
from oms_streams.domain.returnable import REFUSAL_LABEL, Allowed, ReturnClaim, allow_return
from oms_streams.domain.returns import (
    Disposition,
    DispositionRule,
    Grade,
    ReturnedItem,
    ReturnLine,
    ReturnNetwork,
    RoutedLine,
    decide_disposition,
    km_avoided,
    store_return_km_avoided,
)
from oms_streams.domain.visibility import haversine_km
from oms_streams.metrics import Metrics
from oms_streams.streaming.ledger_runtime import AvailabilityView
from oms_streams.streaming.network import NetworkState
from oms_streams.streaming.outbox import Durable, Outbox, Produce
from oms_streams.streaming.partitioning import misrouted, partition_for
from oms_streams.streaming.retention import RetentionIndex
from oms_streams.streaming.returnable import ReturnableOrders
from oms_streams.streaming.table_context import in_partition_of

log = logging.getLogger(__name__)

REPUBLISH_WITHIN_MS = 10 * 60_000
"""A repeated input re-sends its outputs only this soon after the first: long enough for any
crash-and-redelivery, short enough that the ledger's journal (64 movements per SKU and location)
still recognises the movements."""

MOVEMENT_KIND = {
    Disposition.RESTOCK: "customer_return_restocked",
    Disposition.UNSELLABLE: "customer_return_unsellable",
    Disposition.RETURN_TO_VENDOR: "customer_return_unsellable",  # kept aside until it ships back
}


@dataclass(frozen=True, slots=True)
class ReturnTopics:
    requested: str
    received: str
    routed: str
    processed: str
    movements: str
    dlq: str


def now_ms() -> int:
    return clock.now_ms()


def movement_id(return_id: str, item_key: str) -> str:
    """The stock movement's event id: the same item of the same return always gives the same id."""
    plain = f"return:{return_id}:{item_key}"
    if len(plain) <= 128:  # an Identifier's limit
        return plain
    return "return:" + hashlib.blake2b(f"{return_id}\0{item_key}".encode(), digest_size=20).hexdigest()


class ReturnsLoad:
    """Shipped-return units routed to each location per local day, across all workers.

    Every worker follows ``oms.returns.routed.v1``; its own decisions count at once (before they come
    back through the topic) and are recognised by event id when they do."""

    def __init__(self, network: NetworkState) -> None:
        self.network = network
        self._units: dict[tuple[str, int], int] = defaultdict(int)
        self._seen: dict[str, int] = {}
        """Routed event id -> its day, so a decision counts once."""
        self._today = 0

    def on_records(self, records: Sequence[Any]) -> None:
        for record in records:
            try:
                routed = orjson.loads(record.value)
                at_ms = epoch_ms_from_iso(routed["routed_at"])
                self.note(routed["event_id"], routed["lines"], at_ms)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # our own topic; a record we cannot read adds no load

    def note(self, event_id: str, lines: Sequence[Mapping[str, Any]], at_ms: int) -> None:
        if event_id in self._seen:
            return
        day = day_index("UTC", at_ms)
        self._seen[event_id] = day
        for line in lines:
            location_id = line.get("location_id")
            if location_id is not None:
                self._units[(location_id, self._local_day(location_id, at_ms))] += int(line["quantity"])

    def today(self, now: int) -> dict[str, int]:
        """Location id -> units routed there on its local day of ``now``."""
        self._forget_before(day_index("UTC", now) - 2)
        return {
            location_id: units
            for (location_id, day), units in self._units.items()
            if day == self._local_day(location_id, now)
        }

    def _local_day(self, location_id: str, t_ms: int) -> int:
        site = self.network.promise_network.sites.get(location_id)
        return day_index(site.calendar.timezone if site is not None else "UTC", t_ms)

    def _forget_before(self, day: int) -> None:
        if day <= self._today:
            return
        self._today = day
        for key in [k for k in self._units if k[1] < day]:
            del self._units[key]
        for event_id in [e for e, d in self._seen.items() if d < day]:
            del self._seen[event_id]


class ReturnsRuntime:
    def __init__(
        self,
        table: Any,
        network: NetworkState,
        view: AvailabilityView,
        load: ReturnsLoad,
        topics: ReturnTopics,
        produce: Produce,
        metrics: Metrics,
        partitions: int | None = None,
        durable: Durable | None = None,
        orders: ReturnableOrders | None = None,
        retention: RetentionIndex | None = None,
    ) -> None:
        self.table = table
        self.network = network
        self.view = view
        self.load = load
        self.orders = orders if orders is not None else ReturnableOrders()
        """What each order can take back; empty (every order unknown) without a follower."""
        self.topics = topics
        self.metrics = metrics
        self.partitions = partitions
        self.lock = asyncio.Lock()
        self.outbox = Outbox(produce, topics.dlq, metrics, durable)
        self._routing: tuple[int, ReturnNetwork, tuple[DispositionRule, ...]] | None = None
        self.retention = (
            retention
            if retention is not None
            else RetentionIndex({}, table, topics.requested, "returns", RetentionPolicy(), metrics)
        )
        """Every return row with the time it may leave (a return only waits for late receipts)."""
        self._partition = 0
        """The partition of the event being applied (returns rows do not keep theirs)."""

    # --- events ---------------------------------------------------------------------------------

    async def apply_batch(self, events: Sequence[Any]) -> None:
        async with self.lock:
            now = now_ms()
            for event in events:
                self._partition = event.message.partition
                with in_partition_of(event):
                    self._apply_one(event.message, now)
            await self.outbox.flush()

    def _apply_one(self, message: Any, now: int) -> None:
        requested = message.topic == self.topics.requested
        kind = "requested" if requested else "received"
        wrong = misrouted(message, self.partitions)
        decoded: Requested | Received | Failure
        if wrong is not None:
            decoded = Failure(wrong)
        elif requested:
            decoded = decode_requested(message.key, message.value)
        else:
            decoded = decode_received(message.key, message.value)
            if not isinstance(decoded, Failure):
                decoded = self._known_location(decoded)
        if isinstance(decoded, Failure):
            self.outbox.dead_letter(decoded.reason, message, now)
            self.metrics.returns_events.labels(kind, "dead_lettered").inc()
            return
        verdict = self._route(decoded, now) if isinstance(decoded, Requested) else self._receive(decoded, now)
        self.metrics.returns_events.labels(kind, verdict).inc()

    def _known_location(self, received: Received) -> Received | Failure:
        location = self.network.locations.get(received.wire.location_id)
        if location is None:
            return Failure(f"unknown location {received.wire.location_id!r}")
        if not location.active:
            return Failure(f"inactive location {received.wire.location_id!r} cannot receive returns")
        return received

    # --- announced returns: routing ---------------------------------------------------------------

    def _route(self, requested: Requested, now: int) -> str:
        wire = requested.wire
        row = self._load(wire.return_id)
        routing = row.get("routing")
        if routing is not None:
            if now - routing["at_ms"] < REPUBLISH_WITHIN_MS:
                self._publish_routed(row, routing)
            return "duplicate"
        row.update(order_id=row.get("order_id") or wire.order_id, channel=row.get("channel") or wire.channel)
        # Only what can come back against the order gets a return address; the rest is refused.
        allowed = self._allow(row, [ReturnClaim(x.line_id, x.sku, x.quantity) for x in requested.lines])
        lines = [ReturnLine(a.key, a.sku, a.accepted) for a in allowed if a.accepted]
        network, _ = self._network()
        started = time.perf_counter()
        routed = network.route(lines, wire.origin.lat, wire.origin.lon, self._need, self.load.today(now), now)
        self.metrics.returns_routing_seconds.observe(time.perf_counter() - started)
        for line in routed:
            self.metrics.returns_routed.labels(_basis(line)).inc(line.quantity)
        self._count_refused("requested", allowed)
        by_line = {line.line_id: line for line in routed}
        routing = {
            "at_ms": now,
            "event_id": wire.event_id,
            "origin": [wire.origin.lat, wire.origin.lon],
            "lines": [
                routed_line_wire(by_line[a.key], a.refused, a.reason) if a.accepted else refused_line_wire(a)
                for a in allowed
            ],
        }
        row["routing"] = routing
        self._store(row)
        self._publish_routed(row, routing)
        return "applied"

    def _allow(self, row: dict[str, Any], claims: list[ReturnClaim]) -> tuple[Allowed, ...]:
        """Per claim, what can come back against the return's order (everything when the order is
        not known); what earlier receipts of this return accepted is taken from its own row."""
        own = accepted_units(item for receipt in row["receipts"].values() for item in receipt["items"])
        return allow_return(self.orders.get(row.get("order_id")), row["return_id"], claims, own)

    def _count_refused(self, kind: str, allowed: Sequence[Allowed]) -> None:
        for a in allowed:
            if a.refusal is not None:
                self.metrics.returns_refused_units.labels(kind, a.refusal.value).inc(a.refused)

    def _need(self, sku: str) -> Mapping[str, int]:
        record = self.view.get(sku)
        return record.get("short", {}) if record is not None else {}

    def _publish_routed(self, row: dict[str, Any], routing: dict[str, Any]) -> None:
        record = routed_record(row["return_id"], row.get("order_id"), routing["lines"], routing["at_ms"])
        self.load.note(record["event_id"], record["lines"], routing["at_ms"])
        self.outbox.add(self.topics.routed, row["return_id"].encode(), orjson.dumps(record))

    # --- received returns: disposition and restock -----------------------------------------------

    def _receive(self, received: Received, now: int) -> str:
        wire = received.wire
        row = self._load(wire.return_id)
        receipts: dict[str, Any] = row.setdefault("receipts", {})
        if wire.event_id in receipts:
            first = receipts[wire.event_id]
            if now - first["at_ms"] < REPUBLISH_WITHIN_MS:
                self._publish_receipt(row, first, wire.event_id)
            return "duplicate"
        row.update(order_id=row.get("order_id") or wire.order_id, channel=row.get("channel") or wire.channel)
        items_seen = {item["item_key"] for receipt in receipts.values() for item in receipt["items"]}
        # The same item registered again (a till's resend with a new event id) counts once.
        fresh = [(k, i) for k, i in zip(wire.item_keys(), wire.items, strict=True) if k not in items_seen]
        if not fresh:
            return "duplicate"
        allowed = self._allow(row, [ReturnClaim(key, item.sku, item.quantity) for key, item in fresh])
        self._count_refused("received", allowed)
        processed = self._dispose(row, received, fresh, allowed)
        handling = "shipped" if row.get("routing") is not None else "in_store"
        saved, extra = self._km_versus_central(row, wire.location_id, processed, handling)
        km_saved = round(saved, 1)
        receipt: dict[str, Any] = {
            "at_ms": now,
            "occurred_at_ms": received.occurred_at_ms,
            "location_id": wire.location_id,
            "handling": handling,
            "items": processed,
            "km_avoided": km_saved,
        }
        receipts[wire.event_id] = receipt
        self._store(row)
        self.orders.note(
            row.get("order_id"),
            wire.return_id,
            accepted_units(item for done in receipts.values() for item in done["items"]),
        )
        self._count_units(row, processed, handling)
        self.metrics.returns_km_avoided.inc(km_saved)
        self.metrics.returns_km_extra.inc(round(extra, 1))
        self._publish_receipt(row, receipt, wire.event_id)
        return "applied"

    def _count_units(self, row: dict[str, Any], processed: list[dict[str, Any]], handling: str) -> None:
        # A label, so bounded: the channels the visibility rules know, else "other".
        channel = row.get("channel") or "unknown"
        if channel != "unknown" and channel not in {r.channel for r in self.network.rules.channels}:
            channel = "other"
        for done in processed:
            self.metrics.returned_units.labels(channel, done["grade"], done["disposition"], handling).inc(
                done["quantity"]
            )

    def _dispose(
        self,
        row: dict[str, Any],
        received: Received,
        fresh: list[tuple[str, Any]],
        allowed: Sequence[Allowed],
    ) -> list[dict[str, Any]]:
        """What becomes of each item: the disposition rules decide for the units that can come back
        against the order; the rest is refused (no stock moves: it is either a keying error, and
        moving stock would create units that do not exist, or not this order's item, which the till
        can register without the order, under the return policy)."""
        wire = received.wire
        location = self.network.locations[wire.location_id]
        _, rules = self._network()
        days = days_since_sale(received.sold_at_ms, received.occurred_at_ms)
        processed: list[dict[str, Any]] = []
        for (key, item), allowance in zip(fresh, allowed, strict=True):
            common = {"item_key": key, "sku": item.sku, "grade": item.grade}
            routed_to = self._routed_to(row, key, item.sku)
            if allowance.accepted:
                decision = decide_disposition(
                    ReturnedItem(item.sku, Grade(item.grade), row.get("channel"), location.type.value, days),
                    rules,
                )
                processed.append(
                    {
                        **common,
                        "quantity": allowance.accepted,
                        "disposition": decision.disposition.value,
                        "rule": decision.rule,
                        "movement_event_id": movement_id(wire.return_id, key),
                        "routed_to": routed_to,
                    }
                )
            if allowance.refusal is not None:
                processed.append(
                    {
                        **common,
                        "quantity": allowance.refused,
                        "disposition": REFUSED,
                        "rule": REFUSAL_LABEL[allowance.refusal],
                        "movement_event_id": None,
                        "routed_to": routed_to,
                        "reason": allowance.reason,
                    }
                )
        return processed

    def _routed_to(self, row: dict[str, Any], key: str, sku: str) -> str | None:
        routing = row.get("routing")
        if routing is None:
            return None
        lines = routing["lines"]
        line = next((x for x in lines if x["line_id"] == key), None) or next(
            (x for x in lines if x["sku"] == sku), None
        )
        return line["location_id"] if line is not None else None

    def _km_versus_central(
        self, row: dict[str, Any], location_id: str, items: list[dict[str, Any]], handling: str
    ) -> tuple[float, float]:
        """(item-km avoided, item-km added) against sending the items to the central returns DC: a
        store return restocked in place saves the store -> DC trip; a shipped one saves, or costs,
        the difference between the customer's distance to where it went and to the central DC (a
        store in need may be farther away: that is the price of restocking it without a transfer)."""
        network, _ = self._network()
        items = [i for i in items if i["disposition"] != REFUSED]  # refused units travel nowhere
        if handling == "in_store":
            per_unit = store_return_km_avoided(network, location_id)
            return per_unit * sum(
                int(i["quantity"]) for i in items if i["disposition"] == Disposition.RESTOCK
            ), 0.0
        lat, lon = row["routing"]["origin"]
        site = network.sites.get(location_id)
        central = network.central_for(lat, lon)
        if site is None or central is None:
            return 0.0, 0.0
        km = haversine_km(lat, lon, site.lat, site.lon)
        units = sum(int(i["quantity"]) for i in items)
        return km_avoided(central[1], km) * units, km_avoided(km, central[1]) * units

    def _publish_receipt(self, row: dict[str, Any], receipt: dict[str, Any], event_id: str) -> None:
        return_id = row["return_id"]
        for item in receipt["items"]:
            if item["movement_event_id"] is None:
                continue  # refused: no stock moves
            movement = movement_record(
                item["movement_event_id"],
                item["sku"],
                receipt["location_id"],
                MOVEMENT_KIND[Disposition(item["disposition"])],
                item["quantity"],
                receipt["occurred_at_ms"],
                return_id,
            )
            self.outbox.add(self.topics.movements, item["sku"].encode(), orjson.dumps(movement))
        order_id = row.get("order_id")
        processed = {
            "event_id": f"{return_id}:received:{event_id}",
            "return_id": return_id,
            "order_id": order_id,
            "location_id": receipt["location_id"],
            "handling": receipt["handling"],
            "processed_at": utc_from_epoch_ms(receipt["at_ms"]).isoformat(),
            "items": receipt["items"],
            "km_avoided": receipt["km_avoided"],
        }
        key = (order_id or return_id).encode()
        self.outbox.add(self.topics.processed, key, orjson.dumps(processed))

    # --- rows -------------------------------------------------------------------------------------

    def _network(self) -> tuple[ReturnNetwork, tuple[DispositionRule, ...]]:
        """Built once per network version: every return between two config changes shares it."""
        network = self.network
        if self._routing is None or self._routing[0] != network.generation:
            policy = network.return_policy
            built = ReturnNetwork(network.promise_network.sites, routing_policy(policy))
            self._routing = (network.generation, built, disposition_rules(policy))
        return self._routing[1], self._routing[2]

    def _load(self, return_id: str) -> dict[str, Any]:
        raw = self.table.get(return_id)
        if raw is None:
            return {
                "return_id": return_id,
                "order_id": None,
                "channel": None,
                "routing": None,
                "receipts": {},
            }
        row: dict[str, Any] = orjson.loads(raw)
        return row

    def _store(self, row: dict[str, Any]) -> None:
        self.table[row["return_id"]] = orjson.dumps(row)
        self.retention.mark(row["return_id"], self._partition, _finished(row))

    # --- ownership and retention ------------------------------------------------------------------

    def forget_ownership(self) -> None:
        self.retention.forget()

    async def reload(self) -> int:
        """After a rebalance: the removal times of this worker's returns, from the index (a return
        has nothing open to watch). Without an index yet, every row is indexed once."""
        async with self.lock:
            for key, raw in self.retention.open_rows():
                if key in self.retention:
                    continue  # indexed as it was stored
                row = orjson.loads(raw)
                # A return row keeps no partition: its key's murmur2 partition (records outside it
                # are rerouted there, so that is where every row was written).
                partition = partition_for(row["return_id"].encode(), self.partitions or 1)
                self.retention.mark(row["return_id"], partition, _finished(row))
            return len(self.retention)

    async def sweep(self) -> int:
        """Timer: remove the returns whose retention has passed (tombstones in the changelogs)."""
        async with self.lock:
            removed = self.retention.sweep(now_ms(), lambda _, raw: _finished(orjson.loads(raw)))
            return len(removed)

    def lookup(self, return_id: str) -> dict[str, Any] | None:
        raw = self.table.get(return_id)
        return None if raw is None else dict(orjson.loads(raw))


def _finished(row: dict[str, Any]) -> Finished | None:
    routing = row.get("routing")
    moments = [routing["at_ms"]] if routing else []
    moments += [receipt["at_ms"] for receipt in row.get("receipts", {}).values()]
    return return_finished(moments)


def _basis(line: RoutedLine) -> str:
    if line.location_id is None:
        return "unroutable"
    if line.fallback:
        return "central"
    return "need" if line.need_covered > 0 else "nearest"
