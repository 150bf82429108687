"""The imperative shell around the stock ledger: decode, load, decide (domain), store, emit, measure.

One instance per worker. ``apply_batch`` is called by the ``apply_stock_events`` agent with a batch
of faust events; ``resync`` recomputes every SKU this worker owns after a config change or a
rebalance. Both run under one lock so the availability published for a SKU is always computed from
its latest positions, in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, cast

import orjson

from oms_streams import clock
from oms_streams.adapters.availability import availability_from_record, encode_running
from oms_streams.adapters.reservations import DecodedReservation, reply, reply_batch_record
from oms_streams.adapters.stock import (
    DecodedStock,
    Failure,
    position_key,
    position_to_row,
    row_demand,
    row_to_position,
)
from oms_streams.adapters.timestamps import utc_from_epoch_ms
from oms_streams.domain.forecast import DemandState, HoltWintersForecaster
from oms_streams.domain.inventory import (
    Movement,
    MovementKind,
    StockPosition,
    Verdict,
    available_to_promise,
)
from oms_streams.domain.inventory import preorderable as inbound_available
from oms_streams.domain.ledger import StockCommand, apply_commands
from oms_streams.domain.protection import day_index, next_replenishment_ms, protection_units
from oms_streams.domain.reservations import ReservationKind, apply_reservation, expire_holds, is_cart_hold
from oms_streams.domain.visibility import (
    HiddenBy,
    LocationType,
    RunningAvailability,
    location_view,
    publication_signature,
)
from oms_streams.metrics import Metrics
from oms_streams.streaming.event_ids import AppliedMovementIds
from oms_streams.streaming.follower import TopicFollower
from oms_streams.streaming.holds import HoldKeeper
from oms_streams.streaming.ledger_store import LedgerStore, Send
from oms_streams.streaming.network import NetworkState
from oms_streams.streaming.outbox import Outbox, PartitionBatches, Produce
from oms_streams.streaming.partitioning import misrouted, strays
from oms_streams.streaming.preorder_arrivals import converted, tell_orders
from oms_streams.streaming.shedding import HoldShedder

log = logging.getLogger(__name__)

_APPLIED, _REJECTED, _SALE, _STORE = Verdict.APPLIED, Verdict.REJECTED, MovementKind.SALE, LocationType.STORE
"""Enum members read per event, as module constants (an enum read costs 0.3 µs in CPython 3.11)."""

_PREORDER = ReservationKind.PREORDER
IN_STEP = object()
"""In ``LedgerRuntime._published``: the SKU's last publication is what its running views show."""

Decoded = DecodedStock | DecodedReservation
Decoder = Callable[[bytes | None, bytes | None], Decoded | list[DecodedReservation] | Failure]
"""A stock record decodes to one event; a reservations record to a batch of commands."""


class AvailabilityView:
    """The latest record per SKU on the availability topic, as raw JSON (decoded only when read).

    Decoded records of the SKUs asked for are kept until the SKU's next record arrives: a promise
    reads the same hot SKUs again and again.
    """

    PARSED_MAX: Final = 50_000

    def __init__(self) -> None:
        self.records: dict[str, bytes] = {}
        self._parsed: dict[str, dict[str, Any]] = {}

    def on_records(self, records: Sequence[Any]) -> None:
        for record in records:
            if record.key is None:
                continue
            sku = record.key.decode(errors="replace")
            self._parsed.pop(sku, None)
            if record.value is None:
                self.records.pop(sku, None)
            else:
                self.records[sku] = record.value

    def get(self, sku: str, keep: bool = True) -> dict[str, Any] | None:
        """The decoded record; callers must not modify it (it is shared). ``keep=False`` for one-off
        reads (a resync walks every SKU once)."""
        parsed = self._parsed.get(sku)
        if parsed is not None:
            return parsed
        raw = self.records.get(sku)
        if raw is None:
            return None
        if not keep:
            return cast(dict[str, Any], orjson.loads(raw))
        if len(self._parsed) >= self.PARSED_MAX:
            self._parsed.clear()
        parsed = self._parsed[sku] = cast(dict[str, Any], orjson.loads(raw))
        return parsed


class LedgerRuntime:
    def __init__(
        self,
        *,
        store: LedgerStore,
        send_many: Send,
        network: NetworkState,
        config_follower: TopicFollower,
        view: AvailabilityView,
        view_follower: TopicFollower,
        decoders: dict[str, Decoder],
        availability_topic: str,
        replies_topic: str,
        dlq_topic: str,
        produce: Produce,
        metrics: Metrics,
        protection_quantile: float = 0.0,
        protection_default_days: int = 7,
        partitions: int | None = None,
        dedupe_window_days: float = 7,
        cache_positions: int = 500_000,
        holds_topic: str = "oms.holds.v1",
    ) -> None:
        self.store = store
        self._send_many = send_many
        self.event_ids = AppliedMovementIds(store.stock_event_ids, dedupe_window_days)
        self.partitions = partitions
        self.network = network
        self.config_follower = config_follower
        self.view = view
        self.view_follower = view_follower
        self.decoders = decoders
        self.availability_topic = availability_topic
        # Records to produce once the batch (or resync chunk) is decided, in order, under the lock.
        self.outbox = Outbox(produce, dlq_topic, metrics, produce_many=send_many)
        self.replies = PartitionBatches(replies_topic, partitions, reply_batch_record)
        self.holds = HoldKeeper(store, self.outbox, holds_topic, metrics)
        self.shedder = HoldShedder(network, self.replies, self.holds, metrics)
        self.metrics = metrics
        self.lock = asyncio.Lock()
        # Write-through cache of the SKUs used last: sku -> location -> position, least recently used
        # first, bounded to about ``cache_positions`` positions (the store holds them all).
        self._positions: dict[str, dict[str, StockPosition]] = {}
        self._cached = 0
        self.cache_positions = cache_positions
        # Each position seen through the channels, recomputed only when the position or the network
        # changes: a SKU's availability is then a cheap combination of its locations' views.
        self._views: dict[str, RunningAvailability] = {}
        self._views_generation = -1
        self._verdicts: dict[tuple[str, str], int] = defaultdict(int)
        # What this worker last published per SKU (authoritative over the lagging view): its
        # signature, or IN_STEP while the SKU's running views show exactly that.
        self._published: dict[str, object] = {}
        self._published_counters: dict[str, Any] = {}
        self._published_at_cache: tuple[int, str] = (-1, "")
        # Units hidden per (channel, location type, rule): the sum of the SKUs' views, each view
        # adding its share as it changes (``RunningAvailability``); a SKU's share, to take it away
        # when its views are built again.
        self._hidden_by_sku: dict[str, Mapping[tuple[str, LocationType, HiddenBy], int]] = {}
        self._hidden_totals: dict[tuple[str, LocationType, HiddenBy], int] = defaultdict(int)
        # Walk-in demand per store of each cached SKU, learned from the stores' POS sales.
        self._demand: dict[str, dict[str, DemandState]] = {}
        self.forecaster = HoltWintersForecaster()
        self.protection_quantile = protection_quantile
        self.protection_default_days = protection_default_days
        self._held_at: dict[str, dict[str, set[str]]] = {}
        """SKU -> reservation id -> the locations holding for it (cached SKUs), so a reservation
        finds its own holds without reading every hold of a busy SKU."""
        self._replenishment: dict[str, tuple[int, int | None]] = {}
        """Store -> (valid until ms, next replenishment arrival ms): routes change rarely."""
        self.ready = False
        """True once the worker has its partitions, its tables and its config, and has resynced."""

    # --- the hot path ---------------------------------------------------------------------------

    async def apply_batch(self, events: Sequence[Any]) -> None:
        by_partition: dict[int, dict[str, list[tuple[Any, Decoded]]]] = {}
        for event in events:
            message = event.message
            wrong = misrouted(message, self.partitions)
            decoded = Failure(wrong) if wrong else self.decoders[message.topic](message.key, message.value)
            if isinstance(decoded, list):
                stray = strays(message, (command.sku for command in decoded), self.partitions)
                decoded = Failure(stray) if stray else decoded
            if isinstance(decoded, Failure):
                self.metrics.stock_events.labels("unknown", "dead_lettered").inc()
                self._dead_letter(decoded.reason, message)
                continue
            skus = by_partition.setdefault(message.partition, {})
            for item in decoded if isinstance(decoded, list) else (decoded,):
                skus.setdefault(item.sku, []).append((event, item))
        await self._catch_up_on_unknown_locations(
            decoded
            for skus in by_partition.values()
            for items in skus.values()
            for _, decoded in items
            if isinstance(decoded, DecodedStock)
        )
        now_ms = clock.now_ms()
        async with self.lock:
            for skus in by_partition.values():
                for sku, items in skus.items():
                    self._apply_sku(sku, items, now_ms)
            self.replies.drain_into(self.outbox, now_ms)
            await self.store.commit(self._send_many)
            await self.outbox.flush()
        self.metrics.batch_size.observe(len(events))
        for (kind, verdict), n in self._verdicts.items():  # once per batch: labels() is not free
            self.metrics.stock_events.labels(kind, verdict).inc(n)
        self._verdicts.clear()

    def _apply_sku(self, sku: str, items: list[tuple[Any, Decoded]], now_ms: int) -> None:
        positions = self._load(sku)
        changed: dict[str, StockPosition] = {}
        # Stock events and reservations of a SKU are applied in arrival order: consecutive stock
        # events as one ledger batch, each reservation against the positions as they are then.
        start = 0
        while start < len(items):
            end = start
            while end < len(items) and isinstance(items[end][1], DecodedStock):
                end += 1
            if end > start:
                changed.update(self._apply_stock(sku, positions, items[start:end], now_ms))
                start = end
            else:
                changed.update(self._apply_reservation(sku, positions, items[start][1], now_ms))
                start += 1
        if not changed:
            return
        if self._publish_if_changed(sku, now_ms, "stock", changed=changed):
            observe = self.metrics.event_to_availability.observe
            now_s = time.time()  # the broker's stamp is wall-clock time, not business time
            for event, _ in items:
                observe(max(0.0, now_s - event.message.timestamp))

    def _apply_stock(
        self, sku: str, positions: dict[str, StockPosition], items: list[tuple[Any, Decoded]], now_ms: int
    ) -> dict[str, StockPosition]:
        commands: list[StockCommand] = []
        owners: list[tuple[Any, str]] = []  # (event, kind) per command, to report verdicts
        for event, decoded in items:
            assert isinstance(decoded, DecodedStock)
            commands.extend(decoded.commands)
            owners.extend((event, decoded.kind) for _ in decoded.commands)
        seen = self.event_ids.seen(sku, commands, positions)
        result = apply_commands(positions, commands, self.network.locations, seen)
        self.event_ids.remember(sku, result.applied_ids, now_ms)
        self._learn_demand(sku, commands, result.verdicts)
        rejected_events: set[int] = set()
        tally = self._verdicts
        for (event, kind), (verdict, reason) in zip(owners, result.verdicts, strict=True):
            if verdict is _REJECTED:
                tally[(kind, "dead_lettered")] += 1
                if id(event) not in rejected_events:  # one dead letter per message, with the first reason
                    rejected_events.add(id(event))
                    self._dead_letter(reason, event.message)
            else:
                tally[(kind, verdict)] += 1  # a StrEnum: its label is its value
        if not result.changed:
            return result.changed
        arrived = converted(positions, result.changed)
        self._store(sku, positions, result.changed)
        if arrived:
            tell_orders(sku, arrived, positions, self._usable(sku, "webshop"), self.replies, now_ms)
        # Holds the stock no longer covers are shed in the same batch, written with the positions.
        shed = self.shedder.after_stock(sku, positions, result.changed, commands, result.verdicts, now_ms)
        if shed:
            self._store(sku, positions, shed)
        return {**result.changed, **shed}

    def _learn_demand(
        self, sku: str, commands: list[StockCommand], verdicts: list[tuple[Verdict, str]]
    ) -> None:
        """A store's applied till sales are its walk-in demand (online orders leave by fulfilment).
        Learned even while protection is off, so turning it on finds the demand already known."""
        locations = self.network.locations
        sites = self.network.promise_network.sites
        demand = self._demand.setdefault(sku, {})
        for command, (verdict, _) in zip(commands, verdicts, strict=True):
            event = command.event
            if verdict is not _APPLIED or not isinstance(event, Movement):
                continue
            if event.kind is not _SALE:
                continue
            location = locations.get(command.location_id)
            if location is None or location.type is not _STORE:
                continue
            site = sites.get(command.location_id)
            day = day_index(site.calendar.timezone if site else "UTC", event.occurred_at_ms)
            state = demand.get(command.location_id) or self.forecaster.initial()
            demand[command.location_id] = self.forecaster.record_sale(state, day, event.quantity)

    def _apply_reservation(
        self, sku: str, positions: dict[str, StockPosition], decoded: Decoded, now_ms: int
    ) -> dict[str, StockPosition]:
        assert isinstance(decoded, DecodedReservation)
        command = decoded.command
        usable = self._usable(sku, decoded.channel, decoded.channels)
        held_at = self._held_at.get(sku, {})
        late = self.holds.late(positions, decoded) if is_cart_hold(command.reservation_id) else False
        hold_at = held_at.get(command.takes_over, ()) if command.takes_over else None
        result = apply_reservation(
            positions,
            command,
            usable,
            held_at.get(command.reservation_id, ()),
            now_ms=now_ms,
            hold_at=hold_at,
        )
        if result.changed:
            self._store(sku, positions, result.changed)
        self._verdicts[(decoded.kind, result.status.value)] += 1
        self.holds.on_result(sku, decoded, result, now_ms, late)
        if not is_cart_hold(command.reservation_id):  # a cart has no order owner to answer
            left = (lambda _, p: inbound_available(p)) if command.kind is _PREORDER else usable
            available = {loc: left(loc, positions.get(loc, StockPosition())) for loc, _ in result.lines}
            self.replies.add(decoded.order_id, reply(decoded, result, available, now_ms))
        return result.changed

    def _usable(
        self, sku: str, channel: str, channels: dict[str, str] | None = None
    ) -> Callable[[str, StockPosition], int]:
        """What a reservation for ``channel`` may take at a location: exactly what the channel sees
        there (safety stock, store cap and protection applied), so sourcing and availability agree."""
        rules = self.network.rules
        order = {rule.channel: i for i, rule in enumerate(rules.channels)}
        locations = self.network.locations
        overrides = channels or {}

        def usable(location_id: str, position: StockPosition) -> int:
            location = locations.get(location_id)
            if location is None or not location.active:
                return 0
            index = order.get(overrides.get(location_id, channel))
            protection = self._protection(sku, location_id)
            if index is None:
                return available_to_promise(position, protection)
            return location_view(sku, location, position, rules, protection).visible[index]

        return usable

    def _protection(self, sku: str, location_id: str, now_ms: int | None = None) -> int:
        """Units of the SKU the store keeps for walk-in shoppers until its next replenishment."""
        state = self._demand.get(sku, {}).get(location_id)
        if state is None or self.protection_quantile <= 0:
            return 0
        now_ms = now_ms if now_ms is not None else clock.now_ms()
        network = self.network.promise_network
        site = network.sites.get(location_id)
        cached = self._replenishment.get(location_id)
        if cached is None or cached[0] < now_ms:
            arrival = next_replenishment_ms(location_id, network.routes, dict(network.sites), now_ms)
            cached = self._replenishment[location_id] = (now_ms + 3_600_000, arrival)
        today = day_index(site.calendar.timezone if site else "UTC", now_ms)
        return protection_units(
            self.forecaster,
            state,
            today,
            now_ms,
            cached[1],
            self.protection_quantile,
            self.protection_default_days,
        )

    def _load(self, sku: str) -> dict[str, StockPosition]:
        cached = self._positions.pop(sku, None)
        if cached is not None:
            self._positions[sku] = cached  # now the most recently used
            return cached
        raw_locations = self.store.sku_locations.get(sku.encode())
        positions: dict[str, StockPosition] = {}
        for location_id in orjson.loads(raw_locations) if raw_locations else ():
            raw = self.store.stock_positions.get(position_key(sku, location_id).encode())
            if raw is not None:
                row = orjson.loads(raw)
                positions[location_id] = position = row_to_position(row)
                state = row_demand(row)
                if state is not None:
                    self._demand.setdefault(sku, {})[location_id] = state
                for reservation_id, _ in position.holds:
                    self._held_at.setdefault(sku, {}).setdefault(reservation_id, set()).add(location_id)
        self._positions[sku] = positions
        self._cached += len(positions)
        self._evict(keep=sku)
        return positions

    def _evict(self, keep: str) -> None:
        """Forget the least recently used SKUs while the cache holds more than its bound. Their rows
        are in the store (written at every batch's end), demand included; views are recomputed."""
        while self._cached > self.cache_positions and len(self._positions) > 1:
            sku = next(iter(self._positions))
            if sku == keep:
                return
            self._cached -= len(self._positions.pop(sku))
            self._drop_views((sku,))
            self._demand.pop(sku, None)
            self._held_at.pop(sku, None)

    def _store(
        self, sku: str, positions: dict[str, StockPosition], changed: dict[str, StockPosition]
    ) -> None:
        new_locations = changed.keys() - positions.keys()
        demand = self._demand.get(sku, {})
        held_at = self._held_at.setdefault(sku, {})
        for location_id, position in changed.items():
            before = positions.get(location_id)
            if before is None or before.holds is not position.holds:
                was = {r for r, _ in before.holds} if before is not None else set()
                now = {r for r, _ in position.holds}
                for reservation_id in was - now:
                    where = held_at.get(reservation_id)
                    if where is not None:
                        where.discard(location_id)
                        if not where:
                            del held_at[reservation_id]
                for reservation_id in now - was:
                    held_at.setdefault(reservation_id, set()).add(location_id)
            if location_id not in positions:
                self._cached += 1
            positions[location_id] = position
            self.store.stock_positions[position_key(sku, location_id).encode()] = orjson.dumps(
                position_to_row(position, demand.get(location_id))
            )
        if new_locations:
            self.store.sku_locations[sku.encode()] = orjson.dumps(sorted(positions))

    def _publish_if_changed(
        self, sku: str, now_ms: int, trigger: str, *, changed: Iterable[str] = (), force: bool = False
    ) -> bool:
        rules = self.network.rules
        views, fresh = self._views_of(sku, changed)
        if not (force or views.changed):
            return False  # nothing a record shows moved since the last check, which found it published
        if rules.thresholds_only or fresh or self._published.get(sku) is not IN_STEP:
            signature = publication_signature(views.availability(), rules)
            if not force and signature == self._last_signature(sku):
                views.published()
                if not rules.thresholds_only:
                    self._published[sku] = IN_STEP
                return False
            self._published[sku] = signature if rules.thresholds_only else IN_STEP
        else:  # views in step with the last publication since, and changed: so is the record
            self._published[sku] = IN_STEP
        views.published()
        record = encode_running(views, rules.version, self._published_at(now_ms))
        self.outbox.add(self.availability_topic, sku.encode(), record)
        counter = self._published_counters.get(trigger)
        if counter is None:
            counter = self._published_counters[trigger] = self.metrics.availability_published.labels(trigger)
        counter.inc()
        return True

    def _published_at(self, now_ms: int) -> str:
        """``now_ms`` in ISO 8601, worked out once per batch (every record of a batch has its time)."""
        if self._published_at_cache[0] != now_ms:
            self._published_at_cache = (now_ms, utc_from_epoch_ms(now_ms).isoformat())
        return self._published_at_cache[1]

    def _views_of(self, sku: str, changed: Iterable[str]) -> tuple[RunningAvailability, bool]:
        """The SKU's running views with the ``changed`` locations recomputed, and whether they were
        built afresh (all its locations) in this call."""
        network = self.network
        if self._views_generation != network.generation:
            self._drop_views(list(self._views))
            self._views_generation = network.generation
        positions = self._positions[sku]
        views = self._views.get(sku)
        fresh = views is None
        if views is None:
            for key, units in self._hidden_by_sku.get(sku, {}).items():  # its earlier views' share
                self._hidden_totals[key] -= units
            views = self._views[sku] = RunningAvailability(sku, network.rules, self._hidden_totals)
            self._hidden_by_sku[sku] = views.hidden
            changed = positions
        for location_id in changed:
            location = network.locations.get(location_id)
            if location is None:  # removed from the network since: never visible
                views.remove(location_id)
            else:
                protection = self._protection(sku, location_id)
                views.put(location_view(sku, location, positions[location_id], network.rules, protection))
        return views, fresh

    def _drop_views(self, skus: Iterable[str]) -> None:
        """Forget the SKUs' running views (evicted, or stale); what they last published is kept as
        a signature, for the views built next to be compared with."""
        for sku in skus:
            views = self._views.pop(sku, None)
            if views is not None and self._published.get(sku) is IN_STEP:
                self._published[sku] = publication_signature(views.availability(), views.rules)

    def expire_views(self) -> None:
        """Recompute every view at the next resync (protection moves with the calendar)."""
        self._drop_views(list(self._views))
        self._replenishment.clear()

    def _last_signature(self, sku: str) -> object:
        known = self._published.get(sku)
        if known is not None:
            return known
        record = self.view.get(sku, keep=False)
        if record is None:
            return None
        return publication_signature(availability_from_record(record), self.network.rules)

    def export_gauges(self) -> None:
        """Gauges are set when scraped, not per event: ``labels()`` is too dear for the hot path."""
        for (channel, location_type, rule), total in self._hidden_totals.items():
            self.metrics.units_hidden.labels(channel, location_type.value, rule.value).set(total)
        self.metrics.positions.set(self._cached)

    def _dead_letter(self, reason: str, message: Any) -> None:
        self.outbox.dead_letter(reason, message, int(time.time() * 1000))

    async def _catch_up_on_unknown_locations(self, batch: Iterable[DecodedStock]) -> None:
        """Master data may trail the first stock event of a new location by a moment: catch up once."""
        known = self.network.locations
        if any(c.location_id not in known for decoded in batch for c in decoded.commands):
            await self.config_follower.caught_up(timeout_s=5.0)

    # --- resync ---------------------------------------------------------------------------------

    def forget_ownership(self) -> None:
        """After a rebalance the SKUs this worker owns may have changed: drop what it cached."""
        self._positions.clear()
        self._cached = 0
        self._views.clear()
        self._published.clear()
        self._demand.clear()
        self._held_at.clear()
        self._hidden_by_sku.clear()  # the resync that follows counts the SKUs owned now
        self._hidden_totals.clear()
        self.holds.forget_ownership()

    async def resync(self, *, full: bool = False, chunk: int = 500) -> int:
        """Recompute the SKUs this worker owns; publish those whose view changed (or all, when full).

        Quick mode compares with the availability topic, so a restart publishes nothing that is
        already there. Returns the number of records published.
        """
        await self.config_follower.caught_up(timeout_s=30.0)
        await self.view_follower.caught_up(timeout_s=60.0)
        published = 0
        skus = [key.decode() for key in list(self.store.sku_locations.keys())]
        for start in range(0, len(skus), chunk):
            async with self.lock:
                now_ms = clock.now_ms()
                for sku in skus[start : start + chunk]:
                    if not self.store.owns(self.store.partition_of(sku.encode())):
                        continue  # given up since the list was taken
                    self._load(sku)
                    published += self._publish_if_changed(sku, now_ms, "resync", force=full)
                await self.outbox.flush()
            await asyncio.sleep(0)  # let the stock agent in between chunks
        return published

    async def forget_expired_ids(self, now_ms: int) -> int:
        """The dedupe sweep: ids older than the window deleted, with their changelog tombstones."""
        forgotten = await self.event_ids.forget_expired(now_ms, self.lock)
        async with self.lock:
            await self.store.commit(self._send_many)
        return forgotten

    async def expire_holds(self, now_ms: int) -> int:
        """Release the cart holds of owned SKUs that expired by ``now_ms`` (the ledger's clock), as a
        batch would: rows and changelogs, availability, one ``expired`` record per hold and SKU."""
        expired = 0
        async with self.lock:
            for sku, holds in self.holds.due(now_ms).items():
                positions = self._load(sku)
                result = expire_holds(positions, {h: live.expires_at_ms for h, live in holds.items()}, now_ms)
                if result.changed:
                    self._store(sku, positions, result.changed)
                    self._publish_if_changed(sku, now_ms, "hold_expiry", changed=result.changed)
                self.holds.expired(sku, holds, result.expired, now_ms)
                expired += len(holds)
            # No input offset stands behind a timer: the records go out before the state that
            # says they went. A crash between the two expires the holds again (same records);
            # the other order could store them gone and never say so on oms.holds.v1.
            await self.outbox.flush()
            await self.store.commit(self._send_many)
        return expired
